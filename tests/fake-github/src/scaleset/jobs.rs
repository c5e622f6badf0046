//! Jobs as the Actions service routes them to scale sets (PROTOCOL.md §7.3, §8, §12, §13).
//!
//! A job is queued for a scope with its `runs-on`; it goes to the lowest-numbered set of the
//! tenant whose labels include every `runs-on` label (and whose runner group matches, when the
//! job names one) — the real service picks arbitrarily among such sets. Then:
//!
//! ```text
//! Queued ─(github.com)→ Assigned ──runner claims──→ Running ──runner finishes──→ Completed
//!        └(GHES)→ Available ─acquirejobs→ Assigned
//! Assigned ─not started within assignment_timeout→ JobCompleted{canceled} → Queued
//!          (≤ max_reassignments times; the n-th waits n × reassignment_backoff first)
//! ```
//!
//! **Capacity [UNCERTAIN on the real service]:** a job becomes Available or Assigned only
//! while the set's jobs that are offered or assigned but not running stay below the last
//! `X-ScaleSetMaxCapacity` the listener sent (no limit before the first poll).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::{messages::emit, rfc3339, JobFlow, ZERO_TIME};
use crate::{server::Inner, state::Scope};

/// A job for the scale sets, as a test queues it. `runs_on` names the labels (a set's
/// default label is its name); `group` is `runs-on: {group: …}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetJobSpec {
    pub runs_on: Vec<String>,
    pub group: Option<String>,
    /// `owner/name`; by default the scope's repository, or `<org>/app` for an organization.
    pub repository: Option<String>,
    /// Workflow file, e.g. `.github/workflows/ci.yml`.
    pub workflow: String,
    pub display_name: String,
    pub event_name: String,
}

impl ScaleSetJobSpec {
    pub fn runs_on(labels: &[&str]) -> Self {
        Self {
            runs_on: labels.iter().map(|l| l.to_string()).collect(),
            group: None,
            repository: None,
            workflow: ".github/workflows/ci.yml".into(),
            display_name: "build".into(),
            event_name: "push".into(),
        }
    }
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPhase {
    /// Waiting for a scale set (none matches, or the matching one is at capacity).
    Queued,
    /// Offered to a set with `JobAvailable` (GHES flow), not acquired yet.
    Available,
    /// Assigned to a set (`JobAssigned`), waiting for a runner.
    Assigned,
    Running,
    Completed,
}

/// A job of the Actions service, as a test reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetJob {
    /// The `jobId` of the job messages (a GUID string).
    pub job_id: String,
    /// The same job's id in the REST fake (`FakeGithub::job`).
    pub rest_job_id: u64,
    pub phase: JobPhase,
    pub scale_set_id: Option<u64>,
    /// Non-zero while offered or acquired in the GHES flow; 0 on github.com.
    pub runner_request_id: i64,
    pub acquired: bool,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    /// How often an assignment was cancelled because no runner started the job in time.
    pub reassignments: u32,
    pub result: Option<String>,
    pub runs_on: Vec<String>,
}

pub(crate) struct Job {
    pub info: ScaleSetJob,
    tenant: usize,
    group: Option<String>,
    pub(super) owner: String,
    pub(super) repository: String,
    workflow: String,
    display_name: String,
    pub(super) event_name: String,
    workflow_run_id: i64,
    queue_time: OffsetDateTime,
    pub(super) set_assign_time: Option<OffsetDateTime>,
    runner_assign_time: Option<OffsetDateTime>,
    finish_time: Option<OffsetDateTime>,
    /// When an unstarted assignment is cancelled.
    pub(super) deadline: Option<Instant>,
    /// A cancelled job is not assigned again before this (the README's "incremental delays").
    not_before: Option<Instant>,
    /// The result the runner reports when its job finishes.
    pending_result: Option<String>,
}

#[derive(Default)]
pub(crate) struct Jobs {
    /// By REST job id (queue order).
    pub all: BTreeMap<u64, Job>,
    next_request_id: i64,
    next_run_id: i64,
}

fn time_or_zero(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| ZERO_TIME.to_owned(), rfc3339)
}

