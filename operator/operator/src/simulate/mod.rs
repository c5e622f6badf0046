//! `operator simulate`: replay a CI workload through the real operator — controller,
//! policy, write budget and reconcile loop — on the one simulated world
//! (`operator_sim`) and a paused tokio clock, and say what the pool setting costs:
//! how long jobs wait and how many VM-hours sit idle. `docs/simulate.md` explains the
//! figures; [`baselines`] computes what static pools, one VM per job and a clairvoyant
//! pool would have done with the same jobs.
//!
//! # Layout
//!
//! - [`direct`]: VM calls straight into the controller (shared with the fault suite).
//! - [`run_setting`]: one setting on its own current-thread, paused-clock runtime;
//!   jobs are queued at the simulated GitHub at their trace arrival, VMs boot and
//!   reimage on the in-memory scale set's clock, which enforces Azure's throttling.
//! - [`baselines`]: pure computations over the workload.
//! - [`report`]: the printed summary; [`html`]: the `--report` page.
//! - [`command`]: the `operator simulate` command itself; [`goal`]: issue 16's goal run.
//! - [`export`]: `operator trace export`, a repository's job history as a workload.
//! - [`sweep`]: a grid of settings in parallel, its Pareto front and recommendation.
//! - [`prices`]: the price table and the idle cost of a run.
//! - [`window`]: a time window of the trace (`--last 14d`) and the history before it.

pub mod baselines;
pub mod command;
pub mod direct;
pub mod export;
pub mod goal;
pub mod html;
pub mod prices;
pub mod report;
pub mod sweep;
pub mod window;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use operator_sim::{
    memory::{
        Boot, InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetSettings, SimJob,
    },
    vms::{Hypervisor, HypervisorSettings, ScriptSettings, VmEnvironment, VmEvent, VmTransport},
    workload::Workload,
};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    budget::ScaleSetBudget,
    controller::{Controller, Settings, Sizing, Targeting, WallClock},
    listener::{Listener, ListenerSettings},
    model::{InstanceState, JobRef},
    pass::Effect,
    policy::PoolSpec,
    ports::{Github, Ports},
    retry::ErrorPolicy,
    run::reconcile_loop_with,
    targets::{LearnedDemand, Schedule, ScheduleEntry},
};

const REPOSITORY: &str = "sim-org/sim-repo";

/// Where a setting's `min`, `parked` and free target come from at each moment, as
/// `pool.schedules` and `pool.learned` would set them (`controller::targets`).
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// The setting's own counts throughout.
    Fixed,
    /// `pool.schedules` entries over the setting's counts; `name` is how it is printed.
    Scheduled { name: String, entries: Vec<ScheduleEntry> },
    /// `pool.learned`: a model seeded before the run (from the jobs before a window, as
    /// `pool.learned.seed_trace` would), learning online from each pass's demand as the
    /// operator does; the setting's counts are floors.
    Learned { name: String, model: Arc<LearnedDemand> },
}

/// One pool setting and the world's timings.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub min: u32,
    pub max: u32,
    pub free_target_percentage: u8,
    pub scale_in_delay: Duration,
    /// From capacity raised until Azure says the VM is running.
    pub boot: Duration,
    /// From the reimage call until the VM runs again.
    pub reimage: Duration,
    /// From the start call until a parked (deallocated) VM runs again.
    pub start: Duration,
    /// VMs kept parked in reserve: booted once, deallocated, started on demand before
    /// new ones are created.
    pub parked: u32,
    /// Demand from the runner scale set (assigned jobs); without, the pool sees only
    /// the jobs its own runners run.
    pub demand: bool,
    pub mode: Mode,
}

impl Default for Setting {
    fn default() -> Self {
        Self {
            min: 2,
            max: 60,
            free_target_percentage: 30,
            scale_in_delay: Duration::from_secs(300),
            boot: Duration::from_secs(90),
            reimage: Duration::from_secs(60),
            start: DEFAULT_START,
            parked: 0,
            demand: false,
            mode: Mode::Fixed,
        }
    }
}

