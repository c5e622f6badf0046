#!/usr/bin/env bash
# Install the GitHub Actions runner agent at the version pinned in versions.env,
# checksum-verified, into RUNNER_DIR, owned by the unprivileged RUNNER_USER (created
# here if missing). Packer runs it while baking both images; boot.sh runs it when a VM
# boots from a plain Ubuntu image that has no runner yet. Nothing is downloaded
# unpinned, and the script ends by checking what it installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=vm/versions.env
source "${here}/versions.env"
RUNNER_DIR="${RUNNER_DIR:-/opt/actions-runner}"
RUNNER_USER="${RUNNER_USER:-runner}"
log() { printf 'vmss-runner[install-runner] %s\n' "$*" >&2; }

if ((EUID != 0)); then
  log "must run as root"
  exit 1
fi
if [[ "$(uname -m)" != x86_64 ]]; then
  log "only linux-x64 is pinned (versions.env); this machine is $(uname -m)"
  exit 1
fi

# The runner refuses to run as root, and jobs must not have root: a system user with
# a home (tools cache there) and no password. Docker access when Docker is installed.
if ! id -u "${RUNNER_USER}" > /dev/null 2>&1; then
  useradd --system --create-home --shell /bin/bash "${RUNNER_USER}"
fi
if getent group docker > /dev/null; then
  usermod -aG docker "${RUNNER_USER}"
fi

# boot.sh and the hooks parse the scaler's answers with jq. Both images have it; a plain
# marketplace image may not.
if ! command -v jq > /dev/null; then
  log "installing jq from the Ubuntu archive"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq
fi

tarball="actions-runner-linux-x64-${RUNNER_VERSION}.tar.gz"
url="https://github.com/actions/runner/releases/download/v${RUNNER_VERSION}/${tarball}"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
log "downloading ${url}"
curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
  --retry 5 --retry-delay 5 --retry-all-errors --output "${work}/${tarball}" "${url}"
echo "${RUNNER_SHA256_LINUX_X64}  ${work}/${tarball}" | sha256sum --check --strict --quiet
mkdir -p "${RUNNER_DIR}"
tar -xzf "${work}/${tarball}" -C "${RUNNER_DIR}"
# The runner's own script installs the .NET dependencies (libicu and friends).
"${RUNNER_DIR}/bin/installdependencies.sh"
chown -R "${RUNNER_USER}:" "${RUNNER_DIR}"

# Check the result: jq and the entry points exist and the agent reports the pinned version.
command -v jq > /dev/null
test -x "${RUNNER_DIR}/run.sh" && test -x "${RUNNER_DIR}/config.sh"
installed="$(runuser -u "${RUNNER_USER}" -- "${RUNNER_DIR}/bin/Runner.Listener" --version)"
if [[ "${installed}" != "${RUNNER_VERSION}" ]]; then
  log "installed runner reports '${installed}', expected ${RUNNER_VERSION}"
  exit 1
fi
log "runner ${RUNNER_VERSION} installed in ${RUNNER_DIR} for ${RUNNER_USER}"
