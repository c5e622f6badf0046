//! The deterministic fault suite (issue 4's proof). Each seed draws a scenario —
//! pool bounds, a workload and a fault schedule — and runs the real controller,
//! reconcile loop and policy against the simulated world of `operator-sim` (its
//! scale set, GitHub, busy record and VMs, the same the demo runs) on tokio's paused
//! clock: hours of pool life in milliseconds, and the same seed always replays the
//! same run. What is the suite's own: the scenario (`scenario`), the faults
//! (`faults`, with someone else's hands on the scale set, and the VM fates and hook
//! faults in `vms`), operator processes that die and restart (`process`), the
//! invariants (`invariants`), and reproductions of product bugs it found, kept as
//! tests once fixed (`found`, tests only). See `docs/fault-suite.md`.
//!
//! `cargo run -p fault-suite -- --seed N` reproduces one run with its log.

pub mod faults;
#[cfg(test)]
mod found;
pub mod invariants;
pub mod process;
pub mod scenario;
pub mod vms;
pub mod world;

use std::{sync::Arc, time::Duration};

use operator::policy::required_free;
use operator_sim::{
    memory::SimJob,
    vms::{Hypervisor, HypervisorSettings},
};
use tokio::time::Instant;

use crate::{
    invariants::Checker,
    process::Process,
    scenario::{Demand, Scenario},
    world::{JobTimes, World, LABELS},
};

/// What one seed's run did and found.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    pub jobs: usize,
    pub faults: usize,
    pub kills: u32,
    pub violations: Vec<String>,
    /// Jobs the free target promised a runner, whose wait invariant 3 bounds.
    pub latency_checked: usize,
    pub worst_wait: Duration,
    /// Simulated time the run covered.
    pub simulated: Duration,
    pub demand: Demand,
    pub min: u32,
    /// Scale-set demand: message sessions opened, session conflicts met, messages
    /// delivered again, times the scale set was deleted.
    pub sessions: u64,
    pub conflicts: u64,
    pub redelivered: u64,
    pub deleted: u32,
    /// Of the redelivered: applied again by a new process (their acknowledgement lost).
    pub replayed: u64,
    /// Scale-set jobs that needed their allowance, and the longest spell without a session.
    pub allowance_needed: usize,
    pub worst_blind: Duration,
    /// The reserve (`PoolSpec.parked`) and what parking went through.
    pub parked: u32,
    pub parking: ParkingOutcome,
}

/// What parking did in one run (or, added up, in many).
#[derive(Clone, Debug, Default)]
pub struct ParkingOutcome {
    /// Park answers given, instances in accepted deallocate calls, and in start calls.
    pub park_answers: u64,
    pub parks: usize,
    pub starts: usize,
    /// Boots told to park that registered after all (a later answer).
    pub registered_after_park: u64,
    pub failed_starts: u32,
    pub late_starts: usize,
    pub outside_starts: u32,
    pub outside_deletes: u32,
    pub outside_deallocations: u32,
    pub kills_mid_park: u32,
    /// Answers invariant 7's first half checked: registrations seen making their
    /// credential, park answers seen making none.
    pub registrations_checked: u64,
    pub park_answers_checked: u64,
    /// The longest a VM told to park kept running, and the longest refill after the workload.
    pub worst_parked_running: Duration,
    pub worst_refill: Duration,
}

impl ParkingOutcome {
    fn add(&mut self, other: &Self) {
        self.park_answers += other.park_answers;
        self.parks += other.parks;
        self.starts += other.starts;
        self.registered_after_park += other.registered_after_park;
        self.failed_starts += other.failed_starts;
        self.late_starts += other.late_starts;
        self.outside_starts += other.outside_starts;
        self.outside_deletes += other.outside_deletes;
        self.outside_deallocations += other.outside_deallocations;
        self.kills_mid_park += other.kills_mid_park;
        self.registrations_checked += other.registrations_checked;
        self.park_answers_checked += other.park_answers_checked;
        self.worst_parked_running = self.worst_parked_running.max(other.worst_parked_running);
        self.worst_refill = self.worst_refill.max(other.worst_refill);
    }
}

