//! One seed's world: pool settings, workload and fault schedule, all drawn from the
//! seed so that a run is reproduced by naming it.

use std::time::Duration;

use operator_sim::vms::ScriptSettings;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// Timings shared by every scenario: the operator's defaults where it has them.
pub const PERIOD: Duration = Duration::from_secs(30);
pub const DEBOUNCE: Duration = Duration::from_millis(500);
pub const BOOT_DELAY: Duration = Duration::from_secs(60);
pub const REIMAGE_DELAY: Duration = Duration::from_secs(45);
pub const DELETE_DELAY: Duration = Duration::from_secs(30);
/// From the deallocate call until the instance is deallocated (the simulated scale set's default).
pub const DEALLOCATE_DELAY: Duration = Duration::from_secs(30);
/// From the start call until a parked instance runs again (issue 16's stated assumption).
pub const START_DELAY: Duration = Duration::from_secs(45);
/// A late start takes this much longer, at most (drawn from 30 s up).
pub const START_LATE_MAX: Duration = Duration::from_secs(300);
pub const SCALE_IN_DELAY: Duration = Duration::from_secs(5 * 60);
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const RUNNER_EXIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How often a simulated runner asks GitHub for a job (the real listener long-polls).
pub const POLL: Duration = Duration::from_secs(5);
/// From "the cloud says Running" to "the runner asks for work": cloud-init, the
/// registration call, the runner's start and first poll.
pub const VM_START: Duration = Duration::from_secs(10);
/// boot.sh repeats runner-exited this often until its VM is recycled.
pub const RUNNER_EXITED_REPEAT: Duration = Duration::from_secs(60);
/// After the workload: no more faults, time for the pool to settle at min.
pub const QUIET: Duration = Duration::from_secs(20 * 60);
/// A run that has not drained its jobs by then is a violation in itself.
pub const HORIZON: Duration = Duration::from_secs(6 * 3600);
/// The scale set's name (its `runs-on` label); its extra labels are the suite's [`crate::world::LABELS`].
pub const SCALE_SET_NAME: &str = "vmss-fault";
/// A message session nobody polls for this long expires (the in-memory GitHub's
/// default, `ScaleSetFaults::session_expiry`): a killed operator's session blocks its
/// successor's until then.
pub const SESSION_EXPIRY: Duration = Duration::from_secs(120);
/// How long after a restart the listener may still meet its predecessor's session: the
/// conflict backoff (30 s doubling, up to 20 % jitter) tries at 0, at most 36, 108 and
/// 252 s; the predecessor's session, last polled at the kill at the latest, has expired
/// [`SESSION_EXPIRY`] after it. The attempt after the expiry comes by 252 s.
pub const SESSION_REOPEN: Duration = Duration::from_secs(252);

/// The VMs' scripts: `vm/lib.sh`'s timings, with this suite's registration timeout,
/// cloud-init taking half of [`VM_START`] and the runner polling every [`POLL`].
pub fn script() -> ScriptSettings {
    ScriptSettings {
        cloud_init: VM_START / 2,
        registration_timeout: REGISTRATION_TIMEOUT,
        runner_exited_repeat: RUNNER_EXITED_REPEAT,
        poll: POLL,
        ..ScriptSettings::of_the_scripts()
    }
}

/// Boot latency in invariant 3: a new, reimaged or started instance until its runner polls.
pub fn boot_latency() -> Duration {
    BOOT_DELAY.max(REIMAGE_DELAY).max(START_DELAY) + VM_START + POLL
}

/// How long after the workload drained the reserve must be whole again (invariant 7):
/// the slowest way back is a VM that broke just before the end (it never registers, or
/// its runner-exited was lost), recycled at its registration (or runner-exit) timeout
/// a period later, and replaced by a new VM (boot, cloud-init, told to park at its
/// registration, deallocated in the next pass) — plus a period for each pass on the way.
pub fn refill_bound() -> Duration {
    REGISTRATION_TIMEOUT.max(RUNNER_EXIT_TIMEOUT).max(SCALE_IN_DELAY)
        + 3 * PERIOD
        + BOOT_DELAY.max(REIMAGE_DELAY)
        + VM_START
        + DEALLOCATE_DELAY
}

