#!/usr/bin/env bash
# Job-started hook (ACTIONS_RUNNER_HOOK_JOB_STARTED, set in the runner's .env by
# boot.sh): tell the scaler this VM is now busy, so it stores a busy marker before
# answering and counts the VM as taken when it decides how many to keep free.
#
# It runs as the runner user inside the job ("Set up runner" step), blocking the job,
# and its output is shown in the job log: it prints only what it reports, never a
# response body.
#
# It never fails the job. A non-zero exit would fail the user's job, and a scaler that
# is briefly unreachable (restarting, recovering) is no reason for that. After a few
# quick retries (HOOK_ATTEMPTS) it logs and exits 0: the VM stays safe because the
# operator deregisters a runner at GitHub before touching its VM, which GitHub refuses
# while a job runs, and its reconcile pass re-derives busy runners from GitHub.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VMSS_COMPONENT=job-started
# shellcheck source=vm/lib.sh
source "${here}/lib.sh"
if ! vmss_load_config; then
  exit 0
fi
vmss_job_hook job-started
