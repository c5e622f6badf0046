#!/usr/bin/env bash
# runner-exited.sh EXIT_CODE — called by boot.sh when run.sh has exited: tell the
# scaler this VM's runner is gone, so it may now reimage the VM (the pool still needs
# it) or delete it. This, not the job-completed hook, is the moment the VM is free.
#
# Retries with backoff for up to RUNNER_EXITED_TIMEOUT seconds. If the scaler stays
# unreachable it logs and exits 0: the operator's reconcile pass sees the ephemeral
# runner gone (or offline) at GitHub and recycles the VM anyway, and nothing on the VM
# can do better.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VMSS_COMPONENT=runner-exited
# shellcheck source=vm/lib.sh
source "${here}/lib.sh"
vmss_load_config

exit_code="${1:-0}"
if [[ ! "${exit_code}" =~ ^-?[0-9]+$ ]]; then
  vmss_log warn "exit code '${exit_code}' is not a number; reporting none"
  body='{}'
else
  body="{\"exit_code\": ${exit_code}}"
fi
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
rc=0
vmss_post /api/v1/hooks/runner-exited "${body}" "${out}" 0 $(($(date +%s) + RUNNER_EXITED_TIMEOUT)) || rc=$?
case "${rc}" in
  0) vmss_log info "runner exit (${exit_code}) reported; the scaler may now reimage or delete this VM" ;;
  2) vmss_log warn "runner-exited refused ($(vmss_describe "${out}"))" ;;
  *) vmss_log warn "scaler unreachable for ${RUNNER_EXITED_TIMEOUT}s; its reconcile pass will find the runner gone at GitHub and recycle this VM" ;;
esac
exit 0
