//! One instance as the operator knows it. Its fields are private: every change goes
//! through a named method below, and all of them keep the two clocks of a record in
//! one place ([`InstanceRecord::change`]): `since` moves when the derived state
//! changes, `touched` whenever the operator itself changed the record.

use std::{collections::HashMap, net::IpAddr};

use tokio::time::Instant;

use crate::{
    model::{InstanceId, InstanceState, JobRef},
    ports::{CloudInstance, CloudState, MarkerHandle},
};

/// The runner's side of an instance, as the hooks report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No registration handed out on this boot yet.
    Unregistered,
    /// Registration handed out; the runner has not been seen online at GitHub yet.
    Registered,
    /// The runner is online at GitHub, waiting for a job.
    Online,
    /// Job started (marker stored).
    Busy(ActiveJob),
    /// Job completed; the runner process has not exited yet.
    Completed(JobRef),
    /// The runner process exited: the VM is free to recycle.
    Exited,
}

/// The job an instance runs and the busy marker that records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveJob {
    pub job: JobRef,
    pub marker: MarkerHandle,
}

/// What the operator itself has started on an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Reimage,
    Delete,
    /// Deallocate a VM told to park at its registration.
    Park,
    /// Start a parked VM.
    Start,
}

impl Operation {
    /// Its metric label.
    pub fn kind(self) -> crate::labels::OperationKind {
        match self {
            Self::Reimage => crate::labels::OperationKind::Reimage,
            Self::Delete => crate::labels::OperationKind::Delete,
            Self::Park => crate::labels::OperationKind::Park,
            Self::Start => crate::labels::OperationKind::Start,
        }
    }
}

/// The runner registered for a boot: its name, and GitHub's id once known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerRef {
    pub name: String,
    pub id: Option<u64>,
}

/// The busy marker of an instance that vanished from the scale set while its record
/// was Busy: nothing will ever complete it, so the reconcile pass removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanMarker {
    pub instance: InstanceId,
    pub active: ActiveJob,
}

#[derive(Clone, Debug)]
pub struct InstanceRecord {
    id: InstanceId,
    name: String,
    ip: Option<IpAddr>,
    cloud: CloudState,
    phase: Phase,
    /// When the derived state last changed: the policy's "in state for".
    since: Instant,
    /// When a hook, a correction or an operation of the operator last changed the
    /// record. A GitHub listing taken before that may not show what the change did, so
    /// it is not used on the record.
    touched: Instant,
    runner: Option<RunnerRef>,
    /// When the current registration was handed out, for the job start latency metric.
    registered_at: Option<Instant>,
    operation: Option<Operation>,
    /// Hands off: protected by a policy, or named outside this scale set's computer-name
    /// prefix. Never deleted or reimaged, and not part of the pool the policy sizes.
    foreign: bool,
    /// Runs the scale set's current model (see [`CloudInstance::latest_model`]).
    latest_model: bool,
    /// GitHub's last runner listing showed this record's runner running a job. A hook
    /// alone (runner-exited from the VM, which a job controls) does not end a Busy record
    /// while this holds; the next listing settles it. Cleared when a listing fails, so a
    /// stale answer never holds a record.
    busy_at_github: bool,
    /// GitHub's last listing, taken after this runner was registered, no longer had it:
    /// an ephemeral runner that ran its job is gone, so removing it again is a wasted call.
    runner_gone_at_github: bool,
    /// This boot's registration request was answered "park": the VM holds no registration
    /// and waits for the operator to deallocate it. Cleared by a registration, a reimage
    /// or a start (a new boot asks again).
    park_answered: bool,
}

impl InstanceRecord {
    /// A record for an instance first seen in a listing at `now`.
    pub fn new(cloud: &CloudInstance, now: Instant) -> Self {
        Self {
            id: cloud.id.clone(),
            name: cloud.name.clone(),
            ip: cloud.private_ip,
            cloud: cloud.state,
            phase: Phase::Unregistered,
            since: now,
            touched: now,
            runner: None,
            registered_at: None,
            operation: None,
            foreign: cloud.protected,
            latest_model: cloud.latest_model,
            busy_at_github: false,
            runner_gone_at_github: false,
            park_answered: false,
        }
    }

