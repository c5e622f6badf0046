//! GitHub's runner scale set API: the Actions service ("broker") and the scale-set step of
//! the REST auth chain, as `shared/specs/actions-scaleset/PROTOCOL.md` §17 describes them.
//!
//! # Layout
//!
//! | module | concern |
//! |---|---|
//! | `http` | the one handler: route, authenticate, apply faults, record, answer (ActivityId, BOM) |
//! | `error` | the one error shape, `{"typeName","message"}` with `application/json` |
//! | `auth` | R3 `POST /actions/runner-registration`, the admin and message-queue JWTs |
//! | `sets` | scale sets and runner groups (A1–A6), dormant deletion |
//! | `sessions` | message sessions (A7–A9): one per set, idle expiry, eviction |
//! | `messages` | the queue (M1 long poll, M2 ack): increasing ids, ≤ 50 job messages a batch |
//! | `jobs` | jobs in both flows, routing to a set, capacity, reassignment, runners taking jobs |
//! | `acquire` | the GHES flow's `acquirejobs` and `acquirablejobs` (A10/A11) |
//! | `stats` | the seven counters of every session and message, from job and runner state |
//! | `runners` | JIT runners and the agents endpoints (A12–A15), kept in fake-github's runner table |
//! | `controls` | the test controls on [`crate::FakeGithub`] |
//!
//! The flow: a test queues a job ([`ScaleSetJobSpec`]) for a scope; [`tick`] moves time
//! forward on every request and control call (session expiry, dormant sets, finished runner
//! jobs, assignment timeouts, new assignments, runners claiming jobs), and every change a
//! listener would hear of becomes a job message on the set's queue. Runners are the REST
//! fake's own (`state::RunnerState`), so the REST runner list shows them busy or idle too.
//!
//! Durations are measured with tokio's clock (a paused test runtime drives them); timestamps in
//! messages and JWT `exp` claims are wall-clock time.
//!
//! # Choices where PROTOCOL.md says [UNCERTAIN]
//!
//! - Capacity: a job is offered or assigned only while the set's offered + assigned-but-not-running
//!   jobs stay below the last `X-ScaleSetMaxCapacity` (no limit before the first poll; a poll
//!   without the header keeps the last value).
//! - `totalAvailableJobs`/`totalAcquiredJobs` are 0 in the github.com flow; in the GHES flow
//!   "acquired" counts acquired jobs not yet running (they count as assigned as well).
//! - Lifetimes: admin JWT 60 min, message-queue JWT 55 min, idle session 3 min (all knobs).
//! - Response key casing: `RunnerSetting` is echoed with a capital R, as SS's fixtures have it.
//! - Error type names: as observed where a log showed them; the duplicate-set one
//!   (`RunnerScaleSetExistsException`) is invented, its message is the observed text; A5 on a
//!   set with a busy runner answers 400 `JobStillRunningException`; a missing `api-version` is
//!   400 (the real service may default it).
//! - After the last reassignment a job stays assigned and waits (no 24 h unassignment).
//! - The message queue URL is `{base}_apis/runtime/runnerscalesets/{id}/messages?sessionId=…`;
//!   a token of an expired or evicted session gets 401 there, a deleted set 404.
//! - A new message whose id is not above the poll's `lastMessageId` (ids restart with a
//!   recreated set) is kept but not returned to that poll.

mod acquire;
mod auth;
mod controls;
mod error;
pub(crate) mod http;
mod jobs;
mod messages;
mod runners;
mod sessions;
mod sets;
mod stats;

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use contract::Exchange;
use serde::Serialize;
use tokio::time::Instant;

use crate::{server::Inner, state::Scope};

pub use controls::{ScaleSetInfo, SessionInfo};
pub use jobs::{JobPhase, ScaleSetJob, ScaleSetJobSpec};

/// How the Actions service hands a job to a scale set (PROTOCOL.md §7.3, §8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobFlow {
    /// github.com: `JobAssigned` at once, `runnerRequestId` 0, `jobId` a GUID string.
    #[default]
    GithubCom,
    /// GitHub Enterprise Server: `JobAvailable` with a non-zero `runnerRequestId`; only
    /// `acquirejobs` (with the message-queue token) makes the job assigned.
    Ghes,
}

