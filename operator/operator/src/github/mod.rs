//! GitHub's self-hosted runner REST API over reqwest: the production
//! [`Github`](crate::ports::Github) port.
//!
//! - Authenticates with a PAT or as a GitHub App (JWT → installation token, cached
//!   until five minutes before it expires). The secret is read from the
//!   [`SecretStore`] at start, again once `refresh_period` has passed, and at once
//!   when GitHub answers 401 (the request is then retried once), so a rotated PAT or
//!   App key needs no restart. No secret reaches a log line, an error or `Debug`.
//! - Repository or organization scope; runner group names resolved to ids (cached);
//!   any API root (`https://api.github.com`, GHES `https://HOST/api/v3`).
//! - Honours primary and secondary rate limits: a short wait is taken, a long one is
//!   returned as [`GithubError::RateLimited`]; runner listings are conditional
//!   requests (ETag → 304, which costs no quota).
//!
//! Here: the settings, the client, its credential and one retried request (`call`),
//! paged listings. `runners.rs` implements the port on it, `workflows.rs` the history
//! `operator trace export` reads, `wire.rs` holds the JSON types; `auth.rs` and
//! `rate_limit.rs` are the pure parts. `scaleset/` is the runner scale set API's client,
//! which takes its registration token from this one.

mod auth;
mod rate_limit;
mod runners;
pub mod scaleset;
mod wire;
mod workflows;

use std::{
    collections::HashMap,
    sync::Arc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{
    header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, ETAG, IF_NONE_MATCH, USER_AGENT},
    Method, Url,
};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{debug, warn};

pub use self::{auth::CredentialError, wire::web_url, workflows::WorkflowJob};
use self::{
    auth::{app_jwt, Credential, CredentialRead, InstallationToken},
    rate_limit::{decide, throttle_wait, RateLimitInfo, Throttle},
    wire::{next_link, parse_time, WireToken},
};
use crate::{
    config::{GithubAppConfig, GithubConfig, GithubScope},
    ports::{GithubError, SecretError, SecretStore, SecretValue},
    report::Chain,
};

/// The REST API version this client is written against.
pub const API_VERSION: &str = "2022-11-28";

/// Everything the client needs besides the secret store.
#[derive(Clone, Debug)]
pub struct GithubClientSettings {
    /// API root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    pub scope: GithubScope,
    /// Default runner group (organization scope) for JIT configs that name none.
    pub runner_group: Option<String>,
    /// Authenticate as this GitHub App; the secret is then its private key (PEM).
    pub app: Option<GithubAppConfig>,
    /// Name of the secret holding the PAT or the App key.
    pub secret_name: String,
    /// Re-read the secret when it is older than this.
    pub refresh_period: Duration,
    /// Give up on one HTTP request after this long.
    pub request_timeout: Duration,
    /// Wait out a rate limit inside a call only when the wait is at most this long.
    pub max_rate_limit_wait: Duration,
}

