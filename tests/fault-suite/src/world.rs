//! The world outside the operator: the scale set, GitHub and the busy record
//! (`operator_sim::memory`, shared by every operator incarnation), the fault
//! injector's random stream, and the record of what happened that the invariants
//! are checked against.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use operator::{
    controller::Controller,
    model::{InstanceId, JobRef},
};
use operator_sim::memory::{InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, ScaleSetSettings};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use tokio::{sync::Notify, time::Instant};

use crate::scenario::{self, Scenario};

/// One operator process: its controller, and whether the process is still alive.
#[derive(Clone)]
pub struct Incarnation {
    pub controller: Controller,
    pub alive: Arc<AtomicBool>,
}

impl Incarnation {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

/// What happened, for the invariants and the report.
#[derive(Debug, Default)]
pub struct Observations {
    pub faults: Vec<(Duration, &'static str)>,
    /// Intervals during which no operator was accepting hooks (killed, or recovering).
    pub down: Vec<(Duration, Option<Duration>)>,
    pub jobs: BTreeMap<u64, JobTimes>,
    pub violations: Vec<String>,
    /// The runner id of each boot, once its runner registered.
    pub boot_runners: BTreeMap<BootKey, u64>,
    /// The boot each registration was handed to, by runner name.
    pub runner_boots: BTreeMap<String, BootKey>,
    pub kills: u32,
    pub scale_set: ScaleSetObservations,
    pub parking: ParkingObservations,
}

/// One boot of a VM: instance, disk generation (a reimage makes a new one) and power-on
/// (a start boots the same disk again: [`World::power_on`]).
pub type BootKey = (InstanceId, u32, u32);

/// What parking went through.
#[derive(Debug, Default)]
pub struct ParkingObservations {
    /// Boots told to park at their registration and not registered since, with the time
    /// of the first such answer.
    pub told_to_park: BTreeMap<BootKey, Duration>,
    /// Park answers given (every ask of a VM told to park counts).
    pub park_answers: u64,
    /// Boots that were told to park and later registered after all.
    pub registered_after_park: u64,
    /// Starts the cloud carried out late, with when they were made and by how much.
    pub late_starts: Vec<(Duration, Duration)>,
    pub failed_starts: u32,
    /// Instances someone else deallocated with an idle runner: the boot they were in.
    pub deallocated_by_hand: BTreeSet<BootKey>,
    pub outside_starts: u32,
    pub outside_deletes: u32,
    pub outside_deallocations: u32,
    pub kills_mid_park: u32,
    /// Registrations handed out whose request the suite saw make their credential at
    /// GitHub (the check of invariant 7's first half is alive), and park answers checked.
    pub registrations_checked: u64,
    pub park_answers_checked: u64,
}

/// What the scale-set demand went through (scale-set scenarios only).
#[derive(Debug, Default)]
pub struct ScaleSetObservations {
    /// While an operator was serving, its listener had no open session (starting,
    /// waiting out a conflict or a failure, recreating the scale set).
    pub blind: Vec<(Duration, Option<Duration>)>,
    /// Windows in which the statistics the operator held were held back: a message
    /// delayed, or stale statistics until the next message.
    pub held: Vec<(Duration, Duration)>,
    /// Messages delivered again (a duplicate, or unacknowledged ones after a restart).
    pub redelivered: u64,
    /// Session conflicts the listeners met.
    pub conflicts: u64,
    /// Times GitHub deleted the scale set.
    pub deleted: u32,
    /// The highest message id any process was delivered from the current scale set.
    pub high_water: i64,
    /// Messages a new process was delivered that an earlier one had already applied
    /// (their acknowledgement was lost).
    pub replayed: u64,
}

#[derive(Clone, Debug, Default)]
pub struct JobTimes {
    pub enqueued: Duration,
    /// Did the free target promise this job a runner (see `invariants`)?
    pub covered: bool,
    pub assigned: Option<Duration>,
    pub assignments: u32,
    pub completed: bool,
}

pub struct World {
    pub scenario: Scenario,
    pub scale_set: Arc<InMemoryScaleSet>,
    pub github: Arc<InMemoryGithub>,
    pub busy: Arc<InMemoryBusyRecord>,
    pub start: Instant,
    rng: Mutex<Pcg64>,
    /// A stream of its own for fault kinds added later, so they do not reshuffle old seeds.
    rng_late: Mutex<Pcg64>,
    /// A third stream, for the parking faults (issue 16).
    rng_park: Mutex<Pcg64>,
    /// How often each (instance, generation) was powered on: each boot script the
    /// hypervisor starts is one (a new instance, a reimage, or a start of a deallocated one).
    power_ons: Mutex<BTreeMap<(InstanceId, u32), u32>>,
    operator: Mutex<Option<Incarnation>>,
    pub record: Mutex<Observations>,
    /// Faults stop when the workload is over (the quiet phase).
    faults_on: AtomicBool,
    /// A port decided the process dies now (between deregistration and VM call).
    pub kill_now: Notify,
}

pub const REPOSITORY: &str = "octo-org/octo-repo";
pub const LABELS: [&str; 2] = ["self-hosted", "linux"];
pub const NAME_PREFIX: &str = "vmssfault";

impl World {
    pub fn new(scenario: Scenario) -> Arc<Self> {
        let settings = ScaleSetSettings {
            name_prefix: NAME_PREFIX.into(),
            boot_delay: scenario::BOOT_DELAY,
            reimage_delay: scenario::REIMAGE_DELAY,
            delete_delay: scenario::DELETE_DELAY,
            deallocate_delay: scenario::DEALLOCATE_DELAY,
            start_delay: scenario::START_DELAY,
            ip_block: 9,
        };
        // The injector's stream is seeded apart from the scenario's, so adding a
        // fault kind does not reshuffle every workload.
        let rng = Pcg64::seed_from_u64(scenario.seed ^ 0x9e37_79b9_7f4a_7c15);
        let rng_late = Pcg64::seed_from_u64(scenario.seed ^ 0x5851_f42d_4c95_7f2d);
        let rng_park = Pcg64::seed_from_u64(scenario.seed ^ 0x1405_7b7e_f767_814f);
        Arc::new(Self {
            scenario,
            scale_set: Arc::new(InMemoryScaleSet::new(settings)),
            github: Arc::new(InMemoryGithub::new(format!("https://github.com/{REPOSITORY}"))),
            busy: Arc::new(InMemoryBusyRecord::default()),
            start: Instant::now(),
            rng: Mutex::new(rng),
            rng_late: Mutex::new(rng_late),
            rng_park: Mutex::new(rng_park),
            power_ons: Mutex::new(BTreeMap::new()),
            operator: Mutex::new(None),
            record: Mutex::new(Observations::default()),
            faults_on: AtomicBool::new(true),
            kill_now: Notify::new(),
        })
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(self.start)
    }

