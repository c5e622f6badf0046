//! The runner scale set's messages as decisions: which hook a job message stands for on
//! an instance's record, and how long the listener waits after each kind of failure.
//! The listener (`operator::demand`) awaits the port and applies these.
//!
//! A `JobStarted` or `JobCompleted` message and the runner's own hook describe the same
//! event; whichever arrives first applies and the other is a repeat. Messages carry no
//! run attempt and only the job's display name, so a message's job is a *stand-in*
//! (run attempt 0, see [`crate::truth::is_stand_in_job`]): the hook's exact job replaces
//! it, and a job-completed from either side ends whichever job the (ephemeral, one-job)
//! runner runs.

use std::time::Duration;

use crate::{
    fleet::{transition::Hook, InstanceRecord, Phase},
    model::JobRef,
    ports::{ActionsError, JobInfo, JobMessage},
};

/// The job a scale-set message names, as a stand-in [`JobRef`].
pub fn message_job(job: &JobInfo) -> JobRef {
    JobRef {
        repository: job.repository.clone(),
        run_id: job.workflow_run_id,
        run_attempt: 0,
        job_name: if job.job_display_name.is_empty() {
            format!("job {}", job.job_id)
        } else {
            job.job_display_name.clone()
        },
    }
}

/// The runner a job message is about, if it names one.
pub fn message_runner(message: &JobMessage) -> Option<&str> {
    match message {
        JobMessage::Started { runner_name, .. } | JobMessage::Completed { runner_name, .. } => {
            Some(runner_name.as_str()).filter(|n| !n.is_empty())
        }
        JobMessage::Available { .. } | JobMessage::Assigned { .. } => None,
    }
}

/// The hook `message` stands for on `record` (the record of the instance whose runner
/// it names), or `None` when it changes nothing there: the hook got there first, or the
/// message is late (the runner's job already ended), or it is a cancelled assignment.
pub fn hook_for(record: &InstanceRecord, message: &JobMessage) -> Option<Hook> {
    match message {
        JobMessage::Started { job, .. } => match record.phase() {
            // One job per (ephemeral) runner: already busy means the hook was first.
            Phase::Busy(_) | Phase::Completed(_) | Phase::Exited => None,
            Phase::Unregistered | Phase::Registered | Phase::Online => Some(Hook::JobStarted(message_job(job))),
        },
        // A cancelled assignment never reached a runner; one that names a runner did.
        JobMessage::Completed { job, result, .. } => match record.phase() {
            Phase::Busy(active) => Some(Hook::JobCompleted(active.job.clone())),
            Phase::Completed(_) | Phase::Exited => None,
            Phase::Unregistered | Phase::Registered | Phase::Online if result != "canceled" => {
                Some(Hook::JobCompleted(message_job(job)))
            }
            Phase::Unregistered | Phase::Registered | Phase::Online => None,
        },
        JobMessage::Available { .. } | JobMessage::Assigned { .. } => None,
    }
}

/// Request ids of the `JobAvailable` messages in a batch: what to acquire (GHES).
pub fn to_acquire(jobs: &[JobMessage]) -> Vec<i64> {
    jobs.iter()
        .filter_map(|m| match m {
            JobMessage::Available { job } if job.request_id != 0 => Some(job.request_id),
            _ => None,
        })
        .collect()
}

/// The longest wait between two attempts to open a session while another one is open.
pub const CONFLICT_BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);
/// The longest wait after any other failure.
pub const FAILURE_BACKOFF_CAP: Duration = Duration::from_secs(2 * 60);