/// Where the operator's demand comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// No demand source: the free target on busy runners alone (`min >= 1`).
    None,
    /// GitHub's runner scale set: a `Listener` per operator process, JIT configs and
    /// runner removal through the scale set, `min` may be 0.
    ScaleSet,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub min: u32,
    pub max: u32,
    pub free_target_percentage: u8,
    pub jit: bool,
    pub keep_unhealthy: bool,
    /// The reserve of parked (deallocated) VMs, `PoolSpec.parked`; 0 for none.
    pub parked: u32,
    pub demand: Demand,
    pub faults: FaultRates,
    /// Scale-set demand only: GitHub deletes the scale set at this offset (applied at
    /// the first second from then on when none of its runners runs a job, as GitHub
    /// deletes a dormant set).
    pub delete_scale_set_at: Option<Duration>,
    /// Operator kills at these offsets, each followed by a downtime.
    pub kills: Vec<(Duration, Duration)>,
    pub jobs: Vec<JobSpec>,
}

/// Probabilities of each fault, per call or per event.
#[derive(Clone, Debug)]
pub struct FaultRates {
    /// Scale-set calls failing (429, 500 or timeout).
    pub cloud: f64,
    /// GitHub calls failing (rate limit, 502 or timeout).
    pub github: f64,
    /// Busy-record calls failing.
    pub busy_record: f64,
    /// Busy-record writes stored by the queue whose answer is lost (the client sees a timeout).
    pub busy_put_lost: f64,
    /// Job hooks never delivered / delivered twice / delivered late.
    pub hook_drop: f64,
    pub hook_duplicate: f64,
    pub hook_delay: f64,
    /// New instances whose provisioning fails, that never run cloud-init, or whose runner never comes online.
    pub vm_never_boots: f64,
    pub vm_never_registers: f64,
    pub runner_never_online: f64,
    /// After a runner was deregistered for a delete or reimage, kill the operator before the VM call.
    pub kill_after_deregister: f64,
    /// Scale-set API calls (listener and runners) failing: throttled, 5xx or a timeout.
    pub scale_set_api: f64,
    /// Acknowledgements GitHub answers but does not carry out: the message comes again.
    pub ack_lost: f64,
    /// Messages delivered a second time after their acknowledgement.
    pub message_duplicate: f64,
    /// Messages held back 5–60 s before the listener receives them.
    pub message_delay: f64,
    /// Messages carrying the statistics of the message before (counters lagging).
    pub stale_statistics: f64,
    /// Per poll: the broker drops the session (token expired, evicted).
    pub session_evicted: f64,
    /// Per poll: GitHub withdraws the queued jobs' assignments and makes them again.
    pub jobs_reassigned: f64,
    /// Per start of a parked instance by the operator: it ends `Failed` (an allocation
    /// failure), or comes 30 s to [`START_LATE_MAX`] late.
    pub start_fails: f64,
    pub start_late: f64,
    /// Per simulated second: someone else starts a deallocated instance, deletes one, or
    /// deallocates a running instance whose runner is idle (in the portal, by a script).
    pub outside_start: f64,
    pub outside_delete: f64,
    pub outside_deallocate: f64,
    /// Per deallocate or start call that reached the cloud: the operator dies while it runs.
    pub kill_mid_park: f64,
}

impl FaultRates {
    pub const NONE: Self = Self {
        cloud: 0.0,
        github: 0.0,
        busy_record: 0.0,
        busy_put_lost: 0.0,
        hook_drop: 0.0,
        hook_duplicate: 0.0,
        hook_delay: 0.0,
        vm_never_boots: 0.0,
        vm_never_registers: 0.0,
        runner_never_online: 0.0,
        kill_after_deregister: 0.0,
        scale_set_api: 0.0,
        ack_lost: 0.0,
        message_duplicate: 0.0,
        message_delay: 0.0,
        stale_statistics: 0.0,
        session_evicted: 0.0,
        jobs_reassigned: 0.0,
        start_fails: 0.0,
        start_late: 0.0,
        outside_start: 0.0,
        outside_delete: 0.0,
        outside_deallocate: 0.0,
        kill_mid_park: 0.0,
    };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    pub number: u64,
    pub arrives: Duration,
    pub runs_for: Duration,
}

impl Scenario {
    pub fn draw(seed: u64) -> Self {
        let (drawn, mut rng) = Self::draw_plain(seed);
        // Drawn last, on the same stream, so the draws before stay what they were.
        let drawn = if rng.random_bool(0.75) { drawn.with_scale_set(&mut rng) } else { drawn };
        // On a stream of its own: the scale-set draws above stay what they were too.
        drawn.with_parking(&mut Pcg64::seed_from_u64(seed ^ 0x2545_f491_4f6c_dd1d))
    }

