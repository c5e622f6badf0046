//! What the runner VMs ask for: a registration, and the job and runner events. The
//! caller is always identified by its address, never by anything in a body. What a
//! hook means for the instance is decided by the pure transition table
//! (`operator_core::fleet::transition`); this file carries the answer out: it awaits
//! the ports, applies the result to the record, counts and logs.

use std::net::IpAddr;

use time::OffsetDateTime;
use tokio::{sync::OwnedMutexGuard, time::Instant};
use tracing::{debug, info, instrument, warn};

use super::Controller;
use crate::{
    fleet::{
        transition::{transition, FinishNote, Hook, Refusal, Transition, WithdrawRunner},
        ActiveJob, InstanceRecord, OrphanMarker, RunnerRef,
    },
    labels::{Api, HookKind},
    model::{InstanceId, InstanceState, JobRef},
    ports::{BusyMarker, BusyRecordError, DeregisterOutcome, GithubError, JitRequest, RunnerStatus, ScaleSetError},
    truth,
};

/// Why a hook was not accepted. The API maps each to one status code.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("the operator is still recovering its state")]
    Recovering,
    #[error("{ip} is not an instance of this scale set")]
    UnknownInstance { ip: IpAddr },
    #[error("instance {instance} already received its registration for this boot")]
    AlreadyRegistered { instance: InstanceId },
    #[error("instance {instance} is still {state}; ask again shortly")]
    NotReadyYet { instance: InstanceId, state: InstanceState },
    #[error("instance {instance} is {state}; it takes no {hook} now")]
    WrongState { instance: InstanceId, state: InstanceState, hook: HookKind },
    #[error("instance {instance} is running job {running}, not {reported}")]
    JobMismatch { instance: InstanceId, running: Box<JobRef>, reported: Box<JobRef> },
    #[error("instance {instance}'s runner is running a job at GitHub; its exit is taken from GitHub's next listing")]
    RunnerBusyAtGithub { instance: InstanceId },
    #[error("GitHub did not issue a registration")]
    RegistrationFailed(#[source] GithubError),
    #[error("the busy record could not be updated")]
    BusyRecordFailed(#[source] BusyRecordError),
    #[error("the scale set could not be read")]
    CloudUnavailable(#[source] ScaleSetError),
}

impl HookError {
    /// A refusal of the transition table, for the instance `instance`.
    fn refused(instance: InstanceId, refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotReadyYet { state } => Self::NotReadyYet { instance, state },
            Refusal::AlreadyRegistered => Self::AlreadyRegistered { instance },
            Refusal::WrongState { state, hook } => Self::WrongState { instance, state, hook },
            Refusal::JobMismatch { running, reported } => Self::JobMismatch { instance, running, reported },
            Refusal::RunnerBusyAtGithub => Self::RunnerBusyAtGithub { instance },
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Recovering => "recovering",
            Self::UnknownInstance { .. } => "unknown_instance",
            Self::AlreadyRegistered { .. } => "already_registered",
            Self::NotReadyYet { .. } => "not_ready_yet",
            Self::WrongState { .. } => "wrong_state",
            Self::JobMismatch { .. } => "job_mismatch",
            Self::RunnerBusyAtGithub { .. } => "runner_busy_at_github",
            Self::RegistrationFailed(_) => "registration_failed",
            Self::BusyRecordFailed(_) => "busy_record_failed",
            Self::CloudUnavailable(_) => "cloud_unavailable",
        }
    }

    /// The HTTP status this refusal is answered with: decided here, once, for the API
    /// and for the simulated VMs, which retry exactly as `vm/lib.sh` does (on 403,
    /// 429 and 5xx) and give up on the rest.
    pub fn status(&self) -> u16 {
        match self {
            // Try again soon: the operator or a dependency is not ready.
            Self::Recovering | Self::NotReadyYet { .. } | Self::BusyRecordFailed(_) | Self::CloudUnavailable(_) => 503,
            // Not (yet) listed: a VM that boots before the scale set lists it retries.
            Self::UnknownInstance { .. } => 403,
            // The request contradicts the instance's state: asking again cannot help.
            // (runner-exited while GitHub shows the job running: the VM repeats the report
            // every minute anyway, and GitHub's next listing settles the record.)
            Self::AlreadyRegistered { .. }
            | Self::WrongState { .. }
            | Self::JobMismatch { .. }
            | Self::RunnerBusyAtGithub { .. } => 409,
            Self::RegistrationFailed(_) => 502,
        }
    }
}

/// How long a VM told to park waits before it asks again, should its deallocation not
/// have come (the operator deallocates it in the pass right after the answer).
pub const PARK_ASK_AGAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What a booting runner gets.
#[derive(Clone, PartialEq, Eq)]
pub enum Registration {
    /// No runner on this boot: the pool keeps the VM in reserve and deallocates it. Ask
    /// again after `retry_after` until then (the pool may need it after all).
    Park { retry_after: std::time::Duration },
    /// Start with `run.sh --jitconfig <encoded>`.
    Jit { runner_name: String, encoded_jit_config: String },
    /// Run `config.sh --url <url> --token <token> <args...>`, then `run.sh`.
    Token { runner_name: String, url: String, token: String, expires_at: OffsetDateTime, args: Vec<String> },
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Park { retry_after } => write!(f, "Park({retry_after:?})"),
            Self::Jit { runner_name, .. } => write!(f, "Jit({runner_name})"),
            Self::Token { runner_name, .. } => write!(f, "Token({runner_name})"),
        }
    }
}

