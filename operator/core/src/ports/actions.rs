//! GitHub's runner scale set API (the Actions service that `actions/scaleset` and
//! actions-runner-controller talk to): the demand signal, and the scale set's runners.
//! Section numbers (§) refer to the protocol description the client is written from,
//! summarised in `docs/scale-set.md`.
//!
//! The port is stateful on purpose: an implementation holds the admin token (refreshed
//! before it expires) and the one message session with its queue URL and token
//! (refreshed on a 401 and the call retried once), so its callers deal in scale sets,
//! messages and runners, never in tokens.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::JitConfig;

/// What the operator asks GitHub to create (§5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetSpec {
    /// The scale set's name: its one `System` label, what workflows put in `runs-on`.
    pub name: String,
    /// Runner group id (§5.6; the default group is 1).
    pub runner_group_id: u64,
    /// Labels beyond the name (sent on create only; GitHub does not update them).
    pub extra_labels: Vec<String>,
}

/// A scale set as GitHub describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetInfo {
    pub id: u64,
    pub name: String,
    pub runner_group_id: u64,
    pub labels: Vec<String>,
}

/// The scale set's counters (§7.4), current as of the message that carried them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Jobs offered but not yet acquired (GHES's acquire flow).
    pub available_jobs: u32,
    pub acquired_jobs: u32,
    /// Jobs assigned to the scale set, waiting for a runner or running: the demand.
    pub assigned_jobs: u32,
    pub running_jobs: u32,
    pub registered_runners: u32,
    pub busy_runners: u32,
    pub idle_runners: u32,
}

impl Statistics {
    /// Assigned jobs that no runner has started yet.
    pub fn waiting_jobs(&self) -> u32 {
        self.assigned_jobs.saturating_sub(self.running_jobs)
    }
}

/// The fields every job message carries (§7.3). Jobs are keyed by `job_id`: on
/// github.com `request_id` can be 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    pub job_id: String,
    pub request_id: i64,
    /// `owner/name`.
    pub repository: String,
    pub workflow_run_id: u64,
    pub job_display_name: String,
    /// `None` for Go's zero time `0001-01-01T00:00:00Z`, or when absent.
    pub queue_time: Option<OffsetDateTime>,
    pub scale_set_assign_time: Option<OffsetDateTime>,
    pub runner_assign_time: Option<OffsetDateTime>,
    pub finish_time: Option<OffsetDateTime>,
}

/// One entry of a message's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobMessage {
    /// GHES: offered to the scale set; it must be acquired (§8) to be assigned.
    Available {
        job: JobInfo,
    },
    /// Assigned to the scale set (github.com sends this directly).
    Assigned {
        job: JobInfo,
    },
    Started {
        job: JobInfo,
        runner_id: u64,
        runner_name: String,
    },
    /// Finished, or `result == "canceled"` when an assignment was withdrawn (then the
    /// job may be assigned again, up to three times).
    Completed {
        job: JobInfo,
        runner_id: u64,
        runner_name: String,
        result: String,
    },
}

/// One message from the session's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub statistics: Statistics,
    /// The decoded body, or why it could not be decoded (never the body itself: it may
    /// carry what a log must not). A message that cannot be decoded is still
    /// acknowledged, and its statistics still apply.
    pub jobs: Result<Vec<JobMessage>, String>,
}

/// A runner of the scale set (§9.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetRunner {
    pub id: u64,
    pub name: String,
    pub scale_set_id: u64,
}

/// Removing a runner (§9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed, or GitHub did not know it (both 204).
    Removed,
    /// `JobStillRunningException`: it runs a job; the VM must be left alone.
    Busy,
}

