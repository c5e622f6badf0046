//! The runner scale set listener: the operator's demand signal. One supervised task
//! finds or creates the scale set, keeps one message session open, long-polls it, and
//! hands each message to the controller (statistics → demand; job messages → records)
//! before acknowledging it. It needs no inbound connection: every call is outbound.
//!
//! Failures are waited out (`operator_core::demand::retry_delay`): a session conflict
//! left by a crashed predecessor for up to 10 min between attempts, the rest for up to
//! 2 min; the controller's listener status (and so `/readyz`) says why meanwhile. A
//! scale set GitHub deleted is created again and read from its first message. On
//! shutdown the session is closed, so the next start meets no conflict.

mod runners;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use operator_sim::SplitMix;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

pub use self::runners::ScaleSetRunners;
use crate::{
    controller::{Controller, ListenerStatus},
    demand::{retry_delay, to_acquire},
    labels::Api,
    ports::{ActionsError, Github, Message, Ports, ScaleSetApi, ScaleSetInfo, ScaleSetSpec},
    report::Chain,
};

/// How long closing the session at shutdown may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// After this long without a message, the statistics are read again (a session refresh)
/// at the next empty poll: a lagging last message must not hold the pool's demand for
/// ever. Twelve calls an hour at most, and none while messages flow.
pub const STATISTICS_REFRESH: Duration = Duration::from_secs(5 * 60);

/// What the listener needs from the configuration.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// The scale set's name: what workflows put in `runs-on`.
    pub scale_set_name: String,
    /// Runner group name; GitHub's default group when `None`.
    pub runner_group: Option<String>,
    /// Labels beyond the name, set when the scale set is created.
    pub extra_labels: Vec<String>,
    /// The session's owner as GitHub shows it (the host name).
    pub owner: String,
    /// Seeds the backoff jitter; the simulator passes its run's seed.
    pub jitter_seed: u64,
}

impl ListenerSettings {
    /// The scale set `name` in GitHub's default runner group, with `extra_labels`, owned
    /// by `owner`: the simulated world's settings (demo, simulate, tests).
    pub fn new(name: impl Into<String>, extra_labels: Vec<String>, owner: impl Into<String>, jitter_seed: u64) -> Self {
        Self { scale_set_name: name.into(), runner_group: None, extra_labels, owner: owner.into(), jitter_seed }
    }

    /// From the configuration: the scale set named `github.scale_set_name` (default: the VM
    /// scale set's name), owned by this host.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let github = &config.github;
        Self {
            scale_set_name: github.scale_set_name.clone().unwrap_or_else(|| config.azure.vmss_name().to_owned()),
            runner_group: github.runner_group.clone(),
            extra_labels: github.labels.clone(),
            owner: host_name(),
            jitter_seed: process_seed(),
        }
    }
}

/// A seed that differs between processes and restarts, so operators restarted together
/// do not retry in step.
fn process_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (u64::from(std::process::id()) << 32) ^ u64::from(nanos)
}

/// The session owner GitHub shows: the host's name (as actions-runner-controller and
/// GitHub's own client use), `vmss-github-runner` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "vmss-github-runner".to_owned())
}

/// The scale set's id once the listener has found or created it; the registration
/// endpoint ([`ScaleSetRunners`]) reads it to ask for JIT configs. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ScaleSetHandle(Arc<AtomicU64>);

impl ScaleSetHandle {
    /// The id, or `None` while the listener has none (starting, or the set was deleted).
    pub fn id(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    fn set(&self, id: Option<u64>) {
        self.0.store(id.unwrap_or(0), Ordering::Release);
    }
}

/// The listener's parts, held by the process that runs it.
#[derive(Clone)]
pub struct Listener {
    pub api: Arc<dyn ScaleSetApi>,
    pub settings: ListenerSettings,
    pub handle: ScaleSetHandle,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("settings", &self.settings).field("scale_set_id", &self.handle.id()).finish()
    }
}

/// With `github.demand = "scale_set"`: `ports` with its GitHub port routed through the scale
/// set ([`ScaleSetRunners`]), and the listener to run next to the loop. Otherwise `ports`
/// unchanged and no listener.
pub fn wire(config: &crate::config::Config, mut ports: Ports, api: Arc<dyn ScaleSetApi>) -> (Ports, Option<Listener>) {
    if config.github.demand != crate::config::DemandSource::ScaleSet {
        return (ports, None);
    }
    let (github, listener) = Listener::attach(ports.github.clone(), api, ListenerSettings::from_config(config));
    ports.github = github;
    (ports, Some(listener))
}

impl Listener {
    /// A listener on `api`, and the [`Github`] port that goes with it: `rest` with JIT
    /// configs and runner removal routed through the scale set the listener finds. The
    /// two share one [`ScaleSetHandle`].
    pub fn attach(
        rest: Arc<dyn Github>,
        api: Arc<dyn ScaleSetApi>,
        settings: ListenerSettings,
    ) -> (Arc<dyn Github>, Self) {
        let handle = ScaleSetHandle::default();
        let github: Arc<dyn Github> = Arc::new(ScaleSetRunners::new(rest, api.clone(), handle.clone()));
        (github, Self { api, settings, handle })
    }
}

