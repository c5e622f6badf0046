//! The busy record against a real queue service (Azurite), and the operator's
//! recovery of exactly the busy set after it is killed between hooks.

mod common;

use std::{collections::BTreeMap, sync::Arc};

use common::{job, job_json, settings, Harness};
use operator::{
    model::{InstanceId, JobRef},
    ports::{BusyMarker, BusyRecord},
    queue::QueueBusyRecord,
};
use operator_sim::memory::InMemoryGithub;
use test_support::Azurite;
use time::OffsetDateTime;

async fn queue(azurite: &Azurite, name: &str) -> Arc<QueueBusyRecord> {
    let record = QueueBusyRecord::new(&azurite.queue_url(name), None).expect("queue client");
    record.ensure_queue().await.expect("queue created");
    Arc::new(record)
}

fn marker(instance: &str, run_id: u64, started_at: OffsetDateTime) -> BusyMarker {
    BusyMarker::new(InstanceId::new(instance), format!("vm{instance}"), job(run_id), started_at)
}

#[tokio::test]
async fn markers_round_trip_and_removal_is_idempotent() {
    let azurite = Azurite::start();
    let record = queue(&azurite, "roundtrip").await;
    let mut odd = marker("1", 7, OffsetDateTime::now_utc().replace_nanosecond(0).unwrap());
    odd.job.job_name = "build <linux & \"quotes\">".into(); // survives the XML envelope
    let handle = record.put(&odd).await.unwrap();
    let loaded = record.load().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].marker, odd);
    assert_eq!(loaded[0].handle.message_id, handle.message_id);

    // The handle from load (fresh pop receipt) removes it; a repeat is fine.
    record.remove(&loaded[0].handle).await.unwrap();
    record.remove(&loaded[0].handle).await.unwrap();
    assert!(record.load().await.unwrap().is_empty());
}

#[tokio::test]
async fn recovery_leaves_markers_visible_for_the_next_start() {
    let azurite = Azurite::start();
    let record = queue(&azurite, "visible").await;
    for n in 0..40 {
        record.put(&marker(&n.to_string(), n, OffsetDateTime::now_utc())).await.unwrap();
    }
    let first = record.load().await.unwrap();
    assert_eq!(first.len(), 40, "more than one receive batch of 32");
    let second = record.load().await.unwrap();
    assert_eq!(second.len(), 40, "a restart right after recovery sees every marker again");
    // Handles from the latest load remove their messages.
    for stored in &second {
        record.remove(&stored.handle).await.unwrap();
    }
    assert!(record.load().await.unwrap().is_empty());
}

fn busy_map(h: &Harness) -> BTreeMap<String, JobRef> {
    h.controller.busy_set().into_iter().map(|(i, j)| (i.0, j)).collect()
}

#[tokio::test]
async fn a_restarted_operator_recovers_exactly_the_busy_set() {
    let azurite = Azurite::start();
    let record = queue(&azurite, "restart").await;
    let scale_set = common::fast_scale_set(4, 1);
    let github = Arc::new(InMemoryGithub::new("https://github.com/o/r"));

    let first = Harness::with_parts(scale_set.clone(), github.clone(), record.clone(), settings(1, 8, 25)).await;
    for id in ["0", "1", "2", "3"] {
        let (status, registration) = first.call(first.ip_of(id), "/api/v1/registration", "{}").await;
        assert_eq!(status, 200);
        github.start_with_jit(registration["encoded_jit_config"].as_str().unwrap()).unwrap();
    }
    for (id, run) in [("0", 10), ("1", 11), ("2", 12)] {
        assert_eq!(first.call(first.ip_of(id), "/api/v1/hooks/job-started", &job_json(run)).await.0, 200);
    }
    assert_eq!(first.call(first.ip_of("1"), "/api/v1/hooks/job-completed", &job_json(11)).await.0, 200);
    let before = busy_map(&first);
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), ["0", "2"]);
    drop(first); // killed: no shutdown, nothing flushed

    let second = Harness::with_parts(scale_set.clone(), github.clone(), record.clone(), settings(1, 8, 25)).await;
    assert_eq!(busy_map(&second), before, "same busy set after restart");
    let (status, body) = second.call(second.ip_of("3"), "/api/v1/registration", "{}").await;
    assert_eq!(status, 409, "registration already issued (and its runner online) before the restart: {body}");

    // The recovered handles work: completing a job removes its marker.
    assert_eq!(second.call(second.ip_of("2"), "/api/v1/hooks/job-completed", &job_json(12)).await.0, 200);
    let (_, body) = second.call(second.ip_of("0"), "/api/v1/hooks/job-started", &job_json(10)).await;
    assert_eq!(body["changed"], false, "a hook retried across the restart is not counted twice");
    drop(second);

    let third = Harness::with_parts(scale_set, github, record.clone(), settings(1, 8, 25)).await;
    assert_eq!(busy_map(&third).keys().cloned().collect::<Vec<_>>(), ["0"]);
    assert_eq!(record.load().await.unwrap().len(), 1, "one marker per busy runner, nothing left over");
}

#[tokio::test]
async fn recovery_drops_duplicate_and_orphaned_markers() {
    let azurite = Azurite::start();
    let record = queue(&azurite, "stale").await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // A crash after storing a marker but before answering: the hook was retried and
    // stored a second one. Plus a marker of an instance that no longer exists.
    record.put(&marker("0", 1, now - time::Duration::seconds(5))).await.unwrap();
    record.put(&marker("0", 1, now)).await.unwrap();
    record.put(&marker("99", 2, now)).await.unwrap();

    let h = Harness::with_parts(
        common::fast_scale_set(2, 1),
        Arc::new(InMemoryGithub::new("https://github.com/o/r")),
        record.clone(),
        settings(1, 8, 25),
    )
    .await;
    assert_eq!(busy_map(&h).keys().cloned().collect::<Vec<_>>(), ["0"]);
    let left = record.load().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].marker.started_at, now, "the newest marker is kept");
}
