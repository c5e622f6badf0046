//! The HTTP API the runner VMs call, plus health and metrics. Routes and the
//! OpenAPI document are built together (utoipa-axum), so they cannot drift; the
//! committed copy in `schema/openapi.json` is checked by a test.
//!
//! - `server.rs`: the bounded HTTP/1.1 accept loop (connection caps per source and in
//!   total, header timeout, buffer limits), one per listener;
//! - `guard.rs`: the outermost layer of each router (target, header and body limits, the
//!   request timeout, the one log line of a refused request);
//! - `handlers.rs`, `types.rs`, `validate.rs`: the routes, their bodies, the job checks;
//! - `error.rs`: the one error shape.
//!
//! The runner API ([`Routes::Runner`]) and the operations endpoints
//! ([`Routes::Operations`]) are served on separate listeners (`server.listen`,
//! `server.operations_listen`), so runners cannot read `/metrics` or `/readyz`.

mod error;
mod guard;
mod handlers;
pub mod server;
mod types;
mod validate;

use std::sync::Arc;

use axum::{extract::DefaultBodyLimit, middleware, Router};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use guard::Guard;
pub use server::{HttpLimits, PerSourceLog};
pub use types::{HookResponse, ReadyResponse, RegistrationRequest, RegistrationResponse, RunnerExitedRequest};

use crate::{
    controller::{Controller, ListenerStatus},
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

    /// `/readyz`, from state only: recovery finished, the loop running, a recent pass,
    /// and (with scale-set demand) an open message session.
    pub fn readiness(&self) -> Result<(), NotReady> {
        self.progress.readiness(self.controller.is_recovered())?;
        match self.controller.listener_status() {
            None | Some(ListenerStatus::Listening) => Ok(()),
            Some(ListenerStatus::Waiting { reason }) => Err(NotReady::NoDemand { state: "waiting", reason }),
            Some(status) => {
                Err(NotReady::NoDemand { state: status.name(), reason: "no message session is open".into() })
            }
        }
    }

    /// The request guard for these limits, counting into this controller's metrics.
    pub fn guard(&self, limits: &HttpLimits, log: Arc<PerSourceLog>) -> Guard {
        Guard { limits: limits.clone(), log, refusals: self.controller.metrics().http_refusals.clone() }
    }

    /// A per-source log limiter counting into this controller's metrics.
    pub fn per_source_log(&self, limits: &HttpLimits) -> Arc<PerSourceLog> {
        Arc::new(PerSourceLog::new(limits.log_interval, self.controller.metrics().log_lines_suppressed.clone()))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vmss-github-runner operator API",
        description = "Called by the runner VMs of the scale set. The caller is identified by its source address; \
                       a request from an address that is not a current instance is refused with 403. \
                       HTTP/1.1 only. `/readyz` and `/metrics` are served on a separate listener \
                       (`server.operations_listen`, loopback by default). Every refusal, unknown routes (404), \
                       methods (405), slow bodies (408), large bodies (413), long targets (414) and large \
                       headers (431) included, has the `ErrorBody` shape.",
        license(name = "MIT"),
    ),
    tags(
        (name = "runner", description = "Registration and job hooks, called by runner VMs"),
        (name = "operations", description = "Health, readiness and metrics (readiness and metrics on the operations listener)"),
    )
)]
struct ApiDoc;

/// The runner API: what runner VMs call, on `server.listen`.
fn runner_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::registration))
        .routes(routes!(handlers::job_started))
        .routes(routes!(handlers::job_completed))
        .routes(routes!(handlers::runner_exited))
        .routes(routes!(handlers::healthz))
}

/// Operations: on `server.operations_listen`, which runners cannot reach (and `/healthz`,
/// documented once with the runner API).
fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handlers::readyz)).routes(routes!(handlers::metrics))
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(runner_routes()).merge(operations_routes())
}

/// Which routes a router serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routes {
    /// The runner API and `/healthz` (`server.listen`).
    Runner,
    /// `/metrics`, `/readyz`, `/healthz` (`server.operations_listen`).
    Operations,
    /// Both, on one listener: for tests and library callers that bind one socket.
    All,
}

/// A router for `routes` under `limits`. Serve it with [`server::serve`] (or with
/// `ConnectInfo<SocketAddr>` set on each request): handlers identify the calling VM by
/// its address.
///
/// Every refusal is answered in the one error shape, unknown routes (404) and methods
/// (405) included, and logged once by the request guard ([`guard`]); the trace layer's
/// own lines are kept at DEBUG, so a failed request makes one line, not two.
pub fn router(state: AppState, routes: Routes, limits: &HttpLimits, log: Arc<PerSourceLog>) -> Router {
    let chosen = match routes {
        Routes::Runner => runner_routes(),
        Routes::Operations => operations_routes().route("/healthz", axum::routing::get(handlers::healthz)),
        Routes::All => runner_routes().merge(operations_routes()),
    };
    let (router, _) = chosen.split_for_parts();
    let guard = state.guard(limits, log);
    let trace = TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(guard, guard::guard))
        .layer(trace)
        .with_state(state)
}

/// Every route on one router with the default limits and a body limit of
/// `max_body_bytes`: what the in-process tests drive with `oneshot`.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let limits = HttpLimits { max_body_bytes, ..HttpLimits::default() };
    let log = state.per_source_log(&limits);
    router(state, Routes::All, &limits, log)
}

/// The OpenAPI document of [`app`], as committed in `schema/openapi.json`.
pub fn openapi_json() -> String {
    let (_, doc) = api_router().split_for_parts();
    let mut text = doc.to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