impl Setting {
    /// Parks VMs: its VMs need managed OS disks (billed while running too). A learned
    /// mode sizes a reserve, so it always does.
    pub fn parks(&self) -> bool {
        match &self.mode {
            Mode::Fixed => self.parked > 0,
            Mode::Scheduled { entries, .. } => {
                self.parked > 0 || entries.iter().any(|e| e.parked.is_some_and(|p| p > 0))
            }
            Mode::Learned { .. } => true,
        }
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "min {} max {} free {}% scale-in {}s",
            self.min,
            self.max,
            self.free_target_percentage,
            self.scale_in_delay.as_secs()
        )?;
        if self.parked > 0 {
            write!(f, " parked {}", self.parked)?;
        }
        match &self.mode {
            Mode::Fixed => {}
            Mode::Scheduled { name, .. } => write!(f, " schedule {name}")?,
            Mode::Learned { name, .. } => write!(f, " learned {name}")?,
        }
        if self.demand {
            write!(f, " scale-set demand")?;
        }
        Ok(())
    }
}

/// Issue 16's stated assumption for a start from parked, until measured.
pub const DEFAULT_START: Duration = Duration::from_secs(45);

/// The world's fixed timings besides boot and reimage: those of the fault suite, which
/// follow `vm/lib.sh` (`operator_sim::vms::ScriptSettings::of_the_scripts`).
const DELETE: Duration = Duration::from_secs(30);
const PERIOD: Duration = Duration::from_secs(30);
const DEBOUNCE: Duration = Duration::from_millis(500);
/// How often the hypervisor looks for VMs that started running.
const HYPERVISOR_TICK: Duration = Duration::from_secs(1);
/// The pool's size is sampled this often for the timeline.
pub const SAMPLE: Duration = Duration::from_secs(300);

/// What one run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Each job's wait (queued at GitHub until a runner took it), in trace order.
    pub waits: Vec<Duration>,
    /// Simulated time from the first arrival until the last job finished.
    pub horizon: Duration,
    /// VM time, every instance from creation until its delete finished, less its parked
    /// time: the compute Azure bills.
    pub vm_time: Duration,
    /// Time instances spent deallocating or deallocated: their disk is billed, their
    /// compute is not.
    pub parked_time: Duration,
    /// Time runners spent running jobs.
    pub busy_time: Duration,
    pub writes: u32,
    pub capacity_writes: u32,
    pub delete_writes: u32,
    pub reimage_writes: u32,
    pub deallocate_writes: u32,
    pub start_writes: u32,
    pub max_writes_in_a_minute: u32,
    /// Writes a pass held back because the write budget was spent.
    pub deferred: u32,
    /// Scale-set calls Azure's throttling answered 429, by policy.
    pub throttled: BTreeMap<&'static str, u32>,
    /// Passes the report watcher missed (if non-zero, `deferred` is a lower bound).
    pub passes_unseen: u64,
    pub peak_pool: u32,
    /// Every [`SAMPLE`]: live instances, running jobs and queued jobs.
    pub timeline: Vec<Sample>,
    pub busy_vm_killed: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub at: Duration,
    pub pool: u32,
    pub busy: u32,
    pub queued: u32,
}

impl Outcome {
    pub fn idle_time(&self) -> Duration {
        self.vm_time.saturating_sub(self.busy_time)
    }

    pub fn throttled_total(&self) -> u32 {
        self.throttled.values().sum()
    }

    /// Idle running VM-hours and parked hours at their prices; `parks` says whether the
    /// setting parks (its VMs then have managed OS disks, billed while they run too).
    pub fn idle_cost(&self, prices: &prices::Prices, parks: bool) -> f64 {
        prices.cost(parks, report::hours(self.idle_time()), report::hours(self.parked_time))
    }

    /// Every running VM-hour and parked hour at its price.
    pub fn total_cost(&self, prices: &prices::Prices, parks: bool) -> f64 {
        prices.cost(parks, report::hours(self.vm_time), report::hours(self.parked_time))
    }
}

/// What the simulated VMs report back: when each job got its runner.
struct SimVms {
    controller: Controller,
    durations: Vec<Duration>,
    start: Instant,
    assigned: Mutex<Vec<Option<Duration>>>,
    finished: AtomicUsize,
    busy_time: Mutex<Duration>,
    all_done: Notify,
}

impl VmEnvironment for SimVms {
    fn connect(&self, boot: &Boot) -> Box<dyn VmTransport> {
        Box::new(direct::DirectTransport { controller: self.controller.clone(), ip: boot.ip })
    }

    fn job_duration(&self, job: &JobRef) -> Duration {
        self.durations.get(job.run_id as usize).copied().unwrap_or_default()
    }

