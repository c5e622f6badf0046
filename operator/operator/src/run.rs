//! Wiring and supervision: the HTTP server and the reconcile loop under one shutdown
//! signal, raced together (as mini-redis races `server.run()` against shutdown).
//!
//! The process must never run half-dead. If the server or the loop ends, fails or panics
//! while no shutdown was asked for, or the controller raises a fatal error (its state lock
//! was poisoned), [`run`] logs the cause with its whole chain, stops the tasks, drains within
//! the grace time and returns the error, so `main` exits non-zero and systemd
//! (`Restart=on-failure`) starts the operator again; its start-up verification and recovery
//! then report afresh. A panic anywhere else (a hook handler, a background scale-set
//! operation) ends the process from the panic hook `main` installs: state a panic may have
//! left half-changed cannot be trusted, and recovery at the next start rebuilds it from the
//! cloud, the busy record and GitHub, as after a crash.
//!
//! Which loop errors end the process: only [`LoopError::ScaleSetGone`] — Azure answers
//! 404 for the scale set itself, so there is nothing to manage and retrying cannot help.
//! It takes [`SCALE_SET_GONE_AFTER`] such answers in a row (a few seconds of backoff), so
//! one stray 404 of a lagging Resource Manager replica does not restart the operator.
//! Every other failure, of recovery or of a pass, is retried by the
//! [`ErrorPolicy`](crate::retry::ErrorPolicy) (exponential, jittered, capped at one
//! period, honouring `Retry-After`), and `/readyz` reports passes that stopped succeeding.

use std::time::Duration;

use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    api::{router, server, AppState, HttpLimits, Routes},
    controller::{Controller, FatalError, RecoveryError},
    learned::{LearnedError, LearnedState},
    listener::Listener,
    pass::ReconcileError,
    ports::{CloudFault, ScaleSetError},
    readiness::Progress,
    report::Chain,
    retry::ErrorPolicy,
};

/// Server and loop settings.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The server's bounds (`server.*`).
    pub http: HttpLimits,
    pub debounce: Duration,
    pub shutdown_grace: Duration,
    /// The runner scale set listener (`github.demand = "scale_set"`), supervised like the
    /// server and the loop.
    pub listener: Option<Listener>,
    /// The learned demand state's saver (`pool.learned`), supervised likewise; it saves
    /// once more at shutdown, within the grace time.
    pub learned: Option<LearnedState>,
}