/// The instance's state after a hook, and whether the hook changed anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOutcome {
    pub instance: InstanceId,
    pub state: InstanceState,
    /// False when the hook repeated one already applied.
    pub changed: bool,
}

impl Controller {
    pub(super) fn ensure_recovered(&self) -> Result<(), HookError> {
        if self.is_recovered() {
            Ok(())
        } else {
            Err(HookError::Recovering)
        }
    }

    /// Common start of every hook: recovered, caller resolved to an instance (recorded
    /// on the span), the instance's turn taken, and its record read under that turn.
    async fn begin(&self, ip: IpAddr) -> Result<(OwnedMutexGuard<()>, InstanceRecord), HookError> {
        self.ensure_recovered()?;
        let found = self.resolve(ip).await?;
        tracing::Span::current().record("instance", found.id().as_str());
        let turn = self.turn(found.id()).await;
        let record = self.state().fleet.get(found.id()).cloned().ok_or(HookError::UnknownInstance { ip })?;
        Ok((turn, record))
    }

    /// The record's transition for `hook`, or the refusal as the API's error.
    fn decide(&self, record: &InstanceRecord, hook: &Hook) -> Result<Transition, HookError> {
        transition(record, hook, self.settings().jit).map_err(|r| HookError::refused(record.id().clone(), r))
    }

    fn outcome(&self, id: &InstanceId, changed: bool) -> HookOutcome {
        let state = self.state().fleet.get(id).map_or(InstanceState::Deleting, |r| r.state());
        if changed {
            self.stop_boot_clocks();
            self.nudge();
        }
        HookOutcome { instance: id.clone(), state, changed }
    }

    fn count(&self, hook: HookKind, result: &Result<HookOutcome, HookError>) {
        let outcome = match result {
            Ok(o) if o.changed => "applied",
            Ok(_) => "repeated",
            Err(e) => e.kind(),
        };
        self.metrics().hook(hook, outcome);
    }

    /// Hands the calling VM its runner registration, once per boot.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty))]
    pub async fn register(&self, ip: IpAddr) -> Result<Registration, HookError> {
        let result = self.register_inner(ip).await;
        self.metrics().hook(
            HookKind::Registration,
            match &result {
                Ok(_) => "applied",
                Err(e) => e.kind(),
            },
        );
        result
    }