/// One job message of a message body (SS `types.go`: `JobMessageBase` plus the type's fields).
pub(super) fn message(job: &Job, kind: &str, base: &str) -> Value {
    let mut m = json!({
        "messageType": kind,
        "runnerRequestId": job.info.runner_request_id,
        "repositoryName": job.repository,
        "ownerName": job.owner,
        "jobId": job.info.job_id,
        "jobWorkflowRef": format!("{}/{}/{}@refs/heads/main", job.owner, job.repository, job.workflow),
        "jobDisplayName": job.display_name,
        "workflowRunId": job.workflow_run_id,
        "eventName": job.event_name,
        "requestLabels": job.info.runs_on,
        "queueTime": rfc3339(job.queue_time),
        "scaleSetAssignTime": time_or_zero(job.set_assign_time),
        "runnerAssignTime": time_or_zero(job.runner_assign_time),
        "finishTime": time_or_zero(job.finish_time),
    });
    match kind {
        "JobAvailable" => {
            let set = job.info.scale_set_id.unwrap_or_default();
            m["acquireJobUrl"] = json!(format!("{base}_apis/runtime/runnerscalesets/{set}/acquirejobs"));
        }
        "JobStarted" => {
            m["runnerId"] = json!(job.info.runner_id.unwrap_or_default());
            m["runnerName"] = json!(job.info.runner_name.clone().unwrap_or_default());
        }
        "JobCompleted" => {
            m["result"] = json!(job.info.result.clone().unwrap_or_default());
            m["runnerId"] = json!(job.info.runner_id.unwrap_or_default());
            m["runnerName"] = json!(job.info.runner_name.clone().unwrap_or_default());
        }
        _ => {}
    }
    m
}

pub(super) fn tenant_base(inner: &Inner, tenant: usize) -> String {
    format!("{}/tenant/{tenant}/", inner.broker.base_url)
}

/// Queues a job message about `rest_id` for the set it is with.
pub(super) fn tell(inner: &mut Inner, rest_id: u64, kind: &str) {
    let Some(job) = inner.broker.jobs.all.get(&rest_id) else { return };
    let Some(set) = job.info.scale_set_id else { return };
    let m = message(job, kind, &tenant_base(inner, job.tenant));
    emit(inner, set, m);
}

/// Queues a job of `scope`; returns its `jobId`.
pub(crate) fn queue(inner: &mut Inner, scope: &Scope, spec: ScaleSetJobSpec) -> String {
    let tenant = inner.broker.tenant_of(scope);
    let rest_job_id = inner.runners.add_unqueued_job(scope, &spec.runs_on);
    let repository = spec.repository.clone().unwrap_or_else(|| match scope {
        Scope::Repo(r) => r.clone(),
        Scope::Org(o) => format!("{o}/app"),
    });
    let (owner, name) = repository.split_once('/').unwrap_or((scope.owner(), repository.as_str()));
    let jobs = &mut inner.broker.jobs;
    jobs.next_run_id += 1;
    let job_id = Uuid::new_v4().to_string();
    jobs.all.insert(
        rest_job_id,
        Job {
            info: ScaleSetJob {
                job_id: job_id.clone(),
                rest_job_id,
                phase: JobPhase::Queued,
                scale_set_id: None,
                runner_request_id: 0,
                acquired: false,
                runner_id: None,
                runner_name: None,
                reassignments: 0,
                result: None,
                runs_on: spec.runs_on,
            },
            tenant,
            group: spec.group,
            owner: owner.to_owned(),
            repository: name.to_owned(),
            workflow: spec.workflow,
            display_name: spec.display_name,
            event_name: spec.event_name,
            workflow_run_id: 31_700_000_000 + jobs.next_run_id,
            queue_time: OffsetDateTime::now_utc(),
            set_assign_time: None,
            runner_assign_time: None,
            finish_time: None,
            deadline: None,
            not_before: None,
            pending_result: None,
        },
    );
    job_id
}

fn flow_of(inner: &Inner, set_id: u64) -> JobFlow {
    inner.broker.sets.get(&set_id).and_then(|s| s.flow).unwrap_or(inner.broker.config.flow)
}

