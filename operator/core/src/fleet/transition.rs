//! The hook state machine as a value: what a runner VM's request means for its
//! record, decided from the record alone. The controller's executor carries out the
//! answer (stores or removes the busy marker, asks GitHub for a registration) and then
//! applies it to the record with the named methods of [`InstanceRecord`]; nothing here
//! awaits, reads a clock or touches a port. Property tests (`tests/hook_transitions.rs`)
//! check the table: no hook sequence puts a busy instance into an operation or leaks
//! its marker, and every hook applied twice changes nothing the second time.

use crate::{
    fleet::{InstanceRecord, Phase, RunnerRef},
    labels::HookKind,
    model::{InstanceState, JobRef},
    ports::{CloudState, MarkerHandle},
    truth,
};

/// A request from a runner VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// The booting VM asks for its runner registration.
    Registration,
    /// The runner's job-started hook.
    JobStarted(JobRef),
    /// The runner's job-completed hook (GitHub runs it before the job has finished).
    JobCompleted(JobRef),
    /// The runner process on the VM ended.
    RunnerExited,
}

impl Hook {
    pub fn kind(&self) -> HookKind {
        match self {
            Self::Registration => HookKind::Registration,
            Self::JobStarted(_) => HookKind::JobStarted,
            Self::JobCompleted(_) => HookKind::JobCompleted,
            Self::RunnerExited => HookKind::RunnerExited,
        }
    }
}

/// Why a hook is refused, from the record alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Ask again shortly (a reimaged VM that booted before Azure reported the reimage done).
    NotReadyYet { state: InstanceState },
    /// This boot already has its registration.
    AlreadyRegistered,
    /// The hook makes no sense in the instance's state.
    WrongState { state: InstanceState, hook: HookKind },
    /// The hook names another job than the one the instance runs.
    JobMismatch { running: Box<JobRef>, reported: Box<JobRef> },
    /// runner-exited on a Busy record while GitHub's last listing shows the runner
    /// running a job: a job can send that hook itself, so GitHub's next listing decides.
    RunnerBusyAtGithub,
}

/// What the executor does for an accepted hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The hook repeats one already applied: answer success, change nothing.
    Repeat,
    /// Issue this boot's registration (then [`InstanceRecord::issue_registration`]).
    /// With `withdraw`, the boot's earlier JIT runner never came online as far as the
    /// record knows: ask GitHub first, remove it if it is neither online nor busy
    /// (then [`InstanceRecord::withdraw_registration`]), and refuse with
    /// [`Refusal::AlreadyRegistered`] if it is.
    Register { withdraw: Option<WithdrawRunner> },
    /// Store a busy marker for `job`, then [`InstanceRecord::start_job`] under it; then
    /// remove `replacing`, the marker of a stand-in job a pass stored when this job's
    /// hook seemed lost (best effort: a failed removal is left to the next pass).
    StartJob { job: JobRef, replacing: Option<MarkerHandle>, first_start: bool },
    /// Remove the busy marker `remove` (if any; the hook fails if that fails), then
    /// [`InstanceRecord::enter`] `next`.
    Finish { remove: Option<MarkerHandle>, next: Phase, note: FinishNote },
}

/// The JIT runner of an unanswered registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawRunner {
    pub runner_id: u64,
    pub name: String,
}

/// What a [`Transition::Finish`] means, for its log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishNote {
    JobCompleted,
    /// job-started never arrived; the job ran all the same.
    CompletedWithoutStart,
    RunnerExited,
    /// job-completed was lost; the runner is gone, and so is the job.
    ExitedWhileBusy(JobRef),
}

/// The transition of `record` for `hook`. `jit` says whether registrations are JIT
/// configs (a lost answer can be withdrawn and issued again) or tokens (never twice:
/// the first token may be in use by `config.sh`).
pub fn transition(record: &InstanceRecord, hook: &Hook, jit: bool) -> Result<Transition, Refusal> {
    match hook {
        Hook::Registration => registration(record, jit),
        Hook::JobStarted(job) => job_started(record, job),
        Hook::JobCompleted(job) => job_completed(record, job),
        Hook::RunnerExited => runner_exited(record),
    }
}

fn registration(record: &InstanceRecord, jit: bool) -> Result<Transition, Refusal> {
    let state = record.state();
    let registered = *record.phase() != Phase::Unregistered || record.runner().is_some();
    match state {
        // The new boot can be up before Azure reports the reimage finished; the boot
        // script retries on 503 until the operator has seen the operation complete.
        InstanceState::Reimaging => Err(Refusal::NotReadyYet { state }),
        // Listed deallocated, yet asking: it was started after the listing. The boot script
        // retries until a listing shows it running (the cloud is the truth of power).
        // Parked VMs and VMs being started likewise: the start's boot can ask before the
        // operator has seen the start finish.
        InstanceState::Deallocated | InstanceState::Parked | InstanceState::Starting => {
            Err(Refusal::NotReadyYet { state })
        }
        // Told to park and asking again (it does every little while until deallocated):
        // answered afresh, so it may yet get a registration if the pool now needs it. Once
        // its deallocation has begun it waits for the start.
        InstanceState::Parking if record.operation().is_some() || record.cloud() != CloudState::Running => {
            Err(Refusal::NotReadyYet { state })
        }
        InstanceState::AwaitingRegistration | InstanceState::Provisioning | InstanceState::Parking if !registered => {
            Ok(Transition::Register { withdraw: None })
        }
        InstanceState::AwaitingRegistration | InstanceState::Provisioning => {
            match (jit, record.phase(), record.runner()) {
                (true, Phase::Registered, Some(RunnerRef { id: Some(id), name })) => {
                    Ok(Transition::Register { withdraw: Some(WithdrawRunner { runner_id: *id, name: name.clone() }) })
                }
                _ => Err(Refusal::AlreadyRegistered),
            }
        }
        // A job on a VM whose runner came online must not obtain another registration.
        _ if registered => Err(Refusal::AlreadyRegistered),
        _ => Err(Refusal::WrongState { state, hook: HookKind::Registration }),
    }
}

