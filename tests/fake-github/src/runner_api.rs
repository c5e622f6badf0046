//! The runner's side of GitHub over HTTP, for test doubles of `config.sh` and `run.sh`.
//!
//! The real runner talks to GitHub's Actions service (a private protocol); these routes
//! stand in for it so a shell script can register, wait for a job and finish it against
//! the same state the REST API serves. They live under `/_fake/runner/`, outside GitHub's
//! REST surface, and are not recorded as exchanges: the contract check covers only what
//! the operator sends.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /_fake/runner/jit` | `{"encoded_jit_config"}` | `{"runner_id"}`, 404 for an unknown or used config |
//! | `POST /_fake/runner/register` | `{"url","token","name","labels":[..],"ephemeral"}` | `{"runner_id"}`, 404 if refused |
//! | `POST /_fake/runner/{id}/poll` | | `{"job_id","repository"}` once assigned, else 204 |
//! | `POST /_fake/runner/{id}/finish` | | `{"job_id"}`, 404 if the runner has no job |

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::{server::Shared, state::Scope};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_fake/runner/jit", post(jit))
        .route("/_fake/runner/register", post(register))
        .route("/_fake/runner/{id}/poll", post(poll))
        .route("/_fake/runner/{id}/finish", post(finish))
        .with_state(shared)
}

#[derive(Deserialize)]
struct JitBody {
    encoded_jit_config: String,
}

#[derive(Deserialize)]
struct RegisterBody {
    url: String,
    token: String,
    name: String,
    labels: Vec<String>,
    ephemeral: bool,
}

fn refused(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": message}))).into_response()
}

async fn jit(State(shared): State<Arc<Shared>>, Json(body): Json<JitBody>) -> Response {
    match shared.with_broker(|inner, _| inner.runners.start_jit(&body.encoded_jit_config)) {
        Some(id) => Json(json!({"runner_id": id})).into_response(),
        None => refused("unknown or already used JIT config"),
    }
}

/// The scope of a registration URL: `<web root>/<org>` or `<web root>/<owner>/<repo>`.
pub(crate) fn scope_of(url: &str, base: &str) -> Option<Scope> {
    let path = url.trim_end_matches('/').strip_prefix(base.trim_end_matches('/'))?;
    match path.trim_start_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        [org] if !org.is_empty() => Some(Scope::org(org)),
        [owner, repo] => Some(Scope::repo(&format!("{owner}/{repo}"))),
        _ => None,
    }
}

async fn register(State(shared): State<Arc<Shared>>, Json(body): Json<RegisterBody>) -> Response {
    let base = shared.base_url.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(scope) = scope_of(&body.url, &base) else { return refused("the URL names no repository or organization") };
    let registered = shared.lock().runners.register_with_token(
        &scope,
        &body.token,
        &body.name,
        &body.labels,
        body.ephemeral,
        OffsetDateTime::now_utc(),
    );
    match registered {
        Ok(id) => Json(json!({"runner_id": id})).into_response(),
        Err(_) => refused("registration refused"),
    }
}

async fn poll(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    let mut inner = shared.lock();
    let Some(job_id) = inner.runners.poll(id) else { return StatusCode::NO_CONTENT.into_response() };
    let repository = match inner.runners.jobs.get(&job_id).map(|j| j.scope.clone()) {
        Some(Scope::Repo(r)) => r,
        // An organization job still runs in some repository; the fake names one.
        Some(Scope::Org(o)) => format!("{o}/fake-repo"),
        None => String::new(),
    };
    Json(json!({"job_id": job_id, "repository": repository})).into_response()
}

async fn finish(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    match shared.with_broker(|inner, _| inner.runners.finish(id)) {
        Some(job_id) => Json(json!({"job_id": job_id})).into_response(),
        None => refused("the runner has no job"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_url_names_its_scope() {
        let base = "http://10.0.0.1:80";
        assert_eq!(scope_of("http://10.0.0.1:80/o/r", base), Some(Scope::repo("o/r")));
        assert_eq!(scope_of("http://10.0.0.1:80/o/", base), Some(Scope::org("o")));
        assert_eq!(scope_of("http://other/o/r", base), None);
        assert_eq!(scope_of("http://10.0.0.1:80/", base), None);
    }
}
