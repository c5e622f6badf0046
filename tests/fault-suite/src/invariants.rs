//! The seven invariants, checked every simulated second and at the end of a run.
//!
//! 1. No instance deleted, reimaged or deallocated while its runner was busy — checked
//!    in [`crate::faults`] at the moment the call reaches the cloud.
//! 2. The pool within [min, max] at every step: every instance, parked ones included,
//!    counts towards max; the running ones (neither deallocated nor deleted) towards
//!    min, from the moment the pool first reached it.
//! 3. Every job the free target promised a runner got one within boot latency + 2
//!    reconcile periods, plus the allowance for faults during its wait.
//! 4. No orphan VM (running without a live runner of its boot, or failed) and no
//!    ghost runner (its boot is gone) lived longer than the registration timeout +
//!    one period, plus the allowance. A boot is an instance's disk generation and
//!    power-on: a start boots the same disk again, as a new boot.
//! 5. At the end the busy record equals the truth: GitHub's busy runners, and the
//!    operator's own busy set.
//! 6. Scale-set demand: a listener without a session (while its operator serves) has
//!    one again within [`scenario::SESSION_REOPEN`] (a killed predecessor's session
//!    expired and the conflict backoff tried again), plus the longest conflict backoff
//!    per scale-set API fault meanwhile.
//! 7. Parking: a VM told to park gets no registration — no JIT runner and no token is
//!    made at GitHub while its request is answered "park" (checked at the answer, in
//!    [`crate::vms`]); a VM told to park is off (deallocating, deallocated, deleted, or
//!    being started or reimaged afresh) within the registration timeout + one period of
//!    the answer, plus the allowance, unless a later answer registered it; and after the
//!    workload the reserve is whole again (`min(parked, max - min)` parked VMs, fewer
//!    only with the pool at max) within [`scenario::refill_bound`], and stays so.
//!
//! With scale-set demand, invariant 3 promises every job assigned while max allows
//! (`busy + queued <= max`) a runner within boot latency + one period, and the
//! allowance adds [`demand_allowance`]: the time the demand signal was missing (no
//! session) or behind (a message held back, statistics stale until the next message).
//!
//! The allowance is explicit: the time no operator was serving (killed, or
//! recovering), one reconcile period per injected cloud, GitHub or busy-record
//! fault in the window, and the registration timeout + one period per VM that
//! failed to boot, register or come online in the window or one registration
//! timeout before it. Parking adds: for a start that fails, the start delay, a period
//! and a boot (the next pass deletes the VM, a new one boots); for a late start, how
//! late it was (both for starts made up to a start delay + the longest lateness before
//! the window); a period and a boot for a ready VM deleted or deallocated by someone
//! else (in the window or a period before it), and a period for one they started.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use operator::{controller::Controller, fleet::runner_vm_name, model::InstanceId, ports::RunnerStatus};

use operator::ports::CloudState;

use crate::{
    scenario::{self, Demand},
    world::{BootKey, World},
};

#[derive(Default)]
pub struct Checker {
    warm: bool,
    below_min_since: Option<Duration>,
    /// Unhealthy since, by boot.
    orphans: BTreeMap<BootKey, Duration>,
    /// The broken instance the operator may keep for debugging.
    kept: Option<BootKey>,
    /// When the workload drained (faults stopped), and since when the reserve has been
    /// whole without a break (invariant 7).
    drained: Option<Duration>,
    whole_since: Option<Duration>,
    /// The longest a VM told to park kept running (invariant 7), and the longest the
    /// reserve took to be whole again after the workload.
    pub worst_parked_running: Duration,
    pub worst_refill: Duration,
    ghosts: BTreeMap<u64, Duration>,
    reported: BTreeSet<String>,
    pub latency_checked: usize,
    pub worst_wait: Duration,
    pub worst_wait_scale_set: Duration,
    /// Scale-set jobs that waited longer than the bare bound (within their allowance).
    pub allowance_needed: usize,
    /// The longest spell without a session (invariant 6).
    pub worst_blind: Duration,
}

