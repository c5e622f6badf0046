//! The metrics hook: every request sent and every call's outcome, by endpoint.

use std::sync::Arc;

use crate::ports::ActionsError;

/// One call of the protocol, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    RegistrationToken,
    AdminConnection,
    RunnerGroup,
    FindScaleSet,
    GetScaleSet,
    CreateScaleSet,
    CreateSession,
    RefreshSession,
    DeleteSession,
    GetMessage,
    DeleteMessage,
    AcquireJobs,
    GenerateJitConfig,
    RunnerByName,
    RemoveRunner,
}

impl Endpoint {
    pub const ALL: [Endpoint; 15] = [
        Self::RegistrationToken,
        Self::AdminConnection,
        Self::RunnerGroup,
        Self::FindScaleSet,
        Self::GetScaleSet,
        Self::CreateScaleSet,
        Self::CreateSession,
        Self::RefreshSession,
        Self::DeleteSession,
        Self::GetMessage,
        Self::DeleteMessage,
        Self::AcquireJobs,
        Self::GenerateJitConfig,
        Self::RunnerByName,
        Self::RemoveRunner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegistrationToken => "registration_token",
            Self::AdminConnection => "admin_connection",
            Self::RunnerGroup => "runner_group",
            Self::FindScaleSet => "find_scale_set",
            Self::GetScaleSet => "get_scale_set",
            Self::CreateScaleSet => "create_scale_set",
            Self::CreateSession => "create_session",
            Self::RefreshSession => "refresh_session",
            Self::DeleteSession => "delete_session",
            Self::GetMessage => "get_message",
            Self::DeleteMessage => "delete_message",
            Self::AcquireJobs => "acquire_jobs",
            Self::GenerateJitConfig => "generate_jit_config",
            Self::RunnerByName => "runner_by_name",
            Self::RemoveRunner => "remove_runner",
        }
    }
}

/// What the metrics hook hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// One HTTP request went out (each retry is one more).
    RequestSent(Endpoint),
    /// A logical call ended: `"ok"` or an [`ActionsError::kind`].
    Finished { endpoint: Endpoint, outcome: &'static str },
}

type ObserverFn = dyn Fn(CallEvent) + Send + Sync;

#[derive(Clone, Default)]
pub(super) struct Observer(pub(super) Option<Arc<ObserverFn>>);

impl Observer {
    pub(super) fn notify(&self, event: CallEvent) {
        if let Some(f) = &self.0 {
            f(event);
        }
    }

    pub(super) fn finished<T>(&self, endpoint: Endpoint, result: &Result<T, ActionsError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.notify(CallEvent::Finished { endpoint, outcome });
    }
}
