//! Fake Azure Resource Manager for Uniform VM scale sets: the Compute calls the operator makes
//! (get, PATCH `sku.capacity`, list VMs with instance view, delete, reimage, deallocate and start
//! instances, async-operation status) and the Network RP's scale-set NIC listing for private IPs.
//!
//! Instances live on tokio's clock: Creating → Running after `boot_delay`, Reimaging → Running
//! after `reimage_delay` (a new boot, same address), Deleting → gone after `delete_delay`,
//! Deallocating → Deallocated after `deallocate_delay`, Starting → Running after `start_delay`.
//! Capacity changes spend from a per-scale-set Update bucket, deletes and deallocations from a
//! Delete bucket, both shaped like Azure's documented limit (burst 12, one more every 15 s);
//! reimages and starts spend none (subscription-level policies only, which one scale set cannot
//! reach). An empty bucket answers 429 + `Retry-After`.
//!
//! A deallocated instance keeps its id, computer name, disk (its boot `generation`) and private
//! address, and still counts in `sku.capacity`; its NIC stays listed. Microsoft Learn, "Private
//! IP addresses": a dynamic private address is released only when its network interface is
//! deleted, moved to another subnet or switched to static with another address, and deallocating
//! a scale-set VM does none of these. As in Azure's instance view, a deallocation shows
//! provisioning `Updating` with `PowerState/deallocating`, then `Succeeded` with
//! `PowerState/deallocated`; a start shows `Updating` with `PowerState/starting`, exactly as a
//! reimage does.
//!
//! Files: this one holds the public face (settings, operations, the server handle and its
//! controls); `model` the scale sets, their instances, write buckets and operations;
//! `gate` authentication, faults, throttling and the error answers; `routes` the handlers
//! and the JSON they render.

mod gate;
mod model;
mod routes;

use gate::*;
use model::*;
use routes::*;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    http::StatusCode,
    middleware,
    routing::{get, post},
    Router,
};
use tokio::time::Instant;

use crate::{
    fault::{Fault, Faults},
    identity::FakeIdentity,
    record::{self, Recorder},
    server::{self, Server},
};

/// The Compute api-version the fake serves (the operator pins the same).
pub const COMPUTE_API_VERSION: &str = "2025-04-01";
/// The Network RP's scale-set NIC operations exist only at this api-version.
pub const NETWORK_VMSS_API_VERSION: &str = "2018-10-01";
/// Name of the rate-limit policy the fake reports in `x-ms-ratelimit-remaining-resource`.
pub const WRITE_POLICY: &str = "Microsoft.Compute/VMScaleSetUpdates";

/// The calls the fake serves, for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmOp {
    GetScaleSet,
    SetCapacity,
    ListVms,
    ListNics,
    DeleteInstances,
    ReimageInstances,
    DeallocateInstances,
    StartInstances,
    OperationStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrchestrationMode {
    Uniform,
    Flexible,
}

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstancePhase {
    Creating,
    Running,
    Reimaging,
    Deleting,
    Failed,
    /// Shutting down and releasing its hardware (`deallocate_delay`).
    Deallocating,
    /// Deallocated: disk, name and address kept, no compute billed.
    Deallocated,
    /// Powering up again from its own disk (`start_delay`); not a new boot generation.
    Starting,
}

/// One scale set to create in the fake.
#[derive(Clone, Debug)]
pub struct ScaleSetSpec {
    pub name: String,
    pub orchestration_mode: OrchestrationMode,
    /// Instances that exist, already running, when the scale set is added.
    pub running: u32,
    pub sku_name: String,
    /// Computer names are `<prefix><6-digit id>`, as in a Uniform scale set.
    pub computer_name_prefix: String,
    /// Instances get private IPs <ip_first_octet>.<ip_block>.x.y (x, y from 1; .0.z is never
    /// handed out, so a test can put its own host address there).
    pub ip_block: u8,
    /// 127 by default, so simulated VMs can bind their loopback address; a test that gives
    /// each VM its own network namespace picks a private range such as 10 instead.
    pub ip_first_octet: u8,
}

impl ScaleSetSpec {
    pub fn uniform(name: &str, running: u32) -> Self {
        Self {
            name: name.to_owned(),
            orchestration_mode: OrchestrationMode::Uniform,
            running,
            sku_name: "Standard_D2s_v5".to_owned(),
            computer_name_prefix: "runner".to_owned(),
            ip_block: 1,
            ip_first_octet: 127,
        }
    }

