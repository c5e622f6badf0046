//! A stateful HTTP fake of GitHub's self-hosted runner REST API, for tests.
//!
//! [`FakeGithub::start`] serves it on a free loopback port (also under `/api/v3`, as
//! GitHub Enterprise Server does). It holds runners at repository and organization
//! scope that register (a JIT config used once, or a registration token), come online,
//! are assigned queued jobs whose labels they carry, go busy, finish and — when
//! ephemeral — disappear; deleting a busy runner is refused with 422 as GitHub does.
//! It authenticates PATs, GitHub App JWTs (RS256, checked against the App's public
//! key, with `jti` replays refused) and installation tokens, sends `x-ratelimit-*`
//! headers on every answer, enforces primary and secondary rate limits, answers
//! conditional list requests with 304 (free of charge), injects faults on demand
//! and records every exchange for the contract check.
//!
//! On the same server it also plays GitHub's runner scale set API (`scaleset`): the
//! Actions service's admin endpoints, sessions, message queue and JIT runners under
//! `/tenant/<n>/`, reached with `POST /actions/runner-registration` and a registration
//! token this fake issued. Its runners are the same runners the REST API lists. Its
//! test controls are the `scaleset_*` methods; its exchanges are recorded apart
//! ([`FakeGithub::scaleset_exchanges`]) because another contract describes them.
//!
//! # Why a model of its own
//!
//! The runner and job bookkeeping here (`state.rs`) is a second model of the one in
//! `operator-sim` (`memory::github`, the only in-process one, which the demo and the
//! fault suite run on). That is on purpose: this fake checks the operator's real GitHub
//! client against the official API description, and a fake that shared code with the
//! operator's side would share its misunderstandings too, and could not catch them. It
//! depends on neither `operator-core` nor `operator-sim`; keep it so.

mod auth;
mod runner_api;
mod scaleset;
mod server;
mod state;
mod workflows;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use time::OffsetDateTime;
use tokio::task::JoinHandle;

pub use auth::AppKey;
pub use contract::Exchange;
pub use scaleset::{
    BrokerFault, JobFlow, JobPhase, RecordedRequest, ScaleSetConfig, ScaleSetInfo, ScaleSetJob, ScaleSetJobSpec,
    SessionInfo, Statistics,
};
pub use state::{FakeJob, FakeRunner, RunnerGroup, Scope};
pub use workflows::FakeWorkflowJob;

use crate::{
    auth::App,
    server::{FaultRule, Secondary, Shared},
};

/// Something the fake does instead of (or before) answering normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and `{"message": "Server Error"}`.
    Status(u16),
    /// Wait, then answer normally.
    Delay(Duration),
    /// Never answer (the client's timeout must end it).
    Hang,
    /// `401 Bad credentials` whatever the credential.
    Unauthorized,
}

/// Which status GitHub uses for an exhausted rate limit (it documents both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitStatus {
    Forbidden,
    TooManyRequests,
}

impl LimitStatus {
    fn code(self) -> u16 {
        match self {
            Self::Forbidden => 403,
            Self::TooManyRequests => 429,
        }
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakeGithub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    extra_tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
        for task in self.extra_tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl FakeGithub {
    /// Serve on `127.0.0.1:0`. Besides the REST API it serves the runner's side
    /// (`/_fake/runner/…`, see `runner_api`) for test doubles of `config.sh` and `run.sh`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        *shared.base_url.lock().unwrap_or_else(|p| p.into_inner()) = format!("http://{addr}");
        shared.lock().broker.base_url = format!("http://{addr}");
        let app = runner_api::router(shared.clone()).merge(server::router(shared.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task, extra_tasks: Default::default() }
    }

    /// Also serve the runner's side (only `/_fake/runner/…`, not the REST API) on a free
    /// port of `ip`, until the fake is dropped; returns its root URL. A test whose VMs
    /// live in their own network namespaces passes the host's address on their bridge:
    /// the operator keeps calling the REST API on loopback, the runner doubles call this.
    pub async fn serve_runner_side_on(&self, ip: IpAddr) -> String {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0)).await.expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let app = runner_api::router(self.shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        self.extra_tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
        format!("http://{addr}")
    }

    /// API root, e.g. `http://127.0.0.1:PORT` (append `/api/v3` to act as GHES).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request and answer so far, paths relative to the API root.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.lock().exchanges.clone()
    }