/// Why a session ended; the outer loop decides what comes next.
enum SessionEnd {
    Shutdown,
    /// Open a new session (evicted, or polling kept failing).
    Reopen,
    /// GitHub deleted the scale set: create it again.
    ScaleSetGone,
}

struct Run<'a> {
    controller: &'a Controller,
    listener: &'a Listener,
    shutdown: &'a CancellationToken,
    jitter: SplitMix,
    failures: u32,
}

impl Listener {
    /// Listen until `shutdown`; returns once the session is closed. Every failure is
    /// retried, so this returns only on shutdown: a return at any other time (or a
    /// panic) is the supervisor's cue to stop the process.
    #[instrument(skip_all, fields(pool = %controller.settings().pool, scale_set = %self.settings.scale_set_name))]
    pub async fn run(&self, controller: &Controller, shutdown: &CancellationToken) {
        let mut run =
            Run { controller, listener: self, shutdown, jitter: SplitMix(self.settings.jitter_seed), failures: 0 };
        controller.set_listener_status(ListenerStatus::Starting);
        let mut scale_set: Option<ScaleSetInfo> = None;
        // Message ids restart with a new scale set, so this is reset with it.
        let mut last_message_id = 0;
        while !shutdown.is_cancelled() {
            let id = match &scale_set {
                Some(set) => set.id,
                None => match run.ensure_scale_set().await {
                    Ok(set) => {
                        let id = set.id;
                        self.handle.set(Some(id));
                        scale_set = Some(set);
                        last_message_id = 0;
                        id
                    }
                    Err(err) => {
                        run.wait_after(&err, "finding or creating the scale set failed").await;
                        continue;
                    }
                },
            };
            match self.api.open_session(id, &self.settings.owner).await {
                Ok(statistics) => {
                    run.failures = 0;
                    controller.apply_statistics(statistics);
                    controller.set_listener_status(ListenerStatus::Listening);
                    info!(scale_set_id = id, assigned = statistics.assigned_jobs, "message session open");
                }
                Err(ActionsError::ScaleSetNotFound) => {
                    warn!(scale_set_id = id, "GitHub deleted the scale set; creating it again");
                    scale_set = None;
                    self.handle.set(None);
                    continue;
                }
                Err(err) => {
                    run.wait_after(&err, "opening the message session failed").await;
                    continue;
                }
            }
            match run.poll(id, &mut last_message_id).await {
                SessionEnd::Shutdown => break,
                SessionEnd::Reopen => {}
                SessionEnd::ScaleSetGone => {
                    warn!(scale_set_id = id, "GitHub deleted the scale set; creating it again");
                    scale_set = None;
                    self.handle.set(None);
                }
            }
        }
        // Close whatever session this client holds, so a restart meets no conflict.
        match tokio::time::timeout(CLOSE_TIMEOUT, self.api.close_session()).await {
            Ok(Ok(())) => info!("message session closed"),
            Ok(Err(err)) => warn!(error = %Chain(&err), "closing the message session failed; GitHub expires it"),
            Err(_) => warn!("closing the message session timed out; GitHub expires it"),
        }
        controller.set_listener_status(ListenerStatus::Stopped);
    }
}

