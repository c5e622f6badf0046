//! The scaling policy: a pure function from an observed pool to actions.
//!
//! No clock, no I/O: every age arrives as a [`Duration`] in the observation, so the
//! same code runs in the operator, in unit and property tests, and in the simulator.
//! The formula is written out with a worked example in `docs/scaling-policy.md`.

use std::time::Duration;

use crate::model::{InstanceId, InstanceState};

/// The pool's bounds and timings, from the configuration. `min`, `parked` and
/// `free_target_percentage` are the *effective* targets at the time of the pass: fixed
/// counts, a schedule's or the learned mode's (computed outside, see `targets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Fewest running instances (busy or free).
    pub min: u32,
    pub max: u32,
    pub free_target_percentage: u8,
    /// Ready instances kept in reserve deallocated ("parked"), besides the running ones:
    /// they bill their disk only and are started before new instances are created. The
    /// reserve shrinks as demand grows, so the pool never passes `max`.
    pub parked: u32,
    pub scale_in_delay: Duration,
    pub registration_timeout: Duration,
    pub runner_exit_timeout: Duration,
    /// Keep the newest broken instance for debugging (at most one; never counted as free).
    pub keep_unhealthy: bool,
}

impl PoolSpec {
    /// `min`, `max` and the free target, nothing parked, with the configuration's default
    /// timeouts (scale-in delay 5 min, registration and runner-exit timeouts 10 min) and
    /// no instance kept for debugging. Override fields with struct-update syntax.
    pub fn new(min: u32, max: u32, free_target_percentage: u8) -> Self {
        Self {
            min,
            max,
            free_target_percentage,
            parked: 0,
            scale_in_delay: Duration::from_secs(5 * 60),
            registration_timeout: Duration::from_secs(10 * 60),
            runner_exit_timeout: Duration::from_secs(10 * 60),
            keep_unhealthy: false,
        }
    }
}

/// One instance as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedInstance {
    pub id: InstanceId,
    pub state: InstanceState,
    /// How long it has been in `state`.
    pub in_state_for: Duration,
    /// Runs the scale set's current model; a finished instance that does not is deleted,
    /// never reimaged (a reimage would restore its old model).
    pub latest_model: bool,
}

/// The pool as last observed: the scale set's capacity, its listed instances and, with
/// a demand source, the jobs GitHub has assigned to the pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedPool {
    /// `sku.capacity`: instances Azure has or is creating (deleting ones excluded).
    pub capacity: u32,
    pub instances: Vec<ObservedInstance>,
    /// Jobs assigned to the pool, waiting or running (the runner scale set's
    /// `totalAssignedJobs`); `None` without a demand source, when the policy sees only
    /// the jobs its own runners run.
    pub assigned_jobs: Option<u32>,
}

/// What the policy wants done. `delete` runs first; `capacity` is the absolute size to
/// set afterwards (it already accounts for the deletes) and only ever grows the pool:
/// shrinking is always by deleting named idle instances, never by lowering capacity,
/// because Azure would pick the instances to remove and could pick busy ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub capacity: Option<u32>,
    pub reimage: Vec<InstanceId>,
    pub delete: Vec<InstanceId>,
    /// VMs told to park at their registration, to deallocate now.
    pub park: Vec<InstanceId>,
    /// Parked VMs to start: they serve demand sooner than new ones.
    pub start: Vec<InstanceId>,
    pub target: Target,
}

/// The numbers behind a decision, for metrics, logs and the demo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Instances running a job.
    pub busy: u32,
    /// Instances free now or soon (provisioning, awaiting registration, idle, reimaging,
    /// starting).
    pub free: u32,
    /// Instances in the reserve or going there (parking, parked).
    pub parked: u32,
    /// Instances the pool holds (capacity, or the listed instances if more).
    pub size: u32,
    /// Jobs to serve: `max(assigned jobs, busy)` with a demand source, `busy` without.
    pub demand: u32,
    /// Running instances wanted: `clamp(demand + ceil(p * demand / (100 - p)), min, max)`.
    pub desired: u32,
    /// Free instances wanted: `desired - busy`.
    pub free_wanted: u32,
    /// Parked instances wanted: `min(parked, max - desired)`.
    pub parked_wanted: u32,
    /// Pool size once the decision is carried out.
    pub size_after: u32,
}