    pub fn flexible(name: &str) -> Self {
        Self { orchestration_mode: OrchestrationMode::Flexible, ..Self::uniform(name, 0) }
    }
}

/// A write bucket: `burst` writes, one more every `refill_every`.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimit {
    pub burst: u32,
    pub refill_every: Duration,
}

impl WriteLimit {
    /// Azure's documented per-scale-set limit: 4 updates a minute, burst 12.
    pub fn azure() -> Self {
        Self { burst: 12, refill_every: Duration::from_secs(15) }
    }
}

#[derive(Clone, Debug)]
pub struct ArmSettings {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub boot_delay: Duration,
    pub reimage_delay: Duration,
    pub delete_delay: Duration,
    pub deallocate_delay: Duration,
    pub start_delay: Duration,
    /// VMs and NICs per listing page; `nextLink` leads to the next.
    pub page_size: usize,
    /// `None` disables the fake's own write throttling.
    pub write_limit: Option<WriteLimit>,
    /// `Retry-After` (seconds) on async-operation answers still in progress; none when `None`.
    pub operation_retry_after: Option<u64>,
}

impl Default for ArmSettings {
    fn default() -> Self {
        Self {
            subscription_id: "00000000-0000-0000-0000-000000000001".to_owned(),
            resource_group: "rg-runners".to_owned(),
            location: "westeurope".to_owned(),
            boot_delay: Duration::from_millis(300),
            reimage_delay: Duration::from_millis(200),
            delete_delay: Duration::from_millis(200),
            deallocate_delay: Duration::from_millis(200),
            start_delay: Duration::from_millis(200),
            page_size: 50,
            write_limit: Some(WriteLimit::azure()),
            operation_retry_after: None,
        }
    }
}

/// Accepted writes, by kind. Deliberately not `operator_sim::memory::WriteCounts`:
/// this fake shares no code with the operator's side (see the crate docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub set_capacity: u32,
    pub delete: u32,
    pub reimage: u32,
    pub deallocate: u32,
    pub start: u32,
    pub deleted_ids: Vec<String>,
    pub reimaged_ids: Vec<String>,
    pub deallocated_ids: Vec<String>,
    pub started_ids: Vec<String>,
    /// Writes refused with 429 by the fake's write limit.
    pub throttled: u32,
}

impl WriteCounts {
    pub fn total(&self) -> u32 {
        self.set_capacity + self.delete + self.reimage + self.deallocate + self.start
    }
}

/// One instance as the test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeInstance {
    pub id: String,
    pub computer_name: String,
    pub ip: IpAddr,
    pub phase: InstancePhase,
    /// Bumped by every completed reimage (a new boot).
    pub generation: u32,
}

/// The fake Resource Manager on a loopback port. Requests need a bearer token from the
/// [`FakeIdentity`] it was started with, issued for [`FakeArm::audience`].
pub struct FakeArm {
    server: Server,
    state: Arc<ArmState>,
    recorder: Recorder,
}