/// How long the listener waits before its next attempt after `failures` failures in a
/// row, the last being `error`. A session conflict (a crashed predecessor's session that
/// GitHub has not expired yet) starts at 30 s and doubles to 10 min (§16.1); throttling
/// waits what GitHub says, at least 5 s; anything else starts at 1 s and doubles to 2 min.
/// `jitter` in `[0, 1)` spreads restarts of many operators; the simulator passes a
/// seeded value.
pub fn retry_delay(error: &ActionsError, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let (base, cap) = match error {
        ActionsError::SessionConflict => (Duration::from_secs(30), CONFLICT_BACKOFF_CAP),
        ActionsError::Throttled { retry_after } => {
            return retry_after.unwrap_or(Duration::from_secs(30)).max(Duration::from_secs(5)).min(CONFLICT_BACKOFF_CAP)
        }
        _ => (Duration::from_secs(1), FAILURE_BACKOFF_CAP),
    };
    let delay = base.saturating_mul(1u32 << doublings).min(cap);
    delay + delay.mul_f64(jitter.clamp(0.0, 1.0) * 0.2)
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::{
        fleet::RunnerRef,
        ports::{CloudInstance, CloudState, MarkerHandle},
    };

    fn info(run: u64) -> JobInfo {
        JobInfo {
            job_id: "85cb98eb".into(),
            request_id: 0,
            repository: "octo-org/octo-repo".into(),
            workflow_run_id: run,
            job_display_name: "build".into(),
            queue_time: None,
            scale_set_assign_time: None,
            runner_assign_time: None,
            finish_time: None,
        }
    }

    fn started() -> JobMessage {
        JobMessage::Started { job: info(7), runner_id: 3, runner_name: "vm0-abc".into() }
    }

    fn completed(result: &str) -> JobMessage {
        JobMessage::Completed { job: info(7), runner_id: 3, runner_name: "vm0-abc".into(), result: result.into() }
    }

    fn record() -> InstanceRecord {
        let cloud = CloudInstance {
            id: crate::model::InstanceId::new("0"),
            name: "vm0".into(),
            private_ip: None,
            state: CloudState::Running,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        let mut r = InstanceRecord::new(&cloud, Instant::now());
        r.issue_registration(RunnerRef { name: "vm0-abc".into(), id: Some(3) }, Instant::now());
        r
    }

    fn hook_job(run_attempt: u32) -> JobRef {
        JobRef { repository: "octo-org/octo-repo".into(), run_id: 7, run_attempt, job_name: "build".into() }
    }

    #[test]
    fn a_started_message_before_the_hook_starts_a_stand_in_job_the_hook_then_replaces() {
        let r = record();
        let Some(Hook::JobStarted(job)) = hook_for(&r, &started()) else { panic!("a start") };
        assert!(crate::truth::is_stand_in_job(&job));
        assert_eq!((job.run_id, job.job_name.as_str()), (7, "build"));
        let mut busy = r.clone();
        busy.start_job(job, MarkerHandle { message_id: "m".into(), pop_receipt: "p".into() }, Instant::now());
        // The hook's exact job replaces the stand-in.
        let t = crate::fleet::transition::transition(&busy, &Hook::JobStarted(hook_job(1)), true).unwrap();
        assert!(matches!(t, crate::fleet::transition::Transition::StartJob { replacing: Some(_), .. }), "{t:?}");
        // A second started message is a repeat.
        assert_eq!(hook_for(&busy, &started()), None);
    }

    #[test]
    fn a_completed_message_ends_whichever_job_the_runner_runs() {
        let mut busy = record();
        busy.start_job(hook_job(2), MarkerHandle { message_id: "m".into(), pop_receipt: "p".into() }, Instant::now());
        assert_eq!(hook_for(&busy, &completed("succeeded")), Some(Hook::JobCompleted(hook_job(2))));
        let mut done = busy.clone();
        done.enter(Phase::Completed(hook_job(2)), Instant::now());
        assert_eq!(hook_for(&done, &completed("succeeded")), None, "the hook was first");
    }

    #[test]
    fn a_cancelled_assignment_changes_no_idle_record() {
        assert_eq!(hook_for(&record(), &completed("canceled")), None);
        assert!(matches!(hook_for(&record(), &completed("failed")), Some(Hook::JobCompleted(_))));
    }

    #[test]
    fn only_available_jobs_with_a_request_id_are_acquired() {
        let mut a = info(1);
        a.request_id = 41;
        let jobs = vec![
            JobMessage::Available { job: a },
            JobMessage::Available { job: info(2) },
            JobMessage::Assigned { job: info(3) },
        ];
        assert_eq!(to_acquire(&jobs), vec![41]);
    }

    #[test]
    fn a_session_conflict_backs_off_from_thirty_seconds_to_ten_minutes() {
        let c = ActionsError::SessionConflict;
        assert_eq!(retry_delay(&c, 1, 0.0), Duration::from_secs(30));
        assert_eq!(retry_delay(&c, 2, 0.0), Duration::from_secs(60));
        assert_eq!(retry_delay(&c, 9, 0.0), CONFLICT_BACKOFF_CAP);
        assert_eq!(retry_delay(&c, 1, 0.5), Duration::from_secs(33), "jitter adds up to 20 %");
        let t = ActionsError::Throttled { retry_after: Some(Duration::from_secs(1)) };
        assert_eq!(retry_delay(&t, 1, 0.0), Duration::from_secs(5));
        let e = ActionsError::InvalidAnswer("x".into());
        assert_eq!(retry_delay(&e, 1, 0.0), Duration::from_secs(1));
        assert_eq!(retry_delay(&e, 30, 0.0), FAILURE_BACKOFF_CAP);
    }
}
