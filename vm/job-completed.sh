#!/usr/bin/env bash
# Job-completed hook (ACTIONS_RUNNER_HOOK_JOB_COMPLETED, set in the runner's .env by
# boot.sh): tell the scaler the job's steps are done, so it removes the busy marker.
#
# This does NOT free the VM. GitHub runs this hook "at the end of the job, before the
# job completes", so reimaging or deleting the VM now would cut the job short. The VM
# is recycled only after run.sh exits (boot.sh -> runner-exited.sh).
#
# Like job-started.sh it runs in the job's "Complete runner" step, prints nothing but
# its own log lines, and never fails the job: after a few quick retries (HOOK_ATTEMPTS)
# it logs and exits 0, because a scaler that is briefly down must not turn a green
# job red; runner-exited and the operator's reconcile pass settle the record.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VMSS_COMPONENT=job-completed
# shellcheck source=vm/lib.sh
source "${here}/lib.sh"
if ! vmss_load_config; then
  exit 0
fi
vmss_job_hook job-completed
