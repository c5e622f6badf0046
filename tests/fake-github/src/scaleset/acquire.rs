//! The GHES flow's acquisition (A10 `acquirejobs`, A11 `acquirablejobs`, PROTOCOL.md §8):
//! a `JobAvailable` job becomes assigned only when the listener acquires its request id.

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::jobs::{assignment_deadline, message, tell, tenant_base, JobPhase};
use crate::server::Inner;

/// A10 `acquirejobs`: the set's `JobAvailable` requests among `ids` become assigned; returns
/// the ids acquired (unknown or already acquired ones are left out, as the service may).
pub(crate) fn acquire(inner: &mut Inner, set_id: u64, ids: &[i64], now: Instant) -> Vec<i64> {
    let mut acquired = Vec::new();
    for &request_id in ids {
        let found = inner.broker.jobs.all.values().find(|j| {
            j.info.scale_set_id == Some(set_id)
                && j.info.phase == JobPhase::Available
                && j.info.runner_request_id == request_id
                && request_id != 0
        });
        let Some(rest_id) = found.map(|j| j.info.rest_job_id) else { continue };
        let reassignments = inner.broker.jobs.all.get(&rest_id).map_or(0, |j| j.info.reassignments);
        let deadline = assignment_deadline(inner, reassignments, now);
        if let Some(job) = inner.broker.jobs.all.get_mut(&rest_id) {
            job.info.phase = JobPhase::Assigned;
            job.info.acquired = true;
            job.set_assign_time = Some(OffsetDateTime::now_utc());
            job.deadline = deadline;
        }
        tell(inner, rest_id, "JobAssigned");
        acquired.push(request_id);
    }
    acquired
}

/// The set's jobs offered and not acquired (A11, ARC-legacy's `acquirablejobs`).
pub(crate) fn acquirable(inner: &Inner, set_id: u64) -> Vec<Value> {
    let base = inner.broker.sets.get(&set_id).map(|s| tenant_base(inner, s.tenant)).unwrap_or_default();
    inner
        .broker
        .jobs
        .all
        .values()
        .filter(|j| j.info.scale_set_id == Some(set_id) && j.info.phase == JobPhase::Available)
        .map(|j| {
            let full = message(j, "JobAvailable", &base);
            json!({
                "acquireJobUrl": full["acquireJobUrl"], "messageType": "JobAvailable",
                "runnerRequestId": j.info.runner_request_id, "repositoryName": j.repository,
                "ownerName": j.owner, "jobWorkflowRef": full["jobWorkflowRef"], "eventName": j.event_name,
                "requestLabels": j.info.runs_on,
            })
        })
        .collect()
}