    async fn register_inner(&self, ip: IpAddr) -> Result<Registration, HookError> {
        let (_turn, record) = self.begin(ip).await?;
        let Transition::Register { withdraw } = self.decide(&record, &Hook::Registration)? else {
            unreachable!("a registration is issued or refused, never repeated");
        };
        if let Some(unused) = withdraw {
            self.withdraw_unused_runner(&record, &unused).await?;
        }
        if self.should_park(record.id()) {
            let now = Instant::now();
            if let Some(r) = self.state().fleet.get_mut(record.id()) {
                r.answer_park(now);
            }
            self.state().boot_clock.parked(record.id());
            info!("told to park: the pool keeps this VM in reserve");
            self.nudge();
            return Ok(Registration::Park { retry_after: PARK_ASK_AGAIN });
        }

        let settings = self.settings();
        let runner_name = crate::fleet::new_runner_name(record.name());
        let github = &self.ports().github;
        let (registration, runner_id) = if settings.jit {
            let request = JitRequest {
                name: runner_name.clone(),
                labels: settings.labels.clone(),
                runner_group: settings.runner_group.clone(),
            };
            let jit = github.jit_config(&request).await.map_err(|e| self.github_failed(e))?;
            (
                Registration::Jit { runner_name: runner_name.clone(), encoded_jit_config: jit.encoded },
                Some(jit.runner_id),
            )
        } else {
            let token = github.registration_token().await.map_err(|e| self.github_failed(e))?;
            let registration = Registration::Token {
                runner_name: runner_name.clone(),
                url: github.registration_url(),
                token: token.token,
                expires_at: token.expires_at,
                args: settings.config_sh_args(&runner_name),
            };
            (registration, None)
        };

        if let Some(r) = self.state().fleet.get_mut(record.id()) {
            r.issue_registration(RunnerRef { name: runner_name.clone(), id: runner_id }, Instant::now());
        }
        info!(runner = %runner_name, jit = settings.jit, "registration issued");
        self.nudge();
        Ok(registration)
    }

    /// The policy's answer for the VM `id` asking now, on the pool as the operator sees it.
    fn should_park(&self, id: &InstanceId) -> bool {
        let spec = self.effective_spec();
        if spec.parked == 0 {
            return false;
        }
        let observed = self.state().observe_pool(Instant::now());
        crate::policy::registration_answer(&spec, &observed, id) == crate::policy::RegistrationAnswer::Park
    }

    /// A second registration request for this boot whose JIT runner never came online
    /// as far as the record knows (its answer was lost, e.g. the operator restarted
    /// before replying). GitHub decides: a runner that is online or busy there means
    /// 409 — a job on that VM must not obtain another registration; otherwise the runner
    /// is removed, which also voids its config, and a new registration may be issued.
    async fn withdraw_unused_runner(&self, record: &InstanceRecord, unused: &WithdrawRunner) -> Result<(), HookError> {
        let already = || HookError::AlreadyRegistered { instance: record.id().clone() };
        let github = &self.ports().github;
        match github.get_runner(unused.runner_id).await.map_err(|e| self.github_failed(e))? {
            Some(runner) if runner.busy || runner.status == RunnerStatus::Online => {
                debug!(runner = %unused.name, "second registration request for this boot refused: its runner is online");
                return Err(already());
            }
            Some(_) => match github.deregister_runner(unused.runner_id).await.map_err(|e| self.github_failed(e))? {
                DeregisterOutcome::Removed | DeregisterOutcome::AlreadyGone => {}
                DeregisterOutcome::Busy => return Err(already()),
            },
            None => {}
        }
        if let Some(r) = self.state().fleet.get_mut(record.id()) {
            r.withdraw_registration(Instant::now());
        }
        warn!(runner = %unused.name, "registration asked again before its runner came online; the unused runner was removed, issuing a new one");
        Ok(())
    }

    fn github_failed(&self, err: GithubError) -> HookError {
        self.metrics().api_error(Api::Github, err.kind());
        HookError::RegistrationFailed(err)
    }

    fn busy_record_failed(&self, err: BusyRecordError) -> HookError {
        self.metrics().api_error(Api::BusyRecord, "write");
        HookError::BusyRecordFailed(err)
    }

    /// The job-started hook: the busy marker is stored before this returns.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty, job = %job))]
    pub async fn job_started(&self, ip: IpAddr, job: JobRef) -> Result<HookOutcome, HookError> {
        let result = self.apply_hook(ip, Hook::JobStarted(job)).await;
        self.count(HookKind::JobStarted, &result);
        result
    }