    /// Whether GitHub's last listing showed the runner running a job.
    pub fn busy_at_github(&self) -> bool {
        self.busy_at_github
    }

    /// What GitHub's listing taken at `listed_at` says of this record's runner, given as
    /// runner id → busy (an observation, not a change by the operator: neither `since`
    /// nor `touched` moves). A listing older than the registration says nothing about
    /// whether the runner is gone.
    pub fn note_github_listing(&mut self, busy_by_id: &HashMap<u64, bool>, listed_at: Instant) {
        let Some(id) = self.runner.as_ref().and_then(|r| r.id) else {
            self.busy_at_github = false;
            return;
        };
        let listed = busy_by_id.get(&id);
        self.busy_at_github = listed.copied().unwrap_or(false);
        if self.registered_at.is_some_and(|at| at < listed_at) {
            self.runner_gone_at_github = listed.is_none();
        }
    }

    /// The listing failed: what an older one said must not hold the record.
    pub fn forget_github_listing(&mut self) {
        self.busy_at_github = false;
    }

    /// Whether a listing taken after the registration no longer had the runner.
    pub fn runner_gone_at_github(&self) -> bool {
        self.runner_gone_at_github
    }

    /// The runner ran its one job and GitHub has removed it: nothing to deregister
    /// before the VM is recycled.
    pub fn runner_already_removed(&self) -> bool {
        self.runner_gone_at_github && matches!(self.phase, Phase::Completed(_) | Phase::Exited)
    }

    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    /// The computer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    pub fn cloud(&self) -> CloudState {
        self.cloud
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn touched(&self) -> Instant {
        self.touched
    }

    /// The runner registered for this boot, if any.
    pub fn runner(&self) -> Option<&RunnerRef> {
        self.runner.as_ref()
    }

    pub fn registered_at(&self) -> Option<Instant> {
        self.registered_at
    }

    pub fn operation(&self) -> Option<Operation> {
        self.operation
    }

    pub fn is_foreign(&self) -> bool {
        self.foreign
    }

    /// Runs the scale set's current model.
    pub fn has_latest_model(&self) -> bool {
        self.latest_model
    }

    /// The lifecycle state the policy sees; see `docs/scaling-policy.md`.
    ///
    /// A deallocating or deallocated VM without a runner on this boot is in the reserve
    /// ([`InstanceState::Parking`], [`InstanceState::Parked`]) whoever deallocated it: it
    /// holds no registration and no secret, so starting it is safe and it asks for its
    /// registration like any booting VM (after a restart the operator tells its parked VMs
    /// from the cloud's listing alone). One that had a runner was stopped by someone else
    /// mid-life: [`InstanceState::Deallocated`], whatever its runner phase, which it keeps
    /// for when it runs again (a started VM reads as reimaging until it runs, see
    /// [`CloudState`]). That state is the conservative choice: it is not free (it takes no
    /// job before someone starts it, so the policy scales out past it) and not busy (it
    /// runs nothing), it still counts in the pool's size (it holds a slot of
    /// `sku.capacity`), no hook is accepted from it and GitHub's view of its runner
    /// corrects nothing (`truth.rs`), and the policy deletes it only when the pool is above
    /// `max`, before any idle VM.
    pub fn state(&self) -> InstanceState {
        let unregistered = self.phase == Phase::Unregistered && self.runner.is_none();
        match (self.operation, self.cloud) {
            (Some(Operation::Delete), _) | (_, CloudState::Deleting) => return InstanceState::Deleting,
            // A start shows in the instance view as an update, like a reimage.
            (Some(Operation::Start), _) => return InstanceState::Starting,
            (Some(Operation::Reimage), _) | (_, CloudState::Reimaging) => return InstanceState::Reimaging,
            (Some(Operation::Park), _) => return InstanceState::Parking,
            (_, CloudState::Failed) => return InstanceState::Failed,
            (_, CloudState::Creating) => return InstanceState::Provisioning,
            (_, CloudState::Deallocating) if unregistered => return InstanceState::Parking,
            (_, CloudState::Deallocated) if unregistered => return InstanceState::Parked,
            (_, CloudState::Deallocating | CloudState::Deallocated) => return InstanceState::Deallocated,
            (_, CloudState::Running) => {}
        }
        match self.phase {
            Phase::Unregistered if self.park_answered && self.runner.is_none() => InstanceState::Parking,
            Phase::Unregistered | Phase::Registered => InstanceState::AwaitingRegistration,
            Phase::Online => InstanceState::Idle,
            Phase::Busy(_) => InstanceState::Busy,
            Phase::Completed(_) => InstanceState::Retiring,
            Phase::Exited => InstanceState::Recyclable,
        }
    }

