#!/usr/bin/env bash
# Runner VM boot: get this boot's registration from the scaler, run one ephemeral
# runner as the unprivileged runner user with the job hooks installed, and report
# when it exits. Run once per boot (and per reimage) by vmss-github-runner.service.
#
# Why this order:
#   - The VM holds no long-lived secret. The operator recognises it by its private
#     address and hands out one registration per boot: a one-time JIT config, or a
#     registration token that config.sh uses at once. Neither is written to disk
#     outside a root-only temporary directory, nor logged.
#   - The runner is ephemeral: it takes one job, then run.sh exits. Only then may the
#     VM be reimaged or deleted (runner-exited.sh). The job-completed hook must not
#     trigger that: GitHub runs it before the job is complete.
#   - Registration is retried with backoff until REGISTRATION_TIMEOUT, then this
#     script fails loudly (the unit fails, the journal says why); the operator
#     recycles a VM that never registers after its own registration timeout.
#   - The answer may be "park" instead: the pool keeps the VM in reserve, deallocated,
#     and starts it on demand. The unit is enabled, so the started VM runs this
#     script again and asks for its registration like any booting VM.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VMSS_COMPONENT=boot
# shellcheck source=vm/lib.sh
source "${here}/lib.sh"
vmss_load_config

if ((EUID != 0)); then
  vmss_log error "must run as root (it starts the runner as ${RUNNER_USER})"
  exit 1
fi
if [[ ! -x "${RUNNER_DIR}/run.sh" ]]; then
  # A plain marketplace image has no runner agent yet: install the pinned one.
  vmss_log info "no runner in ${RUNNER_DIR}; installing the pinned version"
  "${here}/install-runner.sh"
fi
if ! runner_uid="$(id -u "${RUNNER_USER}" 2> /dev/null)" || ((runner_uid == 0)); then
  vmss_log error "runner user ${RUNNER_USER} is missing or is root; install-runner.sh creates it"
  exit 1
fi

# The job hooks, through the runner's .env (the runner reads it at start). The hook
# scripts stay outside the runner directory, as GitHub advises; VMSS_RUNNER_CONFIG
# tells them where the scaler is.
env_file="${RUNNER_DIR}/.env"
touch "${env_file}"
grep -v -E '^(ACTIONS_RUNNER_HOOK_JOB_STARTED|ACTIONS_RUNNER_HOOK_JOB_COMPLETED|VMSS_RUNNER_CONFIG)=' \
  "${env_file}" > "${env_file}.new" || true
{
  echo "ACTIONS_RUNNER_HOOK_JOB_STARTED=${here}/job-started.sh"
  echo "ACTIONS_RUNNER_HOOK_JOB_COMPLETED=${here}/job-completed.sh"
  echo "VMSS_RUNNER_CONFIG=${VMSS_RUNNER_CONFIG}"
} >> "${env_file}.new"
mv "${env_file}.new" "${env_file}"
chown "${RUNNER_USER}:" "${RUNNER_DIR}" "${env_file}"
chmod 0644 "${env_file}"

# The registration answer lives only in this root-only directory, removed on exit.
private="$(mktemp -d)"
trap 'rm -rf "${private}"' EXIT
answer="${private}/registration.json"

# "park": the pool keeps this VM in reserve. It gets no registration (nothing secret
# reaches its disk) and the operator deallocates it, which ends this script; a start
# boots the VM again and this unit asks afresh. Until the deallocation comes it asks
# again every retry_after_seconds, since the pool may need it after all.
while :; do
  vmss_log info "asking ${SCALER_API_URL} for this boot's registration (for up to ${REGISTRATION_TIMEOUT}s)"
  deadline=$(($(date +%s) + REGISTRATION_TIMEOUT))
  rc=0
  vmss_post /api/v1/registration '{}' "${answer}" 0 "${deadline}" || rc=$?
  if ((rc != 0)); then
    # 409: this boot's registration was already handed out (the unit ran twice); a
    # second one would be refused too. Anything else: the scaler stayed unreachable.
    vmss_log error "no registration after ${REGISTRATION_TIMEOUT}s (last: $(vmss_describe "${answer}")); giving up, the operator will recycle this VM"
    exit 1
  fi
  [[ "$(jq -r '.mode' "${answer}")" == park ]] || break
  ask_again="$(jq -r '.retry_after_seconds' "${answer}")"
  if [[ ! "${ask_again}" =~ ^[0-9]+$ ]] || ((ask_again < 1)); then
    ask_again=30
  fi
  vmss_log info "told to park: this VM waits in reserve for the operator to deallocate it; asking again in ${ask_again}s"
  sleep "${ask_again}"
done

mode="$(jq -r '.mode' "${answer}")"
runner_name="$(jq -r '.runner_name' "${answer}")"
# The runner gets a clean environment: nothing of root's leaks into the jobs.
as_runner=(runuser -u "${RUNNER_USER}" -- env -i "HOME=${RUNNER_DIR}" "USER=${RUNNER_USER}"
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "LANG=C.UTF-8")
cd "${RUNNER_DIR}"
case "${mode}" in
  jit)
    vmss_log info "registered as ${runner_name} (JIT); starting run.sh"
    run=("${RUNNER_DIR}/run.sh" --jitconfig "$(jq -r '.encoded_jit_config' "${answer}")")
    ;;
  token)
    mapfile -t config_args < <(jq -r '.config_args[]' "${answer}")
    if [[ " ${config_args[*]} " != *" --ephemeral "* ]]; then
      vmss_log error "the scaler's config.sh arguments lack --ephemeral; refusing to start a runner that would outlive its job"
      exit 1
    fi
    vmss_log info "registered as ${runner_name} (token); running config.sh ${config_args[*]}"
    config_rc=0
    "${as_runner[@]}" "${RUNNER_DIR}/config.sh" --url "$(jq -r '.url' "${answer}")" \
      --token "$(jq -r '.token' "${answer}")" "${config_args[@]}" || config_rc=$?
    if ((config_rc != 0)); then
      # No runner will start: say so at once rather than let the operator wait.
      vmss_log error "config.sh failed with ${config_rc}"
      "${here}/runner-exited.sh" "${config_rc}"
      exit "${config_rc}"
    fi
    run=("${RUNNER_DIR}/run.sh")
    ;;
  *)
    vmss_log error "unknown registration mode '${mode}'"
    exit 1
    ;;
esac
rm -f "${answer}"

exit_code=0
"${as_runner[@]}" "${run[@]}" || exit_code=$?
unset run
vmss_log info "run.sh exited with ${exit_code}"
"${here}/runner-exited.sh" "${exit_code}"
# The operator recycles this VM within seconds. Should it restart in between, it
# would not know the runner exited (nothing durable says so); repeating the report
# (idempotent) until the VM is reimaged or deleted tells the new operator at once
# instead of after its registration timeout.
while sleep "${RUNNER_EXITED_REPEAT}"; do
  vmss_log info "still here after ${RUNNER_EXITED_REPEAT}s; reporting the runner exit again"
  "${here}/runner-exited.sh" "${exit_code}" || true
done
