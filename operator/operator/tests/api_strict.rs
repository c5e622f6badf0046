//! What a hostile job can send to the runner API from its VM's address, in process:
//! bodies that are not JSON objects, job fields GitHub never forms, a repository outside
//! the pool's scope, unknown routes and methods, oversized targets and headers — each
//! answered in the one error shape, changing nothing (issue 11). The log lines they make
//! are tested in `api_logs.rs`.

mod common;

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response},
};
use common::{job_json, settings, Harness};
use http_body_util::BodyExt;
use operator::model::InstanceState;
use tower::ServiceExt;

const STARTED: &str = "/api/v1/hooks/job-started";
const COMPLETED: &str = "/api/v1/hooks/job-completed";
const EXITED: &str = "/api/v1/hooks/runner-exited";

fn state_of(h: &Harness, id: &str) -> InstanceState {
    h.controller.instance_states().into_iter().find(|(i, _)| i.as_str() == id).map(|(_, s)| s).unwrap()
}

fn assert_error_shape(json: &serde_json::Value, code: &str) {
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
}

async fn send(h: &Harness, req: Request<Body>, from: SocketAddr) -> (u16, serde_json::Value) {
    let mut req = req;
    req.extensions_mut().insert(ConnectInfo(from));
    let resp: Response<Body> = h.router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused_and_the_vm_stays_as_it_was() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    for body in ["[7]", "7", "\"x\"", "null", "[]", "true"] {
        for path in [EXITED, STARTED, COMPLETED] {
            let (status, json) = h.call(vm, path, body).await;
            assert_eq!(status, 422, "{path} {body}: {json}");
            assert_error_shape(&json, "invalid_body");
        }
    }
    assert_eq!(state_of(&h, "0"), InstanceState::AwaitingRegistration, "not made recyclable by [7]");
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty());
}

#[tokio::test]
async fn job_fields_github_never_forms_or_outside_the_scope_are_refused_by_name() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    let body = |repository: &str, job_name: &str| {
        serde_json::json!({"repository": repository, "run_id": 1, "run_attempt": 1, "job_name": job_name}).to_string()
    };
    let cases = [
        (body("octo-org/octo-repo", "build\n2026-12-01T00:00:00Z INFO forged line"), "invalid_field"),
        (body("octo-org/octo-repo", &"j".repeat(101)), "invalid_field"),
        (body("octo-org/octo-repo", ""), "invalid_field"),
        (body(&format!("octo-org/{}", "r".repeat(15_000)), "build"), "invalid_field"),
        (body("octo-org/octo\u{7f}repo", "build"), "invalid_field"),
        (body("octo-org", "build"), "invalid_field"),
        (body("evil-org/octo-repo", "build"), "out_of_scope"),
        (body("octo-org/other-repo", "build"), "out_of_scope"),
        (
            r#"{"repository":"octo-org/octo-repo","run_id":0,"run_attempt":1,"job_name":"b"}"#.to_owned(),
            "invalid_field",
        ),
    ];
    for (json_body, code) in cases {
        for path in [STARTED, COMPLETED] {
            let (status, json) = h.call(vm, path, &json_body).await;
            assert_eq!(status, 422, "{path}: {json}");
            assert_error_shape(&json, code);
        }
    }
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty(), "no marker written");
    assert_eq!(state_of(&h, "0"), InstanceState::AwaitingRegistration);
    // A stranger is told it is no instance, not what is wrong with its body.
    let stranger = SocketAddr::from(([127, 9, 9, 9], 1));
    let (status, json) = h.call(stranger, STARTED, &body("evil-org/x", "b")).await;
    assert_eq!(status, 403);
    assert_error_shape(&json, "unknown_instance");
}

#[tokio::test]
async fn unknown_routes_methods_long_targets_and_large_headers_answer_in_the_error_shape() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let (status, json) = send(&h, get("/nope"), vm).await;
    assert_eq!(status, 404);
    assert_error_shape(&json, "not_found");
    let (status, json) = send(&h, get(STARTED), vm).await;
    assert_eq!(status, 405);
    assert_error_shape(&json, "method_not_allowed");
    let (status, json) = send(&h, get(&format!("/api/v1/hooks/job-started?{}", "a".repeat(3000))), vm).await;
    assert_eq!(status, 414);
    assert_error_shape(&json, "uri_too_long");
    let big = Request::post(STARTED)
        .header("content-type", "application/json")
        .header("x-padding", "p".repeat(9 * 1024))
        .body(Body::from(job_json(1)))
        .unwrap();
    let (status, json) = send(&h, big, vm).await;
    assert_eq!(status, 431);
    assert_error_shape(&json, "headers_too_large");
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty());
}

/// A busy record whose writes never finish (a queue that accepts the connection and then
/// says nothing).
struct HangingQueue(operator_sim::memory::InMemoryBusyRecord);

#[async_trait::async_trait]
impl operator::ports::BusyRecord for HangingQueue {
    async fn put(
        &self,
        _: &operator::ports::BusyMarker,
    ) -> Result<operator::ports::MarkerHandle, operator::ports::BusyRecordError> {
        std::future::pending().await
    }
    async fn remove(&self, handle: &operator::ports::MarkerHandle) -> Result<(), operator::ports::BusyRecordError> {
        self.0.remove(handle).await
    }
    async fn load(&self) -> Result<Vec<operator::ports::StoredMarker>, operator::ports::BusyRecordError> {
        self.0.load().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hook_stuck_on_a_dependency_is_answered_503_within_the_request_timeout() {
    let scale_set = common::fast_scale_set(1, 1);
    let github =
        std::sync::Arc::new(operator_sim::memory::InMemoryGithub::new("https://github.com/octo-org/octo-repo"));
    let busy = std::sync::Arc::new(HangingQueue(operator_sim::memory::InMemoryBusyRecord::default()));
    let h = Harness::with_parts(scale_set, github, busy, settings(1, 5, 25)).await;
    let started = tokio::time::Instant::now();
    let (status, json) = h.call(h.ip_of("0"), STARTED, &job_json(1)).await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{json}");
    assert_error_shape(&json, "timed_out");
    let limit = operator::api::HttpLimits::default().request_timeout;
    assert!(waited >= limit && waited < limit + std::time::Duration::from_secs(1), "{waited:?}");
}
