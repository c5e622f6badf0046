#!/usr/bin/env bash
# Scaler: install the operator binary named in operator-package.env (an HTTPS URL and
# its pinned sha256, delivered in the VM's user data by Terraform and written by
# refresh-operator-config), refusing anything whose checksum differs, then check that
# it runs. operator.service runs it as ExecStartPre (as root), so it runs after the
# network is up and again on every (re)start; it does nothing when the installed binary
# already has the pinned checksum. Downloads are retried with backoff for up to
# INSTALL_DEADLINE seconds (default 600), and the unit restarts it after that: the
# subnet's NAT gateway may still be attaching when the VM first boots.
set -euo pipefail

package_env="${1:-${OPERATOR_PACKAGE_ENV:-/etc/vmss-github-runner/operator-package.env}}"
target="${OPERATOR_BIN:-/usr/local/bin/operator}"
deadline=$(($(date +%s) + ${INSTALL_DEADLINE:-600}))
log() { printf 'vmss-scaler[install-operator] %s\n' "$*" >&2; }

if [[ ! -r "${package_env}" ]]; then
  log "${package_env} is missing: refresh-operator-config writes it from the VM's user data"
  exit 1
fi
# shellcheck source=/dev/null
source "${package_env}"
: "${OPERATOR_URL:?OPERATOR_URL must be set in ${package_env}}"
: "${OPERATOR_SHA256:?OPERATOR_SHA256 must be set in ${package_env}}"

if [[ -x "${target}" ]] && echo "${OPERATOR_SHA256}  ${target}" | sha256sum --check --strict --quiet 2> /dev/null; then
  log "operator already installed (sha256 ${OPERATOR_SHA256})"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
delay=5
until curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
  --retry "${DOWNLOAD_RETRIES:-5}" --retry-delay 5 --retry-all-errors --connect-timeout 10 \
  --output "${work}/operator" "${OPERATOR_URL}"; do
  if (($(date +%s) + delay > deadline)); then
    log "no download of ${OPERATOR_URL} before the deadline; the unit retries"
    exit 1
  fi
  log "download of ${OPERATOR_URL} failed; again in ${delay}s"
  sleep "${delay}"
  delay=$((delay < 60 ? delay * 2 : 60))
done
if ! echo "${OPERATOR_SHA256}  ${work}/operator" | sha256sum --check --strict --quiet; then
  log "${OPERATOR_URL} does not have the pinned sha256 ${OPERATOR_SHA256}; refusing it"
  exit 1
fi
install -D -m 0755 "${work}/operator" "${target}"

# Check the result: the installed file is the pinned one and it runs.
echo "${OPERATOR_SHA256}  ${target}" | sha256sum --check --strict --quiet
"${target}" --help > /dev/null
log "operator installed (sha256 ${OPERATOR_SHA256})"