/// Run one seed on a fresh paused-clock runtime.
pub fn run_seed(seed: u64) -> Outcome {
    run_scenario(Scenario::draw(seed))
}

pub fn run_scenario(scenario: Scenario) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(simulate(scenario))
}

async fn simulate(scenario: Scenario) -> Outcome {
    let world = World::new(scenario);
    let scale_set_mode = world.scenario.demand == Demand::ScaleSet;
    if scale_set_mode {
        world.github.set_scale_set_faults(faults::base_knobs());
    }
    let mut delete_at = world.scenario.delete_scale_set_at;
    let mut blind_since: Option<Duration> = None;
    let hypervisor = Hypervisor::start(
        world.scale_set.clone(),
        world.github.clone(),
        HypervisorSettings { tick: Duration::from_secs(1), script: scenario::script(), seed: world.scenario.seed },
        Arc::new(vms::FaultVms(world.clone())),
    );
    let workload = tokio::spawn(submit_jobs(world.clone()));
    let mut checker = Checker::default();
    let mut processes = 0u64;
    let mut process = Some(Process::start(&world, processes));
    let mut down_since: Option<Duration> = Some(Duration::ZERO); // until the first recovery
    let mut restart_at: Option<Duration> = None;
    let mut kills: Vec<(Duration, Duration)> = world.scenario.kills.clone();
    kills.sort();
    let mut quiet_until: Option<Duration> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));

    loop {
        tokio::select! {
            biased;
            () = world.kill_now.notified() => {
                if let Some(p) = process.take() {
                    end_blind(&world, &mut blind_since);
                    kill(&world, p, &mut down_since, &mut restart_at, Duration::from_secs(world.pick(0..=60)));
                }
            }
            _ = tick.tick() => {}
        }
        let now = world.elapsed();
        if quiet_until.is_none() {
            if let Some(&(_, downtime)) = kills.first().filter(|(at, _)| *at <= now) {
                kills.remove(0);
                if let Some(p) = process.take() {
                    end_blind(&world, &mut blind_since);
                    kill(&world, p, &mut down_since, &mut restart_at, downtime);
                }
            }
            // GitHub deletes the scale set when none of its runners runs a job (dormant).
            if delete_at.is_some_and(|at| at <= now) && world.github.runner_jobs().is_empty() {
                delete_at = None;
                tracing::warn!(at = ?now, "GitHub deletes the runner scale set");
                world.github.delete_scale_set();
                let mut record = world.record();
                record.faults.push((now, "scale_set_deleted"));
                record.scale_set.deleted += 1;
            }
            faults::someone_else(&world);
        }
        if process.is_none() && restart_at.is_some_and(|at| at <= now) {
            processes += 1;
            process = Some(Process::start(&world, processes));
            restart_at = None;
        }
        if let (Some(since), Some(p)) = (down_since, &process) {
            if p.controller().is_recovered() {
                world.record().down.push((since, Some(now)));
                down_since = None;
            }
        }
        // Blind: serving, but without a session. Seen on the second's tick, so it began
        // up to a second before.
        match (&process, down_since) {
            (Some(p), None) if !p.listening() => {
                blind_since.get_or_insert(now.saturating_sub(Duration::from_secs(1)));
            }
            _ => end_blind(&world, &mut blind_since),
        }
        checker.tick(&world);

        let drained = workload.is_finished() && world.record().jobs.values().all(|j| j.completed);
        match quiet_until {
            None if drained => {
                world.stop_faults();
                checker.drained(now);
                quiet_until = Some(now + scenario::QUIET);
            }
            Some(end) if now >= end && process.is_some() => break,
            _ => {}
        }
        if now >= scenario::HORIZON {
            world.violation(format!("the workload did not drain within {:?}", scenario::HORIZON));
            break;
        }
    }
    if let Some(since) = down_since {
        world.record().down.push((since, None));
    }
    if let Some(since) = blind_since {
        world.record().scale_set.blind.push((since, None));
    }
    if let Some(p) = &process {
        p.finish_windows();
    }
    checker.finish(&world, process.as_ref().map(Process::controller));
    hypervisor.stop().await;
    let (sessions, _) = world.github.session_counts();
    let writes = world.scale_set.writes();
    let record = world.record();
    let p = &record.parking;
    let parking = ParkingOutcome {
        park_answers: p.park_answers,
        parks: writes.deallocated_ids.len(),
        starts: writes.started_ids.len(),
        registered_after_park: p.registered_after_park,
        failed_starts: p.failed_starts,
        late_starts: p.late_starts.len(),
        outside_starts: p.outside_starts,
        outside_deletes: p.outside_deletes,
        outside_deallocations: p.outside_deallocations,
        kills_mid_park: p.kills_mid_park,
        registrations_checked: p.registrations_checked,
        park_answers_checked: p.park_answers_checked,
        worst_parked_running: checker.worst_parked_running,
        worst_refill: checker.worst_refill,
    };
    Outcome {
        seed: world.scenario.seed,
        jobs: world.scenario.jobs.len(),
        faults: record.faults.len() + record.kills as usize,
        kills: record.kills,
        violations: record.violations.clone(),
        latency_checked: checker.latency_checked,
        worst_wait: checker.worst_wait,
        simulated: world.elapsed(),
        demand: world.scenario.demand,
        min: world.scenario.min,
        sessions: if scale_set_mode { sessions } else { 0 },
        conflicts: record.scale_set.conflicts,
        redelivered: record.scale_set.redelivered,
        deleted: record.scale_set.deleted,
        replayed: record.scale_set.replayed,
        allowance_needed: checker.allowance_needed,
        worst_blind: checker.worst_blind,
        parked: world.scenario.parked,
        parking,
    }
}

