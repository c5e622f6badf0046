//! The scale-set listener on the in-memory world, on a paused clock: demand reaches the
//! controller, a session left open by a crashed predecessor is waited out (and `/readyz`
//! says why), a deleted scale set is created again and read from its first message, an
//! undecodable message is acknowledged with its statistics applied, and shutdown closes
//! the session so the next operator starts at once.

mod common;

use std::{sync::Arc, time::Duration};

use operator::{
    controller::{Controller, ListenerStatus, Settings},
    listener::{Listener, ListenerSettings, ScaleSetHandle},
    model::JobRef,
    policy::PoolSpec,
    ports::{Ports, ScaleSetApi},
};
use operator_sim::memory::{
    InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetFaults, ScaleSetSettings, SimJob,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const LABELS: [&str; 2] = ["self-hosted", "linux"];

struct World {
    github: Arc<InMemoryGithub>,
    controller: Controller,
    handle: ScaleSetHandle,
    listener: Listener,
}

fn world() -> World {
    world_on(Arc::new(InMemoryGithub::new("https://github.com/octo-org/octo-repo")))
}

/// An operator (controller and listener) on an existing GitHub.
fn world_on(github: Arc<InMemoryGithub>) -> World {
    let settings = ListenerSettings::new("vmss-test", LABELS.iter().map(|l| (*l).to_owned()).collect(), "test", 1);
    let (runners, listener) = Listener::attach(github.clone(), github.clone(), settings);
    let handle = listener.handle.clone();
    let ports = Ports {
        scale_set: Arc::new(InMemoryScaleSet::new(ScaleSetSettings::default())),
        github: runners,
        busy: Arc::new(InMemoryBusyRecord::default()),
        secrets: Arc::new(InMemorySecretStore::default()),
    };
    let controller = Controller::new(Settings::new("vmss-test", "octo-org/octo-repo", PoolSpec::new(0, 20, 20)), ports);
    World { github, controller, handle, listener }
}

fn job(n: u64) -> SimJob {
    SimJob {
        job: JobRef { repository: "octo-org/octo-repo".into(), run_id: n, run_attempt: 1, job_name: "build".into() },
        labels: LABELS.iter().map(|l| (*l).to_owned()).collect(),
    }
}

fn start(w: &World) -> (CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let (listener, controller, token) = (w.listener.clone(), w.controller.clone(), stop.clone());
    (stop, tokio::spawn(async move { listener.run(&controller, &token).await }))
}

/// Let the paused clock run until `done` holds (at most `limit` of virtual time).
async fn until(limit: Duration, done: impl Fn() -> bool) -> bool {
    common::until_within(limit, Duration::from_millis(100), done).await
}

#[tokio::test(start_paused = true)]
async fn the_scale_set_is_created_and_its_assigned_jobs_become_the_demand() {
    let w = world();
    let (stop, task) = start(&w);
    assert!(until(Duration::from_secs(5), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await);
    assert_eq!(w.handle.id(), w.github.scale_set_id(), "the registration endpoint knows the set");
    assert_eq!(w.controller.assigned_jobs(), Some(0));
    for n in 0..7 {
        w.github.enqueue(job(n));
    }
    assert!(until(Duration::from_secs(5), || w.controller.assigned_jobs() == Some(7)).await);
    assert_eq!(w.github.reported_max_capacity(), Some(20), "each poll reports the pool's max");
    stop.cancel();
    task.await.unwrap();
    assert_eq!(w.controller.listener_status(), Some(ListenerStatus::Stopped));
    // The session was closed: another operator opens one at once.
    let id = w.github.scale_set_id().unwrap();
    assert!(w.github.open_session(id, "next").await.is_ok(), "no conflict after a clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_session_left_by_a_crashed_operator_is_waited_out_and_readiness_says_why() {
    let w = world();
    // A predecessor created the set and crashed with its session open.
    let (stop, task) = start(&w);
    assert!(until(Duration::from_secs(5), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await);
    task.abort();
    let _ = task.await;
    stop.cancel();

    // Same GitHub, a new operator.
    let w = world_on(w.github.clone());
    let (stop, task) = start(&w);
    assert!(
        until(Duration::from_secs(5), || matches!(
            w.controller.listener_status(),
            Some(ListenerStatus::Waiting { .. })
        ))
        .await
    );
    let Some(ListenerStatus::Waiting { reason }) = w.controller.listener_status() else { unreachable!() };
    assert!(reason.contains("already has an active message session"), "{reason}");
    assert!(reason.contains("next attempt in"), "{reason}");
    // GitHub expires the stale session after two minutes without a poll; the listener's
    // backoff (30 s, 60 s, ...) then gets through.
    assert!(
        until(Duration::from_secs(5 * 60), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await
    );
    let (opened, conflicts) = w.github.session_counts();
    assert!((2..=5).contains(&conflicts), "backoff, not a storm: {conflicts} conflicts");
    assert_eq!(opened, 2);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_deleted_scale_set_is_created_again_and_read_from_its_first_message() {
    let w = world();
    let (stop, task) = start(&w);
    assert!(until(Duration::from_secs(5), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await);
    let first = w.handle.id().unwrap();
    w.github.enqueue(job(1));
    assert!(until(Duration::from_secs(5), || w.controller.assigned_jobs() == Some(1)).await);

    w.github.delete_scale_set();
    assert!(until(Duration::from_secs(60), || w.handle.id().is_some_and(|id| id != first)).await);
    // The job is assigned to the new set; its message ids start again at 1.
    w.github.enqueue(job(2));
    assert!(until(Duration::from_secs(60), || w.controller.assigned_jobs() == Some(2)).await);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_message_is_acknowledged_and_its_statistics_still_apply() {
    let w = world();
    w.github.set_scale_set_faults(ScaleSetFaults { undecodable: 1, ..ScaleSetFaults::default() });
    let (stop, task) = start(&w);
    assert!(until(Duration::from_secs(5), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await);
    for n in 0..3 {
        w.github.enqueue(job(n));
    }
    assert!(until(Duration::from_secs(5), || w.controller.assigned_jobs() == Some(3)).await);
    let metrics = w.controller.metrics().render();
    assert!(
        metrics.contains(r#"vmss_runner_scale_set_messages_total{kind="message",outcome="undecodable"} 1"#),
        "{metrics}"
    );
    // Not stuck on it: the next message is read and applied.
    w.github.enqueue(job(9));
    assert!(until(Duration::from_secs(5), || w.controller.assigned_jobs() == Some(4)).await);
    assert!(metrics_line(&w.controller, r#"outcome="applied""#) >= 1);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn lost_and_duplicated_acknowledgements_apply_each_message_once() {
    let w = world();
    w.github.set_scale_set_faults(ScaleSetFaults { lose_acks: 2, duplicate: 2, ..ScaleSetFaults::default() });
    let (stop, task) = start(&w);
    assert!(until(Duration::from_secs(5), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await);
    for n in 0..4 {
        w.github.enqueue(job(n));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(until(Duration::from_secs(10), || w.controller.assigned_jobs() == Some(4)).await);
    // Every message counted once as applied, however often it came.
    assert_eq!(metrics_line(&w.controller, r#"outcome="applied""#), 4);
    stop.cancel();
    task.await.unwrap();
}

/// The value of `vmss_runner_scale_set_messages_total` for the series matching `label`.
fn metrics_line(controller: &Controller, label: &str) -> u64 {
    controller
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with("vmss_runner_scale_set_messages_total") && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn statistics_a_lagging_last_message_left_behind_are_read_again_after_a_quiet_spell() {
    let w = world();
    let (stop, task) = start(&w);
    assert!(until(Duration::from_secs(5), || w.controller.listener_status() == Some(ListenerStatus::Listening)).await);
    w.github.enqueue(job(1));
    assert!(until(Duration::from_secs(5), || w.controller.assigned_jobs() == Some(1)).await);
    // The next (and last) message carries the counters from before it: the second job
    // is not counted, and nothing else is coming.
    w.github.set_scale_set_faults(ScaleSetFaults { stale_statistics: 1, ..ScaleSetFaults::default() });
    w.github.enqueue(job(2));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(w.controller.assigned_jobs(), Some(1), "the lagging message applied");
    // After a quiet spell the listener reads the statistics again (a session refresh).
    let limit = operator::listener::STATISTICS_REFRESH + Duration::from_secs(60);
    assert!(until(limit, || w.controller.assigned_jobs() == Some(2)).await, "{:?}", w.controller.statistics());
    stop.cancel();
    task.await.unwrap();
}
