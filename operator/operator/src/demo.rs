//! `operator demo`: the real operator — HTTP server, controller, policy, reconcile
//! loop — against the in-memory scale set, GitHub and busy record, with simulated
//! VMs calling the real endpoints from their own loopback addresses. Time runs about
//! ten times faster than on Azure (boot in seconds), and so does the write budget.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    budget::ScaleSetBudget,
    controller::{Controller, Settings},
    listener::{Listener, ListenerSettings},
    model::{InstanceState, JobRef},
    policy::PoolSpec,
    ports::{Github, Ports},
    run::{run, RunSettings},
};
use operator_sim::memory::{
    InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetSettings, SimJob, WriteCounts,
};
use operator_sim::{
    memory::Boot,
    vms::{HttpTransport, Hypervisor, HypervisorSettings, ScriptSettings, VmEnvironment, VmTransport},
    SplitMix,
};

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub jobs: u32,
    pub min: u32,
    pub max: u32,
    pub free_target_percentage: u8,
    pub jit: bool,
    /// Demand from a runner scale set (the default): the pool starts empty and grows to
    /// a burst in one step. Without, the pool sees only its own runners' jobs.
    pub demand: bool,
    pub seed: u64,
    /// Jobs after the first half arrive spread over this window.
    pub arrival_window: Duration,
    /// Each job runs between these two durations.
    pub job_duration: (Duration, Duration),
    /// Give up after this long.
    pub deadline: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            jobs: 40,
            min: 0,
            max: 24,
            free_target_percentage: 20,
            jit: true,
            demand: true,
            seed: 7,
            // Boot : job about 1 : 5, as with a one-minute boot and five-minute jobs.
            arrival_window: Duration::from_secs(20),
            job_duration: (Duration::from_secs(6), Duration::from_secs(20)),
            deadline: Duration::from_secs(240),
        }
    }
}

/// The VMs' scripts at the demo's pace: `vm/lib.sh`'s timings ten times faster
/// (registration for up to 60 s, runner-exited repeated every 6 s), polling GitHub
/// every 50 ms.
fn demo_script() -> ScriptSettings {
    ScriptSettings {
        cloud_init: Duration::ZERO,
        poll: Duration::from_millis(50),
        ..ScriptSettings::of_the_scripts().faster(10)
    }
}

/// The demo's VMs: real HTTP from each VM's own loopback address, healthy, each job
/// running for its drawn duration.
struct DemoVms {
    operator: std::net::SocketAddr,
    durations: HashMap<JobRef, Duration>,
}

impl VmEnvironment for DemoVms {
    fn connect(&self, boot: &Boot) -> Box<dyn VmTransport> {
        Box::new(HttpTransport::new(self.operator, boot.ip).expect("a loopback client builds"))
    }

    fn job_duration(&self, job: &JobRef) -> Duration {
        self.durations.get(job).copied().unwrap_or(Duration::from_secs(1))
    }
}

/// What happened, for the summary and for tests.
#[derive(Clone, Debug)]
pub struct DemoSummary {
    pub jobs_submitted: u32,
    pub jobs_completed: usize,
    pub jobs_assigned_twice: usize,
    pub peak_instances: u32,
    pub final_instances: usize,
    pub writes: WriteCounts,
    /// How long jobs waited for a runner: p50, p95, max.
    pub job_wait: (Duration, Duration, Duration),
    /// Calls to the scale set API (listener polls, acknowledgements, JIT configs, removals).
    pub scale_set_api_calls: u64,
    pub busy_vm_killed: u32,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("binding the loopback listener failed")]
    Bind(#[source] std::io::Error),
    #[error("the pool did not settle within {0:?}: {1}")]
    Timeout(Duration, String),
}