/// Why [`run`] ended other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("serving HTTP failed")]
    ServeFailed(#[source] std::io::Error),
    #[error("the HTTP server stopped although no shutdown was asked for")]
    ServerStopped,
    #[error("the HTTP server task panicked")]
    ServerPanicked(#[source] tokio::task::JoinError),
    #[error("the reconcile loop stopped")]
    LoopFailed(#[source] LoopError),
    #[error("the reconcile loop stopped although no shutdown was asked for")]
    LoopStopped,
    #[error("the reconcile loop panicked")]
    LoopPanicked(#[source] tokio::task::JoinError),
    #[error("the scale-set listener stopped although no shutdown was asked for")]
    ListenerStopped,
    #[error("the scale-set listener panicked")]
    ListenerPanicked(#[source] tokio::task::JoinError),
    #[error("keeping the learned demand state failed")]
    LearnedFailed(#[source] LearnedError),
    #[error("the learned state's saver stopped although no shutdown was asked for")]
    LearnedStopped,
    #[error("the learned state's saver panicked")]
    LearnedPanicked(#[source] tokio::task::JoinError),
    #[error("the controller can no longer be trusted")]
    ControllerFailed(#[source] FatalError),
}

/// Where to serve: the runner API, and apart from it the operations endpoints (`/metrics`,
/// `/readyz`). Without an operations listener both are served on the API listener (tests,
/// the demo); `serve` and `sandbox` always bind both.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub operations: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(api: TcpListener) -> Self {
        Self { api, operations: None }
    }
}

/// Consecutive observations answering 404 for the scale set itself before the loop gives up.
pub const SCALE_SET_GONE_AFTER: u32 = 3;

/// A condition the reconcile loop cannot get past by retrying.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("the scale set no longer exists (Azure answers 404 for it), so there is nothing to manage")]
    ScaleSetGone(#[source] ScaleSetError),
}

/// Serve the API on `listener` and run the reconcile loop until `shutdown` fires; then let
/// in-flight requests and scale-set operations finish within the grace time. Returns an
/// error if the server or the loop ended first (see the module docs).
pub async fn run(
    controller: Controller,
    listeners: impl Into<Listeners>,
    settings: RunSettings,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let errors = ErrorPolicy::for_period(controller.settings().period);
    run_with(controller, listeners, settings, errors, shutdown).await
}

/// [`run`] with a given error policy.
pub async fn run_with(
    controller: Controller,
    listeners: impl Into<Listeners>,
    settings: RunSettings,
    errors: ErrorPolicy,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let Listeners { api, operations } = listeners.into();
    let addr = api.local_addr().map_err(RunError::ServeFailed)?;
    let operations_addr = match &operations {
        Some(listener) => Some(listener.local_addr().map_err(RunError::ServeFailed)?),
        None => None,
    };
    info!(%addr, operations = ?operations_addr, pool = %controller.settings().pool, "operator listening");
    // The tasks stop on `stop`: the caller's shutdown, or the failure of the other task.
    let stop = shutdown.child_token();
    let progress = Progress::new(controller.settings().period);
    let state = AppState::new(controller.clone(), progress.clone());
    let mut server = tokio::spawn(serve_all(state, api, operations, settings.http.clone(), stop.clone()));
    let mut reconciler =
        tokio::spawn(supervised_loop(controller.clone(), settings.debounce, errors, progress, stop.clone()));
    let mut listener = settings.listener.clone().map(|listener| {
        let (controller, stop) = (controller.clone(), stop.clone());
        tokio::spawn(async move { listener.run(&controller, &stop).await })
    });
    let listener_done = async {
        match listener.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    let mut learned = settings.learned.clone().map(|state| tokio::spawn(state.run(stop.clone())));
    let learned_done = async {
        match learned.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };

    // A finished JoinHandle must not be awaited again: remember which one ended.
    let (failure, server_ended, loop_ended, listener_ended, learned_ended) = tokio::select! {
        biased;
        _ = shutdown.cancelled() => (None, false, false, false, false),
        served = &mut server => (server_failure(served, &shutdown), true, false, false, false),
        looped = &mut reconciler => (loop_failure(looped, &shutdown), false, true, false, false),
        listened = listener_done => (listener_failure(listened, &shutdown), false, false, true, false),
        saved = learned_done => (learned_failure(saved, &shutdown), false, false, false, true),
        fatal = controller.failed() => (Some(RunError::ControllerFailed(fatal)), false, false, false, false),
    };
    match &failure {
        None => info!(grace = ?settings.shutdown_grace, "shutting down: draining requests and operations"),
        Some(err) => {
            error!(error = %Chain(err), grace = ?settings.shutdown_grace, "a supervised task ended; stopping the operator")
        }
    }
    stop.cancel();

    let deadline = Instant::now() + settings.shutdown_grace;
    let drained = tokio::time::timeout_at(deadline, async {
        let mut later = None;
        if !server_ended {
            later = server_failure(server.await, &stop);
        }
        if !loop_ended {
            later = later.or(loop_failure(reconciler.await, &stop));
        }
        if let (false, Some(task)) = (listener_ended, listener) {
            later = later.or(listener_failure(task.await, &stop));
        }
        if let (false, Some(task)) = (learned_ended, learned) {
            later = later.or(learned_failure(task.await, &stop));
        }
        controller.operations().close();
        controller.operations().wait().await;
        later
    })
    .await;
    let later = match drained {
        Ok(later) => later,
        Err(_) => {
            warn!("grace time over; abandoning in-flight work (the next start recovers it)");
            None
        }
    };
    if let (None, Some(err)) = (&failure, &later) {
        error!(error = %Chain(err), "a supervised task failed while shutting down");
    }
    match failure.or(later) {
        None => {
            info!("shut down cleanly");
            Ok(())
        }
        Some(err) => Err(err),
    }
}

/// Both listeners, each with its own connection caps, sharing one per-source log limiter.
async fn serve_all(
    state: AppState,
    api: TcpListener,
    operations: Option<TcpListener>,
    limits: HttpLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let log = state.per_source_log(&limits);
    let parts = || server::ServerParts::new(&limits, state.controller.metrics(), log.clone());
    let api_routes = if operations.is_some() { Routes::Runner } else { Routes::All };
    let api_router = router(state.clone(), api_routes, &limits, log.clone());
    let api_server = server::serve(api, api_router, limits.clone(), parts(), stop.clone());
    match operations {
        None => api_server.await,
        Some(listener) => {
            let ops_router = router(state.clone(), Routes::Operations, &limits, log.clone());
            let ops_server = server::serve(listener, ops_router, limits.clone(), parts(), stop.clone());
            tokio::try_join!(api_server, ops_server).map(|_| ())
        }
    }
}

/// What the server task's end means; `None` when it was asked to stop and did.
fn server_failure(
    served: Result<std::io::Result<()>, tokio::task::JoinError>,
    asked_to_stop: &CancellationToken,
) -> Option<RunError> {
    match served {
        Ok(Ok(())) if asked_to_stop.is_cancelled() => None,
        Ok(Ok(())) => Some(RunError::ServerStopped),
        Ok(Err(e)) => Some(RunError::ServeFailed(e)),
        Err(join) => Some(RunError::ServerPanicked(join)),
    }
}

/// What the loop task's end means; `None` when it was asked to stop and did.
fn loop_failure(
    looped: Result<Result<(), LoopError>, tokio::task::JoinError>,
    asked_to_stop: &CancellationToken,
) -> Option<RunError> {
    match looped {
        Ok(Ok(())) if asked_to_stop.is_cancelled() => None,
        Ok(Ok(())) => Some(RunError::LoopStopped),
        Ok(Err(e)) => Some(RunError::LoopFailed(e)),
        Err(join) => Some(RunError::LoopPanicked(join)),
    }
}

/// What the listener task's end means; `None` when it was asked to stop and did.
fn listener_failure(
    listened: Result<(), tokio::task::JoinError>,
    asked_to_stop: &CancellationToken,
) -> Option<RunError> {
    match listened {
        Ok(()) if asked_to_stop.is_cancelled() => None,
        Ok(()) => Some(RunError::ListenerStopped),
        Err(join) => Some(RunError::ListenerPanicked(join)),
    }
}

/// The saver ends on its own only with a lasting error; at shutdown its last save's error
/// still counts.
fn learned_failure(
    saved: Result<Result<(), LearnedError>, tokio::task::JoinError>,
    asked_to_stop: &CancellationToken,
) -> Option<RunError> {
    match saved {
        Ok(Err(err)) => Some(RunError::LearnedFailed(err)),
        Ok(Ok(())) if asked_to_stop.is_cancelled() => None,
        Ok(Ok(())) => Some(RunError::LearnedStopped),
        Err(join) => Some(RunError::LearnedPanicked(join)),
    }
}

/// Recover, then reconcile every period and soon after hooks, until shutdown.
pub async fn reconcile_loop(
    controller: Controller,
    debounce: Duration,
    shutdown: CancellationToken,
) -> Result<(), LoopError> {
    let errors = ErrorPolicy::for_period(controller.settings().period);
    let progress = Progress::new(controller.settings().period);
    supervised_loop(controller, debounce, errors, progress, shutdown).await
}

/// [`supervised_loop`] without a readiness record, ending quietly: a fatal error is logged.
/// Kept for the fault suite, which seeds the error policy's jitter and aborts the task.
pub async fn reconcile_loop_with(
    controller: Controller,
    debounce: Duration,
    errors: ErrorPolicy,
    shutdown: CancellationToken,
) {
    let progress = Progress::new(controller.settings().period);
    if let Err(err) = supervised_loop(controller, debounce, errors, progress, shutdown).await {
        error!(error = %Chain(&err), "the reconcile loop stopped");
    }
}

/// The loop: recover (retried by `errors`), then pass after pass, recording each success
/// in `progress`. Returns `Ok` on shutdown and [`LoopError`] on a fatal condition.
/// Every `select!` is `biased`: shutdown first, and the same order on every run, so a
/// simulation on a paused clock replays exactly.
pub async fn supervised_loop(
    controller: Controller,
    debounce: Duration,
    mut errors: ErrorPolicy,
    progress: Progress,
    shutdown: CancellationToken,
) -> Result<(), LoopError> {
    let _running = progress.running();
    let mut gone = GoneStreak::default();
    loop {
        let err = match controller.recover().await {
            Ok(_) => break, // logged by recover()
            Err(err) => err,
        };
        let err = match err {
            RecoveryError::ScaleSet(e) => RecoveryError::ScaleSet(gone.failed(e)?),
            other => {
                gone.reset();
                other
            }
        };
        let delay = recovery_delay(&mut errors, &err);
        error!(error = %Chain(&err), retry_in = ?delay, "recovery failed");
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
    errors.reset();
    gone.reset();
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(next) => {}
            _ = controller.nudged() => {
                // Let a burst of hooks arrive, so it produces one scale-set write.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(debounce) => {}
                }
            }
        }
        next = match controller.reconcile().await {
            Ok(action) => {
                errors.reset();
                gone.reset();
                progress.pass_succeeded();
                Instant::now() + action.requeue_after
            }
            Err(err) => {
                let err = match err {
                    ReconcileError::ObserveFailed(e) => ReconcileError::ObserveFailed(gone.failed(e)?),
                    ReconcileError::ScaleOutFailed(e) => ReconcileError::ScaleOutFailed(gone.failed(e)?),
                };
                let delay = errors.next_delay(&err);
                warn!(error = %Chain(&err), retry_in = ?delay, "reconcile failed");
                Instant::now() + delay
            }
        };
    }
}

/// Consecutive answers of 404 for the scale set itself.
#[derive(Debug, Default)]
struct GoneStreak(u32);

impl GoneStreak {
    /// Count a failed observation: the error back to be retried, or the scale set taken as
    /// gone once it answered 404 [`SCALE_SET_GONE_AFTER`] times in a row.
    fn failed(&mut self, err: ScaleSetError) -> Result<ScaleSetError, LoopError> {
        self.0 = if scale_set_gone(&err) { self.0 + 1 } else { 0 };
        if self.0 >= SCALE_SET_GONE_AFTER {
            Err(LoopError::ScaleSetGone(err))
        } else {
            Ok(err)
        }
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Azure answered 404 for the scale set itself: reading it (its capacity, its instance
/// and NIC listings, all under the scale set's resource id) or setting its capacity. A 404
/// for instance ids in a delete or reimage names only those instances and is retried.
pub fn scale_set_gone(err: &ScaleSetError) -> bool {
    matches!(
        err,
        ScaleSetError::ReadFailed(CloudFault::NotFound)
            | ScaleSetError::SetCapacityFailed { source: CloudFault::NotFound, .. }
    )
}

/// The error policy's next delay for a failed recovery. The policy reads `Retry-After`
/// from a [`ReconcileError`] only, so a scale-set failure is lent to it as one; the busy
/// record's and GitHub's errors carry no delay of their own and take the plain backoff.
fn recovery_delay(errors: &mut ErrorPolicy, err: &RecoveryError) -> Duration {
    let retry_after = match err {
        RecoveryError::ScaleSet(e) => match e.fault() {
            CloudFault::Throttled { retry_after } => *retry_after,
            _ => None,
        },
        RecoveryError::BusyRecord(_) | RecoveryError::Github(_) => None,
    };
    errors.next_delay_for(retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_404_for_the_scale_set_itself_is_fatal() {
        assert!(scale_set_gone(&ScaleSetError::ReadFailed(CloudFault::NotFound)));
        assert!(scale_set_gone(&ScaleSetError::SetCapacityFailed { capacity: 3, source: CloudFault::NotFound }));
        let instances_gone = ScaleSetError::DeleteFailed { ids: vec![], source: CloudFault::NotFound };
        assert!(!scale_set_gone(&instances_gone), "a 404 for instance ids is not the scale set's");
        let throttled = ScaleSetError::ReadFailed(CloudFault::Throttled { retry_after: None });
        assert!(!scale_set_gone(&throttled));
    }

    #[test]
    fn the_scale_set_is_gone_after_three_404s_in_a_row_not_after_one() {
        let not_found = || ScaleSetError::ReadFailed(CloudFault::NotFound);
        let mut streak = GoneStreak::default();
        assert!(streak.failed(not_found()).is_ok());
        assert!(streak.failed(not_found()).is_ok());
        assert!(streak.failed(ScaleSetError::ReadFailed(CloudFault::Throttled { retry_after: None })).is_ok());
        assert!(streak.failed(not_found()).is_ok(), "another fault in between starts the count again");
        assert!(streak.failed(not_found()).is_ok());
        assert!(matches!(streak.failed(not_found()), Err(LoopError::ScaleSetGone(_))));
    }

    #[test]
    fn a_throttled_recovery_waits_at_least_what_azure_asked() {
        let mut errors = ErrorPolicy::new(Duration::from_secs(1), Duration::from_secs(300));
        let err = RecoveryError::ScaleSet(ScaleSetError::ReadFailed(CloudFault::Throttled {
            retry_after: Some(Duration::from_secs(40)),
        }));
        assert_eq!(recovery_delay(&mut errors, &err), Duration::from_secs(40));
    }
}
