//! Route handlers: translate HTTP to controller calls and back.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{header, StatusCode},
    response::IntoResponse,
    Json,
};
use serde::de::DeserializeOwned;

use super::{
    error::{ApiError, ErrorBody},
    types::{
        HookResponse, JobHookRequest, ReadyResponse, RegistrationRequest, RegistrationResponse, RunnerExitedRequest,
    },
    AppState,
};

/// A JSON body, which must be an object (serde would take `[7]` for a struct), with every
/// rejection rendered in the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::NotAnObject);
        }
        serde_json::from_value(value).map(ApiJson).map_err(ApiError::InvalidBody)
    }
}

/// A job hook's body, checked before the controller sees it: the fields as GitHub forms
/// them, and the repository inside the pool's scope. A caller that is no instance is told
/// so (403) rather than what is wrong with its body.
async fn checked_job(state: &AppState, peer: SocketAddr, job: JobHookRequest) -> Result<JobHookRequest, ApiError> {
    let settings = state.controller.settings();
    match super::validate::job(&job, &settings.scope_name, settings.organization_scope) {
        Ok(()) => Ok(job),
        Err(invalid) => {
            state.controller.resolve(peer.ip()).await?;
            Err(invalid)
        }
    }
}

/// Hand the calling VM its runner registration (once per boot; with JIT, again if the
/// first one's runner never came online, after removing that runner at GitHub).
#[utoipa::path(
    post, path = "/api/v1/registration", tag = "runner",
    request_body = RegistrationRequest,
    responses(
        (status = 200, description = "Registration for this boot", body = RegistrationResponse),
        (status = 403, description = "Caller is not an instance of the scale set", body = ErrorBody),
        (status = 409, description = "Already issued for this boot (and its runner came online, or token mode), or the instance is being recycled", body = ErrorBody),
        (status = 502, description = "GitHub did not issue a registration", body = ErrorBody),
        (status = 503, description = "Recovering, the instance's reimage not yet confirmed, or a dependency unavailable; retry", body = ErrorBody),
    )
)]
pub async fn registration(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(_request): ApiJson<RegistrationRequest>,
) -> Result<Json<RegistrationResponse>, ApiError> {
    let registration = state.controller.register(peer.ip()).await?;
    Ok(Json(registration.into()))
}

/// The job-started hook. Answers only after the busy marker is stored.
#[utoipa::path(
    post, path = "/api/v1/hooks/job-started", tag = "runner",
    request_body = JobHookRequest,
    responses(
        (status = 200, description = "Recorded (or already recorded)", body = HookResponse),
        (status = 403, description = "Caller is not an instance of the scale set", body = ErrorBody),
        (status = 409, description = "The instance runs another job or is being recycled", body = ErrorBody),
        (status = 422, description = "Not a JSON object, a job field GitHub never forms, or a repository outside the pool's scope", body = ErrorBody),
        (status = 503, description = "Recovering, the busy record is unavailable, or no answer within `server.request_timeout`; retry", body = ErrorBody),
    )
)]
pub async fn job_started(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(job): ApiJson<JobHookRequest>,
) -> Result<Json<HookResponse>, ApiError> {
    let job = checked_job(&state, peer, job).await?;
    Ok(Json(state.controller.job_started(peer.ip(), job).await?.into()))
}

/// The job-completed hook. The VM is not touched until the runner has exited.
#[utoipa::path(
    post, path = "/api/v1/hooks/job-completed", tag = "runner",
    request_body = JobHookRequest,
    responses(
        (status = 200, description = "Recorded (or already recorded)", body = HookResponse),
        (status = 403, description = "Caller is not an instance of the scale set", body = ErrorBody),
        (status = 409, description = "The instance runs another job", body = ErrorBody),
        (status = 422, description = "Not a JSON object, a job field GitHub never forms, or a repository outside the pool's scope", body = ErrorBody),
        (status = 503, description = "Recovering, the busy record is unavailable, or no answer within `server.request_timeout`; retry", body = ErrorBody),
    )
)]
pub async fn job_completed(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(job): ApiJson<JobHookRequest>,
) -> Result<Json<HookResponse>, ApiError> {
    let job = checked_job(&state, peer, job).await?;
    Ok(Json(state.controller.job_completed(peer.ip(), job).await?.into()))
}

/// The runner process has exited; the VM may now be reimaged or deleted.
#[utoipa::path(
    post, path = "/api/v1/hooks/runner-exited", tag = "runner",
    request_body = RunnerExitedRequest,
    responses(
        (status = 200, description = "Recorded (or already recorded)", body = HookResponse),
        (status = 403, description = "Caller is not an instance of the scale set", body = ErrorBody),
        (status = 422, description = "Not a JSON object", body = ErrorBody),
        (status = 503, description = "Recovering, or the busy record is unavailable; retry", body = ErrorBody),
    )
)]
pub async fn runner_exited(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<RunnerExitedRequest>,
) -> Result<Json<HookResponse>, ApiError> {
    if let Some(code) = body.exit_code {
        tracing::info!(exit_code = code, "runner reported its exit code");
    }
    Ok(Json(state.controller.runner_exited(peer.ip()).await?.into()))
}

/// Liveness: the process serves requests (on both listeners).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness, from the operator's own state (no outbound call): recovery has finished, the
/// reconcile loop runs, and its last successful pass is at most three periods old. Served
/// on `server.operations_listen` only.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, description = "Not ready", body = ReadyResponse),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    match state.readiness() {
        Ok(()) => (StatusCode::OK, Json(ReadyResponse { ready: true, reason: None })),
        Err(reason) => {
            tracing::debug!(%reason, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(ReadyResponse { ready: false, reason: Some(reason.to_string()) }))
        }
    }
}

/// Prometheus metrics in the text exposition format. Served on `server.operations_listen` only.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.controller.metrics().render(),
    )
}