/// Offered or assigned to the set and not running: what the capacity bounds.
fn waiting(inner: &Inner, set_id: u64) -> usize {
    inner
        .broker
        .jobs
        .all
        .values()
        .filter(|j| j.info.scale_set_id == Some(set_id))
        .filter(|j| matches!(j.info.phase, JobPhase::Available | JobPhase::Assigned))
        .count()
}

/// The set a queued job goes to, if one matches and has room.
fn target(inner: &mut Inner, rest_id: u64) -> Option<u64> {
    let job = inner.broker.jobs.all.get(&rest_id)?;
    let (tenant, wanted, group) = (job.tenant, job.info.runs_on.clone(), job.group.clone());
    let scope = inner.broker.scope_of_tenant(tenant)?.clone();
    let groups = super::sets::groups(inner, &scope);
    let candidates: Vec<u64> = inner
        .broker
        .sets
        .values()
        .filter(|s| s.tenant == tenant)
        .filter(|s| wanted.iter().all(|w| s.labels.iter().any(|(_, n)| n.eq_ignore_ascii_case(w))))
        .filter(|s| {
            group.as_deref().is_none_or(|g| groups.iter().any(|x| x.id == s.group_id && x.name.eq_ignore_ascii_case(g)))
        })
        .map(|s| s.id)
        .collect();
    candidates.into_iter().find(|id| {
        let cap = inner.broker.sets.get(id).and_then(|s| s.max_capacity).map_or(usize::MAX, |c| c as usize);
        waiting(inner, *id) < cap
    })
}

pub(super) fn assignment_deadline(inner: &Inner, reassignments: u32, now: Instant) -> Option<Instant> {
    let c = &inner.broker.config;
    (reassignments < c.max_reassignments).then(|| now + c.assignment_timeout)
}

/// Hands queued jobs to matching sets with room: `JobAssigned` (github.com) or
/// `JobAvailable` with a fresh request id (GHES).
pub(crate) fn assign(inner: &mut Inner, now: Instant) {
    let queued: Vec<u64> = inner
        .broker
        .jobs
        .all
        .values()
        .filter(|j| j.info.phase == JobPhase::Queued && j.not_before.is_none_or(|t| t <= now))
        .map(|j| j.info.rest_job_id)
        .collect();
    for rest_id in queued {
        let Some(set) = target(inner, rest_id) else { continue };
        let flow = flow_of(inner, set);
        let jobs = &mut inner.broker.jobs;
        jobs.next_request_id += 1;
        let request_id = jobs.next_request_id;
        let Some(job) = jobs.all.get_mut(&rest_id) else { continue };
        job.info.scale_set_id = Some(set);
        let kind = match flow {
            JobFlow::GithubCom => {
                job.info.phase = JobPhase::Assigned;
                job.info.runner_request_id = 0;
                job.set_assign_time = Some(OffsetDateTime::now_utc());
                "JobAssigned"
            }
            JobFlow::Ghes => {
                job.info.phase = JobPhase::Available;
                job.info.runner_request_id = request_id;
                "JobAvailable"
            }
        };
        if flow == JobFlow::GithubCom {
            let reassignments = job.info.reassignments;
            let deadline = assignment_deadline(inner, reassignments, now);
            if let Some(job) = inner.broker.jobs.all.get_mut(&rest_id) {
                job.deadline = deadline;
            }
        }
        tell(inner, rest_id, kind);
    }
}

/// Cancels the assignments no runner started in time: `JobCompleted{canceled}`, then the job
/// is queued again (and reassigned by the next [`assign`]).
pub(crate) fn time_out_assignments(inner: &mut Inner, now: Instant) {
    let due: Vec<u64> = inner
        .broker
        .jobs
        .all
        .values()
        .filter(|j| j.info.phase == JobPhase::Assigned && j.deadline.is_some_and(|d| d <= now))
        .map(|j| j.info.rest_job_id)
        .collect();
    for rest_id in due {
        if let Some(job) = inner.broker.jobs.all.get_mut(&rest_id) {
            job.info.result = Some("canceled".into());
            job.finish_time = Some(OffsetDateTime::now_utc());
        }
        tell(inner, rest_id, "JobCompleted");
        let backoff = inner.broker.config.reassignment_backoff;
        if let Some(job) = inner.broker.jobs.all.get_mut(&rest_id) {
            job.info.reassignments += 1;
            back_to_queue(job);
            job.not_before = Some(now + backoff * job.info.reassignments);
        }
    }
}

