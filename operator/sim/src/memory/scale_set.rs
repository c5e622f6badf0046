use std::{
    collections::{BTreeMap, VecDeque},
    net::{IpAddr, Ipv4Addr},
    sync::Mutex,
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{
    model::InstanceId,
    ports::{CloudFault, CloudInstance, CloudState, ScaleSet, ScaleSetError},
};

/// Timings and naming of the simulated scale set.
#[derive(Clone, Debug)]
pub struct ScaleSetSettings {
    /// Computer names are `<prefix><6-digit id>`, like a Uniform scale set's.
    pub name_prefix: String,
    pub boot_delay: Duration,
    pub reimage_delay: Duration,
    pub delete_delay: Duration,
    /// Instances get 127.<ip_block>.x.y addresses, so each simulated VM can bind its own loopback address.
    pub ip_block: u8,
}

impl Default for ScaleSetSettings {
    fn default() -> Self {
        Self {
            name_prefix: "runner".into(),
            boot_delay: Duration::from_secs(40),
            reimage_delay: Duration::from_secs(30),
            delete_delay: Duration::from_secs(20),
            ip_block: 1,
        }
    }
}

/// How many scale-set writes were made, and of what kind: Azure limits them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub set_capacity: u32,
    pub delete: u32,
    pub reimage: u32,
    pub deleted_ids: Vec<InstanceId>,
    pub reimaged_ids: Vec<InstanceId>,
}

impl WriteCounts {
    pub fn total(&self) -> u32 {
        self.set_capacity + self.delete + self.reimage
    }
}

/// A Uniform scale set in memory: instances boot, reimage and delete on tokio's clock.
pub struct InMemoryScaleSet {
    settings: ScaleSetSettings,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    instances: BTreeMap<u64, SimInstance>,
    writes: WriteCounts,
    faults: VecDeque<CloudFault>,
    /// The scale set was deleted: every call answers `NotFound` (Azure's 404).
    gone: bool,
}

struct SimInstance {
    name: String,
    ip: IpAddr,
    state: CloudState,
    since: Instant,
    generation: u32,
    /// Provisioning of this instance ends in `Failed` instead of `Running`.
    fails_provisioning: bool,
    /// A protection policy is set on the instance.
    protected: bool,
    /// Created from the scale set's current model. A model change makes every
    /// existing instance stale; a reimage keeps an instance's own (old) model, as
    /// Azure's does; only new instances get the current one.
    latest_model: bool,
}

impl SimInstance {
    /// The state at `now`: creating, reimaging and deleting end on the cloud's own
    /// clock, whether or not whoever asked for them is still waiting.
    fn state_at(&self, now: Instant, settings: &ScaleSetSettings) -> CloudState {
        let elapsed = now.saturating_duration_since(self.since);
        match self.state {
            CloudState::Creating if elapsed >= settings.boot_delay && self.fails_provisioning => CloudState::Failed,
            CloudState::Creating | CloudState::Reimaging if elapsed >= settings.delay_of(self.state) => {
                CloudState::Running
            }
            s => s,
        }
    }
}

impl ScaleSetSettings {
    fn delay_of(&self, state: CloudState) -> Duration {
        match state {
            CloudState::Creating => self.boot_delay,
            CloudState::Reimaging => self.reimage_delay,
            CloudState::Deleting => self.delete_delay,
            CloudState::Running | CloudState::Failed => Duration::ZERO,
        }
    }
}

/// A boot of one instance: changes when the instance is reimaged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Boot {
    pub id: InstanceId,
    pub name: String,
    pub ip: IpAddr,
    pub generation: u32,
}

impl InMemoryScaleSet {
    pub fn new(settings: ScaleSetSettings) -> Self {
        Self { settings, inner: Mutex::new(Inner::default()) }
    }

    /// Start with `count` instances that have already booted.
    pub fn with_running(settings: ScaleSetSettings, count: u32) -> Self {
        let set = Self::new(settings);
        {
            let mut inner = set.lock();
            let now = Instant::now();
            for _ in 0..count {
                let id = set.add_instance(&mut inner, now);
                let inst = inner.instances.get_mut(&id).expect("just added");
                inst.state = CloudState::Running;
            }
        }
        set
    }

