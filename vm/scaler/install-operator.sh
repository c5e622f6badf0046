#!/usr/bin/env bash
# Scaler boot: install the operator binary named in operator-package.env (an HTTPS URL
# and its pinned sha256, both rendered by Terraform), refusing anything whose checksum
# differs, then check that it runs. cloud-init (cloud-init/scaler.yaml) runs it once.
set -euo pipefail

package_env="${1:-/etc/vmss-github-runner/operator-package.env}"
# shellcheck source=/dev/null
source "${package_env}"
: "${OPERATOR_URL:?OPERATOR_URL must be set in ${package_env}}"
: "${OPERATOR_SHA256:?OPERATOR_SHA256 must be set in ${package_env}}"
log() { printf 'vmss-scaler[install-operator] %s\n' "$*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
log "downloading ${OPERATOR_URL}"
curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
  --retry 10 --retry-delay 5 --retry-all-errors --output "${work}/operator" "${OPERATOR_URL}"
echo "${OPERATOR_SHA256}  ${work}/operator" | sha256sum --check --strict --quiet
install -m 0755 -o root -g root "${work}/operator" /usr/local/bin/operator

# Check the result: the installed file is the pinned one and it runs.
echo "${OPERATOR_SHA256}  /usr/local/bin/operator" | sha256sum --check --strict --quiet
/usr/local/bin/operator --help > /dev/null
log "operator installed (sha256 ${OPERATOR_SHA256})"
