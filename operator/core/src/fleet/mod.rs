//! The operator's picture of every instance: what the cloud says, what the hooks
//! said, and what the operator itself has started. [`Fleet::observe`] turns it into
//! the policy's input; nothing here does I/O or reads a clock (callers pass `now`).
//!
//! - [`record`]: one instance's record, changed only through its named methods.
//! - [`transition`]: the hook state machine, `(record, hook) -> Transition | Refusal`.
//! - [`naming`]: the runner naming convention.

mod naming;
mod record;
pub mod transition;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use tokio::time::Instant;

pub use naming::{new_runner_name, runner_of_vm, runner_vm_name};
pub use record::{ActiveJob, InstanceRecord, Operation, OrphanMarker, Phase, RunnerRef};

use crate::{
    model::{InstanceId, InstanceState},
    policy::{ObservedInstance, ObservedPool},
    ports::{CloudInstance, CloudState},
};

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
        let n = self.instances.values().filter(|r| r.is_foreign() && r.cloud() != CloudState::Deleting).count();
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

    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut InstanceRecord> {
        self.instances.values_mut()
    }

    /// The instance whose current runner is named `name`.
    pub fn by_runner_name(&self, name: &str) -> Option<&InstanceRecord> {
        self.instances.values().find(|r| r.runner().is_some_and(|runner| runner.name == name))
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
            let foreign = self.is_foreign(cloud);
            let record = match self.instances.remove(&cloud.id) {
                Some(mut record) => {
                    record.merge_cloud(cloud, foreign, now);
                    record
                }
                None => {
                    let mut record = InstanceRecord::new(cloud, now);
                    record.set_foreign(foreign);
                    if let Some(ready) = cloud.ready_since.filter(|_| cloud.state == CloudState::Running) {
                        let age = (wall - ready).clamp(time::Duration::ZERO, time::Duration::DAY);
                        record.backdate(age.unsigned_abs(), now);
                    }
                    record
                }
            };
            seen.insert(cloud.id.clone(), record);
        }
        let vanished = std::mem::replace(&mut self.instances, seen);
        self.by_ip = self.instances.values().filter_map(|r| r.ip().map(|ip| (ip, r.id().clone()))).collect();
        vanished.into_values().filter_map(InstanceRecord::into_orphan).collect()
    }

    /// The policy's input at `now`, without demand (the caller adds what the scale set
    /// reports). Foreign instances are left out, and out of the capacity.
    pub fn observe(&self, now: Instant) -> ObservedPool {
        ObservedPool {
            capacity: self.capacity.saturating_sub(self.foreign_count()),
            instances: self
                .instances
                .values()
                .filter(|r| !r.is_foreign())
                .map(|r| ObservedInstance {
                    id: r.id().clone(),
                    state: r.state(),
                    in_state_for: now.saturating_duration_since(r.since()),
                    latest_model: r.has_latest_model(),
                })
                .collect(),
            assigned_jobs: None,
        }
    }

    /// Count of instances per derived state.
    pub fn census(&self) -> BTreeMap<InstanceState, u32> {
        let mut out: BTreeMap<InstanceState, u32> = InstanceState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in self.instances.values().filter(|r| !r.is_foreign()) {
            *out.entry(r.state()).or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{model::JobRef, ports::MarkerHandle};

    fn cloud(id: &str, state: CloudState) -> CloudInstance {
        CloudInstance {
            id: InstanceId::new(id),
            name: format!("vm{id}"),
            private_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, id.parse::<u8>().unwrap() + 10))),
            state,
            ready_since: None,
            protected: false,
            latest_model: true,
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
        fleet.get_mut(&InstanceId::new("1")).unwrap().start_job(job(), marker, now);
        let orphans = fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL);
        assert!(orphans.is_empty(), "instance 2 was not busy");
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet.get(&InstanceId::new("1")).unwrap().state(), InstanceState::Busy);
        assert!(fleet.by_ip("127.0.0.12".parse().unwrap()).is_none(), "address of a deleted VM no longer resolves");
    }

    #[test]
    fn a_reimage_seen_only_in_the_cloud_resets_the_boot() {
        let now = Instant::now();
        let mut fleet = Fleet::default();
        let _ = fleet.merge_cloud(1, &[cloud("1", CloudState::Reimaging)], now, WALL);
        fleet.get_mut(&InstanceId::new("1")).unwrap().enter(Phase::Exited, now);
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
        fleet.get_mut(&InstanceId::new("2")).unwrap().start_job(active.job.clone(), active.marker.clone(), now);
        let orphans = fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL);
        assert_eq!(orphans, vec![OrphanMarker { instance: InstanceId::new("2"), active }]);
        assert!(fleet.merge_cloud(1, &[cloud("1", CloudState::Running)], now, WALL).is_empty(), "handed back once");
    }
}
