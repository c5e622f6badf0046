//! Fake managed-identity token endpoint of the Instance Metadata Service (IMDS):
//! `GET /metadata/identity/oauth2/token?api-version=...&resource=...[&client_id=...]`
//! with the `Metadata: true` header. It issues opaque tokens that the fake ARM and Key
//! Vault accept, and lets a test expire or revoke them.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

use crate::{
    fault::{Fault, Faults},
    record::{self, Recorder},
    server::{self, Server},
};

/// The path of the token endpoint, as on the real IMDS.
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// Which identities the fake VM has.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// Whether a system-assigned identity exists (requests without `client_id`).
    pub system_assigned: bool,
    /// Client ids of the user-assigned identities attached to the VM.
    pub user_assigned_client_ids: Vec<String>,
    /// Lifetime of each issued token. The SDK refreshes tokens 5 minutes before they expire,
    /// so a lifetime under 5 minutes makes it fetch a new token for every use.
    pub token_lifetime: Duration,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self { system_assigned: true, user_assigned_client_ids: Vec::new(), token_lifetime: Duration::from_secs(3600) }
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// No bearer token in the request.
    Missing,
    /// Not a token this fake issued.
    Unknown,
    /// Past its expiry, or revoked by the test.
    Expired,
    /// Issued for another resource.
    WrongAudience,
}

#[derive(Clone, Debug)]
struct Issued {
    resource: String,
    expires_at: SystemTime,
    revoked: bool,
}

struct Inner {
    settings: IdentitySettings,
    tokens: HashMap<String, Issued>,
    issued: usize,
}

/// Shared with the fakes that accept these tokens.
pub(crate) struct IdentityState {
    inner: Mutex<Inner>,
    faults: Faults<()>,
}

impl IdentityState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Check an `Authorization` header value for `resource` (compared without trailing slashes).
    pub(crate) fn check(&self, authorization: Option<&str>, resource: &str) -> Result<(), TokenProblem> {
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or(TokenProblem::Missing)?;
        let inner = self.lock();
        let issued = inner.tokens.get(token.trim()).ok_or(TokenProblem::Unknown)?;
        if issued.revoked || issued.expires_at <= SystemTime::now() {
            return Err(TokenProblem::Expired);
        }
        if issued.resource.trim_end_matches('/') != resource.trim_end_matches('/') {
            return Err(TokenProblem::WrongAudience);
        }
        Ok(())
    }
}

/// The fake IMDS token endpoint on a loopback port.
pub struct FakeIdentity {
    server: Server,
    pub(crate) state: Arc<IdentityState>,
    recorder: Recorder,
}

impl FakeIdentity {
    /// Start with a system-assigned identity and hour-long tokens.
    pub async fn start() -> Self {
        Self::start_with(IdentitySettings::default()).await
    }

    pub async fn start_with(settings: IdentitySettings) -> Self {
        let state = Arc::new(IdentityState {
            inner: Mutex::new(Inner { settings, tokens: HashMap::new(), issued: 0 }),
            faults: Faults::default(),
        });
        let recorder = Recorder::default();
        let router = Router::new()
            .route(TOKEN_PATH, get(token))
            .with_state(state.clone())
            .layer(middleware::from_fn_with_state(recorder.clone(), record::record));
        let server = server::serve(server::bind().await, router);
        Self { server, state, recorder }
    }

    /// Where the fake listens (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The token endpoint's full URL.
    pub fn token_url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.addr())
    }

    /// How many tokens were issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.state.lock().issued
    }

    /// The resources tokens were issued for, without repeats.
    pub fn resources(&self) -> HashSet<String> {
        self.state.lock().tokens.values().map(|t| t.resource.clone()).collect()
    }

    /// Every token issued so far stops being accepted, as if it had expired.
    pub fn expire_all(&self) {
        for token in self.state.lock().tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// Lifetime of the tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().settings.token_lifetime = lifetime;
    }

    /// The next `times` token requests fail with `fault`.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state.faults.push(None, fault, times);
    }

    /// Every exchange served so far.
    pub fn exchanges(&self) -> Vec<contract::Exchange> {
        self.recorder.exchanges()
    }
}

fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": description }))).into_response()
}

async fn token(
    State(state): State<Arc<IdentityState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(fault) = state.faults.take(()) {
        match fault {
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Throttle { retry_after } => {
                let mut response = imds_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "throttled");
                response.headers_mut().insert("retry-after", retry_after.as_secs().into());
                return response;
            }
            Fault::ServerError => return imds_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "injected"),
            Fault::NotFound => return imds_error(StatusCode::NOT_FOUND, "not_found", "injected"),
            Fault::Conflict | Fault::ExpiredToken | Fault::Forbidden => {
                return imds_error(StatusCode::BAD_REQUEST, "bad_request", "injected")
            }
        }
    }
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return imds_error(StatusCode::BAD_REQUEST, "invalid_request", "Required metadata header not specified");
    }
    if query.get("api-version").is_none_or(|v| v.is_empty()) {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return imds_error(StatusCode::BAD_REQUEST, "invalid_request", "Required query variable 'resource' is missing");
    };
    let mut inner = state.lock();
    let client_id = query.get("client_id");
    let known = match client_id {
        Some(id) => inner.settings.user_assigned_client_ids.contains(id),
        None => inner.settings.system_assigned,
    };
    if !known {
        return imds_error(StatusCode::BAD_REQUEST, "invalid_request", "Identity not found");
    }
    inner.issued += 1;
    let lifetime = inner.settings.token_lifetime;
    let now = SystemTime::now();
    let expires_at = now + lifetime;
    let access_token =
        format!("fake-imds-token-{}-{}", inner.issued, now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    inner.tokens.insert(access_token.clone(), Issued { resource: resource.clone(), expires_at, revoked: false });
    let epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
    let mut body = json!({
        "access_token": access_token,
        "expires_in": lifetime.as_secs().to_string(),
        "expires_on": epoch(expires_at),
        "ext_expires_in": lifetime.as_secs().to_string(),
        "not_before": epoch(now),
        "resource": resource,
        "token_type": "Bearer",
    });
    if let Some(id) = client_id {
        body["client_id"] = json!(id);
    }
    (StatusCode::OK, Json(body)).into_response()
}