fn end_blind(world: &World, blind_since: &mut Option<Duration>) {
    if let Some(since) = blind_since.take() {
        world.record().scale_set.blind.push((since, Some(world.elapsed())));
    }
}

fn kill(
    world: &World,
    process: Process,
    down_since: &mut Option<Duration>,
    restart_at: &mut Option<Duration>,
    downtime: Duration,
) {
    let now = world.elapsed();
    tracing::warn!(at = ?now, ?downtime, "killing the operator");
    process.kill(world);
    world.record().kills += 1;
    down_since.get_or_insert(now);
    *restart_at = Some(now + downtime);
}

/// The workload generator: queue each job at GitHub at its time, noting whether the
/// free target promised it a runner (see `invariants`).
async fn submit_jobs(world: Arc<World>) {
    let start = Instant::now();
    let s = &world.scenario;
    for spec in &s.jobs {
        tokio::time::sleep_until(start + spec.arrives).await;
        let job = vms::job_ref(spec.number);
        world.github.enqueue(SimJob { job, labels: LABELS.iter().map(|l| (*l).to_owned()).collect() });
        let busy = world.github.runner_jobs().len() as u32;
        let queued = world.github.queued() as u32;
        let covered = match s.demand {
            // The job is assigned to the scale set: it is promised a runner if max allows.
            Demand::ScaleSet => busy + queued <= s.max,
            Demand::None => {
                let desired = (busy + required_free(busy, s.free_target_percentage)).clamp(s.min, s.max);
                queued <= desired.saturating_sub(busy)
            }
        };
        let times = JobTimes { enqueued: world.elapsed(), covered, ..JobTimes::default() };
        world.record().jobs.insert(spec.number, times);
    }
}

