#!/usr/bin/env bash
# Validate both cloud-init documents with cloud-init's own schema check (Debian's
# cloud-init package, pinned in tools/apt-packages.txt). They are Terraform templates,
# so first render them as templatefile() would (tests/static/cloudinit.py), with
# example values, into a temporary directory.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${repo_root}/.tools/venv/bin/python"
out="$(mktemp -d)"
trap 'rm -rf "${out}"' EXIT

"${python}" "${repo_root}/tests/static/cloudinit.py" "${out}" > /dev/null
for rendered in "${out}"/*.yaml; do
  # cloud-init 22.4 prints "Valid cloud-config: <file>" and exits 0, or lists the errors.
  cloud-init schema --config-file "${rendered}"
done
