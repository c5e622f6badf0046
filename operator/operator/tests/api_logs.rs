//! The log lines a hostile caller makes, captured (issue 11): a flood of refusals makes one
//! line per source and code; a secret in a failing dependency's error reaches no log line.
//! Apart from `api_strict.rs` so that no test of this binary runs without a capturing
//! subscriber (tracing caches a call site's interest across threads).

mod common;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use common::{job_json, settings, Harness};
use operator::ports::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, StoredMarker};
use operator_sim::memory::InMemoryBusyRecord;

const STARTED: &str = "/api/v1/hooks/job-started";
const EXITED: &str = "/api/v1/hooks/runner-exited";

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
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (out, guard)
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