fn job_started(record: &InstanceRecord, job: &JobRef) -> Result<Transition, Refusal> {
    let state = record.state();
    // A VM in the reserve holds no registration: it can run no job.
    if record.operation().is_some() || state.is_in_operation() || state.is_parked() {
        return Err(Refusal::WrongState { state, hook: HookKind::JobStarted });
    }
    let first_start = record.registered_at().is_some();
    match record.phase() {
        Phase::Busy(active) if active.job == *job => Ok(Transition::Repeat),
        Phase::Completed(done) if done == job => Ok(Transition::Repeat),
        Phase::Busy(active) if truth::is_stand_in_job(&active.job) => {
            Ok(Transition::StartJob { job: job.clone(), replacing: Some(active.marker.clone()), first_start: false })
        }
        Phase::Busy(active) => {
            Err(Refusal::JobMismatch { running: Box::new(active.job.clone()), reported: Box::new(job.clone()) })
        }
        Phase::Completed(_) | Phase::Exited => Err(Refusal::WrongState { state, hook: HookKind::JobStarted }),
        Phase::Unregistered | Phase::Registered | Phase::Online => {
            Ok(Transition::StartJob { job: job.clone(), replacing: None, first_start })
        }
    }
}

fn job_completed(record: &InstanceRecord, job: &JobRef) -> Result<Transition, Refusal> {
    match record.phase() {
        // A stand-in job (its job-started was lost) matches any completed job.
        Phase::Busy(active) if active.job != *job && !truth::is_stand_in_job(&active.job) => {
            Err(Refusal::JobMismatch { running: Box::new(active.job.clone()), reported: Box::new(job.clone()) })
        }
        Phase::Completed(done) if done != job => {
            Err(Refusal::JobMismatch { running: Box::new(done.clone()), reported: Box::new(job.clone()) })
        }
        Phase::Completed(_) | Phase::Exited => Ok(Transition::Repeat),
        Phase::Busy(active) => Ok(Transition::Finish {
            remove: Some(active.marker.clone()),
            next: Phase::Completed(job.clone()),
            note: FinishNote::JobCompleted,
        }),
        Phase::Unregistered | Phase::Registered | Phase::Online => Ok(Transition::Finish {
            remove: None,
            next: Phase::Completed(job.clone()),
            note: FinishNote::CompletedWithoutStart,
        }),
    }
}

fn runner_exited(record: &InstanceRecord) -> Result<Transition, Refusal> {
    let state = record.state();
    if state.is_parked() {
        return Err(Refusal::WrongState { state, hook: HookKind::RunnerExited });
    }
    Ok(match record.phase() {
        Phase::Exited => Transition::Repeat,
        Phase::Busy(_) if record.busy_at_github() => return Err(Refusal::RunnerBusyAtGithub),
        Phase::Busy(active) => Transition::Finish {
            remove: Some(active.marker.clone()),
            next: Phase::Exited,
            note: FinishNote::ExitedWhileBusy(active.job.clone()),
        },
        _ => Transition::Finish { remove: None, next: Phase::Exited, note: FinishNote::RunnerExited },
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use tokio::time::Instant;

    use super::*;
    use crate::ports::CloudInstance;

    #[test]
    fn a_registration_from_an_instance_listed_deallocated_waits_until_it_is_seen_running() {
        let cloud = CloudInstance {
            id: crate::model::InstanceId::new("1"),
            name: "vm1".into(),
            private_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11))),
            state: CloudState::Deallocated,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        let record = InstanceRecord::new(&cloud, Instant::now());
        for jit in [true, false] {
            assert_eq!(
                transition(&record, &Hook::Registration, jit),
                Err(Refusal::NotReadyYet { state: InstanceState::Parked })
            );
        }
    }

    #[test]
    fn a_vm_told_to_park_may_ask_again_until_its_deallocation_begins_and_runs_no_job() {
        let now = Instant::now();
        let cloud = CloudInstance {
            id: crate::model::InstanceId::new("1"),
            name: "vm1".into(),
            private_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11))),
            state: CloudState::Running,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        let mut record = InstanceRecord::new(&cloud, now);
        record.answer_park(now);
        assert_eq!(record.state(), InstanceState::Parking);
        assert_eq!(transition(&record, &Hook::Registration, true), Ok(Transition::Register { withdraw: None }));
        let job = JobRef { repository: "o/r".into(), run_id: 1, run_attempt: 1, job_name: "j".into() };
        assert!(matches!(transition(&record, &Hook::JobStarted(job), true), Err(Refusal::WrongState { .. })));
        assert!(matches!(transition(&record, &Hook::RunnerExited, true), Err(Refusal::WrongState { .. })));
        record.begin_operation(crate::fleet::Operation::Park, now);
        assert_eq!(
            transition(&record, &Hook::Registration, true),
            Err(Refusal::NotReadyYet { state: InstanceState::Parking })
        );
    }
}
