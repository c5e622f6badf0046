//! A hook must not hang for a minute when the queue is unreachable (issue 11): the busy
//! record's SDK retries are bounded (3 retries within 10 s), so job-started is answered
//! 503 soon and the VM asks again.

use std::time::{Duration, Instant};

use operator::{
    model::{InstanceId, JobRef},
    ports::{BusyMarker, BusyRecord},
    queue::QueueBusyRecord,
};

#[tokio::test]
async fn a_write_to_an_unreachable_queue_fails_within_seconds_not_a_minute() {
    // A loopback port nothing listens on: every connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/devstoreaccount1/busy?sv=2024-08-04&sig=SECRETSIG");
    let record = QueueBusyRecord::new(&url, None).unwrap();
    let job = JobRef { repository: "o/r".into(), run_id: 1, run_attempt: 1, job_name: "build".into() };
    let marker = BusyMarker::new(InstanceId::new("0"), "vm0".into(), job, time::OffsetDateTime::now_utc());
    let started = Instant::now();
    let err = record.put(&marker).await.expect_err("nothing listens there");
    let took = started.elapsed();
    // The SDK's default (8 retries within a minute) took about a minute here.
    assert!(took < Duration::from_secs(20), "failed after {took:?}");
    let text = operator::report::Chain(&err).to_string();
    assert!(!text.contains("SECRETSIG"), "no SAS in the error: {text}");
}
