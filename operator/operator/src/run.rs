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

use std::{net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    api::{app, AppState},
    controller::{Controller, FatalError, RecoveryError},
    pass::ReconcileError,
    ports::{CloudFault, ScaleSetError},
    readiness::Progress,
    report::Chain,
    retry::ErrorPolicy,
};

/// Server and loop settings.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub max_body_bytes: usize,
    pub debounce: Duration,
    pub shutdown_grace: Duration,
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
    #[error("the controller can no longer be trusted")]
    ControllerFailed(#[source] FatalError),
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
    listener: TcpListener,
    settings: RunSettings,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let errors = ErrorPolicy::for_period(controller.settings().period);
    run_with(controller, listener, settings, errors, shutdown).await
}

/// [`run`] with a given error policy.
pub async fn run_with(
    controller: Controller,
    listener: TcpListener,
    settings: RunSettings,
    errors: ErrorPolicy,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let addr = listener.local_addr().map_err(RunError::ServeFailed)?;
    info!(%addr, pool = %controller.settings().pool, "operator listening");
    // The tasks stop on `stop`: the caller's shutdown, or the failure of the other task.
    let stop = shutdown.child_token();
    let progress = Progress::new(controller.settings().period);
    let router = app(AppState::new(controller.clone(), progress.clone()), settings.max_body_bytes);
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { server.await });
    let mut reconciler =
        tokio::spawn(supervised_loop(controller.clone(), settings.debounce, errors, progress, stop.clone()));

    // A finished JoinHandle must not be awaited again: remember which one ended.
    let (failure, server_ended, loop_ended) = tokio::select! {
        biased;
        _ = shutdown.cancelled() => (None, false, false),
        served = &mut server => (server_failure(served, &shutdown), true, false),
        looped = &mut reconciler => (loop_failure(looped, &shutdown), false, true),
        fatal = controller.failed() => (Some(RunError::ControllerFailed(fatal)), false, false),
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