pub async fn run_demo(opts: DemoOptions, out: &mut (dyn Write + Send)) -> Result<DemoSummary, DemoError> {
    let labels = vec!["self-hosted".to_owned(), "linux".to_owned(), "demo".to_owned()];
    let scale_set = Arc::new(InMemoryScaleSet::new(ScaleSetSettings {
        name_prefix: "vmssdemo".into(),
        boot_delay: Duration::from_secs(3),
        reimage_delay: Duration::from_secs(2),
        delete_delay: Duration::from_secs(1),
        ip_block: 3,
        ..ScaleSetSettings::default()
    }));
    let github = Arc::new(InMemoryGithub::new("https://github.com/octo-org/octo-repo"));
    let busy = Arc::new(InMemoryBusyRecord::default());
    // With scale-set demand, JIT configs and runner removal go through the scale set and
    // the listener reads its messages; both are the same in-memory GitHub.
    let (runners, scale_set_listener): (Arc<dyn Github>, _) = if opts.demand && opts.jit {
        let settings = ListenerSettings::new("vmss-demo", labels.clone(), "demo", opts.seed);
        let (runners, listener) = Listener::attach(github.clone(), github.clone(), settings);
        (runners, Some(listener))
    } else {
        (github.clone(), None)
    };
    let ports = Ports {
        scale_set: scale_set.clone(),
        github: runners,
        busy: busy.clone(),
        secrets: Arc::new(InMemorySecretStore::with("github-pat", "demo-credential")),
    };
    let settings = Settings {
        labels: labels.clone(),
        jit: opts.jit,
        period: Duration::from_secs(2),
        ..Settings::new(
            "vmss-demo",
            "octo-org/octo-repo",
            PoolSpec {
                scale_in_delay: Duration::from_secs(4),
                registration_timeout: Duration::from_secs(60),
                runner_exit_timeout: Duration::from_secs(30),
                ..PoolSpec::new(opts.min, opts.max, opts.free_target_percentage)
            },
        )
    };
    // Azure's limits, ten times faster: a "minute" of 6 s.
    let controller = Controller::with_budget(settings, ports, ScaleSetBudget::with_minute(Duration::from_secs(6)));
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(DemoError::Bind)?;
    let addr = listener.local_addr().map_err(DemoError::Bind)?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(
        controller.clone(),
        listener,
        RunSettings {
            http: crate::api::HttpLimits::default(),
            debounce: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(5),
            listener: scale_set_listener,
            learned: None,
        },
        shutdown.clone(),
    ));

    let jobs = draw_jobs(&opts);
    let env = DemoVms { operator: addr, durations: jobs.iter().map(|(j, _, d)| (j.clone(), *d)).collect() };
    let sim = Hypervisor::start(
        scale_set.clone(),
        github.clone(),
        HypervisorSettings { tick: Duration::from_millis(25), script: demo_script(), seed: opts.seed },
        Arc::new(env),
    );

    let _ = writeln!(
        out,
        "vmss-github-runner demo: operator on {addr}, pool min {} max {} free target {} %, {} jobs ({} mode)\n\
         in-memory scale set (boot 3 s, reimage 2 s, delete 1 s), GitHub and busy record; VMs call the real API from 127.3.x.y\n",
        opts.min, opts.max, opts.free_target_percentage, opts.jobs, if opts.jit { "JIT" } else { "registration token" }
    );
    let _ = writeln!(
        out,
        "{:>7}  {:>4}  {:>4}  {:>4}  {:>7}  {:>7}  {:>6}  action",
        "time", "busy", "idle", "boot", "retiring", "desired", "actual"
    );

    let started = Instant::now();
    let mut reports = controller.reports();
    let mut pending: Vec<(JobRef, Duration)> = jobs.iter().map(|(j, at, _)| (j.clone(), *at)).collect();
    pending.sort_by_key(|(_, at)| *at);
    let mut peak = 0;
    let mut last_line = String::new();
    let result = loop {
        let elapsed = started.elapsed();
        while pending.first().is_some_and(|(_, at)| *at <= elapsed) {
            let (job, _) = pending.remove(0);
            github.enqueue(SimJob { job, labels: labels.clone() });
        }
        if reports.has_changed().unwrap_or(false) {
            let report = reports.borrow_and_update().clone();
            let size =
                report.census.iter().filter(|(s, _)| **s != InstanceState::Deleting).map(|(_, n)| *n).sum::<u32>();
            peak = peak.max(size).max(report.target.size_after);
            let line = table_line(&report);
            if line != last_line {
                let _ = writeln!(out, "{:>6.1}s  {line}", elapsed.as_secs_f64());
                last_line = line;
            }
        }
        let done = github.completed().len() == jobs.len() && pending.is_empty() && {
            let states = controller.instance_states();
            states.len() == opts.min as usize && states.iter().all(|(_, s)| *s == InstanceState::Idle)
        };
        if done {
            break Ok(());
        }
        if elapsed > opts.deadline {
            break Err(DemoError::Timeout(
                opts.deadline,
                format!("{} of {} jobs completed", github.completed().len(), jobs.len()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let assigned: Vec<JobRef> = github.assignments().into_iter().map(|(j, _)| j).collect();
    let unique: HashSet<&JobRef> = assigned.iter().collect();
    let summary = DemoSummary {
        jobs_submitted: opts.jobs,
        jobs_completed: github.completed().len(),
        jobs_assigned_twice: assigned.len() - unique.len(),
        peak_instances: peak,
        final_instances: controller.instance_states().len(),
        writes: scale_set.writes(),
        job_wait: percentiles(github.job_waits()),
        scale_set_api_calls: github.scale_set_calls(),
        busy_vm_killed: sim.stats.busy_vm_killed.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
    };
    sim.stop().await;
    shutdown.cancel();
    let _ = server.await;
    result?;

    write_summary(out, &summary, busy.markers().len());
    Ok(summary)
}

/// The demo's jobs: (job, arrival after the start, how long it runs). Half arrive at once,
/// the rest over the arrival window; durations drawn from the seed.
fn draw_jobs(opts: &DemoOptions) -> Vec<(JobRef, Duration, Duration)> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut rng = SplitMix(opts.seed);
    let window = millis(opts.arrival_window);
    let (shortest, longest) = (millis(opts.job_duration.0), millis(opts.job_duration.1));
    (0..opts.jobs)
        .map(|n| {
            let job = JobRef {
                repository: "octo-org/octo-repo".into(),
                run_id: 9_000_000 + u64::from(n / 4),
                run_attempt: 1,
                job_name: format!("test-{}", n % 4),
            };
            let at = if n < opts.jobs / 2 || window == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(rng.range(0, window))
            };
            (job, at, Duration::from_millis(rng.range(shortest, longest.max(shortest + 1))))
        })
        .collect()
}

/// One row of the terminal table: the pool's census, the policy's numbers and what the
/// pass did.
fn table_line(report: &crate::pass::PassReport) -> String {
    let c = |s: InstanceState| report.census.get(&s).copied().unwrap_or(0);
    format!(
        "{:>4}  {:>4}  {:>4}  {:>7}  {:>7}  {:>6}  {}",
        c(InstanceState::Busy),
        c(InstanceState::Idle),
        c(InstanceState::Provisioning) + c(InstanceState::AwaitingRegistration) + c(InstanceState::Reimaging),
        c(InstanceState::Retiring) + c(InstanceState::Recyclable),
        report.target.desired,
        report.target.size_after,
        report.effects.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )
}

/// p50, p95 and max of `waits` (nearest rank); zeros when empty.
fn percentiles(mut waits: Vec<Duration>) -> (Duration, Duration, Duration) {
    waits.sort();
    let at = |q: f64| {
        let rank = ((q * waits.len() as f64).ceil() as usize).clamp(1, waits.len().max(1));
        waits.get(rank - 1).copied().unwrap_or_default()
    };
    (at(0.5), at(0.95), waits.last().copied().unwrap_or_default())
}

fn write_summary(out: &mut (dyn Write + Send), summary: &DemoSummary, markers_left: usize) {
    let (p50, p95, max) = summary.job_wait;
    let _ = writeln!(
        out,
        "\nsummary: {} jobs completed of {} ({} ran twice), peak {} instances, back to {} idle (min) after {:.1}s\n\
         job wait for a runner: p50 {:.1}s, p95 {:.1}s, max {:.1}s\n\
         scale-set writes: {} capacity changes, {} delete calls ({} instances), {} reimage calls ({} instances); \
         {} runner scale set API calls\n\
         VMs touched while busy: {}; busy markers left: {}",
        summary.jobs_completed,
        summary.jobs_submitted,
        summary.jobs_assigned_twice,
        summary.peak_instances,
        summary.final_instances,
        summary.elapsed.as_secs_f64(),
        p50.as_secs_f64(),
        p95.as_secs_f64(),
        max.as_secs_f64(),
        summary.writes.set_capacity,
        summary.writes.delete,
        summary.writes.deleted_ids.len(),
        summary.writes.reimage,
        summary.writes.reimaged_ids.len(),
        summary.scale_set_api_calls,
        summary.busy_vm_killed,
        markers_left,
    );
}
