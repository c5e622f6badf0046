//! The operator's picture of every instance: what the cloud says, what the hooks
//! said, and what the operator itself has started. [`Fleet::observe`] turns it into
//! the policy's input; nothing here does I/O or reads a clock (callers pass `now`).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use tokio::time::Instant;

use crate::{
    model::{InstanceId, InstanceState, JobRef},
    policy::{ObservedInstance, ObservedPool},
    ports::{CloudInstance, CloudState, MarkerHandle, Runner, RunnerStatus},
};

/// Runner names are `<computer name>-<6 lowercase hex>`: unique for every boot (a new
/// registration never collides with a runner GitHub still lists), and they say which VM
/// a runner belongs to. Registration, recovery and the GitHub alignment all go through
/// these two functions.
pub fn new_runner_name(computer_name: &str) -> String {
    format!("{computer_name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..RUNNER_SUFFIX_LEN])
}

/// The computer name a runner of ours runs on; `None` for runners of any other naming.
pub fn runner_vm_name(runner_name: &str) -> Option<&str> {
    runner_name
        .rsplit_once('-')
        .filter(|(_, suffix)| {
            suffix.len() == RUNNER_SUFFIX_LEN
                && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .map(|(vm, _)| vm)
}

const RUNNER_SUFFIX_LEN: usize = 6;

/// The runner of the VM named `vm_name` among GitHub's `runners`: the busy one, else an
/// online one, else any (a runner of an earlier boot may still be listed beside it).
pub fn runner_of_vm<'a>(runners: &'a [Runner], vm_name: &str) -> Option<&'a Runner> {
    let mut ours = runners.iter().filter(|r| runner_vm_name(&r.name) == Some(vm_name));
    let first = ours.clone().next();
    ours.clone().find(|r| r.busy).or_else(|| ours.find(|r| r.status == RunnerStatus::Online)).or(first)
}

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
}

#[derive(Clone, Debug)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub name: String,
    pub ip: Option<IpAddr>,
    pub cloud: CloudState,
    pub phase: Phase,
    /// When the derived state last changed: the policy's "in state for".
    pub since: Instant,
    /// When a hook or correction last changed the record. A GitHub listing taken
    /// before that may not show what the change did, so it is not used on the record.
    pub touched: Instant,
    /// The runner registered for this boot, if any (name, GitHub id when known).
    pub runner: Option<RunnerRef>,
    /// When the current registration was handed out, for the job start latency metric.
    pub registered_at: Option<Instant>,
    pub operation: Option<Operation>,
    /// Hands off: protected by a policy, or named outside this scale set's computer-name
    /// prefix. Never deleted or reimaged, and not part of the pool the policy sizes.
    pub foreign: bool,
}

/// The busy marker of an instance that vanished from the scale set while its record
/// was Busy: nothing will ever complete it, so the reconcile pass removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanMarker {
    pub instance: InstanceId,
    pub active: ActiveJob,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerRef {
    pub name: String,
    pub id: Option<u64>,
}

impl InstanceRecord {
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
        }
    }

    /// The lifecycle state the policy sees; see `docs/scaling-policy.md`.
    pub fn state(&self) -> InstanceState {
        match (self.operation, self.cloud) {
            (Some(Operation::Delete), _) | (_, CloudState::Deleting) => return InstanceState::Deleting,
            (Some(Operation::Reimage), _) | (_, CloudState::Reimaging) => return InstanceState::Reimaging,
            (_, CloudState::Failed) => return InstanceState::Failed,
            (_, CloudState::Creating) => return InstanceState::Provisioning,
            (_, CloudState::Running) => {}
        }
        match self.phase {
            Phase::Unregistered | Phase::Registered => InstanceState::AwaitingRegistration,
            Phase::Online => InstanceState::Idle,
            Phase::Busy(_) => InstanceState::Busy,
            Phase::Completed(_) => InstanceState::Retiring,
            Phase::Exited => InstanceState::Recyclable,
        }
    }

    pub fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
        self.touched = now;
    }

    /// A fresh boot after a reimage: nothing of the old runner remains.
    pub fn reset_boot(&mut self, now: Instant) {
        self.phase = Phase::Unregistered;
        self.runner = None;
        self.registered_at = None;
        self.operation = None;
        self.since = now;
        self.touched = now;
    }

    pub fn busy_job(&self) -> Option<&ActiveJob> {
        match &self.phase {
            Phase::Busy(active) => Some(active),
            _ => None,
        }
    }
}

