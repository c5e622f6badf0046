//! The HTTP API the runner VMs call, plus health and metrics. Routes and the
//! OpenAPI document are built together (utoipa-axum), so they cannot drift; the
//! committed copy in `schema/openapi.json` is checked by a test.

mod error;
mod handlers;
mod types;

use axum::{extract::DefaultBodyLimit, Router};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use types::{HookResponse, ReadyResponse, RegistrationRequest, RegistrationResponse, RunnerExitedRequest};

use crate::{
    controller::Controller,
    readiness::{NotReady, Progress},
};

/// What the handlers share: the controller, and the reconcile loop's progress for `/readyz`.
#[derive(Clone)]
pub struct AppState {
    pub controller: Controller,
    pub progress: Progress,
}

impl AppState {
    pub fn new(controller: Controller, progress: Progress) -> Self {
        Self { controller, progress }
    }

    /// `/readyz`, from state only: recovery finished, the loop running, a recent pass.
    pub fn readiness(&self) -> Result<(), NotReady> {
        self.progress.readiness(self.controller.is_recovered())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vmss-github-runner operator API",
        description = "Called by the runner VMs of the scale set. The caller is identified by its source address; \
                       a request from an address that is not a current instance is refused with 403.",
        license(name = "MIT"),
    ),
    tags(
        (name = "runner", description = "Registration and job hooks, called by runner VMs"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::registration))
        .routes(routes!(handlers::job_started))
        .routes(routes!(handlers::job_completed))
        .routes(routes!(handlers::runner_exited))
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
        .routes(routes!(handlers::metrics))
}

/// The application router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`:
/// handlers identify the calling VM by its address.
///
/// Every refusal is logged once by [`ApiError`] at the level of what it means, so the trace
/// layer's own line for a 5xx answer (ERROR by default, even for an expected 503
/// `not_ready_yet`) is kept at DEBUG.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let (router, _) = api_router().split_for_parts();
    let trace = TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
    router.layer(DefaultBodyLimit::max(max_body_bytes)).layer(trace).with_state(state)
}

/// The OpenAPI document of [`app`], as committed in `schema/openapi.json`.
pub fn openapi_json() -> String {
    let (_, doc) = api_router().split_for_parts();
    let mut text = doc.to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
