//! The [`Github`] port of a pool whose demand comes from a runner scale set: its JIT
//! configs come from the scale set (`generatejitconfig`), so GitHub routes the set's
//! jobs to them, and its runners are removed through the scale set API (which refuses
//! while a job runs, as the REST API does). Listing runners and registration tokens go
//! to the REST API as before: scale-set runners are the scope's self-hosted runners too.

use std::sync::Arc;

use async_trait::async_trait;

use super::ScaleSetHandle;
use crate::ports::{
    ActionsError, DeregisterOutcome, Github, GithubError, JitConfig, JitRequest, RegistrationToken, RemoveOutcome,
    Runner, ScaleSetApi,
};

pub struct ScaleSetRunners {
    rest: Arc<dyn Github>,
    api: Arc<dyn ScaleSetApi>,
    handle: ScaleSetHandle,
}

impl ScaleSetRunners {
    pub fn new(rest: Arc<dyn Github>, api: Arc<dyn ScaleSetApi>, handle: ScaleSetHandle) -> Self {
        Self { rest, api, handle }
    }
}

/// The scale set API's failures in the [`Github`] port's terms, so the registration
/// endpoint answers them as it answers REST failures (retryable ones with 503).
fn to_github(err: ActionsError) -> GithubError {
    match err {
        ActionsError::RunnerExists { name } => GithubError::NameTaken { name },
        ActionsError::Unauthorized => GithubError::Unauthorized,
        ActionsError::Throttled { retry_after } => GithubError::RateLimited { retry_after },
        ActionsError::Server { status, type_name, message } => {
            GithubError::Server { status, message: format!("{type_name}: {message}") }
        }
        other => GithubError::Transport(Box::new(other)),
    }
}

#[async_trait]
impl Github for ScaleSetRunners {
    async fn jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        // Until the listener has the scale set, a booting VM is told to ask again.
        let id = self.handle.id().ok_or_else(|| GithubError::Server {
            status: 503,
            message: "the runner scale set is not known yet (the listener is starting)".into(),
        })?;
        self.api.generate_jit_config(id, &request.name).await.map_err(to_github)
    }

    async fn registration_token(&self) -> Result<RegistrationToken, GithubError> {
        self.rest.registration_token().await
    }

    async fn list_runners(&self) -> Result<Vec<Runner>, GithubError> {
        self.rest.list_runners().await
    }

    async fn get_runner(&self, id: u64) -> Result<Option<Runner>, GithubError> {
        self.rest.get_runner(id).await
    }

    async fn deregister_runner(&self, id: u64) -> Result<DeregisterOutcome, GithubError> {
        match self.api.remove_runner(id).await.map_err(to_github)? {
            RemoveOutcome::Removed => Ok(DeregisterOutcome::Removed),
            RemoveOutcome::Busy => Ok(DeregisterOutcome::Busy),
        }
    }

    fn registration_url(&self) -> String {
        self.rest.registration_url()
    }

    fn rate_limit_remaining(&self) -> Option<u64> {
        self.rest.rate_limit_remaining()
    }
}
