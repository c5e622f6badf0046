//! What the runner VMs ask for: a registration, and the job and runner events.
//! The caller is always identified by its address, never by anything in a body.

use std::net::IpAddr;

use time::OffsetDateTime;
use tokio::{sync::OwnedMutexGuard, time::Instant};
use tracing::{info, instrument, warn};

use super::Controller;
use crate::truth;
use crate::{
    fleet::{ActiveJob, InstanceRecord, OrphanMarker, Phase, RunnerRef},
    model::{InstanceId, InstanceState, JobRef},
    ports::{BusyMarker, BusyRecordError, DeregisterOutcome, GithubError, JitRequest, RunnerStatus, ScaleSetError},
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
    WrongState { instance: InstanceId, state: InstanceState, hook: &'static str },
    #[error("instance {instance} is running job {running}, not {reported}")]
    JobMismatch { instance: InstanceId, running: Box<JobRef>, reported: Box<JobRef> },
    #[error("GitHub did not issue a registration")]
    RegistrationFailed(#[source] GithubError),
    #[error("the busy record could not be updated")]
    BusyRecordFailed(#[source] BusyRecordError),
    #[error("the scale set could not be read")]
    CloudUnavailable(#[source] ScaleSetError),
}

impl HookError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Recovering => "recovering",
            Self::UnknownInstance { .. } => "unknown_instance",
            Self::AlreadyRegistered { .. } => "already_registered",
            Self::NotReadyYet { .. } => "not_ready_yet",
            Self::WrongState { .. } => "wrong_state",
            Self::JobMismatch { .. } => "job_mismatch",
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
            Self::AlreadyRegistered { .. } | Self::WrongState { .. } | Self::JobMismatch { .. } => 409,
            Self::RegistrationFailed(_) => 502,
        }
    }
}

/// What a booting runner gets.
#[derive(Clone, PartialEq, Eq)]
pub enum Registration {
    /// Start with `run.sh --jitconfig <encoded>`.
    Jit { runner_name: String, encoded_jit_config: String },
    /// Run `config.sh --url <url> --token <token> <args...>`, then `run.sh`.
    Token { runner_name: String, url: String, token: String, expires_at: OffsetDateTime, args: Vec<String> },
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
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
    fn ensure_recovered(&self) -> Result<(), HookError> {
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
        tracing::Span::current().record("instance", found.id.as_str());
        let turn = self.lock_instance(&found.id).await;
        let record = self.fleet().get(&found.id).cloned().ok_or(HookError::UnknownInstance { ip })?;
        Ok((turn, record))
    }

    fn outcome(&self, id: &InstanceId, changed: bool) -> HookOutcome {
        let state = self.fleet().get(id).map_or(InstanceState::Deleting, |r| r.state());
        if changed {
            self.nudge();
        }
        HookOutcome { instance: id.clone(), state, changed }
    }

    fn count(&self, hook: &'static str, result: &Result<HookOutcome, HookError>) {
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
            "registration",
            match &result {
                Ok(_) => "applied",
                Err(e) => e.kind(),
            },
        );
        result
    }

    async fn register_inner(&self, ip: IpAddr) -> Result<Registration, HookError> {
        let (_turn, record) = self.begin(ip).await?;
        let state = record.state();
        let registered = record.phase != Phase::Unregistered || record.runner.is_some();
        match state {
            // The new boot can be up before Azure reports the reimage finished; the boot
            // script retries on 503 until the operator has seen the operation complete.
            InstanceState::Reimaging => return Err(HookError::NotReadyYet { instance: record.id, state }),
            _ if registered && self.unused_jit_runner_withdrawn(&record).await? => {}
            _ if registered => {
                warn!(runner = ?record.runner.as_ref().map(|r| &r.name), "second registration request for this boot refused");
                return Err(HookError::AlreadyRegistered { instance: record.id });
            }
            InstanceState::AwaitingRegistration | InstanceState::Provisioning => {}
            _ => return Err(HookError::WrongState { instance: record.id, state, hook: "registration" }),
        }

        let settings = self.settings();
        let runner_name = crate::fleet::new_runner_name(&record.name);
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
            let mut args = vec![
                "--name".to_owned(),
                runner_name.clone(),
                "--labels".to_owned(),
                settings.labels.join(","),
                "--ephemeral".to_owned(),
                "--unattended".to_owned(),
                "--disableupdate".to_owned(),
            ];
            if let (true, Some(group)) = (settings.organization_scope, &settings.runner_group) {
                args.extend(["--runnergroup".to_owned(), group.clone()]);
            }
            let url = github.registration_url();
            (
                Registration::Token {
                    runner_name: runner_name.clone(),
                    url,
                    token: token.token,
                    expires_at: token.expires_at,
                    args,
                },
                None,
            )
        };

        let now = Instant::now();
        if let Some(r) = self.fleet().get_mut(&record.id) {
            r.runner = Some(RunnerRef { name: runner_name.clone(), id: runner_id });
            r.registered_at = Some(now);
            // Still awaiting registration until GitHub shows the runner online: the
            // registration timeout keeps counting from the boot.
            r.phase = Phase::Registered;
            r.touched = now;
        }
        info!(runner = %runner_name, jit = settings.jit, "registration issued");
        self.nudge();
        Ok(registration)
    }

    /// A second registration request for this boot. JIT mode: if the runner of the
    /// first one never came online (its answer was lost, e.g. the operator restarted
    /// before replying), that runner is removed at GitHub — which also voids the config
    /// — and a new registration may be issued. A VM whose runner came online gets 409:
    /// a job there must not obtain another registration. Token mode always refuses: the
    /// first token may be in use by a `config.sh` right now.
    async fn unused_jit_runner_withdrawn(&self, record: &InstanceRecord) -> Result<bool, HookError> {
        let (true, Phase::Registered, Some(RunnerRef { id: Some(id), name })) =
            (self.settings().jit, &record.phase, &record.runner)
        else {
            return Ok(false);
        };
        let github = &self.ports().github;
        match github.get_runner(*id).await.map_err(|e| self.github_failed(e))? {
            Some(runner) if runner.busy || runner.status == RunnerStatus::Online => return Ok(false),
            Some(_) => match github.deregister_runner(*id).await.map_err(|e| self.github_failed(e))? {
                DeregisterOutcome::Removed | DeregisterOutcome::AlreadyGone => {}
                DeregisterOutcome::Busy => return Ok(false),
            },
            None => {}
        }
        if let Some(r) = self.fleet().get_mut(&record.id) {
            r.runner = None;
            r.phase = Phase::Unregistered;
            r.touched = Instant::now();
        }
        warn!(runner = %name, "registration asked again before its runner came online; the unused runner was removed, issuing a new one");
        Ok(true)
    }

    fn github_failed(&self, err: GithubError) -> HookError {
        self.metrics().api_error("github", err.kind());
        HookError::RegistrationFailed(err)
    }

    fn busy_record_failed(&self, err: BusyRecordError) -> HookError {
        self.metrics().api_error("busy_record", "write");
        HookError::BusyRecordFailed(err)
    }

    /// The job-started hook: the busy marker is stored before this returns.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty, job = %job))]
    pub async fn job_started(&self, ip: IpAddr, job: JobRef) -> Result<HookOutcome, HookError> {
        let result = self.job_started_inner(ip, job).await;
        self.count("job_started", &result);
        result
    }

    async fn job_started_inner(&self, ip: IpAddr, job: JobRef) -> Result<HookOutcome, HookError> {
        let (_turn, record) = self.begin(ip).await?;
        if record.operation.is_some() || record.state().is_in_operation() {
            let state = record.state();
            return Err(HookError::WrongState { instance: record.id, state, hook: "job-started" });
        }
        let mut stand_in = None;
        match &record.phase {
            Phase::Busy(active) if active.job == job => return Ok(self.outcome(&record.id, false)),
            Phase::Completed(done) if *done == job => return Ok(self.outcome(&record.id, false)),
            // A pass stored a stand-in for this job when its hook seemed lost; the real
            // job replaces it.
            Phase::Busy(active) if truth::is_unknown_job(&active.job) => stand_in = Some(active.marker.clone()),
            Phase::Busy(active) => {
                return Err(HookError::JobMismatch {
                    instance: record.id,
                    running: Box::new(active.job.clone()),
                    reported: Box::new(job),
                });
            }
            Phase::Completed(_) | Phase::Exited => {
                return Err(HookError::WrongState {
                    instance: record.id.clone(),
                    state: record.state(),
                    hook: "job-started",
                });
            }
            Phase::Unregistered | Phase::Registered | Phase::Online => {}
        }

        let marker = BusyMarker::new(record.id.clone(), record.name.clone(), job.clone(), OffsetDateTime::now_utc());
        let handle = self.ports().busy.put(&marker).await.map_err(|e| self.busy_record_failed(e))?;
        if let Some(old) = &stand_in {
            // Left behind only on failure; recovery keeps the newest marker per instance.
            if let Err(err) = self.ports().busy.remove(old).await {
                self.metrics().api_error("busy_record", "write");
                warn!(error = %err, "removing the stand-in marker failed; the next pass retries");
                let active =
                    ActiveJob { job: truth::unknown_job(&self.settings().scope_name, ""), marker: old.clone() };
                self.keep_orphan_marker(OrphanMarker { instance: record.id.clone(), active });
            }
        }
        let now = Instant::now();
        if let Some(r) = self.fleet().get_mut(&record.id) {
            if let (Some(at), None) = (r.registered_at, &stand_in) {
                self.metrics().job_start_latency.observe(now.duration_since(at).as_secs_f64());
            }
            r.set_phase(Phase::Busy(ActiveJob { job, marker: handle }), now);
        }
        info!(replaced_stand_in = stand_in.is_some(), "job started; busy marker stored");
        Ok(self.outcome(&record.id, true))
    }

    /// The job-completed hook. Decides nothing about the VM: that waits for runner-exited.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty, job = %job))]
    pub async fn job_completed(&self, ip: IpAddr, job: JobRef) -> Result<HookOutcome, HookError> {
        let result = self.job_completed_inner(ip, job).await;
        self.count("job_completed", &result);
        result
    }

    async fn job_completed_inner(&self, ip: IpAddr, job: JobRef) -> Result<HookOutcome, HookError> {
        let (_turn, record) = self.begin(ip).await?;
        match &record.phase {
            // A stand-in job (its job-started was lost) matches any completed job.
            Phase::Busy(active) if active.job != job && !truth::is_unknown_job(&active.job) => {
                Err(HookError::JobMismatch {
                    instance: record.id,
                    running: Box::new(active.job.clone()),
                    reported: Box::new(job),
                })
            }
            Phase::Completed(done) if *done != job => Err(HookError::JobMismatch {
                instance: record.id,
                running: Box::new(done.clone()),
                reported: Box::new(job),
            }),
            Phase::Completed(_) | Phase::Exited => Ok(self.outcome(&record.id, false)),
            Phase::Busy(active) => {
                self.ports().busy.remove(&active.marker).await.map_err(|e| self.busy_record_failed(e))?;
                self.set_phase(&record.id, Phase::Completed(job));
                info!("job completed; busy marker removed, waiting for the runner to exit");
                Ok(self.outcome(&record.id, true))
            }
            Phase::Unregistered | Phase::Registered | Phase::Online => {
                // job-started never arrived; the job ran all the same.
                self.set_phase(&record.id, Phase::Completed(job));
                warn!("job completed without a recorded start");
                Ok(self.outcome(&record.id, true))
            }
        }
    }

    /// The runner process on the VM has ended: from now on the VM may be recycled.
    #[instrument(skip_all, fields(pool = %self.settings().pool, instance = tracing::field::Empty))]
    pub async fn runner_exited(&self, ip: IpAddr) -> Result<HookOutcome, HookError> {
        let result = self.runner_exited_inner(ip).await;
        self.count("runner_exited", &result);
        result
    }

    async fn runner_exited_inner(&self, ip: IpAddr) -> Result<HookOutcome, HookError> {
        let (_turn, record) = self.begin(ip).await?;
        match &record.phase {
            Phase::Exited => Ok(self.outcome(&record.id, false)),
            Phase::Busy(active) => {
                // job-completed was lost; the runner is gone, so is the job.
                self.ports().busy.remove(&active.marker).await.map_err(|e| self.busy_record_failed(e))?;
                self.set_phase(&record.id, Phase::Exited);
                warn!(job = %active.job, "runner exited without job-completed; busy marker removed");
                Ok(self.outcome(&record.id, true))
            }
            _ => {
                self.set_phase(&record.id, Phase::Exited);
                info!("runner exited; instance may be recycled");
                Ok(self.outcome(&record.id, true))
            }
        }
    }

    fn set_phase(&self, id: &InstanceId, phase: Phase) {
        if let Some(r) = self.fleet().get_mut(id) {
            r.set_phase(phase, Instant::now());
        }
    }
}
