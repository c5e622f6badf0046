//! The five invariants, checked every simulated second and at the end of a run.
//!
//! 1. No instance deleted or reimaged while its runner was busy — checked in
//!    [`crate::faults`] at the moment the call reaches the cloud.
//! 2. Capacity within [min, max] at every step (from the moment the pool first
//!    reached min).
//! 3. Every job the free target promised a runner got one within boot latency + 2
//!    reconcile periods, plus the allowance for faults during its wait.
//! 4. No orphan VM (running without a live runner of its boot, or failed) and no
//!    ghost runner (its boot is gone) lived longer than the registration timeout +
//!    one period, plus the allowance.
//! 5. At the end the busy record equals the truth: GitHub's busy runners, and the
//!    operator's own busy set.
//! 6. Scale-set demand: a listener without a session (while its operator serves) has
//!    one again within [`scenario::SESSION_REOPEN`] (a killed predecessor's session
//!    expired and the conflict backoff tried again), plus the longest conflict backoff
//!    per scale-set API fault meanwhile.
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
//! timeout before it.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use operator::{controller::Controller, fleet::runner_vm_name, model::InstanceId, ports::RunnerStatus};

use crate::{
    scenario::{self, Demand},
    world::World,
};

#[derive(Default)]
pub struct Checker {
    warm: bool,
    below_min_since: Option<Duration>,
    /// Unhealthy since, by (instance, generation).
    orphans: BTreeMap<(InstanceId, u32), Duration>,
    /// The broken instance the operator may keep for debugging.
    kept: Option<(InstanceId, u32)>,
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
    let faults: Duration = record
        .faults
        .iter()
        .filter(|(at, _)| *at <= to)
        .map(|(at, kind)| match *kind {
            "cloud" | "github" | "busy_record" | "busy_put_lost" | "scale_set_api" if *at >= from => scenario::PERIOD,
            "vm_never_boots" | "vm_never_registers" | "runner_never_online" if *at >= vm_from => {
                scenario::REGISTRATION_TIMEOUT + scenario::PERIOD
            }
            _ => Duration::ZERO,
        })
        .sum();
    overlap + faults
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

    /// Invariants 2 and 4, every simulated second.
    pub fn tick(&mut self, world: &World) {
        let now = world.elapsed();
        let s = &world.scenario;
        let live = world.scale_set.live();
        if live > s.max {
            self.once(
                world,
                format!("max@{}", now.as_secs()),
                format!("invariant 2: {live} instances > max {} at {now:?}", s.max),
            );
        }
        if live >= s.min {
            self.warm = true;
            self.below_min_since = None;
        } else if self.warm {
            // A broken instance is deleted before the same pass raises the capacity again:
            // a dip below min is a violation once it outlasts a period (plus allowance).
            let since = *self.below_min_since.get_or_insert(now);
            if now - since > scenario::PERIOD + allowance(world, since, now) {
                let what = format!("invariant 2: {live} instances < min {} since {since:?}, now {now:?}", s.min);
                self.once(world, "below min".into(), what);
            }
        }

        let limit = scenario::REGISTRATION_TIMEOUT + scenario::PERIOD;
        let runners = world.github.runners();
        let (boot_runners, runner_boots) = {
            let r = world.record();
            (r.boot_runners.clone(), r.runner_boots.clone())
        };
        let instances = world.scale_set.snapshot();
        let current: BTreeSet<(InstanceId, u32)> = instances.iter().map(|(id, gen, _)| (id.clone(), *gen)).collect();

        // Orphan VMs: running without a live runner of this boot, or failed.
        let mut unhealthy = BTreeSet::new();
        for (id, generation, state) in &instances {
            let key = (id.clone(), *generation);
            let healthy = match state {
                operator::ports::CloudState::Running => boot_runners
                    .get(&key)
                    .and_then(|rid| runners.iter().find(|r| r.id == *rid))
                    .is_some_and(|r| r.status == RunnerStatus::Online || r.busy),
                operator::ports::CloudState::Failed => false,
                _ => true, // being created, reimaged or deleted: someone is on it
            };
            if !healthy {
                unhealthy.insert(key);
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
        for ((id, generation), since) in overdue {
            self.once(
                world,
                format!("orphan {id}/{generation}"),
                format!(
                    "invariant 4: instance {id} (boot {generation}) without a live runner since {since:?}, now {now:?}"
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
        let live = world.scale_set.live();
        let kept = u32::from(world.scenario.keep_unhealthy && !self.orphans.is_empty());
        if live > world.scenario.min + kept {
            world.violation(format!("the pool ended at {live} instances, min is {}", world.scenario.min));
        }
    }
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
}