    fn observe(&self, _boot: &Boot, event: &VmEvent) {
        match event {
            VmEvent::JobAssigned(job) => {
                let at = Instant::now().duration_since(self.start);
                if let Some(slot) = self.assigned.lock().expect("assignments poisoned").get_mut(job.run_id as usize) {
                    slot.get_or_insert(at);
                }
            }
            VmEvent::JobFinished(job) => {
                *self.busy_time.lock().expect("busy time poisoned") += self.job_duration(job);
                if self.finished.fetch_add(1, Ordering::SeqCst) + 1 == self.durations.len() {
                    self.all_done.notify_one();
                }
            }
            _ => {}
        }
    }
}

fn job_ref(index: usize) -> JobRef {
    JobRef { repository: REPOSITORY.into(), run_id: index as u64, run_attempt: 1, job_name: format!("job-{index}") }
}

/// Replay `workload` under `setting` on a fresh current-thread runtime with a paused
/// clock. The same workload and setting give the same outcome, bit for bit.
pub fn run_setting(workload: &Workload, setting: &Setting) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(simulate(workload, setting))
}

async fn simulate(workload: &Workload, setting: &Setting) -> Outcome {
    let labels = vec!["self-hosted".to_owned(), "linux".to_owned()];
    let scale_set = Arc::new(
        InMemoryScaleSet::new(ScaleSetSettings {
            name_prefix: "vmsssim".into(),
            boot_delay: setting.boot,
            reimage_delay: setting.reimage,
            start_delay: setting.start,
            delete_delay: DELETE,
            ip_block: 11,
            ..ScaleSetSettings::default()
        })
        .with_azure_throttling()
        .with_write_log(),
    );
    let github = Arc::new(InMemoryGithub::new(format!("https://github.com/{REPOSITORY}")));
    let (runners, listener): (Arc<dyn Github>, _) = if setting.demand {
        let settings = ListenerSettings::new("vmss-sim", labels.clone(), "simulate", 13);
        let (runners, listener) = Listener::attach(github.clone(), github.clone(), settings);
        (runners, Some(listener))
    } else {
        (github.clone(), None)
    };
    let ports = Ports {
        scale_set: scale_set.clone(),
        github: runners,
        busy: Arc::new(InMemoryBusyRecord::default()),
        secrets: Arc::new(InMemorySecretStore::default()),
    };
    // The trace's own time: schedules and the learned mode see the wall clock the jobs
    // arrived on.
    let start = Instant::now();
    let trace_start = time::OffsetDateTime::from_unix_timestamp_nanos((workload.start() * 1e9).round() as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let sizing = match &setting.mode {
        Mode::Fixed => Sizing::Fixed,
        Mode::Scheduled { entries, .. } => {
            Sizing::Scheduled(Schedule::new(entries.clone()).expect("a simulated schedule is valid"))
        }
        Mode::Learned { model, .. } => Sizing::Learned(Arc::new(Mutex::new(LearnedDemand::clone(model)))),
    };
    let settings = Settings {
        labels: labels.clone(),
        period: PERIOD,
        targeting: Targeting { sizing, clock: WallClock::Simulated { origin: start, at: trace_start } },
        ..Settings::new(
            "vmss-sim",
            REPOSITORY,
            PoolSpec {
                scale_in_delay: setting.scale_in_delay,
                parked: setting.parked,
                ..PoolSpec::new(setting.min, setting.max, setting.free_target_percentage)
            },
        )
    };
    let controller = Controller::with_budget(settings, ports, ScaleSetBudget::azure_vmss());
    let stop = CancellationToken::new();
    let errors = ErrorPolicy::seeded(Duration::from_secs(1), PERIOD, 13);
    let reconciler = tokio::spawn(reconcile_loop_with(controller.clone(), DEBOUNCE, errors, stop.clone()));
    let listener = listener.map(|listener| {
        let (controller, stop) = (controller.clone(), stop.clone());
        tokio::spawn(async move { listener.run(&controller, &stop).await })
    });

    let durations: Vec<Duration> = workload.jobs.iter().map(|j| Duration::from_secs_f64(j.duration)).collect();
    let vms = Arc::new(SimVms {
        controller: controller.clone(),
        assigned: Mutex::new(vec![None; durations.len()]),
        durations,
        start,
        finished: AtomicUsize::new(0),
        busy_time: Mutex::new(Duration::ZERO),
        all_done: Notify::new(),
    });
    let script = ScriptSettings { cloud_init: Duration::from_secs(5), ..ScriptSettings::of_the_scripts() };
    let hypervisor = Hypervisor::start(
        scale_set.clone(),
        github.clone(),
        HypervisorSettings { tick: HYPERVISOR_TICK, script, seed: 13 },
        vms.clone(),
    );

    // From each pass's report: (writes deferred, passes not seen, peak pool size).
    let deferrals = Arc::new(Mutex::new((0u32, 0u64, 0u32)));
    let watcher = {
        let (mut reports, deferrals) = (controller.reports(), deferrals.clone());
        tokio::spawn(async move {
            let mut last_pass = 0u64;
            while reports.changed().await.is_ok() {
                let report = reports.borrow_and_update().clone();
                let held_back = report
                    .effects
                    .iter()
                    .filter(|e| matches!(e, Effect::ScaleOutDeferred { .. } | Effect::OperationDeferred { .. }))
                    .count() as u32;
                let mut counts = deferrals.lock().expect("deferrals poisoned");
                counts.0 += held_back;
                counts.1 += report.pass.saturating_sub(last_pass + 1);
                let size = report.census.iter().filter(|(s, _)| **s != InstanceState::Deleting).map(|(_, n)| *n).sum();
                counts.2 = counts.2.max(size);
                last_pass = report.pass;
            }
        })
    };
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (scale_set, github, timeline) = (scale_set.clone(), github.clone(), timeline.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE);
            loop {
                tick.tick().await;
                let sample = Sample {
                    at: Instant::now().duration_since(start),
                    pool: scale_set.live(),
                    busy: github.runner_jobs().len() as u32,
                    queued: github.queued() as u32,
                };
                timeline.lock().expect("timeline poisoned").push(sample);
            }
        })
    };

    let offsets: Vec<Duration> = workload.jobs.iter().map(|j| workload.offset(j)).collect();
    let submit = {
        let github = github.clone();
        tokio::spawn(async move {
            for (index, at) in offsets.into_iter().enumerate() {
                tokio::time::sleep_until(start + at).await;
                github.enqueue(SimJob { job: job_ref(index), labels: labels.clone() });
            }
        })
    };
    if !workload.jobs.is_empty() {
        vms.all_done.notified().await;
    }
    let horizon = Instant::now().duration_since(start);
    let vm_time = scale_set.vm_time();
    let parked_time = scale_set.parked_time();
    let writes = scale_set.writes();
    let throttled = scale_set.throttled();
    let max_writes_in_a_minute = max_in_window(&scale_set.write_times(), Duration::from_secs(60));
    let busy_vm_killed = hypervisor.stats.busy_vm_killed.load(Ordering::SeqCst);

    submit.abort();
    sampler.abort();
    watcher.abort();
    stop.cancel();
    let _ = reconciler.await;
    if let Some(listener) = listener {
        let _ = listener.await;
    }
    hypervisor.stop().await;
    let timeline = std::mem::take(&mut *timeline.lock().expect("timeline poisoned"));
    let (deferred, passes_unseen, peak_pool) = *deferrals.lock().expect("deferrals poisoned");
    let waits = {
        let assigned = vms.assigned.lock().expect("assignments poisoned");
        workload
            .jobs
            .iter()
            .zip(assigned.iter())
            .map(|(job, at)| at.unwrap_or(horizon).saturating_sub(workload.offset(job)))
            .collect()
    };
    let busy_time = *vms.busy_time.lock().expect("busy time poisoned");
    Outcome {
        waits,
        horizon,
        vm_time,
        parked_time,
        busy_time,
        writes: writes.total(),
        capacity_writes: writes.set_capacity,
        delete_writes: writes.delete,
        reimage_writes: writes.reimage,
        deallocate_writes: writes.deallocate,
        start_writes: writes.start,
        max_writes_in_a_minute,
        deferred,
        throttled,
        passes_unseen,
        peak_pool,
        timeline,
        busy_vm_killed,
    }
}

/// The most instants in any window of length `window` (sorted input).
pub fn max_in_window(times: &[Instant], window: Duration) -> u32 {
    let (mut best, mut first) = (0usize, 0usize);
    for (last, t) in times.iter().enumerate() {
        while t.duration_since(times[first]) >= window {
            first += 1;
        }
        best = best.max(last + 1 - first);
    }
    best as u32
}

/// The `q`-quantile (0..=1) of `values` by nearest rank; zero when empty.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests;
