#!/usr/bin/env bash
# Test double of the GitHub runner's run.sh, for tests/e2e_scripts.rs. Behaves like an
# ephemeral runner as far as the VM scripts can tell:
#   - `--jitconfig <config>` registers with it once; otherwise config.sh's .runner is used
#   - reads .env into its environment, as the runner does, to find the job hooks
#   - waits for the fake GitHub to assign a job, then runs the job-started hook with
#     `bash -e` and the job's GITHUB_* variables (a non-zero hook fails the job, as
#     GitHub does), the job's "steps" (a sleep), the job-completed hook, reports the
#     job finished, and exits 0: one job, then gone
# Hook output goes to job.log (GitHub shows it in the job log); the test checks it.
# in-job marks the VM busy from the job's start until its steps and hooks are done;
# the test fails if the VM is reimaged or deleted while the mark exists.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "${here}/.double.env"   # FAKE_GITHUB_URL, JOB_SECONDS
api="${FAKE_GITHUB_URL}/_fake/runner"
post() { curl --fail --silent --show-error --max-time 10 --request POST --header 'content-type: application/json' "$@"; }

if [[ "${1:-}" == --jitconfig ]]; then
  runner_id="$(post --data "$(jq -cn --arg c "$2" '{encoded_jit_config: $c}')" "${api}/jit" | jq -r .runner_id)"
else
  runner_id="$(jq -r .runner_id "${here}/.runner")"
fi
echo "run.sh (double): runner ${runner_id} listening for jobs"

# The runner passes .env to its worker and so to the hooks.
while IFS='=' read -r key value; do
  [[ -n "${key}" && "${key}" != \#* ]] && export "${key}=${value}"
done < "${here}/.env"

job=""
while [[ -z "${job}" ]]; do
  job="$(post --output - --write-out '' "${api}/${runner_id}/poll" || true)"
  [[ -z "${job}" ]] && sleep 0.2
done
job_id="$(jq -r .job_id <<< "${job}")"
export GITHUB_REPOSITORY GITHUB_RUN_ID="${job_id}" GITHUB_RUN_ATTEMPT=1 GITHUB_JOB=build
GITHUB_REPOSITORY="$(jq -r .repository <<< "${job}")"
touch "${here}/in-job"
echo "run.sh (double): running job ${job_id}"

result=succeeded
if ! bash -e "${ACTIONS_RUNNER_HOOK_JOB_STARTED}" >> "${here}/job.log" 2>&1; then
  result=failed-by-started-hook
fi
if [[ "${result}" == succeeded ]]; then
  sleep "${JOB_SECONDS}"
fi
if ! bash -e "${ACTIONS_RUNNER_HOOK_JOB_COMPLETED}" >> "${here}/job.log" 2>&1; then
  result=failed-by-completed-hook
fi
echo "${job_id} ${result}" >> "${here}/jobs-ran"
rm -f "${here}/in-job"
post "${api}/${runner_id}/finish" > /dev/null
echo "run.sh (double): job ${job_id} ${result}; ephemeral runner exits"
