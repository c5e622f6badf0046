//! What `/readyz` answers from: the reconcile loop's progress, kept by the loop itself
//! (`run.rs`) and read by the handler without any outbound call. A probe that pinged the
//! queue and the scale set on every request would spend Azure's read quota and still
//! miss the failure that matters: a loop that stopped, or passes that keep failing.
//!
//! Ready means: start-up recovery has finished, the loop is running, and its last
//! successful pass is at most [`STALE_AFTER_PERIODS`] reconcile periods old. Times are on
//! tokio's clock, so tests move them with paused time.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;

/// A pass older than this many reconcile periods makes the operator not ready. Three,
/// because a failed pass is retried within one period (the error policy's cap), so two
/// failures in a row are tolerated and a third is not.
pub const STALE_AFTER_PERIODS: u32 = 3;

/// The reconcile loop's progress, shared by the loop (writer) and `/readyz` (reader).
/// Cheap to clone; all clones share one state. Lock-free, so no lock can be poisoned.
#[derive(Clone, Debug)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    period: Duration,
    /// The origin of `last_pass_ms`.
    origin: Instant,
    running: AtomicBool,
    /// Milliseconds after `origin` of the last successful pass, plus one; 0 = none yet.
    last_pass_ms: AtomicU64,
}

/// Why the operator is not ready; the text is the `/readyz` reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("recovering state from the scale set, the busy record and GitHub")]
    Recovering,
    #[error("the reconcile loop is not running")]
    LoopNotRunning,
    #[error("no reconcile pass has succeeded yet")]
    NoPassYet,
    #[error(
        "the last successful reconcile pass was {ago:?} ago (more than {STALE_AFTER_PERIODS} periods of {period:?})"
    )]
    PassesStalled { ago: Duration, period: Duration },
    /// The scale-set listener has no open session, so the pool cannot see its demand.
    #[error("the runner scale set listener is {state}: {reason}")]
    NoDemand { state: &'static str, reason: String },
}

impl Progress {
    /// For a loop that passes every `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                period,
                origin: Instant::now(),
                running: AtomicBool::new(false),
                last_pass_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Marks the loop running until the returned guard drops: when the loop returns, fails
    /// or unwinds from a panic, readiness says so at once.
    pub fn running(&self) -> RunningGuard {
        self.inner.running.store(true, Ordering::Release);
        RunningGuard { progress: self.clone() }
    }

    /// A pass succeeded now.
    pub fn pass_succeeded(&self) {
        let ms = Instant::now().saturating_duration_since(self.inner.origin).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX - 1);
        self.inner.last_pass_ms.store(ms + 1, Ordering::Release);
    }

    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::Acquire)
    }

    /// How long ago the last successful pass was, if there was one.
    pub fn last_pass_age(&self) -> Option<Duration> {
        match self.inner.last_pass_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(Instant::now().saturating_duration_since(self.inner.origin + Duration::from_millis(ms - 1))),
        }
    }

    /// The answer of `/readyz`, given whether recovery has finished.
    pub fn readiness(&self, recovered: bool) -> Result<(), NotReady> {
        if !self.is_running() {
            return Err(NotReady::LoopNotRunning);
        }
        if !recovered {
            return Err(NotReady::Recovering);
        }
        let period = self.inner.period;
        match self.last_pass_age() {
            None => Err(NotReady::NoPassYet),
            Some(ago) if ago > period * STALE_AFTER_PERIODS => Err(NotReady::PassesStalled { ago, period }),
            Some(_) => Ok(()),
        }
    }
}

/// See [`Progress::running`].
#[derive(Debug)]
pub struct RunningGuard {
    progress: Progress,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.progress.inner.running.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn ready_only_while_the_loop_runs_recovered_and_passes_are_recent() {
        let progress = Progress::new(PERIOD);
        assert_eq!(progress.readiness(true), Err(NotReady::LoopNotRunning));
        let guard = progress.running();
        assert_eq!(progress.readiness(false), Err(NotReady::Recovering));
        assert_eq!(progress.readiness(true), Err(NotReady::NoPassYet));
        progress.pass_succeeded();
        assert_eq!(progress.readiness(true), Ok(()));

        tokio::time::advance(PERIOD * STALE_AFTER_PERIODS).await;
        assert_eq!(progress.readiness(true), Ok(()), "exactly three periods is still fresh");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(progress.readiness(true), Err(NotReady::PassesStalled { .. })));
        progress.pass_succeeded();
        assert_eq!(progress.readiness(true), Ok(()));

        drop(guard);
        assert_eq!(progress.readiness(true), Err(NotReady::LoopNotRunning));
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_panics_is_not_running_any_more() {
        let progress = Progress::new(PERIOD);
        let task = tokio::spawn({
            let progress = progress.clone();
            async move {
                let _running = progress.running();
                progress.pass_succeeded();
                panic!("a bug in the loop");
            }
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(progress.readiness(true), Err(NotReady::LoopNotRunning));
    }
}
