#!/usr/bin/env bash
# Shared helpers of the runner VM scripts (boot.sh, the job hooks, runner-exited.sh),
# sourced, never run. One copy: cloud-init writes it and Packer bakes it, both from vm/.
#
#   vmss_load_config   read /etc/vmss-github-runner/runner.env (or $VMSS_RUNNER_CONFIG)
#   vmss_log           one clear, prefixed line on stderr (and the journal for hooks)
#   vmss_post          POST JSON to the scaler with bounded, jittered backoff
#
# Nothing here prints a response body: a registration answer holds a one-time
# credential, and hook output is shown in the job log.

# The config file is root-owned, world-readable and holds no secret: the scaler's
# URL and the knobs below. The override exists for the end-to-end test, which runs
# several "VMs" on one machine.
VMSS_RUNNER_CONFIG="${VMSS_RUNNER_CONFIG:-/etc/vmss-github-runner/runner.env}"

vmss_load_config() {
  if [[ ! -r "${VMSS_RUNNER_CONFIG}" ]]; then
    vmss_log error "config ${VMSS_RUNNER_CONFIG} is missing or unreadable"
    return 1
  fi
  # shellcheck source=/dev/null
  source "${VMSS_RUNNER_CONFIG}"
  : "${SCALER_API_URL:?SCALER_API_URL must be set in ${VMSS_RUNNER_CONFIG}}"
  RUNNER_DIR="${RUNNER_DIR:-/opt/actions-runner}"
  RUNNER_USER="${RUNNER_USER:-runner}"
  # Seconds. Registration: the operator's pool.registration_timeout recycles a VM that
  # never registers, so trying longer than that is pointless.
  REGISTRATION_TIMEOUT="${REGISTRATION_TIMEOUT:-600}"
  RUNNER_EXITED_TIMEOUT="${RUNNER_EXITED_TIMEOUT:-300}"
  # Seconds between repeated runner-exited reports while the VM waits to be recycled.
  RUNNER_EXITED_REPEAT="${RUNNER_EXITED_REPEAT:-60}"
  # A hook blocks the user's job while it runs (the runner has no hook timeout), so
  # its retries are few and short: about 20 s in all with the defaults.
  HOOK_ATTEMPTS="${HOOK_ATTEMPTS:-5}"
  BACKOFF_MAX="${BACKOFF_MAX:-30}"
  HOOK_LOG_TO_JOURNAL="${HOOK_LOG_TO_JOURNAL:-yes}"
}

# vmss_log LEVEL MESSAGE... — e.g. "vmss-runner[boot] info: registered as vmssrun000003-1a2b3c".
# VMSS_COMPONENT names the script. Hooks also send the line to the journal, because
# their stderr goes only to the job log; boot.sh runs under systemd, whose stderr
# already is the journal.
vmss_log() {
  local level="$1"; shift
  local line="vmss-runner[${VMSS_COMPONENT:-script}] ${level}: $*"
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${line}" >&2
  if [[ "${VMSS_LOG_TO_JOURNAL:-no}" == "yes" ]] && command -v logger > /dev/null; then
    logger --tag "vmss-runner-${VMSS_COMPONENT:-script}" -- "${level}: $*" 2> /dev/null || true
  fi
}

# vmss_backoff ATTEMPT — sleep 1, 2, 4 … seconds (capped at BACKOFF_MAX) plus up to
# one second of jitter, so a pool booting at once does not call in lockstep.
vmss_backoff() {
  local attempt="$1" delay=1 i
  for ((i = 1; i < attempt && delay < BACKOFF_MAX; i++)); do
    delay=$((delay * 2))
  done
  if ((delay > BACKOFF_MAX)); then
    delay="${BACKOFF_MAX}"
  fi
  sleep "${delay}.$((RANDOM % 10))"
}