/// Timings and behaviour of the Actions service. Defaults follow PROTOCOL.md §17; tests
/// shorten them with [`crate::FakeGithub::scaleset_configure`].
#[derive(Clone, Debug)]
pub struct ScaleSetConfig {
    /// Lifetime of the admin JWT from `runner-registration` (observed ≈ 1 h).
    pub admin_token_ttl: Duration,
    /// Lifetime of `messageQueueAccessToken` (observed ≈ 50–60 min).
    pub message_queue_token_ttl: Duration,
    /// How long GetMessage holds when there is nothing to say, then 202 (≈ 50 s).
    pub poll_hold: Duration,
    /// A session with no GetMessage for this long expires, which clears a 409 conflict
    /// (undocumented on the real service; 2–5 min guessed).
    pub session_idle_timeout: Duration,
    /// An assigned job no runner started within this long is cancelled and reassigned.
    pub assignment_timeout: Duration,
    /// How many times a job is reassigned after such a cancellation (the README says 3);
    /// after the last one it stays assigned and waits.
    pub max_reassignments: u32,
    /// The n-th reassignment waits n times this after its cancellation ("incremental delays";
    /// the real ones are not known). Meanwhile the job counts nowhere in the statistics.
    pub reassignment_backoff: Duration,
    /// Delete a scale set that had no active session for this long (`None`: never; the real
    /// service: 7 days, or one day for old sets).
    pub dormant_after: Option<Duration>,
    /// The job flow of sets without their own ([`crate::FakeGithub::scaleset_set_flow_for`]).
    pub flow: JobFlow,
    /// Idle online runners of a set take its assigned jobs by themselves; when `false` a test
    /// starts each job with [`crate::FakeGithub::scaleset_start_job`].
    pub auto_start: bool,
    /// The first message id of every new scale set (ids then increase by one).
    pub first_message_id: i64,
}

impl Default for ScaleSetConfig {
    fn default() -> Self {
        Self {
            admin_token_ttl: Duration::from_secs(3600),
            message_queue_token_ttl: Duration::from_secs(3300),
            poll_hold: Duration::from_secs(50),
            session_idle_timeout: Duration::from_secs(180),
            assignment_timeout: Duration::from_secs(120),
            max_reassignments: 3,
            reassignment_backoff: Duration::ZERO,
            dormant_after: None,
            flow: JobFlow::GithubCom,
            auto_start: true,
            first_message_id: 1,
        }
    }
}

/// The statistics every message and session carries (PROTOCOL.md §7.4), computed from the
/// job and runner state at the moment of the answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Offered with `JobAvailable` and not acquired yet (GHES flow only).
    pub total_available_jobs: u64,
    /// Acquired with `acquirejobs` and not started yet (GHES flow only).
    pub total_acquired_jobs: u64,
    /// Assigned to the set, waiting for a runner or running: the scaling signal.
    pub total_assigned_jobs: u64,
    pub total_running_jobs: u64,
    /// Runners of the set, online or not.
    pub total_registered_runners: u64,
    pub total_busy_runners: u64,
    /// Online and not busy.
    pub total_idle_runners: u64,
}

/// Something the Actions service does instead of (or besides) answering normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerFault {
    /// Answer with this status and an error body (5xx bursts, or any other status).
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    TooManyRequests { retry_after: Duration },
    /// Wait, then answer normally (a slow poll).
    Delay(Duration),
    /// Never answer (the client's timeout must end it).
    Hang,
    /// 200 with an empty body and nothing changed (ARC#4285 "EOF").
    EmptyOk,
    /// Answer normally, with a UTF-8 byte order mark before the JSON.
    Bom,
    /// On DELETE of a message: 204, but the message stays (redelivered to a poll without
    /// `lastMessageId`).
    LostAck,
    /// On GetMessage: the message delivered is delivered once more by the next poll, whatever
    /// its `lastMessageId`.
    Duplicate,
    /// On GetMessage: hold for this long, then expire the session's message-queue token and
    /// answer 401 (the token ran out mid-poll).
    UnauthorizedAfter(Duration),
    /// On session create or refresh: 200 with a session lacking `messageQueueUrl` (ARC#4370).
    SessionWithoutQueueUrl,
    /// On GetMessage: the next message delivered keeps its id and statistics, but its `body` is
    /// a JSON string that holds no JSON array (`"not json"`). It stays unacknowledged as usual.
    UndecodableBody,
    /// On GetMessage: the next message delivered carries this `messageType` instead of
    /// `RunnerScaleSetJobMessages` (SS's listener stops on it).
    MessageType(String),
}