    /// Everything but the demand source, drawn as before scale-set demand existed.
    fn draw_plain(seed: u64) -> (Self, Pcg64) {
        let mut rng = Pcg64::seed_from_u64(seed);
        let min = rng.random_range(1..=3);
        let max = min + rng.random_range(3..=10);
        let free_target_percentage = [20, 25, 34, 50][rng.random_range(0..4)];
        let cloud = rng.random_range(0.10..=0.30);
        let faults = FaultRates {
            cloud,
            github: cloud / 2.0,
            busy_record: rng.random_range(0.0..=0.10),
            busy_put_lost: 0.0, // drawn last, below, so older seeds keep their scenarios
            hook_drop: rng.random_range(0.0..=0.15),
            hook_duplicate: rng.random_range(0.0..=0.15),
            hook_delay: rng.random_range(0.0..=0.15),
            vm_never_boots: rng.random_range(0.0..=0.08),
            vm_never_registers: rng.random_range(0.0..=0.08),
            runner_never_online: rng.random_range(0.0..=0.05),
            kill_after_deregister: rng.random_range(0.0..=0.05),
            ..FaultRates::NONE
        };
        let jobs = workload(&mut rng);
        let busy_until = jobs.iter().map(|j| j.arrives).max().unwrap_or_default();
        let kills = (0..rng.random_range(0..=3))
            .map(|_| {
                let at = Duration::from_secs(rng.random_range(0..=busy_until.as_secs().max(1)));
                (at, Duration::from_secs(rng.random_range(0..=90)))
            })
            .collect();
        let mut faults = faults;
        faults.busy_put_lost = rng.random_range(0.0..=0.05);
        let jit = rng.random_bool(0.5);
        let keep_unhealthy = rng.random_bool(0.3);
        let drawn = Self {
            seed,
            min,
            max,
            free_target_percentage,
            jit,
            keep_unhealthy,
            parked: 0,
            demand: Demand::None,
            faults,
            delete_scale_set_at: None,
            kills,
            jobs,
        };
        (drawn, rng)
    }

    /// Scale-set demand on top of a drawn scenario: JIT (the scale set hands out the
    /// configs), `min = 0` in a third of them, and the scale-set faults.
    fn with_scale_set(mut self, rng: &mut Pcg64) -> Self {
        self.demand = Demand::ScaleSet;
        self.jit = true;
        if rng.random_bool(1.0 / 3.0) {
            self.min = 0;
        }
        let f = &mut self.faults;
        f.scale_set_api = f.github;
        f.ack_lost = rng.random_range(0.0..=0.10);
        f.message_duplicate = rng.random_range(0.0..=0.10);
        f.message_delay = rng.random_range(0.0..=0.10);
        f.stale_statistics = rng.random_range(0.0..=0.10);
        f.session_evicted = rng.random_range(0.0..=0.03);
        f.jobs_reassigned = rng.random_range(0.0..=0.03);
        let busy_until = self.jobs.iter().map(|j| j.arrives).max().unwrap_or_default();
        self.delete_scale_set_at =
            rng.random_bool(0.3).then(|| Duration::from_secs(rng.random_range(0..=busy_until.as_secs().max(1))));
        self
    }

    /// A reserve of 1–3 parked VMs in 2 of 5 seeds, whatever the demand source and `min`,
    /// with the parking faults; and in half of all seeds someone else deallocates a
    /// running idle VM now and then (a VM stopped mid-life, with its runner).
    fn with_parking(mut self, rng: &mut Pcg64) -> Self {
        if rng.random_bool(0.4) {
            self.parked = rng.random_range(1..=3);
            let f = &mut self.faults;
            f.start_fails = rng.random_range(0.0..=0.15);
            f.start_late = rng.random_range(0.0..=0.15);
            // Per second, while faults are on (about 40 minutes): up to a few times a run.
            f.outside_start = rng.random_range(0.0..=1.0 / 600.0);
            f.outside_delete = rng.random_range(0.0..=1.0 / 600.0);
            f.kill_mid_park = rng.random_range(0.0..=0.05);
        }
        if rng.random_bool(0.5) {
            self.faults.outside_deallocate = rng.random_range(0.0..=1.0 / 900.0);
        }
        self
    }

    /// The scenario as it was drawn before scale-set demand existed (the regression
    /// seeds' scenarios): no demand source, `min` and registration mode as first drawn.
    pub fn without_scale_set(seed: u64) -> Self {
        Self::draw_plain(seed).0
    }

    /// The same scenario without any fault: the baseline a fault run is compared with.
    pub fn without_faults(mut self) -> Self {
        self.faults = FaultRates::NONE;
        self.kills.clear();
        self.delete_scale_set_at = None;
        self
    }
}

