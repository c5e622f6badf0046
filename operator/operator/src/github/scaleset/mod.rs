//! GitHub's runner scale set API over reqwest: the production [`ScaleSetApi`].
//! Section numbers (§) and call names (R1–R3, A1–A15, M1–M2) are those of
//! `shared/specs/actions-scaleset/PROTOCOL.md`.
//!
//! | port method | call | file |
//! |---|---|---|
//! | (every admin call) | R1–R3: App token, registration token ([`GithubClient`]), `POST {api}/actions/runner-registration` | `auth.rs` |
//! | `runner_group_id` | A6 `GET _apis/runtime/runnergroups/?groupName=` | `sets.rs` |
//! | `find_scale_set` | A1 `GET _apis/runtime/runnerscalesets?runnerGroupId=&name=` | `sets.rs` |
//! | `get_scale_set` | A2 `GET _apis/runtime/runnerscalesets/{id}` | `sets.rs` |
//! | `create_scale_set` | A3 `POST _apis/runtime/runnerscalesets` | `sets.rs` |
//! | `open_session`, `close_session` | A7 `POST`, A9 `DELETE …/{id}/sessions[/{sid}]`; A8 `PATCH` on a 401 | `session.rs` |
//! | `next_message`, `acknowledge` | M1 `GET`, M2 `DELETE` on the session's `messageQueueUrl` | `session.rs` |
//! | `acquire_jobs` | A10 `POST …/{id}/acquirejobs` with the **message-queue** token | `session.rs` |
//! | `generate_jit_config` | A12 `POST …/{id}/generatejitconfig`, with §9.4's name recovery | `jit.rs` |
//! | `runner_by_name`, `remove_runner` | A14 `GET`, A15 `DELETE _apis/distributedtask/pools/0/agents` | `jit.rs` |
//!
//! Here: the settings, the client, the admin call and the port's methods. The JSON
//! quirks live in `wire.rs`, the error mapping in `errors.rs`, sending and the short
//! in-call retries in `transport.rs`, the metrics hook's types in `observe.rs`. No token, JIT config or URL query
//! reaches a log line or an error.
//!
//! **Metrics.** [`ScaleSetClient::with_observer`] takes a callback that hears every
//! HTTP request sent ([`CallEvent::RequestSent`], retries included) and the outcome of
//! every logical call ([`CallEvent::Finished`]: `"ok"` or [`ActionsError::kind`]),
//! each labelled with its [`Endpoint`]. `connect` wires it to
//! `vmss_runner_scale_set_api_requests_total` and `…_calls_total`
//! (`Metrics::scale_set_api_observer`).

mod auth;
mod errors;
mod jit;
mod observe;
mod session;
mod sets;
mod transport;
mod wire;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use reqwest::{
    header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT},
    Method, Url,
};
use serde_json::json;
use tracing::debug;

use self::{
    auth::AdminToken,
    observe::Observer,
    session::Session,
    transport::{Answer, Policy, RetrySettings},
    wire::List,
};
pub use self::{
    observe::{CallEvent, Endpoint},
    transport::RequestFailed,
};
use super::GithubClient;
use crate::ports::{
    ActionsError, JitConfig, Message, RemoveOutcome, ScaleSetApi, ScaleSetInfo, ScaleSetRunner, ScaleSetSpec,
    Statistics,
};

/// The `api-version` every admin call carries (§2.1).
pub const API_VERSION: &str = "6.0-preview";

/// Timeouts, retries and token margins. [`Default`] holds the production values.
#[derive(Clone, Debug)]
pub struct ScaleSetClientSettings {
    /// Per-request timeout of the long poll (M1). The server holds a poll for about
    /// 50 s, so this must be well above that.
    pub poll_timeout: Duration,
    /// Per-request timeout of every other call.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// In-call retries of transport errors, 5xx (not 501) and short 429/503.
    pub max_retries: u32,
    /// The first retry's delay; each further one doubles it (jittered).
    pub retry_base_delay: Duration,
    /// A 429/503 `Retry-After` up to this long is waited out inside the call; a
    /// longer one is returned as `Throttled`.
    pub max_retry_after: Duration,
    /// Extra retries of R3 on 401/403 (§3.4: a fresh registration token is not
    /// always accepted at once).
    pub registration_unauthorized_retries: u32,
    /// Refresh the admin token when it expires within this (§3.5).
    pub admin_token_margin: Duration,
    /// `workFolder` of JIT runners (`_work` is the runner's default).
    pub work_folder: String,
}

impl Default for ScaleSetClientSettings {
    fn default() -> Self {
        Self {
            poll_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 2,
            retry_base_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(10),
            registration_unauthorized_retries: 4,
            admin_token_margin: Duration::from_secs(60),
            work_folder: "_work".into(),
        }
    }
}

