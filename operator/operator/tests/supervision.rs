//! The process must never run half-dead: `run` returns an error when the reconcile loop
//! fails fatally or panics, and `/readyz` answers from the loop's progress alone.

mod common;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{body::Body, extract::ConnectInfo, http::Request};
use common::{fast_scale_set, settings};
use http_body_util::BodyExt;
use operator::{
    api::{app, AppState},
    controller::{Controller, Settings},
    model::InstanceId,
    ports::{CloudFault, CloudInstance, Ports, ScaleSet, ScaleSetError},
    readiness::{Progress, STALE_AFTER_PERIODS},
    report::chain,
    retry::ErrorPolicy,
    run::{run, supervised_loop, LoopError, RunError, RunSettings},
};
use operator_sim::memory::{InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const PERIOD: Duration = Duration::from_secs(10);

fn fast_settings() -> Settings {
    Settings { period: PERIOD, ..settings(1, 5, 25) }
}

fn ports(scale_set: Arc<dyn ScaleSet>) -> Ports {
    Ports {
        scale_set,
        github: Arc::new(InMemoryGithub::new("https://github.com/o/r")),
        busy: Arc::new(InMemoryBusyRecord::default()),
        secrets: Arc::new(InMemorySecretStore::default()),
    }
}

fn run_settings() -> RunSettings {
    RunSettings {
        http: operator::api::HttpLimits::default(),
        debounce: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        listener: None,
        learned: None,
    }
}

async fn readyz(state: &AppState) -> (u16, String) {
    let mut req = Request::get("/readyz").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 1))));
    let resp = app(state.clone(), 16 * 1024).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The loop on a paused clock, and the API state `/readyz` reads.
fn start_loop(
    scale_set: Arc<InMemoryScaleSet>,
) -> (AppState, CancellationToken, tokio::task::JoinHandle<Result<(), LoopError>>) {
    let controller = Controller::new(fast_settings(), ports(scale_set));
    let progress = Progress::new(PERIOD);
    let shutdown = CancellationToken::new();
    let errors = ErrorPolicy::seeded(Duration::from_secs(1), PERIOD, 7);
    let task = tokio::spawn(supervised_loop(
        controller.clone(),
        Duration::from_millis(20),
        errors,
        progress.clone(),
        shutdown.clone(),
    ));
    (AppState::new(controller, progress), shutdown, task)
}

#[tokio::test(start_paused = true)]
async fn readyz_turns_503_when_reconcile_passes_stop_succeeding() {
    let scale_set = fast_scale_set(2, 1);
    let (state, shutdown, task) = start_loop(scale_set.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, body) = readyz(&state).await;
    assert_eq!(status, 200, "recovered and one pass done: {body}");

    // From now on every call to Azure fails: passes keep being retried, none succeeds.
    for _ in 0..10_000 {
        scale_set.fail_next(CloudFault::Server { status: 500, message: "injected".into() });
    }
    tokio::time::sleep(PERIOD * STALE_AFTER_PERIODS - Duration::from_secs(2)).await;
    assert_eq!(readyz(&state).await.0, 200, "within three periods of the last good pass");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = readyz(&state).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the last successful reconcile pass was"), "{body}");
    assert!(!task.is_finished(), "a failing pass is retried, not fatal");
    shutdown.cancel();
    task.await.unwrap().expect("a clean stop on shutdown");
}

#[tokio::test(start_paused = true)]
async fn readyz_makes_no_call_to_the_scale_set() {
    let scale_set = fast_scale_set(1, 1);
    let (state, shutdown, task) = start_loop(scale_set.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    scale_set.fail_next(CloudFault::Throttled { retry_after: None });
    for _ in 0..5 {
        assert_eq!(readyz(&state).await.0, 200);
    }
    let still_queued = ScaleSet::capacity(&*scale_set).await;
    assert!(still_queued.is_err(), "the injected fault was not spent by /readyz");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn readyz_answers_503_once_the_loop_has_stopped() {
    let scale_set = fast_scale_set(1, 1);
    let (state, _shutdown, task) = start_loop(scale_set.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(readyz(&state).await.0, 200);
    scale_set.delete_scale_set();
    let ended = tokio::time::timeout(PERIOD * 3, task).await.expect("the loop ends").unwrap();
    assert!(matches!(ended, Err(LoopError::ScaleSetGone(_))), "{ended:?}");
    let (status, body) = readyz(&state).await;
    assert_eq!(status, 503);
    assert!(body.contains("the reconcile loop is not running"), "{body}");
}

#[tokio::test]
async fn a_scale_set_that_is_gone_ends_run_with_an_error_naming_the_cause() {
    let scale_set = fast_scale_set(1, 1);
    scale_set.delete_scale_set();
    let controller = Controller::new(fast_settings(), ports(scale_set));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ran = tokio::time::timeout(
        Duration::from_secs(30),
        run(controller, listener, run_settings(), CancellationToken::new()),
    )
    .await
    .expect("run returns by itself");
    let err = ran.expect_err("a fatal loop error is an error of run");
    assert!(matches!(err, RunError::LoopFailed(LoopError::ScaleSetGone(_))), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("the scale set no longer exists"), "{text}");
    assert!(text.contains("the resource was not found"), "the whole chain: {text}");
}

/// A scale set whose reads panic, like a bug deep in a pass.
struct PanickingScaleSet {
    inner: Arc<InMemoryScaleSet>,
}

#[async_trait]
impl ScaleSet for PanickingScaleSet {
    async fn capacity(&self) -> Result<u32, ScaleSetError> {
        panic!("a bug in the pass")
    }
    async fn list_instances(&self) -> Result<Vec<CloudInstance>, ScaleSetError> {
        self.inner.list_instances().await
    }
    async fn set_capacity(&self, capacity: u32) -> Result<(), ScaleSetError> {
        self.inner.set_capacity(capacity).await
    }
    async fn delete_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        self.inner.delete_instances(ids).await
    }
    async fn reimage_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        self.inner.reimage_instances(ids).await
    }
    async fn deallocate_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        self.inner.deallocate_instances(ids).await
    }
    async fn start_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        self.inner.start_instances(ids).await
    }
}

#[tokio::test]
async fn a_panic_in_the_reconcile_loop_ends_run_with_an_error() {
    let scale_set = Arc::new(PanickingScaleSet { inner: fast_scale_set(1, 1) });
    let controller = Controller::new(fast_settings(), ports(scale_set));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ran = tokio::time::timeout(
        Duration::from_secs(10),
        run(controller, listener, run_settings(), CancellationToken::new()),
    )
    .await
    .expect("run returns by itself");
    let err = ran.expect_err("a panicking loop is an error of run");
    assert!(matches!(err, RunError::LoopPanicked(_)), "{err:?}");
    assert!(chain(&err).contains("a bug in the pass"), "{}", chain(&err));
}

#[tokio::test]
async fn a_shutdown_ends_run_cleanly() {
    let controller = Controller::new(fast_settings(), ports(fast_scale_set(1, 1)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(controller.clone(), listener, run_settings(), shutdown.clone()));
    while !controller.is_recovered() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().expect("Ok after a shutdown");
}