/// Free instances needed next to `busy` ones so that they make up `pct` % of the pool.
pub fn required_free(busy: u32, pct: u8) -> u32 {
    let (busy, pct) = (u64::from(busy), u64::from(pct.min(99)));
    // ceil(pct * busy / (100 - pct)) in integers.
    let needed = (pct * busy).div_ceil(100 - pct);
    u32::try_from(needed).unwrap_or(u32::MAX)
}

/// What a booting VM asking for its registration is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationAnswer {
    /// Register a runner and take a job.
    Register,
    /// Go into the reserve: no registration; the operator deallocates the VM.
    Park,
}

/// The pool counted once, for [`decide`] and [`registration_answer`].
struct Census<'a> {
    instances: Vec<&'a ObservedInstance>,
    busy: u32,
    free: u32,
    /// Free instances that have not registered a runner yet (being created, reimaged or
    /// started, or awaiting registration): the ones that can still be told to park.
    unregistered_free: u32,
    /// Free instances still being created, listed (Provisioning) or not: a boot away.
    booting: u32,
    parked: u32,
    size: u32,
    demand: u32,
    desired: u32,
    free_wanted: u32,
    parked_wanted: u32,
}

impl<'a> Census<'a> {
    fn of(spec: &PoolSpec, pool: &'a ObservedPool) -> Self {
        let mut instances: Vec<&ObservedInstance> = pool.instances.iter().collect();
        instances.sort_by(|a, b| a.id.sort_key().cmp(&b.id.sort_key()));
        let count = |pred: &dyn Fn(&ObservedInstance) -> bool| -> u32 {
            u32::try_from(instances.iter().filter(|i| pred(i)).count()).unwrap_or(u32::MAX)
        };
        let listed_live = count(&|i| i.state != InstanceState::Deleting);
        // Capacity Azure has accepted but whose instances are not listed yet count as free.
        let unlisted = pool.capacity.saturating_sub(listed_live);
        let busy = count(&|i| i.state == InstanceState::Busy);
        let free = count(&|i| i.state.is_free() && !registration_overdue(spec, i)) + unlisted;
        let unregistered_free =
            count(&|i| i.state != InstanceState::Idle && i.state.is_free() && !registration_overdue(spec, i))
                + unlisted;
        let parked = count(&|i| i.state.is_parked() && !parking_overdue(spec, i));
        let booting = count(&|i| i.state == InstanceState::Provisioning) + unlisted;
        // Busy instances always count: the statistics can lag behind the hooks.
        let demand = pool.assigned_jobs.map_or(busy, |assigned| assigned.max(busy));
        let max = spec.max.max(spec.min);
        let desired = (demand + required_free(demand, spec.free_target_percentage)).clamp(spec.min, max);
        Census {
            instances,
            busy,
            free,
            unregistered_free,
            booting,
            parked,
            size: listed_live + unlisted,
            demand,
            desired,
            free_wanted: desired.saturating_sub(busy),
            parked_wanted: spec.parked.min(max.saturating_sub(desired)),
        }
    }

    /// Parked instances plus the unregistered free ones beyond the free target: the
    /// reserve once those are told to park at their registration.
    fn reserve_pending(&self, free: u32, unregistered_free: u32, parked: u32) -> u32 {
        parked + free.saturating_sub(self.free_wanted).min(unregistered_free)
    }

    /// The pending reserve falls short of `parked_wanted`.
    fn reserve_short(&self, free: u32, unregistered_free: u32, parked: u32) -> bool {
        self.reserve_pending(free, unregistered_free, parked) < self.parked_wanted
    }
}

/// What the VM `asking` (awaiting its registration) is told: park when the reserve is
/// short and the free target holds without it, counting only the VMs that are up now
/// (idle, or booted and awaiting their registration); register otherwise. VMs still
/// being created, reimaged or started do not count: a VM started for a waiting job is
/// not parked again because the reserve's replacements are on their way, and whichever
/// VM is up first serves the job. An instance on an old model is never parked (it is
/// replaced after its job instead).
pub fn registration_answer(spec: &PoolSpec, pool: &ObservedPool, asking: &InstanceId) -> RegistrationAnswer {
    let census = Census::of(spec, pool);
    let Some(inst) = census.instances.iter().find(|i| i.id == *asking) else { return RegistrationAnswer::Register };
    let up = |i: &&&ObservedInstance| {
        matches!(i.state, InstanceState::Idle | InstanceState::AwaitingRegistration) && !registration_overdue(spec, i)
    };
    let up_without = census.instances.iter().filter(up).filter(|i| i.id != *asking).count();
    let up_without = u32::try_from(up_without).unwrap_or(u32::MAX);
    if inst.latest_model && census.parked < census.parked_wanted && up_without >= census.free_wanted {
        RegistrationAnswer::Park
    } else {
        RegistrationAnswer::Register
    }
}