impl Run<'_> {
    /// The scale set of the configured name in the configured group, created if absent.
    async fn ensure_scale_set(&self) -> Result<ScaleSetInfo, ActionsError> {
        let settings = &self.listener.settings;
        let api = &self.listener.api;
        let group = api.runner_group_id(settings.runner_group.as_deref()).await?;
        if let Some(found) = api.find_scale_set(group, &settings.scale_set_name).await? {
            info!(scale_set_id = found.id, "adopted the runner scale set");
            return Ok(found);
        }
        let spec = ScaleSetSpec {
            name: settings.scale_set_name.clone(),
            runner_group_id: group,
            extra_labels: settings.extra_labels.clone(),
        };
        let created = api.create_scale_set(&spec).await?;
        info!(scale_set_id = created.id, runner_group_id = group, "created the runner scale set");
        Ok(created)
    }

    /// Poll the open session until it ends.
    async fn poll(&mut self, scale_set_id: u64, last_message_id: &mut i64) -> SessionEnd {
        let api = self.listener.api.clone();
        let max = self.controller.settings().spec.max;
        // The session just opened carried fresh statistics.
        let mut statistics_at = tokio::time::Instant::now();
        loop {
            let polled = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return SessionEnd::Shutdown,
                polled = api.next_message(*last_message_id, max) => polled,
            };
            if polled.is_ok() && self.failures > 0 {
                self.failures = 0;
                self.controller.set_listener_status(ListenerStatus::Listening);
            }
            match polled {
                Ok(None) if statistics_at.elapsed() >= STATISTICS_REFRESH => match api.refresh_session().await {
                    Ok(statistics) => {
                        statistics_at = tokio::time::Instant::now();
                        self.controller.apply_statistics(statistics);
                    }
                    Err(ActionsError::ScaleSetNotFound) => return SessionEnd::ScaleSetGone,
                    Err(ActionsError::SessionGone) => return SessionEnd::Reopen,
                    Err(err) => {
                        self.api_error(&err);
                        debug!(error = %Chain(&err), "refreshing the session's statistics failed; trying at the next quiet poll");
                    }
                },
                Ok(None) => {}
                Ok(Some(message)) if message.id <= *last_message_id => {
                    // Redelivered after a lost acknowledgement: already applied.
                    debug!(message_id = message.id, "message seen before; acknowledging again");
                    self.acknowledge(message.id).await;
                }
                Ok(Some(message)) => match self.apply(scale_set_id, &message).await {
                    Ok(()) => {
                        *last_message_id = message.id;
                        statistics_at = tokio::time::Instant::now();
                        self.acknowledge(message.id).await;
                    }
                    Err(reason) => {
                        // Not acknowledged: GitHub delivers it again on the next poll.
                        let err = ActionsError::InvalidAnswer(reason);
                        if !self.wait_after(&err, "applying a message failed; it stays queued").await {
                            return SessionEnd::Shutdown;
                        }
                    }
                },
                Err(ActionsError::ScaleSetNotFound) => return SessionEnd::ScaleSetGone,
                Err(ActionsError::SessionGone) => {
                    info!("the message session is gone; opening a new one");
                    return SessionEnd::Reopen;
                }
                Err(err) => {
                    if !self.wait_after(&err, "polling the message queue failed").await {
                        return SessionEnd::Shutdown;
                    }
                    if self.failures >= 5 {
                        return SessionEnd::Reopen;
                    }
                }
            }
        }
    }

    /// A message's effect on the operator: statistics, acquisition of offered jobs
    /// (GHES), then each job message on its instance's record.
    async fn apply(&self, scale_set_id: u64, message: &Message) -> Result<(), String> {
        let metrics = self.controller.metrics();
        self.controller.apply_statistics(message.statistics);
        let jobs = match &message.jobs {
            Ok(jobs) => jobs,
            Err(reason) => {
                // Logged once: acknowledged below, so it is never delivered again.
                warn!(message_id = message.id, reason = %reason, "a scale-set message could not be decoded; its statistics applied, its jobs skipped");
                metrics.scale_set_messages.get_or_create(&outcome("message", "undecodable")).inc();
                return Ok(());
            }
        };
        let offered = to_acquire(jobs);
        if !offered.is_empty() {
            match self.listener.api.acquire_jobs(scale_set_id, &offered).await {
                Ok(acquired) => debug!(offered = offered.len(), acquired = acquired.len(), "acquired jobs"),
                Err(err) => {
                    self.api_error(&err);
                    return Err(format!("acquiring {} jobs failed: {}", offered.len(), Chain(&err)));
                }
            }
        }
        for job in jobs {
            self.controller.apply_job_message(job).await.map_err(|e| Chain(&e).to_string())?;
        }
        metrics.scale_set_messages.get_or_create(&outcome("message", "applied")).inc();
        Ok(())
    }

    async fn acknowledge(&self, message_id: i64) {
        // A lost acknowledgement only means the message comes again (and is skipped).
        if let Err(err) = self.listener.api.acknowledge(message_id).await {
            self.api_error(&err);
            warn!(message_id, error = %Chain(&err), "acknowledging a message failed; it will be skipped when it comes again");
        }
    }

    fn api_error(&self, err: &ActionsError) {
        self.controller.metrics().api_error(Api::ScaleSetApi, err.kind());
    }

    /// Count the failure, say why in the listener status, and wait before the next
    /// attempt. `false` when shutdown came first.
    async fn wait_after(&mut self, err: &ActionsError, what: &str) -> bool {
        self.failures += 1;
        self.api_error(err);
        let jitter = (self.jitter.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let delay = retry_delay(err, self.failures, jitter);
        let reason = format!("{what}: {}; next attempt in {}s", Chain(err), delay.as_secs());
        if matches!(err, ActionsError::SessionConflict) {
            warn!(
                failures = self.failures,
                ?delay,
                "another message session is open (a previous operator's, until GitHub expires it); waiting"
            );
        } else {
            warn!(failures = self.failures, ?delay, error = %Chain(err), "{what}");
        }
        self.controller.set_listener_status(ListenerStatus::Waiting { reason });
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

fn outcome(kind: &'static str, outcome: &'static str) -> crate::metrics::OutcomeLabels {
    crate::metrics::OutcomeLabels { kind, outcome }
}
