//! Fake Key Vault secrets data plane over TLS: `GET /secrets/{name}[/{version}]?api-version=...`
//! with the challenge-based authentication the Azure SDK performs (a first request without a
//! token is answered 401 with `WWW-Authenticate: Bearer authorization="...",
//! resource="https://vault.azure.net"`; the SDK then fetches a token for that resource).
//!
//! The SDK refuses bearer tokens over plain HTTP and checks that the vault's host ends with the
//! challenge resource's host, so the fake serves `https://fake-vault.vault.azure.net:<port>/`
//! with a self-signed certificate made at start; [`crate::LoopbackTransport`] resolves that name
//! to 127.0.0.1 and trusts the certificate.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

use crate::{
    fault::{Fault, Faults},
    identity::{FakeIdentity, IdentityState, TokenProblem},
    record::{self, Recorder},
    server::{self, Server, TestCertificate},
};

/// The vault's host name; only ever resolved to 127.0.0.1 by [`crate::LoopbackTransport`].
pub const VAULT_HOST: &str = "fake-vault.vault.azure.net";
/// The resource named in the authentication challenge, as real vaults in the public cloud do.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The api-version the fake serves (the SDK's default).
pub const KEYVAULT_API_VERSION: &str = "2025-07-01";

/// The calls the fake serves, for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVaultOp {
    GetSecret,
}

struct Version {
    id: String,
    value: String,
    created: u64,
}

#[derive(Default)]
struct Inner {
    secrets: HashMap<String, Vec<Version>>,
    next_version: u64,
    reads: usize,
}

struct KeyVaultState {
    identity: Arc<IdentityState>,
    base: String,
    inner: Mutex<Inner>,
    faults: Faults<KeyVaultOp>,
}

impl KeyVaultState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake vault on a loopback port.
pub struct FakeKeyVault {
    server: Server,
    state: Arc<KeyVaultState>,
    recorder: Recorder,
    certificate: TestCertificate,
}

impl FakeKeyVault {
    pub async fn start(identity: &FakeIdentity) -> Self {
        let certificate = TestCertificate::for_host(VAULT_HOST);
        let listener = server::bind().await;
        let port = listener.local_addr().expect("listener address").port();
        let state = Arc::new(KeyVaultState {
            identity: identity.state.clone(),
            base: format!("https://{VAULT_HOST}:{port}"),
            inner: Mutex::new(Inner::default()),
            faults: Faults::default(),
        });
        let recorder = Recorder::default();
        let router = Router::new()
            .route("/secrets/{name}", get(get_current))
            .route("/secrets/{name}/", get(get_current))
            .route("/secrets/{name}/{version}", get(get_version))
            .fallback(|| async { vault_error(StatusCode::NOT_FOUND, "NotFound", "The fake serves no such path.") })
            .with_state(state.clone())
            .layer(middleware::from_fn_with_state(recorder.clone(), record::record));
        let server = server::serve_tls(listener, router, &certificate);
        Self { server, state, recorder, certificate }
    }

    /// Where the fake listens (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The vault URL for clients: `https://fake-vault.vault.azure.net:<port>/`.
    pub fn url(&self) -> String {
        format!("{}/", self.state.base)
    }

    /// The fake's self-signed certificate (PEM), for a client to trust.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate.pem
    }

    /// Store a new version of `name` and make it current (creating or rotating the secret).
    /// Returns the new version's id.
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        let mut inner = self.state.lock();
        inner.next_version += 1;
        let id = format!("{:032x}", inner.next_version);
        let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        inner.secrets.entry(name.to_owned()).or_default().push(Version {
            id: id.clone(),
            value: value.to_owned(),
            created,
        });
        id
    }

    /// Remove a secret and all its versions.
    pub fn delete_secret(&self, name: &str) {
        self.state.lock().secrets.remove(name);
    }

    /// Successful secret reads so far.
    pub fn reads(&self) -> usize {
        self.state.lock().reads
    }

    /// The next `times` calls of `op` (any call when `None`) fail with `fault`.
    pub fn inject(&self, op: Option<KeyVaultOp>, fault: Fault, times: u32) {
        self.state.faults.push(op, fault, times);
    }

    /// Every exchange served so far. Responses hold secret values: test data only.
    pub fn exchanges(&self) -> Vec<contract::Exchange> {
        self.recorder.exchanges()
    }
}

fn vault_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

fn challenge(problem: TokenProblem) -> Response {
    let (code, message) = match problem {
        TokenProblem::Missing => ("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
        TokenProblem::Expired => ("Unauthorized", "AKV10022: Invalid audience or the token has expired."),
        TokenProblem::Unknown | TokenProblem::WrongAudience => ("Unauthorized", "AKV10022: Invalid audience."),
    };
    let mut response = vault_error(StatusCode::UNAUTHORIZED, code, message);
    let value =
        format!(r#"Bearer authorization="https://login.microsoftonline.com/common", resource="{VAULT_RESOURCE}""#);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

async fn gate(state: &KeyVaultState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<(), Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.identity.check(authorization, VAULT_RESOURCE).map_err(challenge)?;
    if let Some(fault) = state.faults.take(KeyVaultOp::GetSecret) {
        match fault {
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Throttle { retry_after } => {
                let mut response = vault_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Throttled",
                    "Request was not processed because too many requests were received.",
                );
                response.headers_mut().insert(header::RETRY_AFTER, retry_after.as_secs().into());
                return Err(response);
            }
            Fault::ServerError => {
                return Err(vault_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "injected"))
            }
            Fault::NotFound => return Err(vault_error(StatusCode::NOT_FOUND, "SecretNotFound", "injected")),
            Fault::Conflict => return Err(vault_error(StatusCode::CONFLICT, "Conflict", "injected")),
            Fault::ExpiredToken => return Err(challenge(TokenProblem::Expired)),
            Fault::Forbidden => return Err(vault_error(StatusCode::FORBIDDEN, "Forbidden", "injected")),
        }
    }
    match query.get("api-version") {
        Some(v) if v == KEYVAULT_API_VERSION => Ok(()),
        Some(v) => Err(vault_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!("The specified version ({v}) is not recognized."),
        )),
        None => Err(vault_error(StatusCode::BAD_REQUEST, "BadParameter", "api-version is required.")),
    }
}

fn read(state: &KeyVaultState, name: &str, version: Option<&str>) -> Response {
    let mut inner = state.lock();
    let found = inner.secrets.get(name).and_then(|versions| match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|x| x.id == v),
    });
    let Some(found) = found else {
        return vault_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name}{} was not found in this key vault.",
                version.map(|v| format!("/{v}")).unwrap_or_default()
            ),
        );
    };
    let body = json!({
        "value": found.value,
        "id": format!("{}/secrets/{name}/{}", state.base, found.id),
        "attributes": {
            "enabled": true,
            "created": found.created,
            "updated": found.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
        "tags": {},
    });
    inner.reads += 1;
    (StatusCode::OK, Json(body)).into_response()
}

async fn get_current(
    State(state): State<Arc<KeyVaultState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query).await {
        return r;
    }
    read(&state, &name, None)
}

async fn get_version(
    State(state): State<Arc<KeyVaultState>>,
    Path((name, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query).await {
        return r;
    }
    read(&state, &name, Some(&version))
}