    pub fn record(&self) -> std::sync::MutexGuard<'_, Observations> {
        self.record.lock().expect("record poisoned")
    }

    /// Draw one fault decision: true with probability `p` while faults are on. Every
    /// fault drawn is logged with its kind.
    pub fn roll(&self, p: f64, kind: &'static str) -> bool {
        self.roll_on(&self.rng, p, kind)
    }

    /// [`World::roll`] on the second stream (faults added after the first regression seeds).
    pub fn roll_late(&self, p: f64, kind: &'static str) -> bool {
        self.roll_on(&self.rng_late, p, kind)
    }

    /// [`World::roll`] on the parking faults' stream.
    pub fn roll_park(&self, p: f64, kind: &'static str) -> bool {
        self.roll_on(&self.rng_park, p, kind)
    }

    /// One draw on the parking faults' stream, not recorded as a fault (the caller records
    /// what it did): true with probability `p` while faults are on.
    pub fn chance_park(&self, p: f64) -> bool {
        self.faults_on.load(Ordering::SeqCst)
            && p > 0.0
            && self.rng_park.lock().expect("rng poisoned").random_bool(p.min(1.0))
    }

    /// A number from the parking faults' stream.
    pub fn pick_park(&self, range: std::ops::RangeInclusive<u64>) -> u64 {
        self.rng_park.lock().expect("rng poisoned").random_range(range)
    }

    /// A boot script starts on (instance, generation): one more power-on of that disk.
    pub fn power_on(&self, id: &InstanceId, generation: u32) -> BootKey {
        let mut power_ons = self.power_ons.lock().expect("power-ons poisoned");
        let n = power_ons.entry((id.clone(), generation)).or_insert(0);
        *n += 1;
        (id.clone(), generation, *n)
    }

    /// The boot (instance, generation) is in now: its latest power-on.
    pub fn boot_key(&self, id: &InstanceId, generation: u32) -> BootKey {
        let power_ons = self.power_ons.lock().expect("power-ons poisoned");
        (id.clone(), generation, power_ons.get(&(id.clone(), generation)).copied().unwrap_or(0))
    }

    fn roll_on(&self, rng: &Mutex<Pcg64>, p: f64, kind: &'static str) -> bool {
        if !self.faults_on.load(Ordering::SeqCst) || p <= 0.0 {
            return false;
        }
        let hit = rng.lock().expect("rng poisoned").random_bool(p.min(1.0));
        if hit {
            let at = self.elapsed();
            self.record().faults.push((at, kind));
        }
        hit
    }

    /// A number from the injector's stream (fault parameters: delays, kinds).
    pub fn pick(&self, range: std::ops::RangeInclusive<u64>) -> u64 {
        self.rng.lock().expect("rng poisoned").random_range(range)
    }

    pub fn stop_faults(&self) {
        self.faults_on.store(false, Ordering::SeqCst);
    }

    pub fn violation(&self, what: String) {
        tracing::error!(seed = self.scenario.seed, "VIOLATION: {what}");
        self.record().violations.push(what);
    }

    pub fn set_operator(&self, incarnation: Option<Incarnation>) {
        *self.operator.lock().expect("operator slot poisoned") = incarnation;
    }

    pub fn operator(&self) -> Option<Incarnation> {
        self.operator.lock().expect("operator slot poisoned").clone()
    }

    /// Is the job of any runner on this VM (any boot) still running at GitHub?
    pub fn vm_running_job(&self, vm_name: &str) -> Option<JobRef> {
        self.github
            .runner_jobs()
            .into_iter()
            .find(|(name, _)| operator::fleet::runner_vm_name(name) == Some(vm_name))
            .map(|(_, job)| job)
    }
}