/// The whole policy. See the module docs and `docs/scaling-policy.md`.
pub fn decide(spec: &PoolSpec, pool: &ObservedPool) -> Decision {
    let census = Census::of(spec, pool);
    let instances = &census.instances;
    let (busy, size, demand, desired, free_wanted, parked_wanted) =
        (census.busy, census.size, census.demand, census.desired, census.free_wanted, census.parked_wanted);
    let (mut free, mut unregistered_free, mut parked) = (census.free, census.unregistered_free, census.parked);
    let mut live = size;
    // Without a demand source the pool reimages even at exactly its target: the next job
    // is unseen until it lands, and deleting would leave no headroom for it. With one,
    // every waiting job is already in `free_wanted`, so a finished VM the target does not
    // need is deleted.
    let keep_at_target = pool.assigned_jobs.is_none();

    let mut decision = Decision::default();

    // 1. Broken instances go: failed provisioning, a runner that never registered, or a
    //    VM that never finished parking. Optionally the newest stays for someone to look
    //    at (it still takes a slot).
    let broken: Vec<&&ObservedInstance> = instances
        .iter()
        .filter(|i| i.state == InstanceState::Failed || registration_overdue(spec, i) || parking_overdue(spec, i))
        .collect();
    let kept = if spec.keep_unhealthy { broken.last().map(|i| &i.id) } else { None };
    for inst in broken.iter().filter(|i| Some(&i.id) != kept) {
        decision.delete.push(inst.id.clone());
        live -= 1;
    }

    // 2. Instances whose job is over: reimage while the pool needs free runners, would
    //    drop below min, or its reserve is short (the fresh boot is told to park); delete
    //    otherwise (and always when above max). "Needs" includes being exactly at the
    //    target when no demand source is configured (see `keep_at_target`). Surplus idle
    //    instances go through step 5, after the scale-in delay. An instance on an old
    //    model of the scale set is always deleted: step 3 replaces it with one created
    //    from the current model.
    for inst in instances.iter().filter(|i| ready_to_recycle(spec, i)) {
        let needed = free < free_wanted || (keep_at_target && free == free_wanted);
        let reserve_short = census.reserve_short(free, unregistered_free, parked);
        if inst.latest_model && live <= spec.max && (needed || live <= spec.min || reserve_short) {
            decision.reimage.push(inst.id.clone());
            free += 1;
            unregistered_free += 1;
        } else {
            decision.delete.push(inst.id.clone());
            live -= 1;
        }
    }

    // 3. Serve demand: start parked instances first (a start is about half a boot),
    //    then scale out for the rest, never above max. (If deletes above left the pool
    //    below min, free < free_wanted holds too, so they are replaced here.) With a
    //    demand source this covers every assigned job at once, from zero. Instances
    //    still being created (listed or not) are a whole boot away: they do not stand in
    //    for a start. Should they be surplus by the time they are up, they are told to
    //    park (`registration_answer`), which refills the reserve.
    let quick = free.saturating_sub(census.booting);
    let starts = free_wanted.saturating_sub(quick) as usize;
    for inst in instances.iter().filter(|i| i.state == InstanceState::Parked).take(starts) {
        decision.start.push(inst.id.clone());
        free += 1;
        unregistered_free += 1;
        parked -= 1;
    }
    if free < free_wanted && live < spec.max {
        let add = (free_wanted - free).min(spec.max - live);
        live += add;
        free += add;
        unregistered_free += add;
        decision.capacity = Some(live);
    }

    // 4. Fill the reserve. First with idle instances beyond the free target, after the
    //    anti-flap delay: reimaged rather than deleted, their fresh boot is told to park
    //    (a deletion would leave the reserve short by one). Then with new VMs, told to
    //    park when they register.
    let mut idle: Vec<&ObservedInstance> =
        instances.iter().copied().filter(|i| i.state == InstanceState::Idle).collect();
    longest_in_state_first(&mut idle);
    // An idle VM reimaged for the reserve leaves the free count for the reserve's.
    let mut to_reserve = 0;
    for inst in &idle {
        let surplus = free > free_wanted && live > spec.min && inst.in_state_for >= spec.scale_in_delay;
        let reserve_short = census.reserve_short(free.saturating_sub(1), unregistered_free, parked + to_reserve);
        if surplus && reserve_short && inst.latest_model && live <= spec.max {
            decision.reimage.push(inst.id.clone());
            free -= 1;
            to_reserve += 1;
        }
    }
    let pending = census.reserve_pending(free, unregistered_free, parked + to_reserve);
    if pending < parked_wanted && live < spec.max {
        let add = (parked_wanted - pending).min(spec.max - live);
        live += add;
        free += add;
        unregistered_free += add;
        decision.capacity = Some(live);
    }
    // VMs told to park are deallocated at once: until then they bill as running.
    decision.park = instances
        .iter()
        .filter(|i| i.state == InstanceState::Parking && !parking_overdue(spec, i))
        .map(|i| i.id.clone())
        .collect();

    // 5. Scale in. Deallocated instances (stopped by someone else with a runner) take a
    //    slot but no job; they go only above max, and before any other, since deleting
    //    them loses no ready runner. Then parked instances beyond the reserve, and idle
    //    instances beyond the free target, after the anti-flap delay; beyond max at once,
    //    longest first.
    for inst in instances.iter().filter(|i| i.state == InstanceState::Deallocated) {
        if live > spec.max {
            decision.delete.push(inst.id.clone());
            live -= 1;
        }
    }
    let mut surplus_parked: Vec<&ObservedInstance> = instances
        .iter()
        .copied()
        .filter(|i| i.state == InstanceState::Parked && !decision.start.contains(&i.id))
        .collect();
    longest_in_state_first(&mut surplus_parked);
    for inst in surplus_parked {
        let over_max = live > spec.max;
        let surplus = parked > parked_wanted && inst.in_state_for >= spec.scale_in_delay;
        if over_max || surplus {
            decision.delete.push(inst.id.clone());
            live -= 1;
            parked -= 1;
        }
    }
    for inst in idle.into_iter().filter(|i| !decision.reimage.contains(&i.id)) {
        let over_max = live > spec.max;
        let surplus = free > free_wanted && live > spec.min && inst.in_state_for >= spec.scale_in_delay;
        // Deleting it would leave the reserve short: a later pass reimages it into the
        // reserve instead (this one was above max when step 4 looked).
        let reserve_short = census.reserve_short(free.saturating_sub(1), unregistered_free, parked + to_reserve);
        if over_max || (surplus && !reserve_short) {
            decision.delete.push(inst.id.clone());
            live -= 1;
            free -= 1;
        }
    }

    decision.target =
        Target { busy, free, parked, size, demand, desired, free_wanted, parked_wanted, size_after: live };
    decision
}

/// A job is over and the VM may be touched: the runner exited, or it was told to
/// finish long enough ago that waiting longer only costs money.
fn ready_to_recycle(spec: &PoolSpec, inst: &ObservedInstance) -> bool {
    match inst.state {
        InstanceState::Recyclable => true,
        InstanceState::Retiring => inst.in_state_for >= spec.runner_exit_timeout,
        _ => false,
    }
}

/// Scale-in order: longest in their state first, then by id.
fn longest_in_state_first(instances: &mut [&ObservedInstance]) {
    instances.sort_by(|a, b| b.in_state_for.cmp(&a.in_state_for).then(a.id.sort_key().cmp(&b.id.sort_key())));
}

/// Told to park (or deallocating) for as long as a boot may take to register: the
/// deallocation keeps failing, so the VM is replaced rather than billed as running.
fn parking_overdue(spec: &PoolSpec, inst: &ObservedInstance) -> bool {
    inst.state == InstanceState::Parking && inst.in_state_for >= spec.registration_timeout
}

fn registration_overdue(spec: &PoolSpec, inst: &ObservedInstance) -> bool {
    inst.state == InstanceState::AwaitingRegistration && inst.in_state_for >= spec.registration_timeout
}

#[cfg(test)]
mod tests;
