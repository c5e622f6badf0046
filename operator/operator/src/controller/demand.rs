//! What the runner scale set tells the controller: the demand (its statistics, read by
//! every pass) and its job messages, applied to the records like the runners' own hooks
//! (`operator_core::demand::hook_for`: whichever of message and hook arrives first
//! applies, the other is a repeat). The listener (`crate::listener`) calls these and
//! acknowledges a message only after they return.

use time::OffsetDateTime;
use tracing::{debug, instrument, warn};

use super::{hooks::HookError, Controller};
use crate::{
    demand::{hook_for, message_runner},
    ports::{JobMessage, Statistics},
};

/// The demand as last reported, and the listener's state.
#[derive(Debug, Default)]
pub(super) struct DemandState {
    statistics: Option<Statistics>,
    listener: Option<ListenerStatus>,
}

impl DemandState {
    pub(super) fn assigned_jobs(&self) -> Option<u32> {
        self.statistics.map(|s| s.assigned_jobs)
    }
}

/// Where the scale-set listener is; `/readyz` says why it is not listening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerStatus {
    /// Finding or creating the scale set, opening the session.
    Starting,
    /// A session is open and polled.
    Listening,
    /// Waiting before the next attempt (a conflicting session, GitHub unreachable).
    Waiting { reason: String },
    /// Shut down; the session was closed.
    Stopped,
}

impl ListenerStatus {
    pub const NAMES: [&'static str; 4] = ["starting", "listening", "waiting", "stopped"];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Listening => "listening",
            Self::Waiting { .. } => "waiting",
            Self::Stopped => "stopped",
        }
    }
}

/// Could a job message not be applied for a reason that passes (so it must not be
/// acknowledged yet)? Refusals from the record are final: the message is stale.
fn transient(err: &HookError) -> bool {
    matches!(err, HookError::BusyRecordFailed(_) | HookError::Recovering | HookError::CloudUnavailable(_))
}

impl Controller {
    /// The scale set's statistics arrived (with a message, or with a new session).
    pub fn apply_statistics(&self, statistics: Statistics) {
        let before = {
            let mut state = self.state();
            state.demand.statistics.replace(statistics)
        };
        let metrics = self.metrics();
        metrics.assigned_jobs.set(i64::from(statistics.assigned_jobs));
        metrics.running_jobs.set(i64::from(statistics.running_jobs));
        metrics.waiting_jobs.set(i64::from(statistics.waiting_jobs()));
        if before.map(|s| s.assigned_jobs) != Some(statistics.assigned_jobs) {
            debug!(assigned = statistics.assigned_jobs, running = statistics.running_jobs, "demand changed");
            self.nudge();
        }
    }

    /// Jobs assigned to the pool, for the policy; `None` until the scale set reported
    /// (and always without a demand source).
    pub fn assigned_jobs(&self) -> Option<u32> {
        self.state().demand.assigned_jobs()
    }

    /// The last statistics the scale set reported.
    pub fn statistics(&self) -> Option<Statistics> {
        self.state().demand.statistics
    }

    pub fn set_listener_status(&self, status: ListenerStatus) {
        let metrics = self.metrics();
        for name in ListenerStatus::NAMES {
            let value = i64::from(name == status.name());
            metrics.listener_state.get_or_create(&crate::metrics::StateLabel { state: name }).set(value);
        }
        self.state().demand.listener = Some(status);
    }

    /// The listener's state; `None` without a demand source.
    pub fn listener_status(&self) -> Option<ListenerStatus> {
        self.state().demand.listener.clone()
    }

    /// Apply one job message to the instance whose runner it names. `Err` only when it
    /// could not be applied for a passing reason (the busy record is unreachable, the
    /// operator is still recovering): the listener must not acknowledge it yet.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty, runner = message_runner(message).unwrap_or("")))]
    pub async fn apply_job_message(&self, message: &JobMessage) -> Result<(), HookError> {
        self.observe_job_times(message);
        let Some(runner) = message_runner(message) else { return Ok(()) };
        let Some(id) = self.state().fleet.by_runner_name(runner).map(|r| r.id().clone()) else {
            // Not one of this pool's boots (a previous life's runner, or one being created).
            debug!("job message for a runner no instance has; nothing to change");
            return Ok(());
        };
        tracing::Span::current().record("instance", id.as_str());
        self.ensure_recovered()?;
        let _turn = self.turn(&id).await;
        let Some(record) = self.state().fleet.get(&id).cloned() else { return Ok(()) };
        let Some(hook) = hook_for(&record, message) else {
            debug!("job message repeats what the hooks already applied");
            return Ok(());
        };
        let kind = hook.kind();
        match self.execute(&record, hook).await {
            Ok(outcome) => {
                self.metrics().hook(kind, if outcome.changed { "from_message" } else { "repeated" });
                Ok(())
            }
            Err(err) if transient(&err) => Err(err),
            Err(err) => {
                warn!(error = %crate::report::Chain(&err), "job message does not fit the instance's record; ignored");
                Ok(())
            }
        }
    }

    /// Wait (assigned → started) and duration (started → completed), from the message's
    /// own timestamps, so they hold whatever the delivery delay.
    fn observe_job_times(&self, message: &JobMessage) {
        let seconds = |from: Option<OffsetDateTime>, to: Option<OffsetDateTime>| match (from, to) {
            (Some(a), Some(b)) if b >= a => Some((b - a).as_seconds_f64()),
            _ => None,
        };
        match message {
            JobMessage::Started { job, .. } => {
                let assigned = job.scale_set_assign_time.or(job.queue_time);
                if let Some(s) = seconds(assigned, job.runner_assign_time) {
                    self.metrics().job_wait.observe(s);
                }
            }
            JobMessage::Completed { job, result, .. } if result != "canceled" => {
                if let Some(s) = seconds(job.runner_assign_time, job.finish_time) {
                    self.metrics().job_duration.observe(s);
                }
            }
            _ => {}
        }
    }
}
