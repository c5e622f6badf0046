//! The fake's state: scale sets, their instances on tokio's clock, each scale set's write
//! bucket, and the async operations it answers for.

use super::*;
use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use crate::{fault::Faults, identity::IdentityState};

pub(super) struct Inst {
    pub(super) computer_name: String,
    pub(super) ip: Ipv4Addr,
    pub(super) phase: InstancePhase,
    pub(super) since: Instant,
    pub(super) generation: u32,
}

/// One of Azure's per-scale-set write buckets. It does what `operator_core::budget`
/// does on the operator's side, written again on purpose (and on the continuous reading
/// of the page, one token every `refill_every`, where the operator's refills a minute's
/// tokens at once): a fake that reused the
/// operator's bucket could not show the operator's bucket to be wrong (crate docs).
pub(super) struct Bucket {
    pub(super) tokens: u32,
    pub(super) last_refill: Instant,
}

impl Bucket {
    pub(super) fn refill(&mut self, limit: WriteLimit, now: Instant) {
        let every = limit.refill_every.as_nanos().max(1);
        let earned = (now.saturating_duration_since(self.last_refill).as_nanos() / every) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(limit.burst);
            self.last_refill =
                if self.tokens == limit.burst { now } else { self.last_refill + limit.refill_every * earned };
        }
    }

    /// Take one write, or say how long until one is available.
    pub(super) fn take(&mut self, limit: WriteLimit, now: Instant) -> Result<(), Duration> {
        self.refill(limit, now);
        if self.tokens > 0 {
            self.tokens -= 1;
            Ok(())
        } else {
            Err((self.last_refill + limit.refill_every).saturating_duration_since(now))
        }
    }
}

pub(super) struct FakeScaleSet {
    pub(super) spec: ScaleSetSpec,
    pub(super) capacity: u32,
    pub(super) next_id: u64,
    pub(super) instances: BTreeMap<u64, Inst>,
    pub(super) writes: WriteCounts,
    /// The Update policy's bucket (capacity changes).
    pub(super) update_bucket: Bucket,
    /// The Delete policy's bucket (batched deletes and deallocations). Batched reimages
    /// and starts spend only subscription-wide policies, which one scale set cannot reach:
    /// no bucket.
    pub(super) delete_bucket: Bucket,
    pub(super) busy_until: Instant,
}

impl FakeScaleSet {
    pub(super) fn add_instance(&mut self, phase: InstancePhase, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let ip =
            Ipv4Addr::new(self.spec.ip_first_octet, self.spec.ip_block, (1 + id / 250) as u8, (1 + id % 250) as u8);
        let computer_name = format!("{}{:06}", self.spec.computer_name_prefix, id);
        self.instances.insert(id, Inst { computer_name, ip, phase, since: now, generation: 0 });
    }

    /// Apply every transition due by `now`.
    pub(super) fn settle(&mut self, settings: &ArmSettings, now: Instant) {
        let mut gone = Vec::new();
        for (id, inst) in &mut self.instances {
            let age = now.saturating_duration_since(inst.since);
            match inst.phase {
                InstancePhase::Creating if age >= settings.boot_delay => {
                    inst.phase = InstancePhase::Running;
                    inst.since += settings.boot_delay;
                }
                InstancePhase::Reimaging if age >= settings.reimage_delay => {
                    inst.phase = InstancePhase::Running;
                    inst.generation += 1;
                    inst.since += settings.reimage_delay;
                }
                InstancePhase::Deallocating if age >= settings.deallocate_delay => {
                    inst.phase = InstancePhase::Deallocated;
                    inst.since += settings.deallocate_delay;
                }
                // The same disk powers up again: the same boot generation.
                InstancePhase::Starting if age >= settings.start_delay => {
                    inst.phase = InstancePhase::Running;
                    inst.since += settings.start_delay;
                }
                InstancePhase::Deleting if age >= settings.delete_delay => gone.push(*id),
                _ => {}
            }
        }
        for id in gone {
            self.instances.remove(&id);
        }
    }

    pub(super) fn live(&self) -> impl Iterator<Item = u64> + '_ {
        self.instances.iter().filter(|(_, i)| i.phase != InstancePhase::Deleting).map(|(id, _)| *id)
    }

    pub(super) fn remaining_writes(&mut self, limit: Option<WriteLimit>, now: Instant) -> Option<u32> {
        let limit = limit?;
        self.update_bucket.refill(limit, now);
        Some(self.update_bucket.tokens)
    }
}

pub(super) struct Operation {
    pub(super) started: SystemTime,
    pub(super) length: Duration,
    pub(super) done_at: Instant,
}

pub(super) struct Inner {
    pub(super) sets: BTreeMap<String, FakeScaleSet>,
    pub(super) operations: HashMap<String, Operation>,
    pub(super) next_operation: u64,
}

pub(super) struct ArmState {
    pub(super) settings: ArmSettings,
    pub(super) identity: Arc<IdentityState>,
    pub(super) base: String,
    pub(super) inner: Mutex<Inner>,
    pub(super) faults: Faults<ArmOp>,
}

impl ArmState {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn base(&self) -> &str {
        &self.base
    }

    pub(super) fn scale_set_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}",
            self.settings.subscription_id, self.settings.resource_group, name
        )
    }

    pub(super) fn operation_path(&self, kind: &str, id: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/{kind}/{id}?api-version={COMPUTE_API_VERSION}",
            self.base(),
            self.settings.subscription_id,
            self.settings.location
        )
    }

    pub(super) fn start_operation(&self, inner: &mut Inner, now: Instant, done_at: Instant) -> String {
        inner.next_operation += 1;
        let id = format!("00000000-0000-4000-8000-{:012x}", inner.next_operation);
        let length = done_at.saturating_duration_since(now);
        inner.operations.insert(id.clone(), Operation { started: SystemTime::now(), length, done_at });
        id
    }
}
