//! Test controls of the Actions service on [`FakeGithub`]: what GitHub, the workflows and the
//! runners do on their side, the knobs, and what the fake saw.

use contract::Exchange;
use tokio::time::Instant;

use super::{
    jobs, sessions, sets, stats, tick, BrokerFault, FaultRule, JobFlow, RecordedRequest, ScaleSetConfig, ScaleSetJob,
    ScaleSetJobSpec, Statistics,
};
use crate::{
    server::{Inner, Shared},
    state::Scope,
    FakeGithub,
};

/// A scale set as a test reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetInfo {
    pub id: u64,
    pub scope: Scope,
    pub name: String,
    pub runner_group_id: u64,
    pub labels: Vec<String>,
    /// The last `X-ScaleSetMaxCapacity` a poll sent.
    pub max_capacity: Option<u32>,
    pub flow: JobFlow,
    /// Job messages not yet in a message, and messages delivered but not acknowledged.
    pub pending_job_messages: usize,
    pub unacked_message_ids: Vec<i64>,
}

/// An active message session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub scale_set_id: u64,
    pub session_id: String,
    pub owner: String,
    /// GetMessage calls holding right now.
    pub polls_in_flight: u32,
}

impl Shared {
    /// Runs `f` on the state with the service moved forward to now (before and after), then
    /// wakes the long polls: a control may have queued a message, expired a token or ended
    /// a session, and a holding poll answers each at once.
    pub(crate) fn with_broker<R>(&self, f: impl FnOnce(&mut Inner, Instant) -> R) -> R {
        let out = {
            let mut inner = self.lock();
            let now = Instant::now();
            tick(&mut inner, now);
            let out = f(&mut inner, now);
            tick(&mut inner, now);
            out
        };
        self.broker_wake.notify_waiters();
        out
    }
}

impl FakeGithub {
    // --- knobs ---

    /// Changes the service's timings and behaviour (see [`ScaleSetConfig`] for the defaults).
    pub fn scaleset_configure(&self, f: impl FnOnce(&mut ScaleSetConfig)) {
        self.shared.with_broker(|inner, _| f(&mut inner.broker.config));
    }

    /// The job flow of every set without its own: github.com (`JobAssigned`) or GHES
    /// (`JobAvailable` + `acquirejobs`).
    pub fn scaleset_set_flow(&self, flow: JobFlow) {
        self.scaleset_configure(|c| c.flow = flow);
    }

    /// The job flow of one set; `false` if there is no such set.
    pub fn scaleset_set_flow_for(&self, scale_set_id: u64, flow: JobFlow) -> bool {
        self.shared.with_broker(|inner, _| match inner.broker.sets.get_mut(&scale_set_id) {
            Some(set) => {
                set.flow = Some(flow);
                true
            }
            None => false,
        })
    }

    /// Apply `fault` to the next `times` requests to the Actions service (and R3) with this
    /// method (any when `None`) whose path contains `path_contains` (any when `None`).
    /// The REST faults of [`FakeGithub::inject`] never touch these paths.
    pub fn scaleset_inject(&self, method: Option<&str>, path_contains: Option<&str>, fault: BrokerFault, times: usize) {
        self.shared.lock().broker.faults.push(FaultRule {
            method: method.map(str::to_owned),
            path_contains: path_contains.map(str::to_owned),
            fault,
            remaining: times,
        });
    }

    pub fn scaleset_clear_faults(&self) {
        self.shared.lock().broker.faults.clear();
    }

    /// The next `times` calls of `POST /actions/runner-registration` answer `status` (401 or
    /// 403: a fresh registration token not yet valid, which clients retry).
    pub fn scaleset_fail_registration(&self, status: u16, times: usize) {
        self.shared.lock().broker.registration_faults.extend(std::iter::repeat_n(status, times));
    }

    // --- what GitHub does ---

    /// Every admin token issued so far stops working (401), though its `exp` lies ahead.
    pub fn scaleset_expire_admin_tokens(&self) {
        self.shared.with_broker(|inner, now| inner.broker.tokens.expire_admin(now));
    }

    /// The set's message-queue tokens expire (401 on GetMessage, DeleteMessage and
    /// `acquirejobs`, also for a poll holding now); PATCH on the session issues a new one.
    /// Returns how many live tokens there were.
    pub fn scaleset_expire_message_queue_tokens(&self, scale_set_id: u64) -> usize {
        self.shared.with_broker(|inner, now| inner.broker.tokens.expire_queue(scale_set_id, now))
    }

    /// The set's session expires as an idle one does: the 409 conflict clears, its token no
    /// longer opens the queue, PATCH answers 404 and DELETE 400. `false` if it had none.
    pub fn scaleset_expire_session(&self, scale_set_id: u64) -> bool {
        self.shared.with_broker(|inner, now| sessions::end(inner, scale_set_id, now))
    }

    /// The broker loses the session ("doesn't exist in redis", SS#123): to the client this is
    /// the same as [`FakeGithub::scaleset_expire_session`].
    pub fn scaleset_evict_session(&self, scale_set_id: u64) -> bool {
        self.scaleset_expire_session(scale_set_id)
    }

    /// A session left by a listener that crashed: the next create answers 409 until it
    /// expires (`session_idle_timeout`) or a test ends it. Returns its id; `None` when the set
    /// does not exist or already has a session.
    pub fn scaleset_leave_stale_session(&self, scale_set_id: u64, owner: &str) -> Option<String> {
        self.shared.with_broker(|inner, now| {
            sessions::open(inner, scale_set_id, owner, now).ok()?;
            inner.broker.sessions.get(&scale_set_id).map(|s| s.id.to_string())
        })
    }