/// Time within `[from, to]` excused by faults (see the module docs).
pub fn allowance(world: &World, from: Duration, to: Duration) -> Duration {
    let record = world.record();
    let overlap: Duration = record
        .down
        .iter()
        .map(|(start, end)| {
            let (s, e) = ((*start).max(from), end.unwrap_or(to).min(to));
            e.saturating_sub(s)
        })
        .sum();
    // A broken VM hurts from its boot until it is replaced, so VM faults count from
    // one registration timeout (+ a period) before the window.
    let vm_from = from.saturating_sub(scenario::REGISTRATION_TIMEOUT + scenario::PERIOD);
    // A start made before the window may still be running (late) or fail in it.
    let start_from = from.saturating_sub(scenario::START_DELAY + scenario::START_LATE_MAX);
    let faults: Duration = record
        .faults
        .iter()
        .filter(|(at, _)| *at <= to)
        .map(|(at, kind)| match *kind {
            "cloud" | "github" | "busy_record" | "busy_put_lost" | "scale_set_api" if *at >= from => scenario::PERIOD,
            "vm_never_boots" | "vm_never_registers" | "runner_never_online" if *at >= vm_from => {
                scenario::REGISTRATION_TIMEOUT + scenario::PERIOD
            }
            // The start ends Failed after the start delay; the next pass deletes the VM and
            // a new one boots.
            "start_failed" if *at >= start_from => scenario::START_DELAY + scenario::PERIOD + scenario::boot_latency(),
            // A ready (parked or idle) VM is gone without the operator's word: the next pass
            // sees it and a new one boots.
            "outside_delete" | "outside_deallocate" if *at >= from.saturating_sub(scenario::PERIOD) => {
                scenario::PERIOD + scenario::boot_latency()
            }
            "outside_start" if *at >= from => scenario::PERIOD,
            _ => Duration::ZERO,
        })
        .sum();
    let late: Duration = record
        .parking
        .late_starts
        .iter()
        .filter(|(at, _)| (start_from..=to).contains(at))
        .map(|(_, late_by)| *late_by)
        .sum();
    overlap + faults + late
}

/// Time within `[from, to]` the scale-set demand signal was missing or behind, besides
/// the downtime [`allowance`] counts: the listener without a session while an operator
/// served (starting, a killed predecessor's session not expired yet, backoff after a
/// failure, the scale set being created again), and the windows in which a message was
/// held back or the statistics were stale until the next message. The union of those
/// intervals, clipped to the window.
pub fn demand_allowance(world: &World, from: Duration, to: Duration) -> Duration {
    let record = world.record();
    let s = &record.scale_set;
    let mut intervals: Vec<(Duration, Duration)> = s
        .blind
        .iter()
        .map(|(start, end)| (*start, end.unwrap_or(to)))
        .chain(s.held.iter().copied())
        .map(|(start, end)| (start.max(from), end.min(to)))
        .filter(|(start, end)| start < end)
        .collect();
    intervals.sort();
    let (mut total, mut reach) = (Duration::ZERO, from);
    for (start, end) in intervals {
        let start = start.max(reach);
        if end > start {
            total += end - start;
            reach = end;
        }
    }
    total
}

impl Checker {
    fn once(&mut self, world: &World, key: String, what: String) {
        if self.reported.insert(key) {
            world.violation(what);
        }
    }

    /// The workload drained at `now`: from here the reserve must become whole (invariant 7).
    pub fn drained(&mut self, now: Duration) {
        self.drained = Some(now);
    }

