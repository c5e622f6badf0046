//! Request and response bodies of the runner-facing API.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    controller::{HookOutcome, Registration},
    model::JobRef,
};

/// Registration request. The body carries nothing that names an instance: the
/// operator identifies the caller by its address.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {}

/// The runner's registration for this boot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RegistrationResponse {
    /// No runner on this boot: the pool keeps this VM in reserve and the operator
    /// deallocates it. Start nothing, hold nothing, and ask again after
    /// `retry_after_seconds` should the VM still run then (the pool may need it after all).
    Park {
        #[schema(example = 30)]
        retry_after_seconds: u64,
    },
    /// Start the runner with `run.sh --jitconfig <encoded_jit_config>`.
    Jit { runner_name: String, encoded_jit_config: String },
    /// Run `config.sh --url <url> --token <token> <config_args...>`, then `run.sh`.
    Token {
        runner_name: String,
        url: String,
        token: String,
        #[serde(with = "time::serde::rfc3339")]
        #[schema(value_type = String, format = DateTime)]
        expires_at: OffsetDateTime,
        config_args: Vec<String>,
    },
}

impl From<Registration> for RegistrationResponse {
    fn from(r: Registration) -> Self {
        match r {
            Registration::Park { retry_after } => Self::Park { retry_after_seconds: retry_after.as_secs() },
            Registration::Jit { runner_name, encoded_jit_config } => Self::Jit { runner_name, encoded_jit_config },
            Registration::Token { runner_name, url, token, expires_at, args } => {
                Self::Token { runner_name, url, token, expires_at, config_args: args }
            }
        }
    }
}

/// Job hook body: the job's identifiers from the runner's environment.
pub type JobHookRequest = JobRef;

/// Runner-exited body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnerExitedRequest {
    /// Exit code of `run.sh`, for the log.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// The calling instance's state after the hook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HookResponse {
    #[schema(example = "3")]
    pub instance: String,
    #[schema(example = "busy")]
    pub state: String,
    /// False when this hook repeated one already applied (hooks are retried).
    pub changed: bool,
}

impl From<HookOutcome> for HookResponse {
    fn from(o: HookOutcome) -> Self {
        Self { instance: o.instance.0, state: o.state.as_str().to_owned(), changed: o.changed }
    }
}

/// `/readyz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
