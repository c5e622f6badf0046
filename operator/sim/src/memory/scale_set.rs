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
    /// From the deallocate call until the instance is deallocated.
    pub deallocate_delay: Duration,
    /// From the start call until a deallocated instance runs again (issue 16's stated
    /// assumption: 45 s, until measured).
    pub start_delay: Duration,
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
            deallocate_delay: Duration::from_secs(30),
            start_delay: Duration::from_secs(45),
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
    pub deallocate: u32,
    pub start: u32,
    pub deleted_ids: Vec<InstanceId>,
    pub reimaged_ids: Vec<InstanceId>,
    pub deallocated_ids: Vec<InstanceId>,
    pub started_ids: Vec<InstanceId>,
}

impl WriteCounts {
    pub fn total(&self) -> u32 {
        self.set_capacity + self.delete + self.reimage + self.deallocate + self.start
    }
}

/// A Uniform scale set in memory: instances boot, reimage, delete, deallocate and start on
/// tokio's clock.
///
/// A deallocated instance keeps its id, name, address and disk (its boot `generation`; a
/// start powers the same disk up again, so the VM simulator boots it afresh with the same
/// generation), still counts in the capacity, and is listed `Deallocating` then
/// `Deallocated`. A start is listed `Reimaging` until the instance runs, as Azure's instance
/// view shows it (provisioning `Updating`, `PowerState/starting`; see `CloudState`).
/// VM time is split: [`InMemoryScaleSet::vm_time`] counts compute (billed), and
/// [`InMemoryScaleSet::parked_time`] the time instances spent deallocating or deallocated
/// (Microsoft Learn, "States and billing status": neither is billed for compute; the disk
/// is).
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
    /// Azure's compute throttling, when enforced ([`InMemoryScaleSet::with_azure_throttling`]).
    throttling: Option<Throttling>,
    /// When each accepted write reached the cloud, if asked to keep them.
    write_log: Option<Vec<Instant>>,
    /// VM time of instances that no longer exist (created until their delete finished,
    /// less their parked time).
    vm_time_gone: Duration,
    /// Parked (deallocating or deallocated) time of instances that no longer exist.
    parked_time_gone: Duration,
    /// Bumped whenever an instance is added, removed or changes state ([`InMemoryScaleSet::version`]).
    version: u64,
    /// The scale set was deleted: every call answers `NotFound` (Azure's 404).
    gone: bool,
}

impl Inner {
    /// The instance with the operator's id `id`, if it exists.
    fn instance_mut(&mut self, id: &InstanceId) -> Option<&mut SimInstance> {
        id.as_str().parse::<u64>().ok().and_then(|n| self.instances.get_mut(&n))
    }
}

struct SimInstance {
    name: String,
    created: Instant,
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
    /// Being started: listed `Reimaging` (as Azure's instance view shows a start) for
    /// `start_delay`, then running the same boot generation.
    starting: bool,
    /// Parked time of earlier deallocations (ended by a start).
    parked: Duration,
    /// When the current deallocation began, while the instance is parked.
    parked_since: Option<Instant>,
    /// The next start ends in `Failed` (as an allocation failure leaves it).
    start_fails: bool,
    /// The next start takes this much longer than `start_delay`.
    start_late_by: Duration,
}

impl SimInstance {
    /// The state at `now`: creating, reimaging and deleting end on the cloud's own
    /// clock, whether or not whoever asked for them is still waiting.
    fn state_at(&self, now: Instant, settings: &ScaleSetSettings) -> CloudState {
        let elapsed = now.saturating_duration_since(self.since);
        match self.state {
            CloudState::Creating if elapsed >= settings.boot_delay && self.fails_provisioning => CloudState::Failed,
            CloudState::Reimaging if self.starting && self.start_fails && elapsed >= self.delay_in(settings) => {
                CloudState::Failed
            }
            CloudState::Creating | CloudState::Reimaging if elapsed >= self.delay_in(settings) => CloudState::Running,
            CloudState::Deallocating if elapsed >= self.delay_in(settings) => CloudState::Deallocated,
            s => s,
        }
    }

    /// How long the instance's current state lasts.
    fn delay_in(&self, settings: &ScaleSetSettings) -> Duration {
        match self.state {
            CloudState::Reimaging if self.starting => settings.start_delay + self.start_late_by,
            state => settings.delay_of(state),
        }
    }

