//! Property tests over the hook transition table (`fleet::transition`), as the policy
//! has them: random sequences of hooks, GitHub corrections and the operator's own
//! operations are played against one instance record, with an executor model that
//! carries out each transition the way the controller does and whose busy-record and
//! GitHub writes fail at random. After every step:
//!
//! - the busy record agrees with the record: the stored markers, less the ones handed
//!   to the pass to remove, are exactly the record's busy marker (none unless Busy);
//! - a busy instance is never eligible for a reimage or delete, and no hook starts one;
//! - the instance never has two live registrations at GitHub;
//! - a job or runner hook that changed the record changes nothing when it comes again.

use std::collections::BTreeSet;

use operator_core::{
    fleet::{
        transition::{transition, Hook, Refusal, Transition},
        InstanceRecord, Operation, Phase, RunnerRef,
    },
    model::{InstanceId, InstanceState, JobRef},
    ports::{CloudInstance, CloudState, MarkerHandle},
    truth,
};
use proptest::prelude::*;
use tokio::time::Instant;

#[derive(Clone, Debug)]
enum Step {
    Hook(HookChoice),
    /// GitHub lists the registered runner online.
    RunnerOnline,
    /// GitHub lists the runner busy but no job-started came: the pass stores a stand-in.
    JobStartedLost,
    /// The pass decides to recycle the instance (it asks `may_recycle` first).
    Recycle(Operation),
    /// The scale set accepted the operation.
    OperationDone,
    /// The scale-set call failed.
    OperationFailed,
}

#[derive(Clone, Debug)]
enum HookChoice {
    Registration,
    JobStarted(u8),
    JobCompleted(u8),
    RunnerExited,
}

fn job(n: u8) -> JobRef {
    JobRef { repository: "o/r".into(), run_id: u64::from(n) + 1, run_attempt: 1, job_name: format!("job {n}") }
}

fn hook(choice: &HookChoice) -> Hook {
    match choice {
        HookChoice::Registration => Hook::Registration,
        HookChoice::JobStarted(n) => Hook::JobStarted(job(*n)),
        HookChoice::JobCompleted(n) => Hook::JobCompleted(job(*n)),
        HookChoice::RunnerExited => Hook::RunnerExited,
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Hook(HookChoice::Registration)),
        4 => (0u8..3).prop_map(|n| Step::Hook(HookChoice::JobStarted(n))),
        4 => (0u8..3).prop_map(|n| Step::Hook(HookChoice::JobCompleted(n))),
        3 => Just(Step::Hook(HookChoice::RunnerExited)),
        2 => Just(Step::RunnerOnline),
        1 => Just(Step::JobStartedLost),
        1 => prop_oneof![Just(Operation::Reimage), Just(Operation::Delete)].prop_map(Step::Recycle),
        1 => Just(Step::OperationDone),
        1 => Just(Step::OperationFailed),
    ]
}

/// One instance, its busy record and its runners at GitHub, driven as the controller drives them.
struct Model {
    record: InstanceRecord,
    jit: bool,
    /// Message ids of the markers in the queue.
    stored: BTreeSet<String>,
    /// Markers handed to the pass to remove (a failed best-effort removal).
    orphans: BTreeSet<String>,
    /// Runner ids GitHub has for this instance.
    runners: BTreeSet<u64>,
    /// Runners GitHub shows online.
    online: BTreeSet<u64>,
    next: u64,
}