    /// The state with every operation that has finished by now applied.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().expect("scale set poisoned");
        let now = Instant::now();
        let settings = &self.settings;
        inner.instances.retain(|_, i| {
            !(i.state == CloudState::Deleting && now.saturating_duration_since(i.since) >= settings.delete_delay)
        });
        for inst in inner.instances.values_mut() {
            let state = inst.state_at(now, settings);
            if state != inst.state {
                if inst.state == CloudState::Reimaging {
                    inst.generation += 1;
                }
                inst.since += settings.delay_of(inst.state);
                inst.state = state;
            }
        }
        inner
    }

    fn add_instance(&self, inner: &mut Inner, now: Instant) -> u64 {
        let id = inner.next_id;
        inner.next_id += 1;
        let ip = IpAddr::V4(Ipv4Addr::new(127, self.settings.ip_block, (1 + id / 250) as u8, (1 + id % 250) as u8));
        let name = format!("{}{:06}", self.settings.name_prefix, id);
        inner.instances.insert(
            id,
            SimInstance {
                name,
                ip,
                state: CloudState::Creating,
                since: now,
                generation: 0,
                fails_provisioning: false,
                protected: false,
                latest_model: true,
            },
        );
        id
    }

    /// The scale set's model changed (a new image, as a Terraform apply would make it):
    /// every existing instance runs an old model from now on.
    pub fn change_model(&self) {
        for inst in self.lock().instances.values_mut() {
            inst.latest_model = false;
        }
    }

    /// Provisioning of instance `id` (if it is still being created) ends in `Failed`.
    pub fn fail_provisioning(&self, id: &InstanceId) {
        let mut inner = self.lock();
        if let Some(inst) = id.as_str().parse::<u64>().ok().and_then(|n| inner.instances.get_mut(&n)) {
            inst.fails_provisioning = true;
        }
    }

    /// Set a protection policy on instance `id`, as an administrator would.
    pub fn protect(&self, id: &InstanceId) {
        let mut inner = self.lock();
        if let Some(inst) = id.as_str().parse::<u64>().ok().and_then(|n| inner.instances.get_mut(&n)) {
            inst.protected = true;
        }
    }

    /// Instances the cloud is creating right now (for simulations that decide their fate).
    pub fn creating(&self) -> Vec<InstanceId> {
        let inner = self.lock();
        inner
            .instances
            .iter()
            .filter(|(_, i)| i.state == CloudState::Creating)
            .map(|(id, _)| InstanceId::new(id.to_string()))
            .collect()
    }

    /// Every instance with its boot generation and state.
    pub fn snapshot(&self) -> Vec<(InstanceId, u32, CloudState)> {
        self.lock().instances.iter().map(|(id, i)| (InstanceId::new(id.to_string()), i.generation, i.state)).collect()
    }

    /// Computer name of every instance, by id.
    pub fn names(&self) -> BTreeMap<InstanceId, String> {
        self.lock().instances.iter().map(|(id, i)| (InstanceId::new(id.to_string()), i.name.clone())).collect()
    }

    /// Live instances (`sku.capacity`): every instance not being deleted.
    pub fn live(&self) -> u32 {
        self.lock().instances.values().filter(|i| i.state != CloudState::Deleting).count() as u32
    }

    /// The next scale-set call fails with `fault` (test fault injection).
    pub fn fail_next(&self, fault: CloudFault) {
        self.lock().faults.push_back(fault);
    }

    pub fn writes(&self) -> WriteCounts {
        self.lock().writes.clone()
    }

    /// Running instances and their current boot, for the VM simulator.
    pub fn running_boots(&self) -> Vec<Boot> {
        let inner = self.lock();
        inner
            .instances
            .iter()
            .filter(|(_, i)| i.state == CloudState::Running)
            .map(|(id, i)| Boot {
                id: InstanceId::new(id.to_string()),
                name: i.name.clone(),
                ip: i.ip,
                generation: i.generation,
            })
            .collect()
    }

    /// The scale set itself is deleted: from now on every call fails with `NotFound`, as
    /// Azure answers 404 for a scale set that no longer exists (rehearsing the operator's
    /// fatal path).
    pub fn delete_scale_set(&self) {
        self.lock().gone = true;
    }

    fn take_fault(&self) -> Option<CloudFault> {
        let mut inner = self.lock();
        if inner.gone {
            return Some(CloudFault::NotFound);
        }
        inner.faults.pop_front()
    }

    fn parse_ids(&self, ids: &[InstanceId]) -> Result<Vec<u64>, CloudFault> {
        let inner = self.lock();
        ids.iter()
            .map(|id| {
                id.as_str().parse::<u64>().ok().filter(|n| inner.instances.contains_key(n)).ok_or(CloudFault::NotFound)
            })
            .collect()
    }
}