    /// A deallocated instance starts powering up at `now` (listed `Reimaging`, as Azure
    /// shows a start); its parked time ends. Returns whether it was deallocated.
    fn begin_start(&mut self, now: Instant) -> bool {
        if self.state != CloudState::Deallocated {
            return false;
        }
        self.state = CloudState::Reimaging;
        self.starting = true;
        self.since = now;
        if let Some(since) = self.parked_since.take() {
            self.parked += now.saturating_duration_since(since);
        }
        true
    }

    /// Parked time up to `now`.
    fn parked_at(&self, now: Instant) -> Duration {
        self.parked + self.parked_since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

impl ScaleSetSettings {
    fn delay_of(&self, state: CloudState) -> Duration {
        match state {
            CloudState::Creating => self.boot_delay,
            CloudState::Reimaging => self.reimage_delay,
            CloudState::Deleting => self.delete_delay,
            CloudState::Deallocating => self.deallocate_delay,
            CloudState::Running | CloudState::Failed | CloudState::Deallocated => Duration::ZERO,
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
        let (mut deleted_time, mut deleted_parked, mut removed) = (Duration::ZERO, Duration::ZERO, false);
        inner.instances.retain(|_, i| {
            let done =
                i.state == CloudState::Deleting && now.saturating_duration_since(i.since) >= settings.delete_delay;
            if done {
                let end = i.since + settings.delete_delay;
                let parked = i.parked_at(end);
                deleted_time += end.saturating_duration_since(i.created).saturating_sub(parked);
                deleted_parked += parked;
                removed = true;
            }
            !done
        });
        inner.vm_time_gone += deleted_time;
        inner.parked_time_gone += deleted_parked;
        let mut changed = removed;
        for inst in inner.instances.values_mut() {
            let state = inst.state_at(now, settings);
            if state != inst.state {
                if inst.state == CloudState::Reimaging && !inst.starting {
                    inst.generation += 1;
                }
                inst.since += inst.delay_in(settings);
                if inst.starting {
                    inst.start_fails = false;
                    inst.start_late_by = Duration::ZERO;
                }
                inst.starting = false;
                inst.state = state;
                changed = true;
            }
        }
        if changed {
            inner.version += 1;
        }
        inner
    }

    fn add_instance(&self, inner: &mut Inner, now: Instant) -> u64 {
        let id = inner.next_id;
        inner.next_id += 1;
        let ip = IpAddr::V4(Ipv4Addr::new(127, self.settings.ip_block, (1 + id / 250) as u8, (1 + id % 250) as u8));
        let name = format!("{}{:06}", self.settings.name_prefix, id);
        inner.version += 1;
        inner.instances.insert(
            id,
            SimInstance {
                name,
                created: now,
                ip,
                state: CloudState::Creating,
                since: now,
                generation: 0,
                fails_provisioning: false,
                protected: false,
                latest_model: true,
                starting: false,
                parked: Duration::ZERO,
                parked_since: None,
                start_fails: false,
                start_late_by: Duration::ZERO,
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
        if let Some(inst) = inner.instance_mut(id) {
            inst.fails_provisioning = true;
        }
    }

    /// Set a protection policy on instance `id`, as an administrator would.
    pub fn protect(&self, id: &InstanceId) {
        let mut inner = self.lock();
        if let Some(inst) = inner.instance_mut(id) {
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

    /// Enforce Azure's compute throttling limits on this scale set's calls, as
    /// Microsoft's "Compute throttling limits" page documents them ([`Throttling`]);
    /// a call beyond them fails with 429 and a Retry-After, and is not carried out.
    pub fn with_azure_throttling(self) -> Self {
        self.lock().throttling = Some(Throttling::azure(Instant::now()));
        self
    }

    /// Keep the time of every accepted write ([`InMemoryScaleSet::write_times`]).
    pub fn with_write_log(self) -> Self {
        self.lock().write_log = Some(Vec::new());
        self
    }

    /// When each accepted write reached the cloud (empty unless [`Self::with_write_log`]).
    pub fn write_times(&self) -> Vec<Instant> {
        self.lock().write_log.clone().unwrap_or_default()
    }

    /// A number that changes whenever an instance is added, removed or changes state
    /// (including a boot, reimage or delete that finished by now): a watcher that saw
    /// the same version has nothing new to see.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Calls answered 429 by the throttling policies, by policy name.
    pub fn throttled(&self) -> BTreeMap<&'static str, u32> {
        self.lock().throttling.as_ref().map(|t| t.throttled.clone()).unwrap_or_default()
    }

    /// VM time so far, the compute Azure bills: every instance from its creation until its
    /// delete finished (or now), less the time it spent parked ([`Self::parked_time`]).
    pub fn vm_time(&self) -> Duration {
        let inner = self.lock();
        let now = Instant::now();
        inner.vm_time_gone
            + inner
                .instances
                .values()
                .map(|i| now.saturating_duration_since(i.created).saturating_sub(i.parked_at(now)))
                .sum::<Duration>()
    }

    /// Parked time so far: every instance's time from a deallocate call until it was started
    /// again (or deleted, or now). Its disk is billed, its compute is not.
    pub fn parked_time(&self) -> Duration {
        let inner = self.lock();
        let now = Instant::now();
        inner.parked_time_gone + inner.instances.values().map(|i| i.parked_at(now)).sum::<Duration>()
    }

    /// Instance `id` is deallocated at once, without a call of the operator's (as when
    /// someone deallocates it in the portal). Spends no throttling token.
    pub fn deallocate_by_hand(&self, id: &InstanceId) {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(inst) = inner.instance_mut(id) {
            inst.state = CloudState::Deallocated;
            inst.since = now;
            inst.starting = false;
            inst.parked_since.get_or_insert(now);
            inner.version += 1;
        }
    }

    /// Instance `id`, if deallocated, is started at once without a call of the operator's
    /// (someone starts it in the portal); it runs after `start_delay`.
    pub fn start_by_hand(&self, id: &InstanceId) {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(inst) = inner.instance_mut(id) {
            if inst.begin_start(now) {
                inner.version += 1;
            }
        }
    }

    /// Instance `id` is deleted without a call of the operator's (someone deletes it in
    /// the portal, or Azure's own scale-in); capacity drops by one.
    pub fn delete_by_hand(&self, id: &InstanceId) {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(inst) = inner.instance_mut(id) {
            if inst.state != CloudState::Deleting {
                inst.state = CloudState::Deleting;
                inst.since = now;
                inst.starting = false;
                inner.version += 1;
            }
        }
    }

    /// The next start of instance `id` ends `Failed` (an allocation failure), or takes
    /// `late_by` longer than `start_delay`.
    pub fn next_start_of(&self, id: &InstanceId, fails: bool, late_by: Duration) {
        let mut inner = self.lock();
        if let Some(inst) = inner.instance_mut(id) {
            inst.start_fails = fails;
            inst.start_late_by = late_by;
        }
    }

    /// Spend from the throttling policy `call` falls under; `Err` is Azure's 429.
    fn admit(&self, call: Call) -> Result<(), CloudFault> {
        let mut inner = self.lock();
        let Some(throttling) = inner.throttling.as_mut() else { return Ok(()) };
        throttling.admit(call, Instant::now())
    }

    fn log_write(inner: &mut Inner) {
        if let Some(log) = inner.write_log.as_mut() {
            log.push(Instant::now());
        }
    }

    /// Azure's 409 when an instance is held by another operation (`busy` says which).
    fn refuse_if_busy(&self, numbers: &[u64], busy: impl Fn(&SimInstance) -> bool) -> Result<(), CloudFault> {
        let inner = self.lock();
        match numbers.iter().find(|n| busy(&inner.instances[n])) {
            Some(n) => {
                let state = inner.instances[n].state;
                Err(CloudFault::Conflict(format!("instance {n} is {state:?}")))
            }
            None => Ok(()),
        }
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
        self.admit(Call::GetScaleSet).map_err(ScaleSetError::ReadFailed)?;
        Ok(self.live())
    }

    async fn list_instances(&self) -> Result<Vec<CloudInstance>, ScaleSetError> {
        if let Some(fault) = self.take_fault() {
            return Err(ScaleSetError::ReadFailed(fault));
        }
        self.admit(Call::ListInstances).map_err(ScaleSetError::ReadFailed)?;
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
        self.admit(Call::UpdateScaleSet).map_err(|source| ScaleSetError::SetCapacityFailed { capacity, source })?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.writes.set_capacity += 1;
        Self::log_write(&mut inner);
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
            inner.version += 1;
        }
        Ok(())
    }

    async fn delete_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let fail = |source| ScaleSetError::DeleteFailed { ids: ids.to_vec(), source };
        if let Some(fault) = self.take_fault() {
            return Err(fail(fault));
        }
        let numbers = self.parse_ids(ids).map_err(fail)?;
        self.admit(Call::DeleteInstances).map_err(fail)?;
        {
            let mut inner = self.lock();
            inner.writes.delete += 1;
            Self::log_write(&mut inner);
            inner.writes.deleted_ids.extend(ids.iter().cloned());
            inner.version += 1;
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
        self.refuse_if_busy(&numbers, |i| {
            matches!(i.state, CloudState::Deleting | CloudState::Deallocating) || i.starting
        })
        .map_err(fail)?;
        self.admit(Call::ReimageInstances).map_err(fail)?;
        {
            let mut inner = self.lock();
            inner.writes.reimage += 1;
            Self::log_write(&mut inner);
            inner.writes.reimaged_ids.extend(ids.iter().cloned());
            inner.version += 1;
            let now = Instant::now();
            for n in &numbers {
                let inst = inner.instances.get_mut(n).expect("checked above");
                inst.state = CloudState::Reimaging;
                inst.since = now;
                inst.fails_provisioning = false;
                // A reimage of a deallocated instance boots it on a fresh disk.
                if let Some(since) = inst.parked_since.take() {
                    inst.parked += now.saturating_duration_since(since);
                }
            }
        }
        tokio::time::sleep(self.settings.reimage_delay).await;
        Ok(())
    }

    async fn deallocate_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let fail = |source| ScaleSetError::DeallocateFailed { ids: ids.to_vec(), source };
        if let Some(fault) = self.take_fault() {
            return Err(fail(fault));
        }
        let numbers = self.parse_ids(ids).map_err(fail)?;
        // Created, reimaged, started or deleted right now: Azure's 409.
        self.refuse_if_busy(&numbers, |i| {
            matches!(i.state, CloudState::Deleting | CloudState::Creating | CloudState::Reimaging)
        })
        .map_err(fail)?;
        self.admit(Call::DeallocateInstances).map_err(fail)?;
        {
            let mut inner = self.lock();
            inner.writes.deallocate += 1;
            Self::log_write(&mut inner);
            inner.writes.deallocated_ids.extend(ids.iter().cloned());
            inner.version += 1;
            let now = Instant::now();
            for n in &numbers {
                let inst = inner.instances.get_mut(n).expect("checked above");
                if !matches!(inst.state, CloudState::Deallocating | CloudState::Deallocated) {
                    inst.state = CloudState::Deallocating;
                    inst.since = now;
                    inst.parked_since = Some(now);
                }
            }
        }
        tokio::time::sleep(self.settings.deallocate_delay).await;
        Ok(())
    }

    async fn start_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let fail = |source| ScaleSetError::StartFailed { ids: ids.to_vec(), source };
        if let Some(fault) = self.take_fault() {
            return Err(fail(fault));
        }
        let numbers = self.parse_ids(ids).map_err(fail)?;
        self.refuse_if_busy(&numbers, |i| {
            matches!(
                i.state,
                CloudState::Deleting | CloudState::Creating | CloudState::Reimaging | CloudState::Deallocating
            )
        })
        .map_err(fail)?;
        self.admit(Call::StartInstances).map_err(fail)?;
        {
            let mut inner = self.lock();
            inner.writes.start += 1;
            Self::log_write(&mut inner);
            inner.writes.started_ids.extend(ids.iter().cloned());
            inner.version += 1;
            let now = Instant::now();
            // A running instance is left as it is (Azure answers a start of one with success).
            for n in &numbers {
                inner.instances.get_mut(n).expect("checked above").begin_start(now);
            }
        }
        tokio::time::sleep(self.settings.start_delay).await;
        Ok(())
    }
}

/// A call to the scale set, by the throttling policy it spends from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `GET {vmss}` (the capacity): the scale set's "Low Cost Get" policy.
    GetScaleSet,
    /// `GET {vmss}/virtualMachines`: the scale-set VMs' "Get" policy.
    ListInstances,
    /// `PATCH {vmss}` with a new capacity: the scale set's "Update" policy.
    UpdateScaleSet,
    /// `POST {vmss}/delete` with instance ids.
    DeleteInstances,
    /// `POST {vmss}/reimage` with instance ids: an "Update" API with subscription-level limits only.
    ReimageInstances,
    /// `POST {vmss}/deallocate` with instance ids: the scale set's "Delete" policy.
    DeallocateInstances,
    /// `POST {vmss}/start` with instance ids: an "Update" API with subscription-level limits
    /// only, the same subscription bucket as the reimage.
    StartInstances,
}

/// One token bucket of Azure's: full at the start of the throttling window, one token
/// per call, `refill` new tokens at every whole minute of the window, never more than
/// `capacity` (the page's worked example: 12 at most, 4 more each minute).
#[derive(Clone, Debug)]
struct Bucket {
    capacity: u32,
    refill: u32,
    tokens: u32,
    /// The next minute boundary of the throttling window.
    next_refill: Instant,
}

impl Bucket {
    fn new(capacity: u32, refill: u32, window_start: Instant) -> Self {
        Self { capacity, refill, tokens: capacity, next_refill: window_start + MINUTE }
    }

    fn refill(&mut self, now: Instant) {
        while self.next_refill <= now {
            self.tokens = (self.tokens + self.refill).min(self.capacity);
            self.next_refill += MINUTE;
            if self.tokens == self.capacity {
                // Full: skip the minutes that would add nothing.
                let behind = now.saturating_duration_since(self.next_refill).as_secs() / 60;
                self.next_refill += MINUTE * behind as u32;
            }
        }
    }

    /// Spend a token, or say how long until the next one.
    fn spend(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens == 0 {
            return Err(self.next_refill.saturating_duration_since(now));
        }
        self.tokens -= 1;
        Ok(())
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// Azure's compute throttling for one scale set, from Microsoft's "Compute throttling
/// limits" page (learn.microsoft.com/azure/virtual-machines/compute-throttling-limits,
/// May 2024; recorded in `docs/simulate.md`). Per resource (this scale set):
///
/// | call | policy | refill / min | capacity |
/// |---|---|---|---|
/// | `PATCH {vmss}` (capacity) | scale set "Update" | 4 | 12 |
/// | `POST {vmss}/delete` (instance ids) | scale set "Delete" (the page does not list delete-instances; the nearest policy) | 4 | 12 |
/// | `POST {vmss}/reimage` (instance ids) | scale set "Update", "only subscription level policies are applicable" | 500 (subscription) | 1,500 |
/// | `POST {vmss}/deallocate` (instance ids) | scale set "Delete" (Deallocate is listed there) | 4 | 12 |
/// | `POST {vmss}/start` (instance ids) | scale set "Update", subscription level only, as the reimage | 500 (subscription) | 1,500 |
/// | `GET {vmss}` | scale set "Low Cost Get" | 12 | 36 |
/// | `GET {vmss}/virtualMachines` | scale-set VMs "Get" | 12 | 36 |
///
/// The subscription buckets (500/min and more for every other call) are not modelled:
/// one scale set alone cannot reach them, except the reimage's and the start's, their only
/// limit (one subscription "Update" bucket for both).
#[derive(Clone, Debug)]
struct Throttling {
    update: Bucket,
    delete: Bucket,
    reimage: Bucket,
    get: Bucket,
    list: Bucket,
    throttled: BTreeMap<&'static str, u32>,
}

impl Throttling {
    fn azure(window_start: Instant) -> Self {
        Self {
            update: Bucket::new(12, 4, window_start),
            delete: Bucket::new(12, 4, window_start),
            reimage: Bucket::new(1500, 500, window_start),
            get: Bucket::new(36, 12, window_start),
            list: Bucket::new(36, 12, window_start),
            throttled: BTreeMap::new(),
        }
    }

    fn admit(&mut self, call: Call, now: Instant) -> Result<(), CloudFault> {
        let (bucket, policy) = match call {
            Call::UpdateScaleSet => (&mut self.update, "VMScaleSet.Update"),
            Call::DeleteInstances | Call::DeallocateInstances => (&mut self.delete, "VMScaleSet.Delete"),
            Call::ReimageInstances | Call::StartInstances => (&mut self.reimage, "VMScaleSet.Update (subscription)"),
            Call::GetScaleSet => (&mut self.get, "VMScaleSet.LowCostGet"),
            Call::ListInstances => (&mut self.list, "VMScaleSetVM.Get"),
        };
        bucket.spend(now).map_err(|wait| {
            *self.throttled.entry(policy).or_default() += 1;
            // Azure names whole seconds.
            CloudFault::Throttled { retry_after: Some(Duration::from_secs(wait.as_secs_f64().ceil() as u64)) }
        })
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
    async fn azure_throttling_allows_twelve_capacity_updates_then_four_each_minute() {
        let set = InMemoryScaleSet::new(fast()).with_azure_throttling().with_write_log();
        let mut accepted = 0;
        for c in 1..=14 {
            accepted += u32::from(set.set_capacity(c).await.is_ok());
        }
        assert_eq!(accepted, 12);
        let err = set.set_capacity(20).await.unwrap_err();
        assert!(matches!(err.fault(), CloudFault::Throttled { retry_after: Some(d) } if *d == Duration::from_secs(60)));
        assert_eq!(set.throttled().get("VMScaleSet.Update"), Some(&3));
        // The page's example: the bucket gets 4 new tokens at the next minute.
        tokio::time::advance(Duration::from_secs(60)).await;
        let mut results = Vec::new();
        for c in 21..=25 {
            results.push(set.set_capacity(c).await.is_ok());
        }
        assert_eq!(results, [true, true, true, true, false]);
        assert_eq!(set.write_times().len(), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batched_reimage_spends_no_per_scale_set_token_but_a_delete_does() {
        let set = InMemoryScaleSet::with_running(fast(), 14).with_azure_throttling();
        // Each call is started, not waited for (Azure's long-running operation).
        let zero = Duration::ZERO;
        for _ in 0..30 {
            let ids = [InstanceId::new("0")];
            assert!(tokio::time::timeout(zero, set.reimage_instances(&ids)).await.is_err(), "accepted, still running");
        }
        for id in 1..=12 {
            let ids = [InstanceId::new(id.to_string())];
            assert!(tokio::time::timeout(zero, set.delete_instances(&ids)).await.is_err());
        }
        let refused = set.delete_instances(&[InstanceId::new("13")]).await.unwrap_err();
        assert_eq!(refused.fault().kind(), "throttled");
        assert!(set.set_capacity(3).await.is_ok(), "deletes and capacity updates have buckets of their own");
        assert_eq!(set.writes().reimage, 30);
    }

    #[tokio::test(start_paused = true)]
    async fn vm_time_counts_each_instance_until_its_delete_finished() {
        let set = InMemoryScaleSet::new(fast());
        set.set_capacity(2).await.unwrap();
        tokio::time::advance(Duration::from_secs(100)).await;
        set.delete_instances(&[InstanceId::new("0")]).await.unwrap(); // 20 s delete delay
        tokio::time::advance(Duration::from_secs(80)).await;
        // Instance 0: 120 s; instance 1: 200 s and still there.
        assert_eq!(set.vm_time(), Duration::from_secs(320));
    }

    fn states(set: &InMemoryScaleSet) -> Vec<CloudState> {
        set.snapshot().into_iter().map(|(_, _, state)| state).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_deallocated_instance_keeps_its_name_address_and_boot_and_starts_after_the_start_delay() {
        let set = InMemoryScaleSet::with_running(fast(), 2);
        let before = set.list_instances().await.unwrap();
        let ids = [InstanceId::new("0")];
        let deallocating = tokio::time::timeout(Duration::ZERO, set.deallocate_instances(&ids)).await;
        assert!(deallocating.is_err(), "a long-running operation");
        assert_eq!(states(&set), [CloudState::Deallocating, CloudState::Running]);
        tokio::time::advance(fast().deallocate_delay).await;
        assert_eq!(states(&set), [CloudState::Deallocated, CloudState::Running]);
        assert_eq!(set.capacity().await.unwrap(), 2, "a deallocated instance keeps its slot");
        assert_eq!(set.running_boots().len(), 1, "its VM is off");
        let listed = set.list_instances().await.unwrap();
        assert_eq!((&listed[0].name, listed[0].private_ip), (&before[0].name, before[0].private_ip));

        let started = tokio::spawn({
            let set = std::sync::Arc::new(set);
            let ids = ids.clone();
            async move {
                set.start_instances(&ids).await.unwrap();
                set
            }
        });
        tokio::time::advance(Duration::from_secs(44)).await;
        assert!(!started.is_finished(), "45 s by default");
        tokio::time::advance(Duration::from_secs(1)).await;
        let set = started.await.unwrap();
        assert_eq!(states(&set), [CloudState::Running, CloudState::Running]);
        let boots = set.running_boots();
        assert_eq!(boots[0].generation, 0, "the same disk boots again: not a new generation");
        let writes = set.writes();
        assert_eq!((writes.deallocate, writes.start, writes.total()), (1, 1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_is_listed_as_azure_lists_it_an_update_of_the_instance() {
        let set = InMemoryScaleSet::with_running(fast(), 1);
        let ids = [InstanceId::new("0")];
        set.deallocate_instances(&ids).await.unwrap();
        assert!(tokio::time::timeout(Duration::ZERO, set.start_instances(&ids)).await.is_err());
        let listed = set.list_instances().await.unwrap();
        assert_eq!((listed[0].state, listed[0].ready_since), (CloudState::Reimaging, None));
        let conflict = set.reimage_instances(&ids).await.unwrap_err();
        assert_eq!(conflict.fault().kind(), "conflict", "held by the start");
    }

    #[tokio::test(start_paused = true)]
    async fn vm_time_counts_compute_and_parked_time_the_deallocated_spell() {
        let set = InMemoryScaleSet::with_running(fast(), 2);
        let ids = [InstanceId::new("0")];
        tokio::time::advance(Duration::from_secs(100)).await;
        set.deallocate_instances(&ids).await.unwrap(); // 30 s deallocating, then deallocated
        tokio::time::advance(Duration::from_secs(170)).await;
        set.start_instances(&ids).await.unwrap(); // 45 s starting: billed
                                                  // At 345 s: instance 0 parked 200 s, computed 145 s; instance 1 computed 345 s.
        assert_eq!(set.parked_time(), Duration::from_secs(200));
        assert_eq!(set.vm_time(), Duration::from_secs(145 + 345));
        // Parked again, then deleted: parked until the delete finished.
        set.deallocate_instances(&ids).await.unwrap();
        set.delete_instances(&ids).await.unwrap(); // 20 s
        assert_eq!(set.parked_time(), Duration::from_secs(200 + 50));
        assert_eq!(set.vm_time(), Duration::from_secs(145 + 395));
    }

    #[tokio::test(start_paused = true)]
    async fn deallocations_spend_the_delete_bucket_and_starts_the_subscription_one() {
        let set = InMemoryScaleSet::with_running(fast(), 14).with_azure_throttling();
        for id in 0..8 {
            let ids = [InstanceId::new(id.to_string())];
            assert!(tokio::time::timeout(Duration::ZERO, set.deallocate_instances(&ids)).await.is_err());
        }
        for id in 8..12 {
            let ids = [InstanceId::new(id.to_string())];
            assert!(tokio::time::timeout(Duration::ZERO, set.delete_instances(&ids)).await.is_err());
        }
        let refused = set.deallocate_instances(&[InstanceId::new("12")]).await.unwrap_err();
        assert!(matches!(refused, ScaleSetError::DeallocateFailed { .. }));
        assert_eq!(refused.fault().kind(), "throttled");
        assert_eq!(set.throttled().get("VMScaleSet.Delete"), Some(&1));
        tokio::time::advance(fast().deallocate_delay).await;
        for id in 0..8 {
            let ids = [InstanceId::new(id.to_string())];
            assert!(
                tokio::time::timeout(Duration::ZERO, set.start_instances(&ids)).await.is_err(),
                "no bucket of its own"
            );
        }
        assert!(set.set_capacity(14).await.is_ok(), "the Update bucket is untouched");
    }

    #[tokio::test(start_paused = true)]
    async fn someone_else_can_deallocate_an_instance_and_busy_instances_refuse_with_409() {
        let set = InMemoryScaleSet::new(fast());
        set.set_capacity(1).await.unwrap();
        let ids = [InstanceId::new("0")];
        let creating = set.deallocate_instances(&ids).await.unwrap_err();
        assert_eq!(creating.fault().kind(), "conflict");
        tokio::time::advance(fast().boot_delay).await;
        set.deallocate_by_hand(&ids[0]);
        assert_eq!(states(&set), [CloudState::Deallocated]);
        assert_eq!(set.writes().total(), 1, "only the capacity change was a call");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(set.parked_time(), Duration::from_secs(10));
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
