#!/usr/bin/env bash
# Static checks of the Terraform modules and the GitHub workflows, runnable on
# a machine without terraform, packer or network access beyond package
# registries. Expects the tools installed by scripts/install-python-tools.sh.
#
#   pytest tests/static   HCL parse + fmt layout, variable contract, rendered
#                         operator config vs schema, README drift, workflow rules
#   checkov               0 failed checks on terraform/ (skips are inline, with reasons)
#   actionlint            workflow syntax, expressions, shellcheck of run: steps
#   zizmor --offline      workflow security audit
#   gen-terraform-docs    README input/output tables up to date
#   cloud-init schema     cloud-init/*.yaml, rendered as Terraform would, against
#                         cloud-init's own schema (scripts/check-cloud-init.sh)
#
# Runs every check, prints a summary, exits non-zero if any failed.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}" || exit 2
bin="${repo_root}/.tools/venv/bin"
if [[ ! -x "${bin}/pytest" ]]; then
  echo "static-checks: tools missing; run: bash scripts/install-python-tools.sh" >&2
  exit 2
fi
export PATH="${bin}:${PATH}"   # actionlint finds shellcheck here

declare -a names=() results=()
run_check() {
  local name="$1"; shift
  printf '\n==> %s\n' "${name}"
  if "$@"; then
    results+=("ok  ")
  else
    results+=("FAIL")
  fi
  names+=("${name}")
}

run_check "pytest tests/static" pytest -q -p no:cacheprovider tests/static
run_check "checkov terraform" checkov --directory terraform --framework terraform --skip-download --quiet --compact
run_check "actionlint" actionlint -no-color
run_check "zizmor (offline)" zizmor --offline --no-progress --color never .github/workflows
run_check "terraform docs drift" python scripts/gen-terraform-docs.py --check
run_check "cloud-init schema" bash scripts/check-cloud-init.sh

printf '\n==> summary\n'
failed=0
for i in "${!names[@]}"; do
  printf '  %s  %s\n' "${results[$i]}" "${names[$i]}"
  [[ "${results[$i]}" == "FAIL" ]] && failed=1
done
if (( failed )); then
  echo "static-checks: FAILED" >&2
  exit 1
fi
echo "static-checks: all passed"
