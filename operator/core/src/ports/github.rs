//! GitHub's self-hosted runner API, at repository or organization scope.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

/// A registered runner as GitHub lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    pub status: RunnerStatus,
    pub busy: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerStatus {
    Online,
    Offline,
}

/// What a JIT config is made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitRequest {
    pub name: String,
    pub labels: Vec<String>,
    /// Runner group name (organization scope); GitHub's default group when `None`.
    pub runner_group: Option<String>,
}

/// A one-time runner configuration: `run.sh --jitconfig <encoded>`.
#[derive(Clone, PartialEq, Eq)]
pub struct JitConfig {
    pub runner_id: u64,
    pub encoded: String,
}

impl std::fmt::Debug for JitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitConfig").field("runner_id", &self.runner_id).field("encoded", &"<redacted>").finish()
    }
}

/// A registration token for `config.sh --token`.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for RegistrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationToken").field("token", &"<redacted>").field("expires_at", &self.expires_at).finish()
    }
}

/// Result of removing a runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeregisterOutcome {
    Removed,
    /// GitHub refused: the runner is running a job right now.
    Busy,
    /// GitHub no longer knows the runner (an ephemeral runner after its job).
    AlreadyGone,
}

/// GitHub operations, named for what failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub rate limit reached (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("GitHub refused the credential")]
    Unauthorized,
    #[error("a runner named {name} already exists")]
    NameTaken { name: String },
    #[error("GitHub answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("the request to GitHub did not complete")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl GithubError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::NameTaken { .. } => "name_taken",
            Self::Server { .. } => "server",
            Self::Transport(_) => "transport",
        }
    }
}

#[async_trait]
pub trait Github: Send + Sync {
    async fn jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError>;
    async fn registration_token(&self) -> Result<RegistrationToken, GithubError>;
    /// Every runner of the scope (all pages).
    async fn list_runners(&self) -> Result<Vec<Runner>, GithubError>;
    async fn get_runner(&self, id: u64) -> Result<Option<Runner>, GithubError>;
    /// Remove a runner; GitHub refuses while it runs a job, which is what keeps
    /// busy VMs safe from deletion.
    async fn deregister_runner(&self, id: u64) -> Result<DeregisterOutcome, GithubError>;
    /// The web URL runners register against (`config.sh --url`), e.g. `https://github.com/owner/repo`.
    fn registration_url(&self) -> String;

    /// Requests left in the current rate-limit window, as GitHub last reported (for metrics).
    fn rate_limit_remaining(&self) -> Option<u64> {
        None
    }
}