    /// Whether this boot's registration request was answered "park".
    pub fn park_answered(&self) -> bool {
        self.park_answered
    }

    /// May the operator deallocate this VM now? It was told to park on this boot, still
    /// runs, and nothing else is under way on it.
    pub fn may_park(&self) -> bool {
        self.park_answered
            && self.runner.is_none()
            && self.cloud == CloudState::Running
            && self.operation.is_none()
            && !self.foreign
    }

    /// May the operator start this VM from the reserve now?
    pub fn may_start(&self) -> bool {
        self.state() == InstanceState::Parked && self.operation.is_none() && !self.foreign
    }

    pub fn busy_job(&self) -> Option<&ActiveJob> {
        match &self.phase {
            Phase::Busy(active) => Some(active),
            _ => None,
        }
    }

    /// May the operator reimage or delete this instance now? Never while the hooks say
    /// a job runs, while an operation is under way, or when the instance is hands-off.
    /// (GitHub's refusal to remove a busy runner is the second guard.)
    pub fn may_recycle(&self) -> bool {
        !matches!(self.phase, Phase::Busy(_)) && self.operation.is_none() && !self.foreign
    }

    /// A busy-record read gave the Busy marker a new handle (a new pop receipt for the
    /// same message). Returns whether `handle` is this record's marker. Not a change of
    /// what the instance does, so neither clock moves.
    pub fn refresh_marker(&mut self, handle: &MarkerHandle) -> bool {
        match &mut self.phase {
            Phase::Busy(active) if active.marker.message_id == handle.message_id => {
                active.marker = handle.clone();
                true
            }
            _ => false,
        }
    }

    /// Every change by the operator goes through here.
    fn change(&mut self, now: Instant, edit: impl FnOnce(&mut Self)) {
        let before = self.state();
        edit(self);
        if self.state() != before {
            self.since = now;
        }
        self.touched = now;
    }

    /// The runner side moved to `phase` (a hook or a correction).
    pub fn enter(&mut self, phase: Phase, now: Instant) {
        self.change(now, |r| r.phase = phase);
    }

    /// A job started under the busy marker `marker`.
    pub fn start_job(&mut self, job: JobRef, marker: MarkerHandle, now: Instant) {
        self.enter(Phase::Busy(ActiveJob { job, marker }), now);
    }

    /// This boot's registration was handed out for `runner`. The instance still awaits
    /// registration until GitHub shows the runner online, so the registration timeout
    /// keeps counting from the boot.
    pub fn issue_registration(&mut self, runner: RunnerRef, now: Instant) {
        self.change(now, |r| {
            r.park_answered = false;
            r.runner = Some(runner);
            r.registered_at = Some(now);
            r.phase = Phase::Registered;
            r.runner_gone_at_github = false;
        });
    }

    /// Someone else stopped this VM mid-life and its marker and runner are dealt with:
    /// nothing of that boot's runner remains, so it is a parked VM like any other (a start
    /// boots it afresh and it asks for a registration).
    pub fn reclaim_stopped(&mut self, now: Instant) {
        self.change(now, |r| {
            r.phase = Phase::Unregistered;
            r.runner = None;
            r.registered_at = None;
            r.park_answered = false;
        });
    }

    /// This boot's registration request was answered "park": the VM goes into the reserve.
    pub fn answer_park(&mut self, now: Instant) {
        self.change(now, |r| r.park_answered = true);
    }

    /// The registration's runner never came online and was removed at GitHub: the boot
    /// may ask again.
    pub fn withdraw_registration(&mut self, now: Instant) {
        self.change(now, |r| {
            r.runner = None;
            r.phase = Phase::Unregistered;
        });
    }

    /// GitHub names this boot's runner (adopted, identified, or its id learned).
    pub fn know_runner(&mut self, runner: RunnerRef, now: Instant) {
        self.change(now, |r| r.runner = Some(runner));
    }