    /// The job-completed hook. Decides nothing about the VM: that waits for runner-exited.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty, job = %job))]
    pub async fn job_completed(&self, ip: IpAddr, job: JobRef) -> Result<HookOutcome, HookError> {
        let result = self.apply_hook(ip, Hook::JobCompleted(job)).await;
        self.count(HookKind::JobCompleted, &result);
        result
    }

    /// The runner process on the VM has ended: from now on the VM may be recycled.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty))]
    pub async fn runner_exited(&self, ip: IpAddr) -> Result<HookOutcome, HookError> {
        let result = self.apply_hook(ip, Hook::RunnerExited).await;
        self.count(HookKind::RunnerExited, &result);
        result
    }

    /// Carries out a job or runner hook's transition in the instance's turn.
    async fn apply_hook(&self, ip: IpAddr, hook: Hook) -> Result<HookOutcome, HookError> {
        let (_turn, record) = self.begin(ip).await?;
        self.execute(&record, hook).await
    }

    /// Carries out `hook`'s transition on `record`; the caller holds the instance's turn.
    pub(super) async fn execute(&self, record: &InstanceRecord, hook: Hook) -> Result<HookOutcome, HookError> {
        let id = record.id().clone();
        match self.decide(record, &hook)? {
            Transition::Repeat => {
                debug!(hook = %hook.kind(), "hook repeated; nothing to change");
                Ok(self.outcome(&id, false))
            }
            Transition::StartJob { job, replacing, first_start } => {
                self.start_job(record, job, replacing, first_start).await?;
                Ok(self.outcome(&id, true))
            }
            Transition::Finish { remove, next, note } => {
                if let Some(marker) = &remove {
                    self.ports().busy.remove(marker).await.map_err(|e| self.busy_record_failed(e))?;
                }
                if let Some(r) = self.state().fleet.get_mut(&id) {
                    r.enter(next, Instant::now());
                }
                match note {
                    FinishNote::JobCompleted => {
                        info!("job completed; busy marker removed, waiting for the runner to exit")
                    }
                    FinishNote::CompletedWithoutStart => warn!("job completed without a recorded start"),
                    FinishNote::RunnerExited => info!("runner exited; instance may be recycled"),
                    FinishNote::ExitedWhileBusy(job) => {
                        warn!(job = %job, "runner exited without job-completed; busy marker removed");
                    }
                }
                Ok(self.outcome(&id, true))
            }
            Transition::Register { .. } => unreachable!("only a registration request registers"),
        }
    }

    /// Stores the busy marker, then records the job; then removes the stand-in's marker
    /// it replaces (left for a later pass if that fails: recovery keeps the newest
    /// marker per instance).
    async fn start_job(
        &self,
        record: &InstanceRecord,
        job: JobRef,
        replacing: Option<crate::ports::MarkerHandle>,
        first_start: bool,
    ) -> Result<(), HookError> {
        let marker =
            BusyMarker::new(record.id().clone(), record.name().to_owned(), job.clone(), OffsetDateTime::now_utc());
        let handle = self.ports().busy.put(&marker).await.map_err(|e| self.busy_record_failed(e))?;
        let now = Instant::now();
        if let Some(r) = self.state().fleet.get_mut(record.id()) {
            if let (true, Some(at)) = (first_start, r.registered_at()) {
                self.metrics().job_start_latency.observe(now.duration_since(at).as_secs_f64());
            }
            r.start_job(job, handle, now);
        }
        if let Some(old) = &replacing {
            if let Err(err) = self.ports().busy.remove(old).await {
                self.metrics().api_error(Api::BusyRecord, "write");
                warn!(error = %err, "removing the stand-in marker failed; the next pass retries");
                let active =
                    ActiveJob { job: truth::unknown_job(&self.settings().scope_name, ""), marker: old.clone() };
                self.keep_orphan_marker(OrphanMarker { instance: record.id().clone(), active });
            }
        }
        info!(replaced_stand_in = replacing.is_some(), "job started; busy marker stored");
        Ok(())
    }
}
