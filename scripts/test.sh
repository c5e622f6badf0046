#!/usr/bin/env bash
# The one test command (README, .ci/run): on a machine with only the Rust
# toolchain, Node.js and Python, install every tool the tests need — pinned,
# cached inside the checkout, git-ignored — then run every test tier.
#
#   node_modules/   Azurite (package-lock.json), the real queue and blob services for tests
#   .tools/         Python tools: just, shellcheck, checkov, actionlint, zizmor, pytest
#   apt packages    cloud-init (schema check), jq, curl, iproute2 (the VM scripts and
#                   the e2e test's network namespaces), docker.io and mmdebstrap (the
#                   Azurite container and its locally built image), pinned in
#                   tools/apt-packages.txt
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

# Azurite, exactly as locked. Skip when the lock file has not changed since the last install.
stamp="node_modules/.lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "${stamp}" || "$(cat "${stamp}")" != "${want}" ]]; then
  echo "test: installing Azurite (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "${want}" > "${stamp}"
fi
node_modules/.bin/azurite-queue --version > /dev/null
node_modules/.bin/azurite-blob --version > /dev/null

bash scripts/install-apt-tools.sh
bash scripts/install-python-tools.sh

# Azurite runs in a container through testcontainers: start a Docker daemon if none
# answers (and stop it afterwards), build or reuse the local image (no registry is
# reachable here). AZURITE_MODE=process skips all of it and uses the Node process.
if [[ "${AZURITE_MODE:-container}" == "container" ]]; then
  bash scripts/docker-daemon.sh start
  trap 'bash scripts/docker-daemon.sh stop' EXIT
  # A given AZURITE_IMAGE (GitHub CI pulls the official one) is used as it is.
  if [[ -z "${AZURITE_IMAGE:-}" ]]; then
    AZURITE_IMAGE="$(bash scripts/azurite-image.sh)"
  fi
  export AZURITE_IMAGE AZURITE_MODE=container
  echo "test: the Azurite tier runs in containers of ${AZURITE_IMAGE}"
fi

.tools/venv/bin/just ci
