//! What a hostile job can send to the runner API from its VM's address, in process:
//! bodies that are not JSON objects, job fields GitHub never forms, a repository outside
//! the pool's scope, unknown routes and methods, oversized targets and headers — each
//! answered in the one error shape, changing nothing; a flood of refusals makes one log
//! line per source; a secret in a failing dependency's error reaches no log line (issue 11).

mod common;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response},
};
use common::{job_json, settings, Harness};
use http_body_util::BodyExt;
use operator::{
    model::InstanceState,
    ports::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, StoredMarker},
};
use operator_sim::memory::InMemoryBusyRecord;
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

/// Log output captured as the process writes it (JSON lines), without the production
/// writer's redaction, so the tests see what the code itself puts into a line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber =
        tracing_subscriber::fmt().json().with_env_filter("info").with_writer(move || writer.clone()).finish();
    (out, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_flood_of_refusals_makes_one_line_per_source_and_is_counted_in_full() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let (logs, _guard) = capture();
    let strangers = [SocketAddr::from(([127, 9, 9, 1], 1)), SocketAddr::from(([127, 9, 9, 2], 1))];
    for _ in 0..200 {
        for from in strangers {
            assert_eq!(h.call(from, STARTED, &job_json(1)).await.0, 403);
        }
    }
    for _ in 0..100 {
        assert_eq!(h.call(h.ip_of("0"), EXITED, "[7]").await.0, 422);
    }
    let lines = logs.lines();
    let refused: Vec<&String> = lines.iter().filter(|l| l.contains("request refused")).collect();
    assert_eq!(refused.len(), 3, "one line per source and code, not one per request: {refused:#?}");
    assert_eq!(lines.len(), refused.len(), "and no second line per request: {lines:#?}");
    let metrics = h.controller.metrics().render();
    assert!(
        metrics.lines().any(|l| l == r#"vmss_runner_http_refusals_total{status="403",code="unknown_instance"} 400"#),
        "every refusal counted: {metrics}"
    );
    assert!(metrics.lines().any(|l| l == "vmss_runner_log_lines_suppressed_total 497"), "{metrics}");
}

const SIGNATURE: &str = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D";

/// The in-memory busy record, whose writes fail the way the queue client's do when the
/// service is unreachable: the transport error quotes the request URL, SAS included.
struct UnreachableQueue(InMemoryBusyRecord);

#[async_trait::async_trait]
impl BusyRecord for UnreachableQueue {
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError> {
        let url = format!(
            "http://127.0.0.1:10001/devstoreaccount1/busy/messages?sv=2023-11-03&se=2030&sp=raud&sig={SIGNATURE}"
        );
        let transport = std::io::Error::other(format!("error sending request for url ({url}): connection refused"));
        Err(BusyRecordError::WriteFailed { instance: marker.instance.clone(), source: Box::new(transport) })
    }
    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError> {
        self.0.remove(handle).await
    }
    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError> {
        self.0.load().await
    }
}

#[tokio::test]
async fn a_sas_in_a_failing_queue_call_reaches_no_log_line() {
    let scale_set = common::fast_scale_set(1, 1);
    let github = Arc::new(operator_sim::memory::InMemoryGithub::new("https://github.com/octo-org/octo-repo"));
    let busy: Arc<dyn BusyRecord> = Arc::new(UnreachableQueue(InMemoryBusyRecord::default()));
    let h = Harness::with_parts(scale_set, github, busy, settings(1, 5, 25)).await;
    let (logs, _guard) = capture();
    let (status, json) = h.call(h.ip_of("0"), STARTED, &job_json(1)).await;
    assert_eq!(status, 503, "{json}");
    assert!(!json.to_string().contains(SIGNATURE), "nor the answer: {json}");
    let lines = logs.lines();
    let failed: Vec<&String> = lines.iter().filter(|l| l.contains("request failed")).collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(failed[0].contains("sig=REDACTED"), "the cause is logged, redacted: {}", failed[0]);
    for line in &lines {
        assert!(!line.contains(SIGNATURE) && !line.contains("c2VjcmV0"), "a log line holds the SAS: {line}");
    }
}