impl FakeArm {
    pub async fn start(identity: &FakeIdentity, settings: ArmSettings) -> Self {
        let listener = server::bind().await;
        let addr = listener.local_addr().expect("listener address");
        let state = Arc::new(ArmState {
            settings,
            identity: identity.state.clone(),
            base: format!("http://{addr}"),
            inner: Mutex::new(Inner { sets: BTreeMap::new(), operations: HashMap::new(), next_operation: 0 }),
            faults: Faults::default(),
        });
        let recorder = Recorder::default();
        let set = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}";
        let ops = "/subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}";
        let router = Router::new()
            .route(set, get(get_scale_set).patch(patch_scale_set))
            .route(&format!("{set}/virtualMachines"), get(list_vms))
            .route(&format!("{set}/networkInterfaces"), get(list_nics))
            .route(&format!("{set}/delete"), post(delete_instances))
            .route(&format!("{set}/reimage"), post(reimage_instances))
            .route(&format!("{set}/deallocate"), post(deallocate_instances))
            .route(&format!("{set}/start"), post(start_instances))
            .route(&format!("{ops}/operations/{{id}}"), get(operation_status))
            .route(&format!("{ops}/operationResults/{{id}}"), get(operation_result))
            .fallback(|| async {
                arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", "The fake serves no such path.")
            })
            .with_state(state.clone())
            .layer(middleware::from_fn_with_state(recorder.clone(), record::record));
        let server = server::serve(listener, router);
        Self { server, state, recorder }
    }

    /// The Resource Manager endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The resource tokens must be issued for: the endpoint itself.
    pub fn audience(&self) -> String {
        self.base_url()
    }

    /// Add a scale set; returns its resource id.
    pub fn add_scale_set(&self, spec: ScaleSetSpec) -> String {
        let now = Instant::now();
        let name = spec.name.clone();
        let burst = self.state.settings.write_limit.map_or(0, |l| l.burst);
        let mut set = FakeScaleSet {
            capacity: spec.running,
            spec,
            next_id: 0,
            instances: BTreeMap::new(),
            writes: WriteCounts::default(),
            update_bucket: Bucket { tokens: burst, last_refill: now },
            delete_bucket: Bucket { tokens: burst, last_refill: now },
            busy_until: now,
        };
        for _ in 0..set.capacity {
            set.add_instance(InstancePhase::Running, now);
        }
        self.state.lock().sets.insert(name.to_lowercase(), set);
        self.resource_id(&name)
    }

    pub fn resource_id(&self, name: &str) -> String {
        self.state.scale_set_id(name)
    }

    /// The next `times` calls of `op` (of any call when `None`) fail with `fault`.
    pub fn inject(&self, op: Option<ArmOp>, fault: Fault, times: u32) {
        self.state.faults.push(op, fault, times);
    }

    /// Injected faults not yet consumed.
    pub fn pending_faults(&self) -> usize {
        self.state.faults.pending()
    }

    fn with_set<T>(&self, name: &str, f: impl FnOnce(&mut FakeScaleSet) -> T) -> T {
        let mut inner = self.state.lock();
        let set = inner.sets.get_mut(&name.to_lowercase()).unwrap_or_else(|| panic!("no scale set {name} in the fake"));
        set.settle(&self.state.settings, Instant::now());
        f(set)
    }

    pub fn writes(&self, name: &str) -> WriteCounts {
        self.with_set(name, |s| s.writes.clone())
    }

    /// `sku.capacity` as the fake holds it.
    pub fn capacity(&self, name: &str) -> u32 {
        self.with_set(name, |s| s.capacity)
    }

    pub fn instances(&self, name: &str) -> Vec<FakeInstance> {
        self.with_set(name, |s| {
            s.instances
                .iter()
                .map(|(id, i)| FakeInstance {
                    id: id.to_string(),
                    computer_name: i.computer_name.clone(),
                    ip: IpAddr::V4(i.ip),
                    phase: i.phase,
                    generation: i.generation,
                })
                .collect()
        })
    }

    /// The instance disappears without any call (as when someone deletes it by hand).
    pub fn vanish(&self, name: &str, instance_id: &str) {
        self.with_set(name, |s| {
            if let Some(id) = instance_id.parse::<u64>().ok().filter(|id| s.instances.contains_key(id)) {
                s.instances.remove(&id);
                s.capacity = s.capacity.saturating_sub(1);
            }
        });
    }

    /// The instance's provisioning fails.
    pub fn fail_instance(&self, name: &str, instance_id: &str) {
        self.with_set(name, |s| {
            if let Some(inst) = instance_id.parse::<u64>().ok().and_then(|id| s.instances.get_mut(&id)) {
                inst.phase = InstancePhase::Failed;
            }
        });
    }

    /// The instance is deallocated at once without a call of the operator's (as when someone
    /// deallocates it in the portal): same name, disk and address.
    pub fn deallocate_by_hand(&self, name: &str, instance_id: &str) {
        self.set_phase_by_hand(name, instance_id, InstancePhase::Deallocated);
    }

    /// The instance runs again at once without a call of the operator's (someone started it).
    pub fn start_by_hand(&self, name: &str, instance_id: &str) {
        self.set_phase_by_hand(name, instance_id, InstancePhase::Running);
    }

    fn set_phase_by_hand(&self, name: &str, instance_id: &str, phase: InstancePhase) {
        self.with_set(name, |s| {
            if let Some(inst) = instance_id.parse::<u64>().ok().and_then(|id| s.instances.get_mut(&id)) {
                inst.phase = phase;
                inst.since = Instant::now();
            }
        });
    }

    /// Every exchange served so far (ARM and Network calls alike).
    pub fn exchanges(&self) -> Vec<contract::Exchange> {
        self.recorder.exchanges()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ArmSettings {
        ArmSettings {
            boot_delay: Duration::from_secs(10),
            reimage_delay: Duration::from_secs(5),
            delete_delay: Duration::from_secs(3),
            deallocate_delay: Duration::from_secs(4),
            start_delay: Duration::from_secs(6),
            ..ArmSettings::default()
        }
    }

    fn set(running: u32) -> FakeScaleSet {
        let now = Instant::now();
        let mut set = FakeScaleSet {
            spec: ScaleSetSpec::uniform("vmss", running),
            capacity: running,
            next_id: 0,
            instances: BTreeMap::new(),
            writes: WriteCounts::default(),
            update_bucket: Bucket { tokens: 12, last_refill: now },
            delete_bucket: Bucket { tokens: 12, last_refill: now },
            busy_until: now,
        };
        for _ in 0..running {
            set.add_instance(InstancePhase::Running, now);
        }
        set
    }

    #[tokio::test(start_paused = true)]
    async fn instances_boot_after_the_boot_delay_with_addresses_in_their_block() {
        let mut set = set(0);
        set.add_instance(InstancePhase::Creating, Instant::now());
        set.add_instance(InstancePhase::Creating, Instant::now());
        tokio::time::advance(Duration::from_secs(9)).await;
        set.settle(&settings(), Instant::now());
        assert!(set.instances.values().all(|i| i.phase == InstancePhase::Creating));
        tokio::time::advance(Duration::from_secs(1)).await;
        set.settle(&settings(), Instant::now());
        assert!(set.instances.values().all(|i| i.phase == InstancePhase::Running));
        let ips: Vec<_> = set.instances.values().map(|i| i.ip.to_string()).collect();
        assert_eq!(ips, ["127.1.1.1", "127.1.1.2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn reimage_is_a_new_boot_and_delete_removes_the_instance_for_good() {
        let mut set = set(2);
        let now = Instant::now();
        set.instances.get_mut(&0).unwrap().phase = InstancePhase::Reimaging;
        set.instances.get_mut(&0).unwrap().since = now;
        set.instances.get_mut(&1).unwrap().phase = InstancePhase::Deleting;
        set.instances.get_mut(&1).unwrap().since = now;
        tokio::time::advance(Duration::from_secs(5)).await;
        set.settle(&settings(), Instant::now());
        assert_eq!(set.instances.len(), 1);
        assert_eq!((set.instances[&0].phase, set.instances[&0].generation), (InstancePhase::Running, 1));
        set.add_instance(InstancePhase::Creating, Instant::now());
        assert_eq!(set.instances.keys().copied().collect::<Vec<_>>(), [0, 2], "ids are never reused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deallocated_instance_keeps_its_name_address_and_boot_and_starts_after_the_start_delay() {
        let mut set = set(1);
        let before = (set.instances[&0].computer_name.clone(), set.instances[&0].ip, set.instances[&0].generation);
        set.instances.get_mut(&0).unwrap().phase = InstancePhase::Deallocating;
        set.instances.get_mut(&0).unwrap().since = Instant::now();
        tokio::time::advance(Duration::from_secs(4)).await;
        set.settle(&settings(), Instant::now());
        assert_eq!(set.instances[&0].phase, InstancePhase::Deallocated);
        assert_eq!(set.live().count(), 1, "still in the capacity");
        set.instances.get_mut(&0).unwrap().phase = InstancePhase::Starting;
        set.instances.get_mut(&0).unwrap().since = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        set.settle(&settings(), Instant::now());
        assert_eq!(set.instances[&0].phase, InstancePhase::Starting);
        tokio::time::advance(Duration::from_secs(1)).await;
        set.settle(&settings(), Instant::now());
        let inst = &set.instances[&0];
        assert_eq!(inst.phase, InstancePhase::Running);
        assert_eq!((inst.computer_name.clone(), inst.ip, inst.generation), before, "same disk: the same boot");
    }

    #[tokio::test(start_paused = true)]
    async fn the_write_bucket_allows_a_burst_of_twelve_then_one_every_fifteen_seconds() {
        let mut bucket = Bucket { tokens: 12, last_refill: Instant::now() };
        let limit = WriteLimit::azure();
        for _ in 0..12 {
            bucket.take(limit, Instant::now()).unwrap();
        }
        assert_eq!(bucket.take(limit, Instant::now()), Err(Duration::from_secs(15)));
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(bucket.take(limit, Instant::now()), Ok(()));
        assert!(bucket.take(limit, Instant::now()).is_err());
    }
}