#[async_trait]
impl ScaleSet for InMemoryScaleSet {
    async fn capacity(&self) -> Result<u32, ScaleSetError> {
        if let Some(fault) = self.take_fault() {
            return Err(ScaleSetError::ReadFailed(fault));
        }
        Ok(self.live())
    }

    async fn list_instances(&self) -> Result<Vec<CloudInstance>, ScaleSetError> {
        if let Some(fault) = self.take_fault() {
            return Err(ScaleSetError::ReadFailed(fault));
        }
        let inner = self.lock();
        let (now, wall) = (Instant::now(), time::OffsetDateTime::now_utc());
        Ok(inner
            .instances
            .iter()
            .map(|(id, i)| CloudInstance {
                id: InstanceId::new(id.to_string()),
                name: i.name.clone(),
                private_ip: Some(i.ip),
                state: i.state,
                // Reported in wall time, as Azure does; `since` is on tokio's clock.
                ready_since: (i.state == CloudState::Running).then(|| wall - now.saturating_duration_since(i.since)),
                protected: i.protected,
                latest_model: i.latest_model,
            })
            .collect())
    }

    async fn set_capacity(&self, capacity: u32) -> Result<(), ScaleSetError> {
        if let Some(source) = self.take_fault() {
            return Err(ScaleSetError::SetCapacityFailed { capacity, source });
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.writes.set_capacity += 1;
        let live: Vec<u64> =
            inner.instances.iter().filter(|(_, i)| i.state != CloudState::Deleting).map(|(id, _)| *id).collect();
        let current = live.len() as u32;
        for _ in current..capacity {
            self.add_instance(&mut inner, now);
        }
        // Shrinking removes the highest ids, as Azure's default scale-in policy may.
        // The operator never shrinks this way; the simulation is faithful anyway.
        for id in live.iter().rev().take(current.saturating_sub(capacity) as usize) {
            inner.instances.remove(id);
        }
        Ok(())
    }

    async fn delete_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let fail = |source| ScaleSetError::DeleteFailed { ids: ids.to_vec(), source };
        if let Some(fault) = self.take_fault() {
            return Err(fail(fault));
        }
        let numbers = self.parse_ids(ids).map_err(fail)?;
        {
            let mut inner = self.lock();
            inner.writes.delete += 1;
            inner.writes.deleted_ids.extend(ids.iter().cloned());
            let now = Instant::now();
            for n in &numbers {
                let inst = inner.instances.get_mut(n).expect("checked above");
                if inst.state != CloudState::Deleting {
                    inst.state = CloudState::Deleting;
                    inst.since = now;
                }
            }
        }
        // The caller waits for the long-running operation; the cloud finishes it
        // even if the caller stops waiting (see `lock`).
        tokio::time::sleep(self.settings.delete_delay).await;
        Ok(())
    }