/// Bursts (a push that fans out into a matrix) and single jobs at random gaps over
/// about 40 minutes; durations from half a minute to a quarter of an hour.
fn workload(rng: &mut Pcg64) -> Vec<JobSpec> {
    let mut jobs = Vec::new();
    let mut at = Duration::ZERO;
    let target = rng.random_range(25..=60);
    while jobs.len() < target {
        at += Duration::from_secs(rng.random_range(5..=120));
        let burst = if rng.random_bool(0.2) { rng.random_range(4..=12) } else { 1 };
        for _ in 0..burst {
            let number = jobs.len() as u64 + 1;
            let runs_for = Duration::from_secs(rng.random_range(30..=900));
            jobs.push(JobSpec { number, arrives: at, runs_for });
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_exactly_one_scenario() {
        let (a, b) = (Scenario::draw(7), Scenario::draw(7));
        assert_eq!(a.jobs, b.jobs);
        assert_eq!((a.min, a.max, a.kills.clone()), (b.min, b.max, b.kills.clone()));
        assert_ne!(Scenario::draw(8).jobs, a.jobs);
    }

    #[test]
    fn fault_rates_stay_in_the_issue_s_range() {
        for seed in 0..200 {
            let s = Scenario::draw(seed);
            assert!((0.10..=0.30).contains(&s.faults.cloud), "seed {seed}: {}", s.faults.cloud);
            assert!(s.max > s.min);
            assert!(s.min >= 1 || s.demand == Demand::ScaleSet, "seed {seed}: min 0 only with a demand source");
            assert!(s.jit || s.demand == Demand::None, "seed {seed}: scale-set runners are JIT runners");
        }
    }

    #[test]
    fn most_seeds_take_scale_set_demand_some_keep_none_and_some_start_at_zero() {
        let all: Vec<Scenario> = (0..200).map(Scenario::draw).collect();
        let scale_set = all.iter().filter(|s| s.demand == Demand::ScaleSet).count();
        let at_zero = all.iter().filter(|s| s.min == 0).count();
        assert!((120..=180).contains(&scale_set), "{scale_set} of 200 in scale-set mode");
        assert!(at_zero >= 25, "{at_zero} of 200 with min 0");
    }

    #[test]
    fn two_in_five_seeds_keep_a_reserve_with_and_without_min_0_and_scale_set_demand() {
        let all: Vec<Scenario> = (0..200).map(Scenario::draw).collect();
        let parked: Vec<&Scenario> = all.iter().filter(|s| s.parked > 0).collect();
        assert!((60..=100).contains(&parked.len()), "{} of 200 keep a reserve", parked.len());
        assert!(parked.iter().all(|s| (1..=3).contains(&s.parked) && s.parked <= s.max - s.min));
        assert!(parked.iter().any(|s| s.min == 0) && parked.iter().any(|s| s.min > 0));
        assert!(parked.iter().any(|s| s.demand == Demand::ScaleSet) && parked.iter().any(|s| s.demand == Demand::None));
        let unparked = all.iter().filter(|s| s.parked == 0);
        assert!(unparked.clone().all(|s| s.faults.start_fails == 0.0 && s.faults.outside_start == 0.0));
        assert!(unparked.clone().any(|s| s.faults.outside_deallocate > 0.0), "a VM stopped by someone else, anywhere");
    }

    #[test]
    fn parking_leaves_the_rest_of_a_seed_as_it_was_drawn() {
        for seed in 0..50 {
            let drawn = Scenario::draw(seed);
            let (plain, mut rng) = Scenario::draw_plain(seed);
            let without = if rng.random_bool(0.75) { plain.with_scale_set(&mut rng) } else { plain };
            assert_eq!(
                (drawn.min, drawn.max, drawn.demand, drawn.jobs),
                (without.min, without.max, without.demand, without.jobs)
            );
            assert_eq!((drawn.kills, drawn.delete_scale_set_at), (without.kills, without.delete_scale_set_at));
            assert_eq!(drawn.faults.cloud, without.faults.cloud);
        }
    }

    #[test]
    fn without_scale_set_is_the_scenario_drawn_before_demand_existed() {
        for seed in 0..50 {
            let (plain, drawn) = (Scenario::without_scale_set(seed), Scenario::draw(seed));
            assert_eq!(plain.demand, Demand::None);
            assert_eq!((plain.jobs, plain.kills, plain.max), (drawn.jobs, drawn.kills, drawn.max));
            assert!(plain.min >= 1);
            assert_eq!((plain.parked, plain.faults.outside_deallocate), (0, 0.0), "no parking as found");
        }
    }
}