# vmss_post PATH BODY OUT ATTEMPTS DEADLINE — POST BODY (JSON) to the scaler's PATH.
# Retries transport errors, 403 (the operator has not listed this new VM yet; it
# re-lists before refusing), 429 and 5xx (503: recovering or still reimaging), with
# backoff, until ATTEMPTS tries or the epoch second DEADLINE (0: no deadline) pass.
# The answer's body goes to the file OUT (which the caller keeps private), never to
# the output. Returns 0 on 2xx, 2 on a final refusal (other 4xx: retrying cannot
# help), 1 when it gave up. VMSS_STATUS holds the last HTTP status (000: no answer,
# then VMSS_CURL_EXIT says why).
vmss_post() {
  local path="$1" body="$2" out="$3" attempts="$4" deadline="$5" attempt=0
  VMSS_STATUS=000
  while true; do
    attempt=$((attempt + 1))
    VMSS_CURL_EXIT=0
    VMSS_STATUS="$(curl --silent --output "${out}" --write-out '%{http_code}' \
      --connect-timeout 5 --max-time 20 --request POST \
      --header 'content-type: application/json' --data "${body}" \
      "${SCALER_API_URL%/}${path}")" || VMSS_CURL_EXIT=$?
    if ((VMSS_CURL_EXIT != 0)); then
      VMSS_STATUS=000
    fi
    case "${VMSS_STATUS}" in
      2??) return 0 ;;
      000 | 403 | 429 | 5??)
        vmss_log warn "POST ${path}: $(vmss_describe "${out}") (attempt ${attempt})" ;;
      *)
        vmss_log error "POST ${path}: $(vmss_describe "${out}"), not retrying"
        return 2 ;;
    esac
    if ((attempts > 0 && attempt >= attempts)) || ((deadline > 0 && $(date +%s) >= deadline)); then
      return 1
    fi
    vmss_backoff "${attempt}"
  done
}

# vmss_describe OUT — "status 503 (recovering)": the status and the error code of the
# operator's error body ({"error": {"code", "message"}}), which never holds a secret.
vmss_describe() {
  local code=""
  if [[ "${VMSS_STATUS}" == 000 ]]; then
    # curl's exit code says why: 7 refused, 28 timed out, 52 empty reply, 56 reset.
    printf 'no answer from %s (curl exit %s)' "${SCALER_API_URL}" "${VMSS_CURL_EXIT:-?}"
    return 0
  fi
  if [[ -s "$1" ]]; then
    code="$(jq -r '.error.code // empty' "$1" 2> /dev/null || true)"
  fi
  printf 'status %s%s' "${VMSS_STATUS}" "${code:+ (${code})}"
}

# vmss_job_hook KIND — the body of job-started.sh and job-completed.sh: report the job
# (from the runner's GITHUB_* variables) to /api/v1/hooks/KIND. Always returns 0:
# see the hooks' headers for why a hook never fails the job.
vmss_job_hook() {
  local kind="$1" body out rc=0
  VMSS_LOG_TO_JOURNAL="${HOOK_LOG_TO_JOURNAL}"
  if [[ -z "${GITHUB_REPOSITORY:-}" || ! "${GITHUB_RUN_ID:-}" =~ ^[0-9]+$ \
    || ! "${GITHUB_RUN_ATTEMPT:-1}" =~ ^[0-9]+$ || -z "${GITHUB_JOB:-}" ]]; then
    vmss_log warn "GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT or GITHUB_JOB missing; not reporting ${kind}"
    return 0
  fi
  body="$(jq -cn --arg repository "${GITHUB_REPOSITORY}" --argjson run_id "${GITHUB_RUN_ID}" \
    --argjson run_attempt "${GITHUB_RUN_ATTEMPT:-1}" --arg job_name "${GITHUB_JOB}" \
    '{repository: $repository, run_id: $run_id, run_attempt: $run_attempt, job_name: $job_name}')"
  out="$(mktemp)"
  vmss_post "/api/v1/hooks/${kind}" "${body}" "${out}" "${HOOK_ATTEMPTS}" 0 || rc=$?
  case "${rc}" in
    0) vmss_log info "${kind} reported for ${GITHUB_REPOSITORY} run ${GITHUB_RUN_ID}/${GITHUB_RUN_ATTEMPT:-1} job ${GITHUB_JOB}" ;;
    2) vmss_log warn "${kind} refused by the scaler ($(vmss_describe "${out}")); the job goes on" ;;
    *) vmss_log warn "scaler unreachable after ${HOOK_ATTEMPTS} attempts ($(vmss_describe "${out}")); the job goes on, the operator's reconcile pass repairs the record" ;;
  esac
  rm -f "${out}"
  return 0
}