/// Scale set API failures, named for what the caller does about them (§10).
#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    /// 409 `RunnerScaleSetSessionConflictException`: another session is open (a crashed
    /// predecessor's, until GitHub expires it). Wait with backoff.
    #[error("the scale set already has an active message session")]
    SessionConflict,
    /// 404 `RunnerScaleSetNotFoundException`: GitHub deleted the set (dormant, or by
    /// hand). Recreate it and start reading messages from the beginning.
    #[error("the runner scale set does not exist")]
    ScaleSetNotFound,
    /// The session is gone (refresh 404, or no session open): open a new one.
    #[error("the message session is gone")]
    SessionGone,
    /// 409 `AgentExistsException` on generatejitconfig (§9.4).
    #[error("a runner named {name} already exists")]
    RunnerExists { name: String },
    /// GitHub refused the credential or a token derived from it after refreshing.
    #[error("GitHub refused the credential")]
    Unauthorized,
    /// 429 or 503 with or without `Retry-After`.
    #[error("throttled by GitHub (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("GitHub answered {status} {type_name}: {message}")]
    Server { status: u16, type_name: String, message: String },
    /// A 2xx answer without what the protocol requires (an empty 200, a session without
    /// a queue URL, a JIT config without a runner id): transient, retried.
    #[error("GitHub's answer lacks {0}")]
    InvalidAnswer(String),
    #[error("the request to GitHub did not complete")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ActionsError {
    /// A metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SessionConflict => "session_conflict",
            Self::ScaleSetNotFound => "scale_set_not_found",
            Self::SessionGone => "session_gone",
            Self::RunnerExists { .. } => "runner_exists",
            Self::Unauthorized => "unauthorized",
            Self::Throttled { .. } => "throttled",
            Self::Server { .. } => "server",
            Self::InvalidAnswer(_) => "invalid_answer",
            Self::Transport(_) => "transport",
        }
    }

    pub const KINDS: [&'static str; 9] = [
        "session_conflict",
        "scale_set_not_found",
        "session_gone",
        "runner_exists",
        "unauthorized",
        "throttled",
        "server",
        "invalid_answer",
        "transport",
    ];
}

/// The scale set API as the operator uses it. One implementation talks HTTP
/// (`operator::github::scaleset`); the simulated world has an in-memory one.
#[async_trait]
pub trait ScaleSetApi: Send + Sync {
    /// The id of the runner group named `name` (A6); `None` is the default group, 1.
    async fn runner_group_id(&self, name: Option<&str>) -> Result<u64, ActionsError>;
    /// The scale set named `name` in the group (A1), if any.
    async fn find_scale_set(&self, runner_group_id: u64, name: &str) -> Result<Option<ScaleSetInfo>, ActionsError>;
    /// The scale set with this id (A2); `None` when GitHub deleted it.
    async fn get_scale_set(&self, id: u64) -> Result<Option<ScaleSetInfo>, ActionsError>;
    /// Create the scale set (A3), JIT runners only, with runner updates disabled.
    async fn create_scale_set(&self, spec: &ScaleSetSpec) -> Result<ScaleSetInfo, ActionsError>;

    /// Open the message session of scale set `scale_set_id` (A7) as `owner`, replacing
    /// any this client held; returns the session's statistics (the first demand).
    async fn open_session(&self, scale_set_id: u64, owner: &str) -> Result<Statistics, ActionsError>;
    /// Refresh the session (A8): a new queue token, and the scale set's current
    /// statistics. The listener calls it after a quiet spell, so that counters a lagging
    /// last message left behind do not hold the pool for ever.
    async fn refresh_session(&self) -> Result<Statistics, ActionsError>;
    /// Close the session (A9); closing one GitHub no longer knows is not an error.
    async fn close_session(&self) -> Result<(), ActionsError>;
    /// Long poll (M1): the next message after `last_message_id`, or `None` when the
    /// server held the poll and had nothing (202). Reports `max_capacity` to GitHub.
    async fn next_message(&self, last_message_id: i64, max_capacity: u32) -> Result<Option<Message>, ActionsError>;
    /// Acknowledge a message (M2) once its effect is applied.
    async fn acknowledge(&self, message_id: i64) -> Result<(), ActionsError>;
    /// Acquire offered jobs (A10, GHES); returns the request ids actually acquired.
    async fn acquire_jobs(&self, scale_set_id: u64, request_ids: &[i64]) -> Result<Vec<i64>, ActionsError>;

    /// A one-time runner configuration for a runner named `runner_name` (A12).
    async fn generate_jit_config(&self, scale_set_id: u64, runner_name: &str) -> Result<JitConfig, ActionsError>;
    /// The runner named `name` (A14), if any.
    async fn runner_by_name(&self, name: &str) -> Result<Option<ScaleSetRunner>, ActionsError>;
    /// Remove a runner (A15); GitHub refuses while it runs a job.
    async fn remove_runner(&self, runner_id: u64) -> Result<RemoveOutcome, ActionsError>;
}