impl BrokerFault {
    /// Faults that change a message: they wait for a poll that delivers one (a poll that
    /// ends with 202 leaves them armed).
    pub(crate) fn needs_a_message(&self) -> bool {
        matches!(self, Self::Duplicate | Self::UndecodableBody | Self::MessageType(_))
    }
}

/// A request as the Actions service received it, for tests of the headers a client sends.
/// The `authorization` value is replaced by what it is, never the secret: `Bearer <admin token>`,
/// `Bearer <message-queue token>`, `RemoteAuth <registration token>`, or `<unrecognised>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as in the exchange.
    pub path: String,
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
}

pub(crate) struct FaultRule {
    pub method: Option<String>,
    pub path_contains: Option<String>,
    pub fault: BrokerFault,
    pub remaining: usize,
}

/// The Actions service's whole state; it lives in `server::Inner` beside the REST fake's.
#[derive(Default)]
pub(crate) struct Broker {
    pub config: ScaleSetConfig,
    /// Tenant `n` (1-based) serves this scope at `/tenant/<n>/`.
    pub tenants: Vec<Scope>,
    pub sets: BTreeMap<u64, sets::ScaleSet>,
    pub next_set_id: u64,
    /// Set id → its one active session.
    pub sessions: HashMap<u64, sessions::Session>,
    pub tokens: auth::Tokens,
    pub jobs: jobs::Jobs,
    pub faults: Vec<FaultRule>,
    /// Statuses the next `runner-registration` calls answer with (401/403 to exercise retries).
    pub registration_faults: Vec<u16>,
    pub exchanges: Vec<Exchange>,
    pub requests: Vec<RecordedRequest>,
    /// `http://127.0.0.1:PORT`, for the URLs the service hands out.
    pub base_url: String,
    /// Job messages queued so far, on all sets (a change wakes the long polls).
    pub events_emitted: u64,
}

impl Broker {
    /// The tenant number of a scope, created on first use.
    pub fn tenant_of(&mut self, scope: &Scope) -> usize {
        if let Some(i) = self.tenants.iter().position(|s| s == scope) {
            return i + 1;
        }
        self.tenants.push(scope.clone());
        self.tenants.len()
    }

    pub fn scope_of_tenant(&self, tenant: usize) -> Option<&Scope> {
        tenant.checked_sub(1).and_then(|i| self.tenants.get(i))
    }
}

/// What a [`tick`] changed.
pub(crate) struct Tick {
    /// New job messages were queued: wake the long polls.
    pub queued: bool,
    /// The earliest moment something will change by itself (a timeout).
    pub next: Option<Instant>,
}

/// Moves the service forward to `now`: sessions expire, dormant sets go, finished runner jobs
/// complete, unstarted assignments time out, queued jobs are assigned and idle runners claim
/// them. Every request and every control call runs it first.
pub(crate) fn tick(inner: &mut Inner, now: Instant) -> Tick {
    let mut next = sessions::expire_idle(inner, now);
    next = earliest(next, sets::delete_dormant(inner, now));
    let before = inner.broker.events_emitted;
    jobs::complete_finished(inner);
    jobs::time_out_assignments(inner, now);
    jobs::assign(inner, now);
    if inner.broker.config.auto_start {
        jobs::start_on_idle_runners(inner);
    }
    next = earliest(next, jobs::next_timeout(inner));
    Tick { queued: inner.broker.events_emitted != before, next }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Go's zero `time.Time`, which the service sends for a moment that has not happened.
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| ZERO_TIME.to_owned())
}
