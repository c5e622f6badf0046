//! One VM boot as `vm/boot.sh` and the hook scripts play it: ask for this boot's
//! registration with backoff until the registration timeout (then give up, loudly),
//! start the runner, let it take one job between the two job hooks (each a few
//! attempts, then given up: a hook never fails the job), report runner-exited when
//! the runner process ends, and repeat that report every minute until the VM is
//! reimaged or deleted. The timings are `vm/lib.sh`'s ([`ScriptSettings::of_the_scripts`]).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use super::{
    transport::{post, Answer, Backoff, Posted, Registration, Request, Retry, VmTransport},
    SimStats, VmEnvironment,
};
use crate::{
    memory::{Boot, InMemoryGithub},
    model::JobRef,
    SplitMix,
};

/// The scripts' knobs (`vm/lib.sh`'s `vmss_load_config`) and the VM's own pace.
#[derive(Clone, Debug)]
pub struct ScriptSettings {
    /// From "the cloud says Running" until boot.sh first asks for its registration.
    pub cloud_init: Duration,
    /// `REGISTRATION_TIMEOUT`: boot.sh asks for this long, then gives up.
    pub registration_timeout: Duration,
    /// `HOOK_ATTEMPTS`: a job hook tries this often, then lets the job go on.
    pub hook_attempts: u32,
    /// The backoff's first pause (`vmss_backoff`: 1 s, doubling).
    pub backoff_unit: Duration,
    /// `BACKOFF_MAX`.
    pub backoff_max: Duration,
    /// `RUNNER_EXITED_TIMEOUT`: runner-exited.sh tries this long.
    pub runner_exited_timeout: Duration,
    /// `RUNNER_EXITED_REPEAT`: boot.sh repeats the report this often until recycled.
    pub runner_exited_repeat: Duration,
    /// How often the runner asks GitHub for a job (the real listener long-polls).
    pub poll: Duration,
}

impl ScriptSettings {
    /// The defaults of `vm/lib.sh` (a test reads the script to keep them equal).
    pub fn of_the_scripts() -> Self {
        Self {
            cloud_init: Duration::from_secs(5),
            registration_timeout: Duration::from_secs(600),
            hook_attempts: 5,
            backoff_unit: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            runner_exited_timeout: Duration::from_secs(300),
            runner_exited_repeat: Duration::from_secs(60),
            poll: Duration::from_secs(5),
        }
    }

    /// Every timing divided by `factor`: the same script, `factor` times faster.
    pub fn faster(self, factor: u32) -> Self {
        Self {
            cloud_init: self.cloud_init / factor,
            registration_timeout: self.registration_timeout / factor,
            hook_attempts: self.hook_attempts,
            backoff_unit: self.backoff_unit / factor,
            backoff_max: self.backoff_max / factor,
            runner_exited_timeout: self.runner_exited_timeout / factor,
            runner_exited_repeat: self.runner_exited_repeat / factor,
            poll: self.poll / factor,
        }
    }
}

/// What becomes of one boot: a healthy VM, or one of the ways real VMs break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFate {
    Healthy,
    /// cloud-init never runs boot.sh: the VM never asks for a registration.
    NeverRunsCloudInit,
    /// The registration is handed out, but the runner hangs before it comes online.
    RunnerNeverOnline,
}

/// What a VM did, for whoever watches the simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEvent {
    /// The operator told this boot to park: it holds no runner and waits to be
    /// deallocated.
    ToldToPark,
    /// The operator handed this boot its registration.
    Registered { runner_name: String },
    /// The runner came online at GitHub.
    RunnerOnline { runner_id: u64 },
    /// GitHub assigned the runner a job.
    JobAssigned(JobRef),
    /// The job ran to its end; the ephemeral runner is gone.
    JobFinished(JobRef),
}

/// One boot's script, ready to run on its VM.
pub struct VmScript {
    pub(super) boot: Boot,
    pub(super) settings: ScriptSettings,
    pub(super) fate: VmFate,
    pub(super) transport: Box<dyn VmTransport>,
    pub(super) github: Arc<InMemoryGithub>,
    pub(super) env: Arc<dyn VmEnvironment>,
    pub(super) stats: Arc<SimStats>,
    /// Set while the runner holds a job: the VM must not be touched then.
    pub(super) in_job: Arc<AtomicBool>,
    pub(super) jitter: SplitMix,
}

/// How the runner side ended, for runner-exited's exit code.
enum Ran {
    /// run.sh ran (a job, or none because GitHub removed the runner) and exited.
    Exited(i32),
    /// config.sh failed (token mode): boot.sh reports once and stops.
    ConfigFailed,
    /// The script stops here; the VM idles until it is recycled.
    Stopped,
}

impl VmScript {
    /// Play the boot. Never returns: a VM whose script has ended idles (and keeps its
    /// transport) until its boot ends and the hypervisor drops it.
    pub async fn run(mut self) {
        match self.boot_sh().await {
            Ran::Exited(code) => {
                self.runner_exited(code).await;
                // The operator recycles this VM within seconds; should it restart in
                // between, only a repeated report tells the new one at once.
                loop {
                    tokio::time::sleep(self.settings.runner_exited_repeat).await;
                    tracing::info!(instance = %self.boot.id, "still here; reporting the runner exit again");
                    self.runner_exited(code).await;
                }
            }
            Ran::ConfigFailed => self.runner_exited(1).await,
            Ran::Stopped => {}
        }
        std::future::pending::<()>().await;
    }