    /// Number of requests received, answered or not.
    pub fn request_count(&self) -> u64 {
        self.shared.lock().requests
    }

    // --- credentials ---

    /// Accept this personal access token.
    pub fn add_pat(&self, pat: &str) {
        self.shared.lock().creds.pats.insert(pat.to_owned());
    }

    /// Stop accepting a PAT or an installation token (→ 401 `Bad credentials`).
    pub fn revoke(&self, token: &str) {
        let mut inner = self.shared.lock();
        inner.creds.pats.remove(token);
        inner.creds.installation_tokens.remove(token);
    }

    /// Revoke every installation token issued so far.
    pub fn revoke_installation_tokens(&self) {
        self.shared.lock().creds.installation_tokens.clear();
    }

    /// Register a GitHub App with its public key and one installation on `account`
    /// (a user or organization login; it covers that account's repositories).
    pub fn add_app(&self, app_id: u64, public_key_pem: &str, installation_id: u64, account: &str) {
        let mut inner = self.shared.lock();
        let app = inner
            .creds
            .apps
            .entry(app_id)
            .or_insert_with(|| App { public_pem: public_key_pem.to_owned(), installations: Default::default() });
        app.public_pem = public_key_pem.to_owned();
        app.installations.insert(installation_id, account.to_owned());
    }

    /// The App's key was rotated at GitHub: only JWTs signed with the new key pass.
    pub fn rotate_app_key(&self, app_id: u64, public_key_pem: &str) {
        if let Some(app) = self.shared.lock().creds.apps.get_mut(&app_id) {
            app.public_pem = public_key_pem.to_owned();
        }
    }

    /// Lifetime of installation tokens issued from now on (GitHub: one hour).
    pub fn set_installation_token_ttl(&self, ttl: Duration) {
        self.shared.lock().installation_token_ttl = Some(ttl);
    }

    pub fn installation_tokens_issued(&self) -> u64 {
        self.shared.lock().creds.issued_installation_tokens
    }

    pub fn jwts_accepted(&self) -> u64 {
        self.shared.lock().creds.accepted_jwts
    }

    // --- rate limits and faults ---

    /// Primary limit per credential: `limit` requests per `window`; what to answer when spent.
    pub fn set_rate_limit(&self, limit: u64, window: Duration, status: LimitStatus) {
        let mut inner = self.shared.lock();
        inner.limits.limit = limit;
        inner.limits.window = window;
        inner.limits.status = status.code();
        inner.limits.buckets.clear();
    }

    /// The next `times` authenticated requests hit a secondary rate limit with `retry-after`.
    pub fn trigger_secondary_limit(&self, times: usize, retry_after: Duration, status: LimitStatus) {
        self.shared.lock().limits.secondary = Some(Secondary { times, retry_after, status: status.code() });
    }

