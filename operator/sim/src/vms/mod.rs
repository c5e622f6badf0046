//! Simulated runner VMs for the demo, the integration tests and the benchmark.
//!
//! A "hypervisor" watches the in-memory scale set and starts one task per booted
//! instance. Each task plays the VM's part with real HTTP calls from the instance's
//! own loopback address (127.x.y.z): it asks the operator for its registration,
//! starts the runner at the simulated GitHub, waits for a job, calls job-started,
//! "runs" the job, calls job-completed, exits the runner and reports runner-exited.
//! If the scale set deletes or reimages a VM while its job runs, that is recorded
//! as a violation: the one thing the operator must never do.

mod vm;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    memory::{Boot, InMemoryGithub, InMemoryScaleSet},
    model::JobRef,
};

pub use vm::VmOutcome;

/// How long each job runs, by job.
pub type JobDurations = Arc<dyn Fn(&JobRef) -> Duration + Send + Sync>;

/// Shared counters of what the simulated VMs saw.
#[derive(Debug, Default)]
pub struct SimStats {
    pub boots: AtomicU32,
    pub jobs_run: AtomicU32,
    /// VMs deleted or reimaged while running a job.
    pub busy_vm_killed: AtomicU32,
    pub hook_retries: AtomicU32,
}

pub struct Simulator {
    pub stats: Arc<SimStats>,
    task: JoinHandle<()>,
    stop: CancellationToken,
}

#[derive(Clone)]
pub struct SimContext {
    pub operator: SocketAddr,
    pub github: Arc<InMemoryGithub>,
    pub durations: JobDurations,
    pub stats: Arc<SimStats>,
    /// Poll interval for jobs at the simulated GitHub.
    pub poll: Duration,
}

impl Simulator {
    /// Start watching `scale_set`; VMs call the operator at `operator`.
    pub fn start(
        scale_set: Arc<InMemoryScaleSet>,
        github: Arc<InMemoryGithub>,
        operator: SocketAddr,
        durations: JobDurations,
    ) -> Self {
        let stats = Arc::new(SimStats::default());
        let stop = CancellationToken::new();
        let ctx = SimContext { operator, github, durations, stats: stats.clone(), poll: Duration::from_millis(50) };
        let task = tokio::spawn(hypervisor(scale_set, ctx, stop.clone()));
        Self { stats, task, stop }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct RunningVm {
    handle: JoinHandle<VmOutcome>,
    in_job: Arc<std::sync::atomic::AtomicBool>,
}

async fn hypervisor(scale_set: Arc<InMemoryScaleSet>, ctx: SimContext, stop: CancellationToken) {
    let mut vms: HashMap<Boot, RunningVm> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let boots = scale_set.running_boots();
        // VMs whose boot ended (deleted, or reimaged into a new boot) stop now.
        vms.retain(|boot, vm| {
            if boots.contains(boot) {
                return true;
            }
            if vm.in_job.load(Ordering::SeqCst) {
                ctx.stats.busy_vm_killed.fetch_add(1, Ordering::SeqCst);
                tracing::error!(instance = %boot.id, "VIOLATION: VM removed while its job was running");
            }
            vm.handle.abort();
            false
        });
        for boot in boots {
            if let std::collections::hash_map::Entry::Vacant(slot) = vms.entry(boot) {
                ctx.stats.boots.fetch_add(1, Ordering::SeqCst);
                let in_job = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let handle = tokio::spawn(vm::run(slot.key().clone(), ctx.clone(), in_job.clone()));
                slot.insert(RunningVm { handle, in_job });
            }
        }
    }
    for (_, vm) in vms {
        vm.handle.abort();
    }
}
