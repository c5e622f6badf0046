//! Wiring: the HTTP server and the reconcile loop under one shutdown signal.

use std::{net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    api::{app, AppState},
    controller::Controller,
    retry::ErrorPolicy,
};

/// Server and loop settings.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub max_body_bytes: usize,
    pub debounce: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("serving HTTP failed")]
    ServeFailed(#[source] std::io::Error),
}

/// Serve the API on `listener` and run the reconcile loop until `shutdown` fires;
/// then let in-flight requests and scale-set operations finish within the grace time.
pub async fn run(
    controller: Controller,
    listener: TcpListener,
    settings: RunSettings,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let addr = listener.local_addr().map_err(RunError::ServeFailed)?;
    info!(%addr, pool = %controller.settings().pool, "operator listening");
    let router = app(AppState { controller: controller.clone() }, settings.max_body_bytes);
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });
    let reconciler = tokio::spawn(reconcile_loop(controller.clone(), settings.debounce, shutdown.clone()));

    shutdown.cancelled().await;
    info!(grace = ?settings.shutdown_grace, "shutting down: draining requests and operations");
    let deadline = Instant::now() + settings.shutdown_grace;
    let drained = tokio::time::timeout_at(deadline, async {
        let served = server.await;
        let _ = reconciler.await;
        controller.operations().close();
        controller.operations().wait().await;
        served
    })
    .await;
    match drained {
        Ok(Ok(Ok(()))) => {
            info!("shut down cleanly");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(RunError::ServeFailed(e)),
        Ok(Err(join)) => {
            error!(error = %join, "server task ended abnormally");
            Ok(())
        }
        Err(_) => {
            warn!("grace time over; abandoning in-flight work (the next start recovers it)");
            Ok(())
        }
    }
}

/// Recover, then reconcile every period and soon after hooks, until shutdown.
pub async fn reconcile_loop(controller: Controller, debounce: Duration, shutdown: CancellationToken) {
    let errors = ErrorPolicy::for_period(controller.settings().period);
    reconcile_loop_with(controller, debounce, errors, shutdown).await;
}

/// [`reconcile_loop`] with a given error policy (the fault suite seeds its jitter).
/// Every `select!` is `biased`: shutdown first, and the same order on every run, so a
/// simulation on a paused clock replays exactly.
pub async fn reconcile_loop_with(
    controller: Controller,
    debounce: Duration,
    mut errors: ErrorPolicy,
    shutdown: CancellationToken,
) {
    loop {
        match controller.recover().await {
            Ok(_) => break,
            Err(err) => {
                let delay = Duration::from_secs(5);
                error!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), retry_in = ?delay, "recovery failed");
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
            _ = controller.nudged() => {
                // Let a burst of hooks arrive, so it produces one scale-set write.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(debounce) => {}
                }
            }
        }
        next = match controller.reconcile().await {
            Ok(action) => {
                errors.reset();
                Instant::now() + action.requeue_after
            }
            Err(err) => {
                let delay = errors.next_delay(&err);
                warn!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), retry_in = ?delay, "reconcile failed");
                Instant::now() + delay
            }
        };
    }
}