    /// The runner's GitHub id became known (token mode: it registered itself).
    pub fn learn_runner_id(&mut self, id: u64, now: Instant) {
        self.change(now, |r| {
            if let Some(runner) = &mut r.runner {
                runner.id = Some(id);
            }
        });
    }

    /// The operator started a reimage, delete, park or start of this instance.
    pub fn begin_operation(&mut self, operation: Operation, now: Instant) {
        self.change(now, |r| r.operation = Some(operation));
    }

    /// The scale set carried out the operator's operation.
    pub fn finish_operation(&mut self, operation: Operation, now: Instant) {
        match operation {
            // A started VM boots from the disk it kept; it asks for a registration as a
            // reimaged one does, so its clock starts now too.
            Operation::Reimage | Operation::Start => {
                self.reset_boot(now);
                self.cloud = CloudState::Running;
            }
            Operation::Delete => self.change(now, |r| r.cloud = CloudState::Deleting),
            Operation::Park => self.change(now, |r| {
                r.operation = None;
                r.cloud = CloudState::Deallocated;
            }),
        }
    }

    /// The operation did not happen. The runner was already deregistered, so an
    /// instance that had one is recyclable again on a later pass.
    pub fn undo_operation(&mut self, now: Instant) {
        self.change(now, |r| {
            r.operation = None;
            if r.runner.is_some() && !matches!(r.phase, Phase::Busy(_)) {
                r.phase = Phase::Exited;
            }
        });
    }

    /// A fresh boot after a reimage: nothing of the old runner remains.
    fn reset_boot(&mut self, now: Instant) {
        self.change(now, |r| {
            r.park_answered = false;
            r.phase = Phase::Unregistered;
            r.runner = None;
            r.registered_at = None;
            r.operation = None;
        });
        // The new boot's clock starts now even if the state reads the same.
        self.since = now;
    }

    /// A fresh cloud listing of this instance (see [`super::Fleet::merge_cloud`]).
    pub(super) fn merge_cloud(&mut self, cloud: &CloudInstance, foreign: bool, now: Instant) {
        let before = self.state();
        let was_down = matches!(self.cloud, CloudState::Deallocating | CloudState::Deallocated);
        self.cloud = cloud.state;
        self.ip = cloud.private_ip;
        self.foreign = foreign;
        self.latest_model = cloud.latest_model;
        // A reimage we did not see finish (e.g. across a restart), or a start by someone
        // else, left a fresh boot that asks for its registration again.
        let restarted = before == InstanceState::Reimaging || was_down;
        if self.operation.is_none() && restarted && cloud.state == CloudState::Running {
            self.reset_boot(now);
        }
        if self.state() != before {
            self.since = now;
        }
    }

    /// A record first seen after a restart dates its state from when the cloud says the
    /// instance became ready, `age` ago.
    pub(super) fn backdate(&mut self, age: std::time::Duration, now: Instant) {
        self.since = now.checked_sub(age).unwrap_or(now);
    }

    pub(super) fn set_foreign(&mut self, foreign: bool) {
        self.foreign = foreign;
    }