    /// Invariants 2, 4 and 7, every simulated second.
    pub fn tick(&mut self, world: &World) {
        let now = world.elapsed();
        let s = &world.scenario;
        // Every instance by the boot it is in.
        let instances: Vec<(BootKey, CloudState)> = world
            .scale_set
            .snapshot()
            .into_iter()
            .map(|(id, generation, state)| (world.boot_key(&id, generation), state))
            .collect();
        // Parked instances count towards max (they hold a slot of the capacity), not min
        // (the fewest *running* instances).
        let live = world.scale_set.live();
        let running = running(&instances);
        if live > s.max {
            self.once(
                world,
                format!("max@{}", now.as_secs()),
                format!("invariant 2: {live} instances (parked ones included) > max {} at {now:?}", s.max),
            );
        }
        if running >= s.min {
            self.warm = true;
            self.below_min_since = None;
        } else if self.warm {
            // A broken instance is deleted before the same pass raises the capacity again:
            // a dip below min is a violation once it outlasts a period (plus allowance).
            let since = *self.below_min_since.get_or_insert(now);
            if now - since > scenario::PERIOD + allowance(world, since, now) {
                let what =
                    format!("invariant 2: {running} running instances < min {} since {since:?}, now {now:?}", s.min);
                self.once(world, "below min".into(), what);
            }
        }

        let limit = scenario::REGISTRATION_TIMEOUT + scenario::PERIOD;
        let runners = world.github.runners();
        let (boot_runners, runner_boots) = {
            let r = world.record();
            (r.boot_runners.clone(), r.runner_boots.clone())
        };
        let current: BTreeSet<BootKey> = instances.iter().map(|(key, _)| key.clone()).collect();

        // Orphan VMs: running without a live runner of this boot, or failed.
        let mut unhealthy = BTreeSet::new();
        for (key, state) in &instances {
            let healthy = match state {
                CloudState::Running => boot_runners
                    .get(key)
                    .and_then(|rid| runners.iter().find(|r| r.id == *rid))
                    .is_some_and(|r| r.status == RunnerStatus::Online || r.busy),
                CloudState::Failed => false,
                // Being created, reimaged, started or deleted: someone is on it. Parked
                // (deallocated): off, billing its disk only.
                _ => true,
            };
            if !healthy {
                unhealthy.insert(key.clone());
            }
        }
        self.orphans.retain(|k, _| unhealthy.contains(k));
        for key in &unhealthy {
            self.orphans.entry(key.clone()).or_insert(now);
        }
        let is_overdue = |since: Duration| now - since > limit + allowance(world, since, now);
        // The newest broken instance may be kept for debugging. When a newer one takes
        // its place, the one kept so far gets one period (plus allowance) to go.
        if s.keep_unhealthy {
            let newest = self
                .orphans
                .iter()
                .filter(|(_, since)| is_overdue(**since))
                .map(|(k, _)| k.clone())
                .max_by(|a, b| a.0.sort_key().cmp(&b.0.sort_key()));
            if newest.is_some() && newest != self.kept {
                if let Some(since) = self.kept.as_ref().and_then(|k| self.orphans.get_mut(k)) {
                    *since = now.saturating_sub(scenario::REGISTRATION_TIMEOUT);
                }
                self.kept = newest;
            }
        }
        let overdue: Vec<_> = self
            .orphans
            .iter()
            .filter(|(k, since)| Some(*k) != self.kept.as_ref() && is_overdue(**since))
            .map(|(k, since)| (k.clone(), *since))
            .collect();
        for ((id, generation, power_on), since) in overdue {
            self.once(
                world,
                format!("orphan {id}/{generation}/{power_on}"),
                format!(
                    "invariant 4: instance {id} (boot {generation}, power-on {power_on}) without a live runner since {since:?}, now {now:?}"
                ),
            );
        }

        // Ghost runners: registered for a boot that no longer exists.
        let ghosts: BTreeSet<u64> = runners
            .iter()
            .filter(|r| runner_vm_name(&r.name).is_some())
            .filter(|r| runner_boots.get(&r.name).is_some_and(|boot| !current.contains(boot)))
            .map(|r| r.id)
            .collect();
        self.ghosts.retain(|id, _| ghosts.contains(id));
        for id in ghosts {
            let since = *self.ghosts.entry(id).or_insert(now);
            if now - since > limit + allowance(world, since, now) {
                self.once(
                    world,
                    format!("ghost {id}"),
                    format!("invariant 4: ghost runner {id} since {since:?}, now {now:?}"),
                );
            }
        }

        if s.parked > 0 || !world.record().parking.told_to_park.is_empty() {
            self.check_parking(world, &instances);
        }
    }