impl Model {
    fn new(jit: bool) -> Self {
        let cloud = CloudInstance {
            id: InstanceId::new("1"),
            name: "vmsstest000001".into(),
            private_ip: None,
            state: CloudState::Running,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        Self {
            record: InstanceRecord::new(&cloud, Instant::now()),
            jit,
            stored: BTreeSet::new(),
            orphans: BTreeSet::new(),
            runners: BTreeSet::new(),
            online: BTreeSet::new(),
            next: 1,
        }
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn store_marker(&mut self, fails: bool) -> Option<MarkerHandle> {
        if fails {
            return None;
        }
        let id = format!("m{}", self.fresh());
        self.stored.insert(id.clone());
        Some(MarkerHandle { message_id: id, pop_receipt: "p".into() })
    }

    fn remove_marker(&mut self, marker: &MarkerHandle, fails: bool) -> bool {
        if fails {
            return false;
        }
        self.stored.remove(&marker.message_id);
        self.orphans.remove(&marker.message_id);
        true
    }

    /// Carries out `transition` as the controller's executor does. Returns whether the
    /// record changed.
    fn execute(&mut self, transition: Transition, fails: bool) -> bool {
        let now = Instant::now();
        match transition {
            Transition::Repeat => false,
            Transition::Register { withdraw } => {
                let mut withdrawn = false;
                if let Some(unused) = withdraw {
                    if self.online.contains(&unused.runner_id) {
                        return false; // GitHub shows it online: 409
                    }
                    self.runners.remove(&unused.runner_id);
                    self.record.withdraw_registration(now);
                    withdrawn = true;
                }
                if fails {
                    return withdrawn; // GitHub issued nothing
                }
                let id = self.fresh();
                self.runners.insert(id);
                let runner_id = self.jit.then_some(id);
                self.record
                    .issue_registration(RunnerRef { name: format!("vmsstest000001-{id:06x}"), id: runner_id }, now);
                true
            }
            Transition::StartJob { job, replacing, .. } => {
                let Some(handle) = self.store_marker(fails) else { return false };
                self.record.start_job(job, handle, now);
                if let Some(old) = replacing {
                    // Best effort: a failure hands the marker to the next pass.
                    if !self.remove_marker(&old, fails) {
                        self.orphans.insert(old.message_id);
                    }
                }
                true
            }
            Transition::Finish { remove, next, .. } => {
                if let Some(marker) = &remove {
                    if !self.remove_marker(marker, fails) {
                        return false;
                    }
                }
                self.record.enter(next, now);
                true
            }
        }
    }

    fn apply(&mut self, step: &Step, fails: bool) -> Result<(), TestCaseError> {
        let now = Instant::now();
        match step {
            Step::Hook(choice) => {
                let hook = hook(choice);
                let operation_before = self.record.operation();
                let Ok(t) = transition(&self.record, &hook, self.jit) else { return Ok(()) };
                let changed = self.execute(t, fails);
                prop_assert_eq!(self.record.operation(), operation_before, "a hook never starts or ends an operation");
                if changed && !matches!(hook, Hook::Registration) {
                    let again = transition(&self.record, &hook, self.jit);
                    prop_assert!(
                        matches!(again, Ok(Transition::Repeat) | Err(_)),
                        "{:?} applied twice changed the record again: {:?}",
                        hook,
                        again
                    );
                }
            }
            Step::RunnerOnline => {
                if let (Phase::Registered, Some(runner)) = (self.record.phase().clone(), self.record.runner().cloned())
                {
                    if self.record.operation().is_none() {
                        let id = runner.id.unwrap_or_else(|| *self.runners.iter().next().unwrap_or(&0));
                        self.online.insert(id);
                        self.record.learn_runner_id(id, now);
                        self.record.enter(Phase::Online, now);
                    }
                }
            }
            Step::JobStartedLost => {
                if matches!(self.record.phase(), Phase::Registered | Phase::Online) && self.record.operation().is_none()
                {
                    if let (Some(runner), Some(handle)) = (self.record.runner().cloned(), self.store_marker(fails)) {
                        self.record.know_runner(runner.clone(), now);
                        self.record.start_job(truth::unknown_job("o/r", &runner.name), handle, now);
                    }
                }
            }
            Step::Recycle(operation) => {
                if matches!(self.record.phase(), Phase::Busy(_)) {
                    prop_assert!(
                        !self.record.may_recycle(),
                        "a busy instance must never be eligible for {operation:?}"
                    );
                }
                if self.record.may_recycle() && self.record.state() != InstanceState::Deleting {
                    // The executor deregisters the runner at GitHub first.
                    self.runners.clear();
                    self.online.clear();
                    self.record.begin_operation(*operation, now);
                }
            }
            Step::OperationDone => {
                if let Some(operation) = self.record.operation() {
                    self.record.finish_operation(operation, now);
                }
            }
            Step::OperationFailed => {
                if self.record.operation().is_some() {
                    self.record.undo_operation(now);
                }
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let tracked: BTreeSet<&String> = self.stored.difference(&self.orphans).collect();
        let busy: BTreeSet<&String> = self.record.busy_job().map(|a| &a.marker.message_id).into_iter().collect();
        prop_assert_eq!(tracked, busy, "the busy record must hold exactly the record's busy marker");
        prop_assert!(self.runners.len() <= 1, "two live registrations for one boot: {:?}", self.runners);
        if self.record.state() == InstanceState::Busy {
            prop_assert!(!self.record.may_recycle());
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_hook_sequence_leaks_a_marker_touches_a_busy_instance_or_registers_twice(
        jit in any::<bool>(),
        steps in prop::collection::vec((step(), prop::bool::weighted(0.15)), 1..40),
    ) {
        let mut model = Model::new(jit);
        for (step, fails) in &steps {
            model.apply(step, *fails)?;
        }
    }
}

#[test]
fn a_second_registration_request_withdraws_an_unused_jit_runner_but_never_a_token() {
    let mut jit = Model::new(true);
    let first = transition(&jit.record, &Hook::Registration, true).unwrap();
    assert_eq!(first, Transition::Register { withdraw: None });
    assert!(jit.execute(first, false));
    let again = transition(&jit.record, &Hook::Registration, true).unwrap();
    assert!(matches!(again, Transition::Register { withdraw: Some(_) }), "{again:?}");

    let mut token = Model::new(false);
    let first = transition(&token.record, &Hook::Registration, false).unwrap();
    assert!(token.execute(first, false));
    assert_eq!(transition(&token.record, &Hook::Registration, false), Err(Refusal::AlreadyRegistered));
}

#[test]
fn a_job_started_on_a_busy_instance_never_replaces_its_job() {
    let mut model = Model::new(true);
    let register = transition(&model.record, &Hook::Registration, true).unwrap();
    model.execute(register, false);
    let start = transition(&model.record, &Hook::JobStarted(job(0)), true).unwrap();
    model.execute(start, false);
    assert!(matches!(transition(&model.record, &Hook::JobStarted(job(1)), true), Err(Refusal::JobMismatch { .. })));
}