/// Totals over many seeds; `Display` is the figure the test command prints.
#[derive(Debug, Default)]
pub struct Summary {
    pub runs: usize,
    pub faults: usize,
    pub kills: u32,
    pub jobs: usize,
    pub latency_checked: usize,
    pub violations: usize,
    pub failing_seeds: Vec<u64>,
    pub worst_wait: Duration,
    /// Runs with scale-set demand (of them with `min = 0`), and their figures.
    pub scale_set_runs: usize,
    pub min_zero_runs: usize,
    pub sessions: u64,
    pub conflicts: u64,
    pub redelivered: u64,
    pub deleted: u32,
    pub replayed: u64,
    pub allowance_needed: usize,
    pub worst_blind: Duration,
    pub worst_wait_scale_set: Duration,
    /// Runs with a parked reserve (of them with `min = 0`, and with scale-set demand).
    pub parked_runs: usize,
    pub parked_min_zero_runs: usize,
    pub parked_scale_set_runs: usize,
    /// Parking figures over every run (outside deallocations happen in runs without a
    /// reserve too).
    pub parking: ParkingOutcome,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "runs={} faults={} violations={} (operator kills={}, jobs={}, latency-checked={}, worst wait={:?}",
            self.runs, self.faults, self.violations, self.kills, self.jobs, self.latency_checked, self.worst_wait
        )?;
        write!(
            f,
            "; scale-set demand: runs={} (min 0: {}), sessions={}, conflicts={}, redelivered={} (replayed to a new process {}), sets deleted={}, worst wait={:?} ({} jobs past the bare bound), longest without a session={:?}",
            self.scale_set_runs,
            self.min_zero_runs,
            self.sessions,
            self.conflicts,
            self.redelivered,
            self.replayed,
            self.deleted,
            self.worst_wait_scale_set,
            self.allowance_needed,
            self.worst_blind
        )?;
        let p = &self.parking;
        write!(
            f,
            "; parking: runs={} (min 0: {}, scale-set demand: {}), park answers={} (boots registered after one {}), parks={}, starts={} (failed {}, late {}), outside starts={}, deletes={}, deallocations={}, kills mid-park={}, longest told-to-park running={:?}, worst refill={:?}",
            self.parked_runs,
            self.parked_min_zero_runs,
            self.parked_scale_set_runs,
            p.park_answers,
            p.registered_after_park,
            p.parks,
            p.starts,
            p.failed_starts,
            p.late_starts,
            p.outside_starts,
            p.outside_deletes,
            p.outside_deallocations,
            p.kills_mid_park,
            p.worst_parked_running,
            p.worst_refill
        )?;
        if !self.failing_seeds.is_empty() {
            write!(
                f,
                ", failing seeds: {:?}; reproduce with `cargo run -p fault-suite -- --seed N`",
                self.failing_seeds
            )?;
        }
        write!(f, ")")
    }
}

/// Run every seed in `seeds` and add up.
pub fn run_many(seeds: impl IntoIterator<Item = u64>) -> Summary {
    run_many_with(seeds, Scenario::draw)
}

/// [`run_many`] on the scenario `scenario(seed)` makes of each seed.
pub fn run_many_with(seeds: impl IntoIterator<Item = u64>, scenario: impl Fn(u64) -> Scenario) -> Summary {
    let mut summary = Summary::default();
    for seed in seeds {
        let outcome = run_scenario(scenario(seed));
        summary.runs += 1;
        summary.faults += outcome.faults;
        summary.kills += outcome.kills;
        summary.jobs += outcome.jobs;
        summary.latency_checked += outcome.latency_checked;
        summary.worst_wait = summary.worst_wait.max(outcome.worst_wait);
        if outcome.demand == Demand::ScaleSet {
            summary.scale_set_runs += 1;
            summary.min_zero_runs += usize::from(outcome.min == 0);
            summary.sessions += outcome.sessions;
            summary.conflicts += outcome.conflicts;
            summary.redelivered += outcome.redelivered;
            summary.deleted += outcome.deleted;
            summary.replayed += outcome.replayed;
            summary.allowance_needed += outcome.allowance_needed;
            summary.worst_blind = summary.worst_blind.max(outcome.worst_blind);
            summary.worst_wait_scale_set = summary.worst_wait_scale_set.max(outcome.worst_wait);
        }
        if outcome.parked > 0 {
            summary.parked_runs += 1;
            summary.parked_min_zero_runs += usize::from(outcome.min == 0);
            summary.parked_scale_set_runs += usize::from(outcome.demand == Demand::ScaleSet);
        }
        summary.parking.add(&outcome.parking);
        if !outcome.violations.is_empty() {
            summary.violations += outcome.violations.len();
            summary.failing_seeds.push(seed);
            for v in &outcome.violations {
                eprintln!("seed {seed}: {v}");
            }
        }
    }
    summary
}