    /// Apply `fault` to the next `times` requests.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.inject_matching(None, None, fault, times);
    }

    /// Apply `fault` to the next `times` requests with this method (any when `None`)
    /// whose path contains `path_contains` (any when `None`).
    pub fn inject_matching(&self, method: Option<&str>, path_contains: Option<&str>, fault: Fault, times: usize) {
        self.shared.lock().faults.push(FaultRule {
            method: method.map(str::to_owned),
            path_contains: path_contains.map(str::to_owned),
            fault,
            remaining: times,
        });
    }

    /// Forget injected faults that have not fired yet.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    // --- runners and jobs (what the runner application and workflows do) ---

    /// Add a runner group to an organization; returns its id ("Default" is id 1).
    /// A finished workflow run of `repository` (`owner/name`) with these jobs; returns its id.
    pub fn add_workflow_run(
        &self,
        repository: &str,
        created_at: time::OffsetDateTime,
        jobs: Vec<FakeWorkflowJob>,
    ) -> u64 {
        let mut inner = self.shared.lock();
        let id = 9000 + inner.workflow_runs.len() as u64;
        let first_job = 70_000 + inner.workflow_runs.iter().map(|r| r.jobs.len() as u64).sum::<u64>();
        let jobs = jobs.into_iter().enumerate().map(|(i, j)| (first_job + i as u64, j)).collect();
        inner.workflow_runs.push(workflows::WorkflowRun { id, repository: repository.into(), created_at, jobs });
        id
    }

    pub fn add_runner_group(&self, org: &str, name: &str) -> u64 {
        self.shared.lock().runners.add_group(org, name)
    }

    /// Queue a job of `scope` that needs runners carrying all `labels`; returns its id.
    pub fn enqueue_job(&self, scope: &Scope, labels: &[&str]) -> u64 {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        self.shared.lock().runners.enqueue(scope, &labels)
    }

    /// `run.sh --jitconfig <encoded>`: the runner comes online. `None` for an unknown
    /// or already used config.
    pub fn start_runner_with_jit(&self, encoded: &str) -> Option<u64> {
        // Through the Actions service: a scale-set runner coming online may take a job there.
        self.shared.with_broker(|inner, _| inner.runners.start_jit(encoded))
    }

    /// `config.sh --url ... --token <token> --name <name> --labels ...` then `run.sh`.
    /// `None` for an unknown or expired token, another scope's token or a taken name.
    pub fn register_runner_with_token(
        &self,
        scope: &Scope,
        token: &str,
        name: &str,
        labels: &[&str],
        ephemeral: bool,
    ) -> Option<u64> {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        self.shared
            .lock()
            .runners
            .register_with_token(scope, token, name, &labels, ephemeral, OffsetDateTime::now_utc())
            .ok()
    }

    /// `config.sh remove --token <remove token>`.
    pub fn remove_runner_with_token(&self, token: &str, runner_id: u64) -> bool {
        self.shared.with_broker(|inner, _| {
            inner.runners.remove_with_token(token, runner_id, OffsetDateTime::now_utc()).is_ok()
        })
    }

    /// The runner asks for work; returns the job it is now busy with.
    pub fn poll_job(&self, runner_id: u64) -> Option<u64> {
        self.shared.lock().runners.poll(runner_id)
    }

    /// Every idle online runner takes a matching job if one is queued: (job, runner) pairs.
    pub fn dispatch(&self) -> Vec<(u64, u64)> {
        self.shared.lock().runners.dispatch()
    }

    /// The runner's job finished (ephemeral runners are then removed); returns the job.
    pub fn finish_job(&self, runner_id: u64) -> Option<u64> {
        // A scale-set runner's job ends with `JobCompleted` ("succeeded") on its set's queue.
        self.shared.with_broker(|inner, _| inner.runners.finish(runner_id))
    }

    /// The runner process died or lost its connection: GitHub shows it offline.
    pub fn mark_offline(&self, runner_id: u64) {
        self.shared.with_broker(|inner, _| inner.runners.set_online(runner_id, false));
    }

    pub fn runners(&self, scope: &Scope) -> Vec<FakeRunner> {
        self.shared.lock().runners.runners_of(scope)
    }

    pub fn runner(&self, id: u64) -> Option<FakeRunner> {
        self.shared.lock().runners.runners.get(&id).cloned()
    }

    pub fn job(&self, id: u64) -> Option<FakeJob> {
        self.shared.lock().runners.jobs.get(&id).cloned()
    }

    pub fn queued_jobs(&self, scope: &Scope) -> usize {
        self.shared.lock().runners.queued(scope)
    }
}