    /// Invariant 7, every simulated second: a VM told to park is off (deallocating,
    /// deallocated, deleted, or being started or reimaged afresh) within the registration
    /// timeout + a period of the first such answer, plus the allowance — unless a later
    /// answer registered it; and after the workload the reserve becomes whole.
    fn check_parking(&mut self, world: &World, instances: &[(BootKey, CloudState)]) {
        let now = world.elapsed();
        let s = &world.scenario;
        // A VM told to park that is seen off (or gone) has done what it was told; the
        // entry goes, so a later power-on of the same disk is judged afresh.
        let told = {
            let mut record = world.record();
            let running: BTreeSet<&BootKey> =
                instances.iter().filter(|(_, st)| *st == CloudState::Running).map(|(k, _)| k).collect();
            record.parking.told_to_park.retain(|key, _| running.contains(key));
            record.parking.told_to_park.clone()
        };
        for (key, state) in instances {
            let Some(since) = told.get(key).filter(|_| *state == CloudState::Running) else { continue };
            let running_for = now - *since;
            self.worst_parked_running = self.worst_parked_running.max(running_for);
            let bound = scenario::REGISTRATION_TIMEOUT + scenario::PERIOD + allowance(world, *since, now);
            if running_for > bound {
                let (id, generation, power_on) = key;
                self.once(
                    world,
                    format!("parked running {id}/{generation}/{power_on}"),
                    format!("invariant 7: instance {id} (boot {generation}, power-on {power_on}) told to park at {since:?} still runs at {now:?} (bound {bound:?})"),
                );
            }
        }
        if self.drained.is_some() {
            // A VM someone else stopped joins the reserve once its runner is dealt with
            // (`stopped_reclaimed`), so every deallocated instance counts.
            let parked = instances.iter().filter(|(_, st)| *st == CloudState::Deallocated).count();
            let parked = u32::try_from(parked).unwrap_or(u32::MAX);
            let wanted = parked_wanted(s);
            let whole = parked == wanted || (parked < wanted && world.scale_set.live() >= s.max);
            match (whole, self.whole_since) {
                (true, None) => self.whole_since = Some(now),
                (false, Some(_)) => self.whole_since = None,
                _ => {}
            }
        }
    }

    /// Invariant 6: every spell without a session (while an operator served) ended within
    /// [`scenario::SESSION_REOPEN`], plus the longest conflict backoff per scale-set API
    /// fault inside it (a failure in between counts towards the backoff's doublings).
    fn check_sessions(&mut self, world: &World) {
        let now = world.elapsed();
        let blind = world.record().scale_set.blind.clone();
        for (start, end) in blind {
            let end = end.unwrap_or(now);
            let length = end - start;
            self.worst_blind = self.worst_blind.max(length);
            let faults = world
                .record()
                .faults
                .iter()
                .filter(|(at, kind)| *kind == "scale_set_api" && (start..=end).contains(at))
                .count() as u32;
            let bound = scenario::SESSION_REOPEN + operator::demand::CONFLICT_BACKOFF_CAP * faults;
            if length > bound {
                world.violation(format!(
                    "invariant 6: the listener had no session from {start:?} to {end:?} ({length:?}, bound {bound:?})"
                ));
            }
        }
    }