fn back_to_queue(job: &mut Job) {
    job.info.phase = JobPhase::Queued;
    job.info.scale_set_id = None;
    job.info.runner_request_id = 0;
    job.info.acquired = false;
    job.info.result = None;
    job.set_assign_time = None;
    job.finish_time = None;
    job.deadline = None;
}

/// The earliest assignment deadline, or end of a reassignment delay.
pub(crate) fn next_timeout(inner: &Inner) -> Option<Instant> {
    let due = |j: &Job| match j.info.phase {
        JobPhase::Assigned => j.deadline,
        JobPhase::Queued => j.not_before,
        _ => None,
    };
    inner.broker.jobs.all.values().filter_map(due).min()
}

/// Jobs of a deleted set that had not started go back to the queue.
pub(crate) fn requeue_set(inner: &mut Inner, set_id: u64) {
    for job in inner.broker.jobs.all.values_mut() {
        if job.info.scale_set_id == Some(set_id) && matches!(job.info.phase, JobPhase::Available | JobPhase::Assigned) {
            back_to_queue(job);
        }
    }
}

/// `runner_id` starts the oldest assigned job of its set: `JobStarted`. Returns the `jobId`.
pub(crate) fn start(inner: &mut Inner, runner_id: u64) -> Option<String> {
    let runner = inner.runners.runners.get(&runner_id)?;
    let set = runner.scale_set_id?;
    let name = runner.name.clone();
    let rest_id = inner
        .broker
        .jobs
        .all
        .values()
        .find(|j| j.info.scale_set_id == Some(set) && j.info.phase == JobPhase::Assigned)?
        .info
        .rest_job_id;
    if !inner.runners.claim(runner_id, rest_id) {
        return None;
    }
    let job = inner.broker.jobs.all.get_mut(&rest_id)?;
    job.info.phase = JobPhase::Running;
    job.info.runner_id = Some(runner_id);
    job.info.runner_name = Some(name);
    job.runner_assign_time = Some(OffsetDateTime::now_utc());
    job.deadline = None;
    let job_id = job.info.job_id.clone();
    tell(inner, rest_id, "JobStarted");
    Some(job_id)
}

/// Every idle online runner of a set takes one of its assigned jobs.
pub(crate) fn start_on_idle_runners(inner: &mut Inner) {
    let idle: Vec<u64> = inner
        .runners
        .runners
        .values()
        .filter(|r| r.scale_set_id.is_some() && r.online && !r.busy())
        .map(|r| r.id)
        .collect();
    for runner in idle {
        start(inner, runner);
    }
}

/// The result `runner_id` will report for its running job; `None` if it runs none.
pub(crate) fn set_result(inner: &mut Inner, runner_id: u64, result: &str) -> Option<String> {
    let job = inner
        .broker
        .jobs
        .all
        .values_mut()
        .find(|j| j.info.phase == JobPhase::Running && j.info.runner_id == Some(runner_id))?;
    job.pending_result = Some(result.to_owned());
    Some(job.info.job_id.clone())
}