    /// GitHub deletes the set (dormant, or an incident): every call naming it answers 404
    /// `RunnerScaleSetNotFoundException`; its idle runners go, its unstarted jobs are queued
    /// again. `false` if there was no such set.
    pub fn scaleset_delete_scale_set(&self, scale_set_id: u64) -> bool {
        self.shared.with_broker(|inner, _| sets::remove(inner, scale_set_id))
    }

    // --- what workflows and runners do ---

    /// A workflow job of `scope` with this `runs-on`; returns its `jobId`.
    pub fn scaleset_queue_job(&self, scope: &Scope, spec: ScaleSetJobSpec) -> String {
        self.shared.with_broker(|inner, _| jobs::queue(inner, scope, spec))
    }

    /// A job with `runs-on: <the set's name>`; `None` if there is no such set.
    pub fn scaleset_queue_job_for(&self, scale_set_id: u64) -> Option<String> {
        self.shared.with_broker(|inner, _| {
            let set = inner.broker.sets.get(&scale_set_id)?;
            let spec = ScaleSetJobSpec::runs_on(&[set.name.as_str()]);
            let scope = inner.broker.scope_of_tenant(set.tenant)?.clone();
            Some(jobs::queue(inner, &scope, spec))
        })
    }

    /// The runner process connected (what `run.sh` with its JIT config does; the fake stands
    /// in for it). Same as [`FakeGithub::start_runner_with_jit`] when only the id is known.
    pub fn scaleset_runner_online(&self, runner_id: u64) -> bool {
        self.shared.with_broker(|inner, _| inner.runners.connect(runner_id))
    }

    /// The runner takes the oldest assigned job of its set (`JobStarted`); returns its
    /// `jobId`. Only needed with `auto_start: false`: otherwise idle runners do it themselves.
    pub fn scaleset_start_job(&self, runner_id: u64) -> Option<String> {
        self.shared.with_broker(|inner, _| jobs::start(inner, runner_id))
    }

    /// The runner's job ends with `result` (`succeeded`, `failed`, `canceled`…):
    /// `JobCompleted`, and the ephemeral runner is gone. Returns the `jobId`.
    pub fn scaleset_finish_job(&self, runner_id: u64, result: &str) -> Option<String> {
        self.shared.with_broker(|inner, _| {
            let job_id = jobs::set_result(inner, runner_id, result)?;
            inner.runners.finish(runner_id)?;
            Some(job_id)
        })
    }

    // --- what the fake saw ---

    /// The set's statistics now, as the next message will carry them.
    pub fn scaleset_statistics(&self, scale_set_id: u64) -> Option<Statistics> {
        self.shared.with_broker(|inner, _| {
            inner.broker.sets.contains_key(&scale_set_id).then(|| stats::statistics(inner, scale_set_id))
        })
    }

    /// The last `X-ScaleSetMaxCapacity` a poll of the set sent.
    pub fn scaleset_max_capacity(&self, scale_set_id: u64) -> Option<u32> {
        self.shared.with_broker(|inner, _| inner.broker.sets.get(&scale_set_id).and_then(|s| s.max_capacity))
    }

    pub fn scaleset_sessions(&self) -> Vec<SessionInfo> {
        self.shared.with_broker(|inner, _| {
            let mut out: Vec<SessionInfo> = inner
                .broker
                .sessions
                .iter()
                .map(|(set, s)| SessionInfo {
                    scale_set_id: *set,
                    session_id: s.id.to_string(),
                    owner: s.owner.clone(),
                    polls_in_flight: s.polls,
                })
                .collect();
            out.sort_by_key(|s| s.scale_set_id);
            out
        })
    }

    pub fn scaleset_sets(&self) -> Vec<ScaleSetInfo> {
        self.shared.with_broker(|inner, _| {
            let default_flow = inner.broker.config.flow;
            inner
                .broker
                .sets
                .values()
                .map(|s| ScaleSetInfo {
                    id: s.id,
                    scope: inner.broker.scope_of_tenant(s.tenant).cloned().unwrap_or(Scope::Org(String::new())),
                    name: s.name.clone(),
                    runner_group_id: s.group_id,
                    labels: s.label_names(),
                    max_capacity: s.max_capacity,
                    flow: s.flow.unwrap_or(default_flow),
                    pending_job_messages: s.queue.pending_len(),
                    unacked_message_ids: s.queue.unacked_ids(),
                })
                .collect()
        })
    }

    /// Every job queued with [`FakeGithub::scaleset_queue_job`], oldest first.
    pub fn scaleset_jobs(&self) -> Vec<ScaleSetJob> {
        self.shared.with_broker(|inner, _| inner.broker.jobs.all.values().map(|j| j.info.clone()).collect())
    }

    pub fn scaleset_job(&self, job_id: &str) -> Option<ScaleSetJob> {
        self.scaleset_jobs().into_iter().find(|j| j.job_id == job_id)
    }

    /// Every request to the Actions service and R3 with its headers (credentials shown by kind).
    pub fn scaleset_requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().broker.requests.clone()
    }

    /// The headers of each request with this method whose path contains `path_contains`.
    pub fn scaleset_request_headers(&self, method: &str, path_contains: &str) -> Vec<Vec<(String, String)>> {
        let requests = self.scaleset_requests().into_iter();
        requests
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_contains))
            .map(|r| r.headers)
            .collect()
    }

    /// Every exchange with the Actions service and R3 (the REST ones are in
    /// [`FakeGithub::exchanges`]), for `contract::Api::ActionsScaleset`.
    pub fn scaleset_exchanges(&self) -> Vec<Exchange> {
        self.shared.lock().broker.exchanges.clone()
    }
}