impl GithubClientSettings {
    pub fn new(api_url: impl Into<String>, scope: GithubScope, secret_name: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            scope,
            runner_group: None,
            app: None,
            secret_name: secret_name.into(),
            refresh_period: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(10),
        }
    }

    pub fn from_config(config: &GithubConfig) -> Self {
        let mut s = Self::new(&config.api_url, config.scope.clone(), &config.credential.secret_name);
        s.runner_group = config.runner_group.clone();
        s.app = config.credential.app.clone();
        s.refresh_period = config.credential.refresh_period.get();
        s
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GithubClientError {
    #[error("the GitHub API URL {url:?} is not an http(s) URL")]
    InvalidApiUrl { url: String },
    #[error("reading the GitHub credential failed")]
    CredentialUnavailable(#[source] SecretError),
    #[error("the GitHub credential in secret {name} is unusable")]
    CredentialInvalid {
        name: String,
        #[source]
        source: CredentialError,
    },
    #[error("building the HTTP client failed")]
    HttpClient(#[source] reqwest::Error),
}

/// A listing page kept for conditional requests.
struct CachedPage {
    etag: String,
    body: Value,
    next: Option<String>,
}

/// The production GitHub client.
pub struct GithubClient {
    http: reqwest::Client,
    /// API root without a trailing slash.
    api: String,
    settings: GithubClientSettings,
    secrets: Arc<dyn SecretStore>,
    credential: tokio::sync::Mutex<CredentialRead>,
    installation_token: tokio::sync::Mutex<Option<InstallationToken>>,
    /// Last `x-ratelimit-remaining` seen; `u64::MAX` until one was.
    remaining: AtomicU64,
    /// Quota spent until this instant (`x-ratelimit-remaining: 0` and its reset).
    exhausted_until: Mutex<Option<Instant>>,
    pages: Mutex<HashMap<String, CachedPage>>,
    groups: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient")
            .field("api", &self.api)
            .field("scope", &self.settings.scope)
            .field("auth", &if self.settings.app.is_some() { "app" } else { "pat" })
            .field("secret_name", &self.settings.secret_name)
            .finish_non_exhaustive()
    }
}

/// One response from GitHub: status, headers and the JSON body.
struct GithubResponse {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl GithubResponse {
    fn message(&self) -> String {
        self.body.get("message").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    fn server_error(&self) -> GithubError {
        GithubError::Server { status: self.status, message: self.message() }
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T, GithubError> {
        serde_json::from_value(self.body.clone())
            .map_err(|e| GithubError::Server { status: self.status, message: format!("unexpected response body: {e}") })
    }
}

fn transport(e: impl std::error::Error + Send + Sync + 'static) -> GithubError {
    GithubError::Transport(Box::new(e))
}

async fn read(response: reqwest::Response) -> Result<GithubResponse, GithubError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map_err(transport)?;
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Ok(GithubResponse { status, headers, body })
}

impl GithubClient {
    /// Build the client and read the credential once (a missing or unusable secret
    /// fails here, at start, rather than on the first registration).
    pub async fn new(settings: GithubClientSettings, secrets: Arc<dyn SecretStore>) -> Result<Self, GithubClientError> {
        let api = settings.api_url.trim_end_matches('/').to_owned();
        match Url::parse(&api) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
            _ => return Err(GithubClientError::InvalidApiUrl { url: settings.api_url.clone() }),
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
        headers.insert("x-github-api-version", HeaderValue::from_static(API_VERSION));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("vmss-github-runner/", env!("CARGO_PKG_VERSION"))));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            // A redirect would carry the credential elsewhere; GitHub's API answers without one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(GithubClientError::HttpClient)?;
        let secret = secrets.get(&settings.secret_name).await.map_err(GithubClientError::CredentialUnavailable)?;
        let credential = Credential::parse(&secret, app_ids(&settings))
            .map_err(|source| GithubClientError::CredentialInvalid { name: settings.secret_name.clone(), source })?;
        Ok(Self {
            http,
            api,
            secrets,
            credential: tokio::sync::Mutex::new(CredentialRead { credential, read_at: Instant::now() }),
            installation_token: tokio::sync::Mutex::new(None),
            remaining: AtomicU64::new(u64::MAX),
            exhausted_until: Mutex::new(None),
            pages: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// The API root, without a trailing slash (the scale set client posts R3 below it).
    pub fn api_url(&self) -> &str {
        &self.api
    }

    fn scope_path(&self) -> String {
        match &self.settings.scope {
            GithubScope::Repository(repo) => format!("{}/repos/{repo}/actions", self.api),
            GithubScope::Organization(org) => format!("{}/orgs/{org}/actions", self.api),
        }
    }

    /// The credential, re-read from the store when due or when `force`d (after a 401).
    /// A failed re-read keeps the credential in hand: GitHub will say if it is stale.
    async fn credential(&self, force: bool) -> Credential {
        let mut loaded = self.credential.lock().await;
        if force || loaded.due(self.settings.refresh_period) {
            let name = &self.settings.secret_name;
            match self.secrets.get(name).await.map(|s| Credential::parse(&s, app_ids(&self.settings))) {
                Ok(Ok(fresh)) => {
                    debug!(secret = %name, "GitHub credential re-read");
                    loaded.credential = fresh;
                    loaded.read_at = Instant::now();
                }
                Ok(Err(e)) => {
                    warn!(secret = %name, error = %Chain(&e), "the GitHub credential in the secret store is unusable; keeping the current one");
                    loaded.read_at = Instant::now();
                }
                Err(e) => {
                    warn!(secret = %name, error = %Chain(&e), "re-reading the GitHub credential failed; keeping the current one");
                }
            }
        }
        loaded.credential.clone()
    }

    /// `Authorization` value for the scope's endpoints.
    async fn authorization(&self, force: bool) -> Result<HeaderValue, GithubError> {
        let credential = self.credential(force).await;
        let token = match credential {
            Credential::Pat(pat) => pat,
            Credential::App { app_id, installation_id, key } => {
                let mut cached = self.installation_token.lock().await;
                match cached.as_ref() {
                    Some(t) if !force && t.usable(OffsetDateTime::now_utc()) => t.token.clone(),
                    _ => {
                        let fresh = self.fetch_installation_token(app_id, installation_id, &key).await?;
                        let token = fresh.token.clone();
                        *cached = Some(fresh);
                        token
                    }
                }
            }
        };
        bearer(&token)
    }

    /// `POST /app/installations/{id}/access_tokens`, authenticated with a fresh App JWT.
    async fn fetch_installation_token(
        &self,
        app_id: u64,
        installation_id: u64,
        key: &jsonwebtoken::EncodingKey,
    ) -> Result<InstallationToken, GithubError> {
        let jwt = app_jwt(app_id, key, OffsetDateTime::now_utc()).map_err(transport)?;
        let url = format!("{}/app/installations/{installation_id}/access_tokens", self.api);
        let response = self.http.post(&url).header(AUTHORIZATION, bearer(&jwt)?).send().await.map_err(transport)?;
        let answer = read(response).await?;
        match answer.status {
            201 => {
                let wire: WireToken = answer.parse()?;
                debug!(app_id, installation_id, expires_at = %wire.expires_at, "installation token issued");
                Ok(InstallationToken::new(SecretValue::new(wire.token), parse_time(&wire.expires_at)?))
            }
            401 => Err(GithubError::Unauthorized),
            403 | 429 => match throttle_wait(
                answer.status,
                &RateLimitInfo::from_headers(&answer.headers),
                &answer.message(),
                now_epoch(),
            ) {
                Some(wait) => Err(GithubError::RateLimited { retry_after: Some(wait) }),
                None => Err(answer.server_error()),
            },
            _ => Err(answer.server_error()),
        }
    }

    fn observe(&self, headers: &HeaderMap) {
        let info = RateLimitInfo::from_headers(headers);
        if let Some(remaining) = info.remaining {
            self.remaining.store(remaining, Ordering::Relaxed);
        }
        let until = info.exhausted_for(now_epoch()).map(|d| Instant::now() + d);
        *self.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// Do not send while the primary quota is known to be spent: wait if the reset is
    /// near, give up otherwise.
    async fn respect_exhaustion(&self) -> Result<(), GithubError> {
        let until = *self.exhausted_until.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = until else { return Ok(()) };
        let wait = until.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        match decide(wait, self.settings.max_rate_limit_wait, 0, 1) {
            Throttle::Wait(d) => {
                debug!(wait_ms = d.as_millis() as u64, "GitHub quota spent; waiting for the reset");
                tokio::time::sleep(d).await;
                Ok(())
            }
            Throttle::GiveUp(d) => Err(GithubError::RateLimited { retry_after: Some(d) }),
        }
    }

    /// Send one logical request: refresh the credential and retry once on 401, wait out
    /// short rate limits, retry idempotent requests on 5xx and transport errors.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        if_none_match: Option<&str>,
    ) -> Result<GithubResponse, GithubError> {
        let idempotent = method == Method::GET || method == Method::DELETE;
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(2)
            .with_jitter()
            .build();
        let mut reauthenticated = false;
        let mut force_credential = false;
        let mut throttled = 0;
        loop {
            self.respect_exhaustion().await?;
            let authorization = match self.authorization(std::mem::take(&mut force_credential)).await {
                Ok(a) => a,
                Err(GithubError::Unauthorized) if !reauthenticated => {
                    warn!("GitHub refused the App credential; re-reading it");
                    reauthenticated = true;
                    force_credential = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut request = self.http.request(method.clone(), url).header(AUTHORIZATION, authorization);
            if let Some(tag) = if_none_match {
                request = request.header(IF_NONE_MATCH, tag);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = match request.send().await {
                Ok(response) => read(response).await,
                Err(e) => Err(transport(e)),
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => match backoff.next().filter(|_| idempotent) {
                    Some(delay) => {
                        warn!(error = %Chain(&e), "GitHub request failed; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    None => return Err(e),
                },
            };
            self.observe(&answer.headers);
            match answer.status {
                401 if !reauthenticated => {
                    warn!("GitHub answered 401; re-reading the credential and retrying once");
                    reauthenticated = true;
                    force_credential = true;
                }
                401 => return Err(GithubError::Unauthorized),
                403 | 429 => {
                    let info = RateLimitInfo::from_headers(&answer.headers);
                    let Some(wait) = throttle_wait(answer.status, &info, &answer.message(), now_epoch()) else {
                        return Ok(answer);
                    };
                    match decide(wait, self.settings.max_rate_limit_wait, throttled, 3) {
                        Throttle::Wait(d) => {
                            warn!(status = answer.status, wait_ms = d.as_millis() as u64, "GitHub rate limit; waiting");
                            throttled += 1;
                            tokio::time::sleep(d).await;
                        }
                        Throttle::GiveUp(d) => {
                            warn!(
                                status = answer.status,
                                retry_after_s = d.as_secs(),
                                "GitHub rate limit; giving up for now"
                            );
                            return Err(GithubError::RateLimited { retry_after: Some(d) });
                        }
                    }
                }
                500..=599 if idempotent => match backoff.next() {
                    Some(delay) => {
                        warn!(status = answer.status, "GitHub server error; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Ok(answer),
                },
                _ => return Ok(answer),
            }
        }
    }

    /// Every page of a listing, each a conditional request against the cached copy.
    async fn list_all(&self, first: String) -> Result<Vec<Value>, GithubError> {
        self.list_while(first, &|_| true).await
    }

    /// The pages of a listing, up to and including the first for which `more` is false.
    async fn list_while(
        &self,
        first: String,
        more: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<Vec<Value>, GithubError> {
        let mut pages = Vec::new();
        let mut url = Some(first);
        while let Some(current) = url.take() {
            if pages.len() >= 1000 {
                return Err(GithubError::Server { status: 200, message: "more than 1000 pages".into() });
            }
            let cached_tag = self.cache().get(&current).map(|p| p.etag.clone());
            let answer = self.call(Method::GET, &current, None, cached_tag.as_deref()).await?;
            let (body, next) = match answer.status {
                304 => match self.cache().get(&current) {
                    Some(page) => (page.body.clone(), page.next.clone()),
                    None => {
                        return Err(GithubError::Server { status: 304, message: "304 without a cached page".into() })
                    }
                },
                200 => {
                    let next = next_link(&answer.headers);
                    if let Some(tag) = answer.headers.get(ETAG).and_then(|v| v.to_str().ok()) {
                        self.cache().insert(
                            current.clone(),
                            CachedPage { etag: tag.to_owned(), body: answer.body.clone(), next: next.clone() },
                        );
                    }
                    (answer.body, next)
                }
                _ => return Err(answer.server_error()),
            };
            let go_on = more(&body);
            pages.push(body);
            if !go_on {
                break;
            }
            if let Some(next) = next {
                // Follow only links into the same API: a foreign one would get the credential.
                if !next.starts_with(&format!("{}/", self.api)) {
                    return Err(GithubError::Server {
                        status: 200,
                        message: "pagination link outside the API root".into(),
                    });
                }
                url = Some(next);
            }
        }
        Ok(pages)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedPage>> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn app_ids(settings: &GithubClientSettings) -> Option<(u64, u64)> {
    settings.app.as_ref().map(|a| (a.app_id, a.installation_id))
}

fn now_epoch() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn bearer(token: &SecretValue) -> Result<HeaderValue, GithubError> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| GithubError::Unauthorized)?;
    value.set_sensitive(true);
    Ok(value)
}