    async fn reimage_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let fail = |source| ScaleSetError::ReimageFailed { ids: ids.to_vec(), source };
        if let Some(fault) = self.take_fault() {
            return Err(fail(fault));
        }
        let numbers = self.parse_ids(ids).map_err(fail)?;
        {
            let mut inner = self.lock();
            if let Some(n) = numbers.iter().find(|n| inner.instances[n].state == CloudState::Deleting) {
                return Err(fail(CloudFault::Conflict(format!("instance {n} is being deleted"))));
            }
            inner.writes.reimage += 1;
            inner.writes.reimaged_ids.extend(ids.iter().cloned());
            let now = Instant::now();
            for n in &numbers {
                let inst = inner.instances.get_mut(n).expect("checked above");
                inst.state = CloudState::Reimaging;
                inst.since = now;
                inst.fails_provisioning = false;
            }
        }
        tokio::time::sleep(self.settings.reimage_delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> ScaleSetSettings {
        ScaleSetSettings { boot_delay: Duration::from_secs(10), ..ScaleSetSettings::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn new_instances_boot_after_the_boot_delay() {
        let set = InMemoryScaleSet::new(fast());
        set.set_capacity(2).await.unwrap();
        let states: Vec<_> = set.list_instances().await.unwrap().into_iter().map(|i| i.state).collect();
        assert_eq!(states, vec![CloudState::Creating; 2]);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(set.running_boots().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_lowers_capacity_and_never_reuses_ids() {
        let set = InMemoryScaleSet::with_running(fast(), 3);
        set.delete_instances(&[InstanceId::new("1")]).await.unwrap();
        assert_eq!(set.capacity().await.unwrap(), 2);
        set.set_capacity(3).await.unwrap();
        let ids: Vec<_> = set.list_instances().await.unwrap().into_iter().map(|i| i.id.0).collect();
        assert_eq!(ids, ["0", "2", "3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn reimage_starts_a_new_boot_with_the_same_address() {
        let set = InMemoryScaleSet::with_running(fast(), 1);
        let before = set.running_boots().remove(0);
        set.reimage_instances(std::slice::from_ref(&before.id)).await.unwrap();
        let after = set.running_boots().remove(0);
        assert_eq!((after.ip, after.generation), (before.ip, before.generation + 1));
        assert_eq!(set.writes().reimage, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_finishes_in_the_cloud_even_if_its_caller_stops_waiting() {
        let set = InMemoryScaleSet::with_running(fast(), 2);
        let ids = [InstanceId::new("0")];
        let abandoned = tokio::time::timeout(Duration::from_millis(1), set.delete_instances(&ids)).await;
        assert!(abandoned.is_err(), "the caller gave up (a killed operator)");
        assert_eq!(set.capacity().await.unwrap(), 1, "an instance being deleted is no capacity");
        tokio::time::advance(fast().delete_delay).await;
        assert_eq!(set.names().len(), 1, "the delete finished without its caller");
    }

    #[tokio::test(start_paused = true)]
    async fn provisioning_can_be_made_to_fail_and_instances_protected() {
        let set = InMemoryScaleSet::new(fast());
        set.set_capacity(2).await.unwrap();
        assert_eq!(set.creating().len(), 2);
        set.fail_provisioning(&InstanceId::new("0"));
        set.protect(&InstanceId::new("1"));
        tokio::time::advance(fast().boot_delay).await;
        let listed = set.list_instances().await.unwrap();
        assert_eq!(
            listed.iter().map(|i| (i.state, i.protected)).collect::<Vec<_>>(),
            [(CloudState::Failed, false), (CloudState::Running, true)]
        );
        assert!(listed[1].ready_since.is_some() && listed[0].ready_since.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_ids_and_injected_faults_fail_without_writing() {
        let set = InMemoryScaleSet::with_running(fast(), 1);
        let err = set.delete_instances(&[InstanceId::new("9")]).await.unwrap_err();
        assert_eq!(err.fault().kind(), "not_found");
        set.fail_next(CloudFault::Throttled { retry_after: Some(Duration::from_secs(5)) });
        assert_eq!(set.set_capacity(4).await.unwrap_err().fault().kind(), "throttled");
        assert_eq!(set.writes().total(), 0);
    }
}
