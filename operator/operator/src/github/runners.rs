//! The [`Github`] port on the client: JIT configs, registration tokens, runners and
//! runner groups at the configured scope.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use tracing::debug;

use super::{
    web_url,
    wire::{parse_time, WireGroupPage, WireJit, WireRunner, WireRunnerPage, WireToken},
    GithubClient,
};
use crate::{
    config::GithubScope,
    ports::{DeregisterOutcome, Github, GithubError, JitConfig, JitRequest, RegistrationToken, Runner},
};

impl GithubClient {
    /// Runner group name → id (organization scope; repositories only have the default group 1).
    async fn runner_group_id(&self, name: Option<&str>) -> Result<u64, GithubError> {
        let (Some(name), GithubScope::Organization(org)) = (name, &self.settings.scope) else {
            return Ok(1);
        };
        if let Some(id) = self.groups.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(*id);
        }
        let pages = self.list_all(format!("{}/orgs/{org}/actions/runner-groups?per_page=100", self.api)).await?;
        let mut found = None;
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        for page in pages {
            let page: WireGroupPage = serde_json::from_value(page)
                .map_err(|e| GithubError::Server { status: 200, message: format!("unexpected runner groups: {e}") })?;
            for g in page.runner_groups {
                if g.name == name {
                    found = Some(g.id);
                }
                groups.insert(g.name, g.id);
            }
        }
        found.ok_or_else(|| GithubError::Server {
            status: 404,
            message: format!("runner group {name:?} does not exist in organization {org}"),
        })
    }
}

#[async_trait]
impl Github for GithubClient {
    async fn jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        let group = request.runner_group.as_deref().or(self.settings.runner_group.as_deref());
        let runner_group_id = self.runner_group_id(group).await?;
        let body = json!({
            "name": request.name,
            "runner_group_id": runner_group_id,
            "labels": request.labels,
            "work_folder": "_work",
        });
        let url = format!("{}/runners/generate-jitconfig", self.scope_path());
        let answer = self.call(Method::POST, &url, Some(&body), None).await?;
        match answer.status {
            201 => {
                let wire: WireJit = answer.parse()?;
                Ok(JitConfig { runner_id: wire.runner.id, encoded: wire.encoded_jit_config })
            }
            409 => Err(GithubError::NameTaken { name: request.name.clone() }),
            _ => Err(answer.server_error()),
        }
    }

    async fn registration_token(&self) -> Result<RegistrationToken, GithubError> {
        let url = format!("{}/runners/registration-token", self.scope_path());
        let answer = self.call(Method::POST, &url, None, None).await?;
        match answer.status {
            201 => {
                let wire: WireToken = answer.parse()?;
                Ok(RegistrationToken { expires_at: parse_time(&wire.expires_at)?, token: wire.token })
            }
            _ => Err(answer.server_error()),
        }
    }

    async fn list_runners(&self) -> Result<Vec<Runner>, GithubError> {
        let pages = self.list_all(format!("{}/runners?per_page=100", self.scope_path())).await?;
        let mut runners = Vec::new();
        for page in pages {
            let page: WireRunnerPage = serde_json::from_value(page)
                .map_err(|e| GithubError::Server { status: 200, message: format!("unexpected runner list: {e}") })?;
            runners.extend(page.runners.into_iter().map(Runner::from));
        }
        Ok(runners)
    }

    async fn get_runner(&self, id: u64) -> Result<Option<Runner>, GithubError> {
        let url = format!("{}/runners/{id}", self.scope_path());
        let answer = self.call(Method::GET, &url, None, None).await?;
        match answer.status {
            200 => Ok(Some(answer.parse::<WireRunner>()?.into())),
            404 => Ok(None),
            _ => Err(answer.server_error()),
        }
    }

    async fn deregister_runner(&self, id: u64) -> Result<DeregisterOutcome, GithubError> {
        let url = format!("{}/runners/{id}", self.scope_path());
        let answer = self.call(Method::DELETE, &url, None, None).await?;
        match answer.status {
            204 => Ok(DeregisterOutcome::Removed),
            404 => Ok(DeregisterOutcome::AlreadyGone),
            // GitHub: 422 "Bad request - Runner \"NAME\" is still running a job".
            422 => {
                debug!(runner_id = id, message = %answer.message(), "GitHub refused to remove a busy runner");
                Ok(DeregisterOutcome::Busy)
            }
            _ => Err(answer.server_error()),
        }
    }

    fn registration_url(&self) -> String {
        self.settings.scope.runner_url(&web_url(&self.api))
    }

    fn rate_limit_remaining(&self) -> Option<u64> {
        match self.remaining.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }
}