    /// Invariant 3 for every job, invariants 5 and 6, at the end of the run.
    pub fn finish(&mut self, world: &World, controller: Option<&Controller>) {
        self.check_sessions(world);
        let now = world.elapsed();
        let jobs = world.record().jobs.clone();
        for (number, times) in &jobs {
            if times.assignments != 1 || !times.completed {
                world.violation(format!(
                    "job {number}: assigned {} times, completed: {} (enqueued at {:?})",
                    times.assignments, times.completed, times.enqueued
                ));
            }
            if !times.covered {
                continue;
            }
            let assigned = times.assigned.unwrap_or(now);
            let wait = assigned.saturating_sub(times.enqueued);
            self.latency_checked += 1;
            self.worst_wait = self.worst_wait.max(wait);
            let window = (times.enqueued, assigned);
            let bound = match world.scenario.demand {
                // The job's assignment is the demand: one boot and one pass.
                Demand::ScaleSet => {
                    scenario::boot_latency()
                        + scenario::PERIOD
                        + allowance(world, window.0, window.1)
                        + demand_allowance(world, window.0, window.1)
                }
                Demand::None => scenario::boot_latency() + 2 * scenario::PERIOD + allowance(world, window.0, window.1),
            };
            if world.scenario.demand == Demand::ScaleSet {
                self.worst_wait_scale_set = self.worst_wait_scale_set.max(wait);
                self.allowance_needed += usize::from(wait > scenario::boot_latency() + scenario::PERIOD);
            }
            if wait > bound {
                world.violation(format!(
                    "invariant 3: job {number} enqueued at {:?} waited {wait:?} for a runner (bound {bound:?}, {:?} demand)",
                    times.enqueued, world.scenario.demand
                ));
            }
        }

        let stored: BTreeSet<InstanceId> = world.busy.markers().into_iter().map(|m| m.instance).collect();
        let names = world.scale_set.names();
        let busy_at_github: BTreeSet<InstanceId> = world
            .github
            .runner_jobs()
            .into_iter()
            .filter_map(|(runner, _)| {
                let vm = runner_vm_name(&runner)?;
                names.iter().find(|(_, name)| name.as_str() == vm).map(|(id, _)| id.clone())
            })
            .collect();
        if stored != busy_at_github {
            world.violation(format!("invariant 5: busy record {stored:?} but busy at GitHub {busy_at_github:?}"));
        }
        if let Some(ctl) = controller {
            let believed: BTreeSet<InstanceId> = ctl.busy_set().into_iter().map(|(id, _)| id).collect();
            if believed != stored {
                world
                    .violation(format!("invariant 5: operator believes {believed:?} busy, busy record has {stored:?}"));
            }
        }
        let instances: Vec<(BootKey, CloudState)> = world
            .scale_set
            .snapshot()
            .into_iter()
            .map(|(id, generation, state)| (world.boot_key(&id, generation), state))
            .collect();
        let running = running(&instances);
        let kept = u32::from(world.scenario.keep_unhealthy && !self.orphans.is_empty());
        if running > world.scenario.min + kept {
            world.violation(format!("the pool ended at {running} running instances, min is {}", world.scenario.min));
        }
        // Invariant 7: the reserve whole again within the refill bound of the workload's end.
        if world.scenario.parked > 0 {
            let drained = self.drained.unwrap_or(now);
            match self.whole_since {
                None => world.violation(format!(
                    "invariant 7: the reserve did not settle at {} parked VMs after the workload ({:?}; deallocated by someone else: {:?})",
                    parked_wanted(&world.scenario),
                    world.scale_set.snapshot(),
                    world.record().parking.deallocated_by_hand,
                )),
                Some(at) => {
                    let refill = at.saturating_sub(drained);
                    self.worst_refill = self.worst_refill.max(refill);
                    let bound = scenario::refill_bound() + allowance(world, drained, at);
                    if refill > bound {
                        world.violation(format!(
                            "invariant 7: the reserve was whole again {refill:?} after the workload drained at {drained:?} (bound {bound:?})"
                        ));
                    }
                }
            }
        }
    }
}