/// Every instance the operator knows, by id and by private address.
#[derive(Debug, Default)]
pub struct Fleet {
    instances: BTreeMap<InstanceId, InstanceRecord>,
    by_ip: HashMap<IpAddr, InstanceId>,
    capacity: u32,
    /// The scale set's computer-name prefix, when configured: instances named otherwise are foreign.
    name_prefix: Option<String>,
}

impl Fleet {
    /// A fleet that treats instances not named `<prefix>…` as foreign.
    pub fn with_name_prefix(prefix: Option<String>) -> Self {
        Self { name_prefix: prefix, ..Self::default() }
    }

    fn is_foreign(&self, cloud: &CloudInstance) -> bool {
        cloud.protected || self.name_prefix.as_deref().is_some_and(|p| !cloud.name.starts_with(p))
    }

    /// Foreign instances the cloud counts in `sku.capacity`.
    pub fn foreign_count(&self) -> u32 {
        let n = self.instances.values().filter(|r| r.foreign && r.cloud != CloudState::Deleting).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn get(&self, id: &InstanceId) -> Option<&InstanceRecord> {
        self.instances.get(id)
    }

    pub fn get_mut(&mut self, id: &InstanceId) -> Option<&mut InstanceRecord> {
        self.instances.get_mut(id)
    }

    pub fn by_ip(&self, ip: IpAddr) -> Option<&InstanceRecord> {
        self.by_ip.get(&ip).and_then(|id| self.instances.get(id))
    }

    pub fn records(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.instances.values()
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Merge a fresh cloud listing: new instances appear, vanished ones go, states
    /// update. The hooks' knowledge (phase, runner, job) of known instances stays.
    /// Returns the busy markers of vanished instances, which the caller must remove.
    /// `wall` is the wall-clock time of `now`: an instance seen for the first time (after
    /// a restart) that is running dates its state from when the cloud says it became
    /// ready, so the operator's own restart does not restart its registration timeout.
    #[must_use = "the busy markers of vanished instances must be removed"]
    pub fn merge_cloud(
        &mut self,
        capacity: u32,
        listed: &[CloudInstance],
        now: Instant,
        wall: time::OffsetDateTime,
    ) -> Vec<OrphanMarker> {
        self.capacity = capacity;
        let mut seen = BTreeMap::new();
        for cloud in listed {
            let record = match self.instances.remove(&cloud.id) {
                Some(mut record) => {
                    let before = record.state();
                    record.cloud = cloud.state;
                    record.ip = cloud.private_ip;
                    record.foreign = self.is_foreign(cloud);
                    // A reimage we did not see finish (e.g. across a restart) left a fresh boot.
                    if record.operation.is_none()
                        && before == InstanceState::Reimaging
                        && cloud.state == CloudState::Running
                    {
                        record.reset_boot(now);
                    }
                    if record.state() != before {
                        record.since = now;
                    }
                    record
                }
                None => {
                    let mut record = InstanceRecord::new(cloud, now);
                    record.foreign = self.is_foreign(cloud);
                    if let Some(ready) = cloud.ready_since.filter(|_| cloud.state == CloudState::Running) {
                        let age = (wall - ready).clamp(time::Duration::ZERO, time::Duration::DAY);
                        record.since = now.checked_sub(age.unsigned_abs()).unwrap_or(now);
                    }
                    record
                }
            };
            seen.insert(cloud.id.clone(), record);
        }
        let vanished = std::mem::replace(&mut self.instances, seen);
        self.by_ip = self.instances.values().filter_map(|r| r.ip.map(|ip| (ip, r.id.clone()))).collect();
        vanished
            .into_values()
            .filter_map(|r| match r.phase {
                Phase::Busy(active) => Some(OrphanMarker { instance: r.id, active }),
                _ => None,
            })
            .collect()
    }

    /// The policy's input at `now`.
    /// Foreign instances are left out, and out of the capacity.
    pub fn observe(&self, now: Instant) -> ObservedPool {
        ObservedPool {
            capacity: self.capacity.saturating_sub(self.foreign_count()),
            instances: self
                .instances
                .values()
                .filter(|r| !r.foreign)
                .map(|r| ObservedInstance {
                    id: r.id.clone(),
                    state: r.state(),
                    in_state_for: now.saturating_duration_since(r.since),
                })
                .collect(),
        }
    }

    /// Count of instances per derived state.
    pub fn census(&self) -> BTreeMap<InstanceState, u32> {
        let mut out: BTreeMap<InstanceState, u32> = InstanceState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in self.instances.values().filter(|r| !r.foreign) {
            *out.entry(r.state()).or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cloud(id: &str, state: CloudState) -> CloudInstance {
        CloudInstance {
            id: InstanceId::new(id),
            name: format!("vm{id}"),
            private_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, id.parse::<u8>().unwrap() + 10))),
            state,
            ready_since: None,
            protected: false,
        }
    }

    /// Listings in these tests carry no provisioning time, so the wall clock is moot.
    const WALL: time::OffsetDateTime = time::OffsetDateTime::UNIX_EPOCH;

    fn job() -> JobRef {
        JobRef { repository: "o/r".into(), run_id: 1, run_attempt: 1, job_name: "build".into() }
    }

    #[test]
    fn hook_knowledge_survives_a_new_listing_and_vanished_instances_go() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        let _ = fleet.merge_cloud(2, &[cloud("1", CloudState::Running), cloud("2", CloudState::Running)], now, WALL);
        let marker = MarkerHandle { message_id: "m".into(), pop_receipt: "p".into() };
        fleet.get_mut(&InstanceId::new("1")).unwrap().set_phase(Phase::Busy(ActiveJob { job: job(), marker }), now);
        let orphans = fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL);
        assert!(orphans.is_empty(), "instance 2 was not busy");
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet.get(&InstanceId::new("1")).unwrap().state(), InstanceState::Busy);
        assert!(fleet.by_ip("127.0.0.12".parse().unwrap()).is_none(), "address of a deleted VM no longer resolves");
    }

    #[test]
    fn runner_names_lead_back_to_their_vm() {
        let name = new_runner_name("vmssrun000017");
        assert_eq!(runner_vm_name(&name), Some("vmssrun000017"));
        assert_eq!(runner_vm_name("my-laptop"), None, "not our naming");
        assert_eq!(runner_vm_name("vmssrun000017-ZZZZZZ"), None);
    }

    #[test]
    fn operations_and_cloud_states_override_the_runner_phase() {
        let now = Instant::now();
        let mut r = InstanceRecord::new(&cloud("1", CloudState::Running), now);
        assert_eq!(r.state(), InstanceState::AwaitingRegistration);
        r.phase = Phase::Exited;
        assert_eq!(r.state(), InstanceState::Recyclable);
        r.operation = Some(Operation::Reimage);
        assert_eq!(r.state(), InstanceState::Reimaging);
        r.cloud = CloudState::Deleting;
        assert_eq!(r.state(), InstanceState::Deleting);
        r.operation = None;
        r.cloud = CloudState::Creating;
        assert_eq!(r.state(), InstanceState::Provisioning);
    }

    #[test]
    fn a_reimage_seen_only_in_the_cloud_resets_the_boot() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        let _ = fleet.merge_cloud(1, &[cloud("1", CloudState::Reimaging)], now, WALL);
        fleet.get_mut(&InstanceId::new("1")).unwrap().phase = Phase::Exited;
        let _ = fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL);
        assert_eq!(fleet.get(&InstanceId::new("1")).unwrap().state(), InstanceState::AwaitingRegistration);
    }

    #[test]
    fn a_busy_instance_that_vanishes_hands_back_its_marker() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        let _ = fleet.merge_cloud(2, &[cloud("1", CloudState::Running), cloud("2", CloudState::Running)], now, WALL);
        let marker = MarkerHandle { message_id: "m".into(), pop_receipt: "p".into() };
        let active = ActiveJob { job: job(), marker };
        fleet.get_mut(&InstanceId::new("2")).unwrap().set_phase(Phase::Busy(active.clone()), now);
        let orphans = fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL);
        assert_eq!(orphans, vec![OrphanMarker { instance: InstanceId::new("2"), active }]);
        assert!(fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL).is_empty(), "handed back once");
    }
}