/// Running jobs whose runner finished (in the REST fake's table): `JobCompleted`.
pub(crate) fn complete_finished(inner: &mut Inner) {
    let done: Vec<u64> = inner
        .broker
        .jobs
        .all
        .values()
        .filter(|j| j.info.phase == JobPhase::Running)
        .filter(|j| inner.runners.jobs.get(&j.info.rest_job_id).is_none_or(|rest| rest.done))
        .map(|j| j.info.rest_job_id)
        .collect();
    for rest_id in done {
        if let Some(job) = inner.broker.jobs.all.get_mut(&rest_id) {
            job.info.phase = JobPhase::Completed;
            job.info.result = Some(job.pending_result.take().unwrap_or_else(|| "succeeded".into()));
            job.finish_time = Some(OffsetDateTime::now_utc());
        }
        tell(inner, rest_id, "JobCompleted");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scaleset::{sets, stats::statistics, tick};

    fn world(org: &str) -> (Inner, usize, Scope) {
        let mut inner = Inner::default();
        let scope = Scope::org(org);
        let tenant = inner.broker.tenant_of(&scope);
        (inner, tenant, scope)
    }

    fn set(inner: &mut Inner, tenant: usize, scope: &Scope, body: serde_json::Value) -> u64 {
        let reply = sets::create(inner, tenant, scope, Some(&body), "http://x/tenant/1/");
        assert_eq!(reply.status, 200);
        reply.body.unwrap()["id"].as_u64().unwrap()
    }

    #[test]
    fn a_job_naming_a_group_goes_only_to_a_set_of_that_group() {
        let (mut inner, tenant, scope) = world("acme");
        let gpu = inner.runners.add_group("acme", "gpu");
        let default = set(&mut inner, tenant, &scope, json!({"name": "linux"}));
        let in_gpu = set(&mut inner, tenant, &scope, json!({"name": "linux", "runnerGroupId": gpu}));
        let mut spec = ScaleSetJobSpec::runs_on(&["linux"]);
        let any = queue(&mut inner, &scope, spec.clone());
        spec.group = Some("GPU".into());
        let grouped = queue(&mut inner, &scope, spec);
        tick(&mut inner, Instant::now());
        let set_of = |id: &str| inner.broker.jobs.all.values().find(|j| j.info.job_id == id).unwrap().info.scale_set_id;
        assert_eq!(set_of(&any), Some(default), "without a group: the lowest-numbered matching set");
        assert_eq!(set_of(&grouped), Some(in_gpu));
    }

    #[test]
    fn capacity_bounds_waiting_jobs_and_zero_admits_none() {
        let (mut inner, tenant, scope) = world("acme");
        let id = set(&mut inner, tenant, &scope, json!({"name": "linux"}));
        inner.broker.sets.get_mut(&id).unwrap().max_capacity = Some(0);
        for _ in 0..3 {
            queue(&mut inner, &scope, ScaleSetJobSpec::runs_on(&["linux"]));
        }
        tick(&mut inner, Instant::now());
        assert_eq!(statistics(&inner, id).total_assigned_jobs, 0);
        inner.broker.sets.get_mut(&id).unwrap().max_capacity = Some(2);
        tick(&mut inner, Instant::now());
        assert_eq!(statistics(&inner, id).total_assigned_jobs, 2);
        inner.broker.sets.get_mut(&id).unwrap().max_capacity = None;
        tick(&mut inner, Instant::now());
        assert_eq!(statistics(&inner, id).total_assigned_jobs, 3, "no header yet: no limit");
    }

    #[test]
    fn job_messages_carry_the_base_fields_and_zero_times_until_they_happen() {
        let (mut inner, tenant, scope) = world("acme");
        let id = set(&mut inner, tenant, &scope, json!({"name": "linux"}));
        let job_id = queue(
            &mut inner,
            &scope,
            ScaleSetJobSpec { repository: Some("acme/api".into()), ..ScaleSetJobSpec::runs_on(&["linux"]) },
        );
        tick(&mut inner, Instant::now());
        let job = inner.broker.jobs.all.values().next().unwrap();
        let m = message(job, "JobAssigned", "http://x/");
        assert_eq!(m["jobId"], job_id.as_str());
        assert_eq!((m["ownerName"].as_str(), m["repositoryName"].as_str()), (Some("acme"), Some("api")));
        assert_eq!(m["jobWorkflowRef"], "acme/api/.github/workflows/ci.yml@refs/heads/main");
        assert_eq!(m["runnerAssignTime"], ZERO_TIME);
        assert_ne!(m["scaleSetAssignTime"], ZERO_TIME);
        assert_eq!(inner.broker.sets[&id].queue.pending_len(), 1);
    }
}