    async fn boot_sh(&mut self) -> Ran {
        let instance = self.boot.id.clone();
        if self.fate == VmFate::NeverRunsCloudInit {
            tracing::info!(%instance, "cloud-init never runs the boot script");
            return Ran::Stopped;
        }
        tokio::time::sleep(self.settings.cloud_init).await;
        // Told to park: no runner on this boot; ask again until the operator deallocates
        // the VM (which ends this script) or gives it a registration after all.
        let registration = loop {
            let retry = self.retry(None, Some(self.settings.registration_timeout));
            let registration = match post(&*self.transport, &Request::Register, retry).await {
                Posted::Answered(Answer::Registration(r)) => r,
                other => {
                    tracing::warn!(%instance, outcome = ?other, "no registration; boot script gives up, the operator will recycle this VM");
                    return Ran::Stopped;
                }
            };
            if let Registration::Park { retry_after_seconds } = registration {
                self.env.observe(&self.boot, &VmEvent::ToldToPark);
                tokio::time::sleep(Duration::from_secs(retry_after_seconds)).await;
                continue;
            }
            break registration;
        };
        let runner_name = registration.runner_name().unwrap_or_default().to_owned();
        self.env.observe(&self.boot, &VmEvent::Registered { runner_name });
        if self.fate == VmFate::RunnerNeverOnline {
            tracing::info!(%instance, "the runner hangs before it comes online");
            return Ran::Stopped;
        }
        let runner_id = match &registration {
            Registration::Jit { encoded_jit_config, .. } => {
                match self.github.start_with_jit(encoded_jit_config) {
                    Some(id) => id,
                    None => return Ran::Exited(1), // run.sh --jitconfig refused
                }
            }
            Registration::Park { .. } => unreachable!("the loop above waits out park answers"),
            Registration::Token { runner_name, token, config_args, .. } => {
                if !config_args.iter().any(|a| a == "--ephemeral") {
                    tracing::error!(%instance, "config.sh arguments lack --ephemeral; refusing to start the runner");
                    return Ran::Stopped;
                }
                let labels: Vec<String> = config_args
                    .windows(2)
                    .find(|w| w[0] == "--labels")
                    .map(|w| w[1].split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                match self.github.register_with_token(token, runner_name, &labels) {
                    Some(id) => id,
                    None => return Ran::ConfigFailed,
                }
            }
        };
        self.env.observe(&self.boot, &VmEvent::RunnerOnline { runner_id });
        self.run_sh(runner_id).await;
        Ran::Exited(0)
    }

    /// The ephemeral runner: wait for one job, run it between the hooks, exit. It also
    /// exits when GitHub no longer knows it (deregistered by the operator).
    async fn run_sh(&mut self, runner_id: u64) {
        let job = loop {
            tokio::time::sleep(self.settings.poll).await;
            if !self.github.knows_runner(runner_id) {
                return;
            }
            if let Some(job) = self.github.poll_job(runner_id) {
                break job;
            }
        };
        self.in_job.store(true, Ordering::SeqCst);
        self.env.observe(&self.boot, &VmEvent::JobAssigned(job.clone()));
        self.job_hook(Request::JobStarted(job.clone())).await;
        tokio::time::sleep(self.env.job_duration(&job)).await;
        self.job_hook(Request::JobCompleted(job.clone())).await;
        self.github.finish_job(runner_id);
        self.in_job.store(false, Ordering::SeqCst);
        self.stats.jobs_run.fetch_add(1, Ordering::SeqCst);
        self.env.observe(&self.boot, &VmEvent::JobFinished(job));
    }

    /// `vmss_job_hook`: a few attempts, then the job goes on regardless.
    async fn job_hook(&mut self, request: Request) {
        let retry = self.retry(Some(self.settings.hook_attempts), None);
        let outcome = self.transport.hook(&request, retry).await;
        if !matches!(outcome, Posted::Answered(_)) {
            tracing::warn!(instance = %self.boot.id, path = request.path(), ?outcome, "hook not taken; the job goes on");
        }
    }

    /// `runner-exited.sh`: try until its timeout; the operator's pass repairs the rest.
    async fn runner_exited(&mut self, exit_code: i32) {
        let retry = self.retry(None, Some(self.settings.runner_exited_timeout));
        let outcome = self.transport.hook(&Request::RunnerExited { exit_code }, retry).await;
        if !matches!(outcome, Posted::Answered(_)) {
            tracing::warn!(instance = %self.boot.id, ?outcome, "runner exit not taken");
        }
    }

    fn retry(&mut self, attempts: Option<u32>, within: Option<Duration>) -> Retry {
        let backoff = Backoff {
            unit: self.settings.backoff_unit,
            max: self.settings.backoff_max,
            jitter: SplitMix(self.jitter.next_u64()),
        };
        Retry { attempts, within, backoff }
    }
}