    /// The marker of a Busy record, handed back when its instance vanished.
    pub(super) fn into_orphan(self) -> Option<OrphanMarker> {
        match self.phase {
            Phase::Busy(active) => Some(OrphanMarker { instance: self.id, active }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, time::Duration};

    use super::*;

    fn cloud(state: CloudState) -> CloudInstance {
        CloudInstance {
            id: InstanceId::new("1"),
            name: "vm1".into(),
            private_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11))),
            state,
            ready_since: None,
            protected: false,
            latest_model: true,
        }
    }

    #[test]
    fn operations_and_cloud_states_override_the_runner_phase() {
        let now = Instant::now();
        let mut r = InstanceRecord::new(&cloud(CloudState::Running), now);
        assert_eq!(r.state(), InstanceState::AwaitingRegistration);
        r.enter(Phase::Exited, now);
        assert_eq!(r.state(), InstanceState::Recyclable);
        r.begin_operation(Operation::Reimage, now);
        assert_eq!(r.state(), InstanceState::Reimaging);
        r.merge_cloud(&cloud(CloudState::Deleting), false, now);
        assert_eq!(r.state(), InstanceState::Deleting);
        let mut fresh = InstanceRecord::new(&cloud(CloudState::Creating), now);
        assert_eq!(fresh.state(), InstanceState::Provisioning);
        fresh.merge_cloud(&cloud(CloudState::Running), false, now);
        assert_eq!(fresh.state(), InstanceState::AwaitingRegistration);
    }

    #[test]
    fn a_deallocated_vm_keeps_its_runner_phase_for_when_it_runs_again() {
        let now = Instant::now();
        let mut r = InstanceRecord::new(&cloud(CloudState::Running), now);
        r.issue_registration(RunnerRef { name: "vm1-abcdef".into(), id: Some(7) }, now);
        r.enter(Phase::Online, now);
        for state in [CloudState::Deallocating, CloudState::Deallocated] {
            r.merge_cloud(&cloud(state), false, now);
            assert_eq!(r.state(), InstanceState::Deallocated, "{state:?}");
            assert!(!r.state().is_free());
        }
        assert_eq!(*r.phase(), Phase::Online);
        // A start reads as an update of the instance, then it runs.
        r.merge_cloud(&cloud(CloudState::Reimaging), false, now);
        r.merge_cloud(&cloud(CloudState::Running), false, now);
        assert_eq!(r.state(), InstanceState::AwaitingRegistration, "a fresh boot, as after an outside reimage");
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_runner_missing_from_a_later_listing_needs_no_removal() {
        let t0 = Instant::now();
        let (absent, present) = (HashMap::new(), HashMap::from([(7, false)]));
        let mut r = InstanceRecord::new(&cloud(CloudState::Running), t0);
        r.note_github_listing(&absent, t0);
        assert!(!r.runner_gone_at_github(), "no runner registered yet: nothing to say");
        tokio::time::advance(Duration::from_secs(1)).await;
        let registered = Instant::now();
        r.issue_registration(RunnerRef { name: "vm1-abcdef".into(), id: Some(7) }, registered);
        r.note_github_listing(&absent, t0);
        assert!(!r.runner_gone_at_github(), "a listing older than the registration says nothing");
        tokio::time::advance(Duration::from_secs(1)).await;
        r.note_github_listing(&absent, Instant::now());
        assert!(r.runner_gone_at_github());
        assert!(!r.runner_already_removed(), "gone before any job: still removed (it may be a listing lag)");
        r.enter(Phase::Exited, Instant::now());
        assert!(r.runner_already_removed(), "ran its job and gone: GitHub removed it");
        r.note_github_listing(&present, Instant::now());
        assert!(!r.runner_already_removed(), "listed again: removed as always");
        // A new registration forgets the old runner's absence.
        r.note_github_listing(&absent, Instant::now());
        r.issue_registration(RunnerRef { name: "vm1-fedcba".into(), id: Some(8) }, Instant::now());
        assert!(!r.runner_gone_at_github());
    }

    #[tokio::test(start_paused = true)]
    async fn since_moves_with_the_state_and_touched_with_every_change() {
        let t0 = Instant::now();
        let mut r = InstanceRecord::new(&cloud(CloudState::Running), t0);
        tokio::time::advance(Duration::from_secs(5)).await;
        let t1 = Instant::now();
        r.issue_registration(RunnerRef { name: "vm1-abcdef".into(), id: Some(7) }, t1);
        assert_eq!(r.since(), t0, "still awaiting registration: the registration timeout counts from the boot");
        assert_eq!(r.touched(), t1);
        tokio::time::advance(Duration::from_secs(5)).await;
        let t2 = Instant::now();
        r.enter(Phase::Online, t2);
        assert_eq!((r.since(), r.touched()), (t2, t2), "idle from now");
    }

    #[test]
    fn a_recycle_failure_leaves_a_deregistered_instance_recyclable() {
        let now = Instant::now();
        let mut r = InstanceRecord::new(&cloud(CloudState::Running), now);
        r.issue_registration(RunnerRef { name: "vm1-abcdef".into(), id: Some(7) }, now);
        r.enter(Phase::Online, now);
        r.begin_operation(Operation::Delete, now);
        assert!(!r.may_recycle());
        r.undo_operation(now);
        assert_eq!(r.state(), InstanceState::Recyclable);
        assert!(r.may_recycle());
    }
}