impl ScaleSetClientSettings {
    fn retry(&self) -> RetrySettings {
        RetrySettings {
            max_retries: self.max_retries,
            base_delay: self.retry_base_delay,
            max_retry_after: self.max_retry_after,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ScaleSetClientError {
    #[error("building the HTTP client for the scale set API failed")]
    HttpClient(#[source] reqwest::Error),
}

/// The production scale set client: holds the admin connection and the one message
/// session (see the port's docs).
pub struct ScaleSetClient {
    http: reqwest::Client,
    github: Arc<GithubClient>,
    settings: ScaleSetClientSettings,
    observer: Observer,
    /// An async lock: one refresh at a time, the others wait for its token.
    admin: tokio::sync::Mutex<Option<AdminToken>>,
    /// Never held across an await.
    session: Mutex<Option<Session>>,
    /// For the User-Agent (§2.4); 0 until known.
    scale_set_id: AtomicU64,
}

impl std::fmt::Debug for ScaleSetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaleSetClient")
            .field("github", &self.github)
            .field("scale_set_id", &self.scale_set_id.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ScaleSetClient {
    /// A client that authenticates through `github` (its PAT or App credential and
    /// scope). No request is sent until the first call.
    pub fn new(github: Arc<GithubClient>, settings: ScaleSetClientSettings) -> Result<Self, ScaleSetClientError> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            // A redirect would carry a token elsewhere; the service answers without one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ScaleSetClientError::HttpClient)?;
        Ok(Self {
            http,
            github,
            settings,
            observer: Observer::default(),
            admin: tokio::sync::Mutex::new(None),
            session: Mutex::new(None),
            scale_set_id: AtomicU64::new(0),
        })
    }

    /// Calls `observer` for every request sent and every call finished (metrics).
    pub fn with_observer(mut self, observer: impl Fn(CallEvent) + Send + Sync + 'static) -> Self {
        self.observer = Observer(Some(Arc::new(observer)));
        self
    }

    /// SS's JSON User-Agent (§2.4), with the scale set once known.
    fn user_agent(&self) -> HeaderValue {
        let mut agent = json!({
            "system": "vmss-github-runner",
            "version": env!("CARGO_PKG_VERSION"),
            "subsystem": "operator",
            "kind": "scaleset",
        });
        let id = self.scale_set_id.load(Ordering::Relaxed);
        if id != 0 {
            agent["scale_set_id"] = json!(id);
        }
        HeaderValue::from_str(&agent.to_string()).unwrap_or(HeaderValue::from_static("vmss-github-runner"))
    }

    fn learn_scale_set(&self, id: u64) {
        self.scale_set_id.store(id, Ordering::Relaxed);
    }

    /// `base` + `path`, with `query` and `api-version` (§2.1) added.
    fn admin_url(base: &Url, path: &str, query: &[(&str, &str)]) -> Result<Url, ActionsError> {
        let mut url = base
            .join(path)
            .map_err(|_| ActionsError::InvalidAnswer("an Actions service URL to join paths to".into()))?;
        let has_version = url.query_pairs().any(|(k, _)| k == "api-version");
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
            if !has_version {
                pairs.append_pair("api-version", API_VERSION);
            }
        }
        Ok(url)
    }

    /// One admin call with the admin token. A 401 refreshes the token and repeats the
    /// call once (the token may have been revoked before its `exp`); the second
    /// answer is the caller's.
    async fn admin_call(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        policy: Policy,
    ) -> Result<Answer, ActionsError> {
        let mut forced = false;
        loop {
            let admin = self.admin(forced).await?;
            let url = Self::admin_url(&admin.base, path, query)?;
            let mut authorization = HeaderValue::from_str(&format!("Bearer {}", admin.token.expose()))
                .map_err(|_| ActionsError::InvalidAnswer("an admin token usable in a header".into()))?;
            authorization.set_sensitive(true);
            let answer =
                transport::send(&self.http, &self.settings.retry(), &self.observer, endpoint, policy, |http| {
                    let request = http
                        .request(method.clone(), url.clone())
                        .header(AUTHORIZATION, authorization.clone())
                        // SS sends it on every admin call, GET and DELETE too (§2.1).
                        .header(CONTENT_TYPE, "application/json")
                        .header(USER_AGENT, self.user_agent());
                    Ok(match &body {
                        Some(b) => request.body(b.clone()),
                        None => request,
                    })
                })
                .await?;
            if answer.status == 401 && !forced {
                debug!(endpoint = endpoint.as_str(), "the admin token was refused; fetching a new one");
                forced = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// Runs `call` as the logical call `endpoint`, for the metrics hook.
    async fn observed<T>(
        &self,
        endpoint: Endpoint,
        call: impl Future<Output = Result<T, ActionsError>>,
    ) -> Result<T, ActionsError> {
        let result = call.await;
        self.observer.finished(endpoint, &result);
        result
    }
}

/// A body decoded, or what the answer lacks.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ActionsError> {
    wire::decode(body).map_err(|e| ActionsError::InvalidAnswer(format!("{what} ({e})")))
}

/// The one element of a list, trusting `count` as SS does (§5.3); `Err(count)` for
/// more than one.
fn single<T>(list: List<T>) -> Result<Option<T>, u64> {
    match list.count {
        0 => Ok(None),
        1 => Ok(list.value.into_iter().next()),
        n => Err(n),
    }
}

#[async_trait]
impl ScaleSetApi for ScaleSetClient {
    async fn runner_group_id(&self, name: Option<&str>) -> Result<u64, ActionsError> {
        match name {
            // The default group is 1 (§5.6); the docker example maps "default" so too.
            None => Ok(1),
            Some(n) if n.eq_ignore_ascii_case("default") => Ok(1),
            Some(n) => self.observed(Endpoint::RunnerGroup, self.runner_group(n)).await,
        }
    }

    async fn find_scale_set(&self, runner_group_id: u64, name: &str) -> Result<Option<ScaleSetInfo>, ActionsError> {
        self.observed(Endpoint::FindScaleSet, self.find(runner_group_id, name)).await
    }

    async fn get_scale_set(&self, id: u64) -> Result<Option<ScaleSetInfo>, ActionsError> {
        self.observed(Endpoint::GetScaleSet, self.get(id)).await
    }

    async fn create_scale_set(&self, spec: &ScaleSetSpec) -> Result<ScaleSetInfo, ActionsError> {
        self.observed(Endpoint::CreateScaleSet, self.create(spec)).await
    }

    async fn open_session(&self, scale_set_id: u64, owner: &str) -> Result<Statistics, ActionsError> {
        self.observed(Endpoint::CreateSession, self.open(scale_set_id, owner)).await
    }

    async fn refresh_session(&self) -> Result<Statistics, ActionsError> {
        // `refresh_to` reports to the observer itself (it also serves the 401 path).
        self.refresh_statistics().await
    }

    async fn close_session(&self) -> Result<(), ActionsError> {
        self.observed(Endpoint::DeleteSession, self.close()).await
    }

    async fn next_message(&self, last_message_id: i64, max_capacity: u32) -> Result<Option<Message>, ActionsError> {
        self.observed(Endpoint::GetMessage, self.poll(last_message_id, max_capacity)).await
    }

    async fn acknowledge(&self, message_id: i64) -> Result<(), ActionsError> {
        self.observed(Endpoint::DeleteMessage, self.delete_message(message_id)).await
    }

    async fn acquire_jobs(&self, scale_set_id: u64, request_ids: &[i64]) -> Result<Vec<i64>, ActionsError> {
        self.observed(Endpoint::AcquireJobs, self.acquire(scale_set_id, request_ids)).await
    }

    async fn generate_jit_config(&self, scale_set_id: u64, runner_name: &str) -> Result<JitConfig, ActionsError> {
        self.observed(Endpoint::GenerateJitConfig, self.jit_config(scale_set_id, runner_name)).await
    }

    async fn runner_by_name(&self, name: &str) -> Result<Option<ScaleSetRunner>, ActionsError> {
        self.observed(Endpoint::RunnerByName, self.find_runner(name)).await
    }

    async fn remove_runner(&self, runner_id: u64) -> Result<RemoveOutcome, ActionsError> {
        self.observed(Endpoint::RemoveRunner, self.delete_runner(runner_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_join_below_the_base_and_carry_the_api_version() {
        let base = Url::parse("https://broker.example/rest/").unwrap();
        let url = ScaleSetClient::admin_url(&base, "_apis/runtime/runnerscalesets/117/sessions", &[]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://broker.example/rest/_apis/runtime/runnerscalesets/117/sessions?api-version=6.0-preview"
        );
        let url = ScaleSetClient::admin_url(&base, "_apis/runtime/runnergroups/", &[("groupName", "a b&c")]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://broker.example/rest/_apis/runtime/runnergroups/?groupName=a+b%26c&api-version=6.0-preview"
        );
    }

    #[test]
    fn a_list_is_trusted_by_its_count() {
        let list = |count, value: Vec<u8>| List { count, value };
        assert_eq!(single(list(0, vec![1])), Ok(None), "SS: count 0 with a value is none");
        assert_eq!(single(list(1, vec![5])), Ok(Some(5)));
        assert_eq!(single(list(2, vec![5, 6])), Err(2));
    }

    #[test]
    fn endpoint_labels_are_unique() {
        let mut labels: Vec<_> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Endpoint::ALL.len());
    }
}