/// Instances running or on their way to it: neither deleted nor deallocated.
fn running(instances: &[(BootKey, CloudState)]) -> u32 {
    let n = instances
        .iter()
        .filter(|(_, state)| {
            !matches!(state, CloudState::Deleting | CloudState::Deallocating | CloudState::Deallocated)
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The reserve the policy keeps once demand is gone: `min(parked, max - min)`.
fn parked_wanted(s: &scenario::Scenario) -> u32 {
    s.parked.min(s.max.saturating_sub(s.min))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[tokio::test(start_paused = true)]
    async fn the_allowance_counts_downtime_and_faults_inside_the_window_only() {
        let world = World::new(Scenario::draw(1));
        {
            let mut r = world.record();
            r.down.push((Duration::from_secs(100), Some(Duration::from_secs(160))));
            r.faults.push((Duration::from_secs(120), "cloud"));
            r.faults.push((Duration::from_secs(500), "cloud"));
            r.faults.push((Duration::from_secs(130), "hook_drop"));
        }
        let got = allowance(&world, Duration::from_secs(130), Duration::from_secs(400));
        assert_eq!(got, Duration::from_secs(30), "30 s of downtime inside the window, the fault before it excluded");
        let got = allowance(&world, Duration::from_secs(0), Duration::from_secs(400));
        assert_eq!(got, Duration::from_secs(60 + 30));
    }

    fn parking_world() -> std::sync::Arc<World> {
        World::new(Scenario { parked: 1, faults: scenario::FaultRates::NONE, ..Scenario::draw(1) })
    }

    /// One running instance, powered on once; its boot.
    async fn one_running(world: &World) -> BootKey {
        use operator::ports::ScaleSet;
        world.scale_set.set_capacity(1).await.expect("capacity");
        tokio::time::advance(scenario::BOOT_DELAY).await;
        let (id, generation, _) = world.scale_set.snapshot().remove(0);
        world.power_on(&id, generation)
    }

    #[tokio::test(start_paused = true)]
    async fn a_vm_told_to_park_that_keeps_running_past_the_registration_timeout_is_a_violation() {
        let world = parking_world();
        let key = one_running(&world).await;
        world.record().parking.told_to_park.insert(key, world.elapsed());
        let mut checker = Checker::default();
        let limit = scenario::REGISTRATION_TIMEOUT + scenario::PERIOD;
        while world.elapsed() < scenario::BOOT_DELAY + limit {
            checker.tick(&world);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(world.record().violations.iter().all(|v| !v.contains("invariant 7")), "within the bound");
        tokio::time::advance(Duration::from_secs(2)).await;
        checker.tick(&world);
        let violations = world.record().violations.clone();
        assert!(violations.iter().any(|v| v.contains("invariant 7") && v.contains("told to park")), "{violations:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_vm_told_to_park_is_judged_afresh_once_it_was_seen_off() {
        let world = parking_world();
        let key = one_running(&world).await;
        world.record().parking.told_to_park.insert(key.clone(), world.elapsed());
        let mut checker = Checker::default();
        checker.tick(&world);
        world.scale_set.deallocate_by_hand(&key.0);
        checker.tick(&world);
        assert!(world.record().parking.told_to_park.is_empty(), "it did what it was told");
        world.scale_set.start_by_hand(&key.0);
        tokio::time::advance(scenario::START_DELAY + scenario::REGISTRATION_TIMEOUT * 2).await;
        checker.tick(&world);
        assert!(world.record().violations.is_empty(), "{:?}", world.record().violations);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reserve_that_never_fills_again_after_the_workload_is_a_violation() {
        let world = parking_world();
        let mut checker = Checker::default();
        checker.drained(world.elapsed());
        for _ in 0..10 {
            checker.tick(&world);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        checker.finish(&world, None);
        let violations = world.record().violations.clone();
        assert!(violations.iter().any(|v| v.contains("invariant 7") && v.contains("reserve")), "{violations:?}");
    }
}
