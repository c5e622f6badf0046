//! The simulated runner VMs, for the demo and the fault suite alike.
//!
//! The [`Hypervisor`] watches the in-memory scale set and runs one [`VmScript`] per
//! boot: a new instance, and each reimage, is a new boot; a boot that ends (delete,
//! reimage) takes its script with it. The script is `vm/boot.sh` and the hook
//! scripts ([`script`]); how its calls reach the operator is a [`VmTransport`]
//! ([`transport`]: real HTTP for the demo, direct calls with injected faults for the
//! fault suite). What differs between simulations — how a VM connects, each VM's
//! [`VmFate`], how long jobs run, who listens to [`VmEvent`]s — comes in through a
//! [`VmEnvironment`].
//!
//! If the scale set deletes or reimages a VM while its job runs, the hypervisor counts
//! it in [`SimStats::busy_vm_killed`]: the one thing the operator must never do.

mod script;
#[cfg(test)]
mod tests;
mod transport;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    memory::{Boot, InMemoryGithub, InMemoryScaleSet},
    model::{InstanceId, JobRef},
    SplitMix,
};

pub use script::{ScriptSettings, VmEvent, VmFate, VmScript};
pub use transport::{post, Answer, Backoff, Failure, HttpTransport, Posted, Registration, Request, Retry, VmTransport};

/// What a simulation decides about its VMs and wants to hear from them.
pub trait VmEnvironment: Send + Sync + 'static {
    /// How this boot's calls reach the operator.
    fn connect(&self, boot: &Boot) -> Box<dyn VmTransport>;

    /// Asked once per new instance while the cloud creates it: does provisioning fail?
    fn provisioning_fails(&self, _instance: &InstanceId) -> bool {
        false
    }

    /// Asked once per boot, before its script starts.
    fn fate(&self, _boot: &Boot) -> VmFate {
        VmFate::Healthy
    }

    /// How long `job` runs once its runner has it.
    fn job_duration(&self, job: &JobRef) -> Duration;

    /// Every event of every VM, in simulated-time order.
    fn observe(&self, _boot: &Boot, _event: &VmEvent) {}
}

/// Counters of what the simulated VMs saw.
#[derive(Debug, Default)]
pub struct SimStats {
    pub boots: AtomicU32,
    pub jobs_run: AtomicU32,
    /// VMs deleted or reimaged while running a job.
    pub busy_vm_killed: AtomicU32,
}

/// The hypervisor's pace and the scripts it runs.
#[derive(Clone, Debug)]
pub struct HypervisorSettings {
    /// How often it looks at the scale set.
    pub tick: Duration,
    pub script: ScriptSettings,
    /// Seeds every script's backoff jitter, so a simulation replays exactly.
    pub seed: u64,
}

/// The running hypervisor; [`Hypervisor::stop`] ends it and every VM.
pub struct Hypervisor {
    pub stats: Arc<SimStats>,
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Hypervisor {
    /// Start watching `scale_set`; runners register at `github`.
    pub fn start(
        scale_set: Arc<InMemoryScaleSet>,
        github: Arc<InMemoryGithub>,
        settings: HypervisorSettings,
        env: Arc<dyn VmEnvironment>,
    ) -> Self {
        let stats = Arc::new(SimStats::default());
        let stop = CancellationToken::new();
        let watch = Watch { scale_set, github, settings, env, stats: stats.clone() };
        let task = tokio::spawn(watch.run(stop.clone()));
        Self { stats, task, stop }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct Watch {
    scale_set: Arc<InMemoryScaleSet>,
    github: Arc<InMemoryGithub>,
    settings: HypervisorSettings,
    env: Arc<dyn VmEnvironment>,
    stats: Arc<SimStats>,
}

struct RunningVm {
    task: JoinHandle<()>,
    in_job: Arc<AtomicBool>,
}

impl Watch {
    async fn run(self, stop: CancellationToken) {
        // Ordered maps: the same seed starts and stops VMs in the same order.
        let mut vms: BTreeMap<(InstanceId, u32), RunningVm> = BTreeMap::new();
        let mut seen_creating = BTreeSet::new();
        let mut tick = tokio::time::interval(self.settings.tick);
        let mut seen_version = None;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            // Nothing was added, removed or changed state since the last look: the
            // work below would find what it found then (a long simulation is mostly this).
            let version = self.scale_set.version();
            if seen_version == Some(version) {
                continue;
            }
            seen_version = Some(version);
            for id in self.scale_set.creating() {
                if seen_creating.insert(id.clone()) && self.env.provisioning_fails(&id) {
                    self.scale_set.fail_provisioning(&id);
                }
            }
            let boots = self.scale_set.running_boots();
            let current: BTreeSet<(InstanceId, u32)> = boots.iter().map(|b| (b.id.clone(), b.generation)).collect();
            // VMs whose boot ended (deleted, or reimaged into a new boot) stop now.
            vms.retain(|key, vm| {
                if current.contains(key) {
                    return true;
                }
                let id = &key.0;
                if vm.in_job.load(Ordering::SeqCst) {
                    self.stats.busy_vm_killed.fetch_add(1, Ordering::SeqCst);
                    tracing::error!(instance = %id, "VIOLATION: VM removed while its job was running");
                }
                vm.task.abort();
                false
            });
            for boot in boots {
                vms.entry((boot.id.clone(), boot.generation)).or_insert_with(|| self.boot(boot));
            }
        }
        for vm in vms.into_values() {
            vm.task.abort();
        }
    }

    fn boot(&self, boot: Boot) -> RunningVm {
        self.stats.boots.fetch_add(1, Ordering::SeqCst);
        let in_job = Arc::new(AtomicBool::new(false));
        let script = VmScript {
            fate: self.env.fate(&boot),
            transport: self.env.connect(&boot),
            jitter: SplitMix(jitter_seed(self.settings.seed, &boot)),
            boot,
            settings: self.settings.script.clone(),
            github: self.github.clone(),
            env: self.env.clone(),
            stats: self.stats.clone(),
            in_job: in_job.clone(),
        };
        RunningVm { task: tokio::spawn(script.run()), in_job }
    }
}

/// One jitter stream per boot, from the simulation's seed and the boot's identity.
fn jitter_seed(seed: u64, boot: &Boot) -> u64 {
    let mut mix = SplitMix(seed ^ u64::from(boot.generation));
    for byte in boot.id.as_str().bytes() {
        mix.0 ^= u64::from(byte);
        mix.next_u64();
    }
    mix.next_u64()
}
