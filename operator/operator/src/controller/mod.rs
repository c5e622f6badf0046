//! The controller: the operator's state and everything that changes it. Hooks from
//! the API, start-up recovery and the reconcile pass all go through here; the HTTP
//! layer above only translates.

mod align;
mod audit;
mod boot_clock;
mod demand;
mod hooks;
mod reconcile;
mod recover;
mod targets;
pub use boot_clock::BootPath;
pub use demand::ListenerStatus;
pub use hooks::{HookError, HookOutcome, Registration};
pub use recover::{RecoveryError, RecoveryReport};
pub use targets::{InForce, Sizing, Targeting, WallClock};

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, OnceLock,
    },
    time::Duration,
};

use tokio::{
    sync::{watch, Notify, OwnedMutexGuard},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    budget::{Call, ScaleSetBudget},
    config::{Config, GithubScope},
    fleet::{Fleet, InstanceRecord, OrphanMarker},
    labels::Api,
    metrics::Metrics,
    model::{InstanceId, InstanceState},
    policy::{PoolSpec, Target},
    ports::{Ports, ScaleSetError},
};

pub use crate::pass::{PassReport, ReconcileAction, ReconcileError};

/// What the controller needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The scale set's name; every span carries it as `pool`.
    pub pool: String,
    pub spec: PoolSpec,
    pub labels: Vec<String>,
    pub runner_group: Option<String>,
    pub jit: bool,
    pub organization_scope: bool,
    /// The registration scope's name: `owner/name` of the repository, or the organization
    /// login. Stands in for the repository of a job whose job-started hook was lost.
    pub scope_name: String,
    pub period: Duration,
    /// Instances whose computer names do not start with this are never touched.
    pub computer_name_prefix: Option<String>,
    /// Where `spec`'s `min`, `parked` and free share come from at each moment: fixed,
    /// a schedule, or the learned mode (`spec` holds the configured base values).
    pub targeting: Targeting,
}

impl Settings {
    /// A repository-scoped JIT pool named `pool` registering in `scope_name`, labelled
    /// `self-hosted,linux`, reconciled every 30 s: the configuration's defaults. The one
    /// starting point for the demo, the fault suite, the benchmarks and the tests, which
    /// override what they need with struct-update syntax.
    pub fn new(pool: impl Into<String>, scope_name: impl Into<String>, spec: PoolSpec) -> Self {
        Self {
            pool: pool.into(),
            spec,
            labels: vec!["self-hosted".into(), "linux".into()],
            runner_group: None,
            jit: true,
            organization_scope: false,
            scope_name: scope_name.into(),
            period: Duration::from_secs(30),
            computer_name_prefix: None,
            targeting: Targeting::default(),
        }
    }

    /// The arguments of `config.sh` for a token registration of `runner_name`.
    pub fn config_sh_args(&self, runner_name: &str) -> Vec<String> {
        let mut args = vec![
            "--name".to_owned(),
            runner_name.to_owned(),
            "--labels".to_owned(),
            self.labels.join(","),
            "--ephemeral".to_owned(),
            "--unattended".to_owned(),
            "--disableupdate".to_owned(),
        ];
        if let (true, Some(group)) = (self.organization_scope, &self.runner_group) {
            args.extend(["--runnergroup".to_owned(), group.clone()]);
        }
        args
    }

    /// [`Self::from_config`] for `serve`: a learned mode sizes the pool with `learned`,
    /// the state `connect` loaded from its blob (none: an empty model in memory).
    pub fn served(config: &Config, learned: Option<&crate::learned::LearnedState>) -> Self {
        let mut settings = Self::from_config(config);
        if let Some(state) = learned {
            settings.targeting.sizing = Sizing::Learned(Arc::new(state.clone()));
        }
        settings
    }

    pub fn from_config(config: &Config) -> Self {
        let pool = &config.pool;
        Self {
            pool: config.azure.vmss_name().to_owned(),
            spec: PoolSpec {
                min: pool.min,
                max: pool.max,
                free_target_percentage: pool.free_target_percentage,
                parked: pool.parked,
                scale_in_delay: pool.scale_in_delay.get(),
                registration_timeout: pool.registration_timeout.get(),
                runner_exit_timeout: pool.runner_exit_timeout.get(),
                keep_unhealthy: pool.keep_unhealthy_for_debugging,
            },
            labels: config.github.labels.clone(),
            runner_group: config.github.runner_group.clone(),
            jit: config.github.jit,
            organization_scope: matches!(config.github.scope, GithubScope::Organization(_)),
            scope_name: match &config.github.scope {
                GithubScope::Repository(name) | GithubScope::Organization(name) => name.clone(),
            },
            period: config.reconcile.period.get(),
            computer_name_prefix: config.azure.computer_name_prefix.clone(),
            targeting: Targeting { sizing: Sizing::from_config(&config.pool), clock: WallClock::System },
        }
    }
}

/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
}

/// Locks, in the order they are taken (never the other way round):
/// 1. an instance's turn (async, held across that instance's hook or correction I/O);
/// 2. `relist` (async, single-flight re-listing for unknown callers);
/// 3. `state` (sync, held only between awaits, never across one).
struct Shared {
    settings: Settings,
    ports: Ports,
    metrics: Metrics,
    state: Mutex<State>,
    relist: tokio::sync::Mutex<()>,
    nudge: Notify,
    recovered: AtomicBool,
    operations: TaskTracker,
    reports: watch::Sender<PassReport>,
    fatal: Fatal,
}

/// Everything the hooks and the passes change, under one lock.
struct State {
    fleet: Fleet,
    budget: ScaleSetBudget,
    /// Hooks of one instance are handled one at a time; different instances in parallel.
    turns: HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>,
    /// When an unknown caller last made the operator re-list the scale set.
    relisted_at: Option<Instant>,
    /// Busy markers of instances that vanished while busy, removed by the next pass.
    orphan_markers: Vec<OrphanMarker>,
    audit: audit::AuditState,
    /// Instances whose runner GitHub refused to remove as busy, waiting before asking again.
    busy_refusals: reconcile::BusyRefusals,
    /// What the runner scale set last reported.
    demand: demand::DemandState,
    /// Boots being timed (call → runner online).
    boot_clock: boot_clock::BootClock,
    /// The targets last in force, to log (and count) a change once.
    targets_in_force: Option<InForce>,
}

impl State {
    /// The pool as the policy sees it at `now`: the fleet and the scale set's assigned jobs.
    fn observe_pool(&self, now: Instant) -> crate::policy::ObservedPool {
        let mut observed = self.fleet.observe(now);
        observed.assigned_jobs = self.demand.assigned_jobs();
        observed
    }
}

/// A fault the process cannot carry on after: it must exit so its service manager
/// starts it again from the scale set, the busy record and GitHub.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FatalError {
    #[error("a task panicked while it held the controller's state; the state cannot be trusted")]
    StatePoisoned,
}

#[derive(Default)]
struct Fatal {
    raised: CancellationToken,
    error: OnceLock<FatalError>,
}

/// The smallest gap between two re-listings triggered by unknown callers.
const RELIST_MIN_GAP: Duration = Duration::from_secs(2);

impl Controller {
    pub fn new(settings: Settings, ports: Ports) -> Self {
        Self::with_budget(settings, ports, ScaleSetBudget::azure_vmss())
    }

    pub fn with_budget(settings: Settings, ports: Ports, budget: ScaleSetBudget) -> Self {
        Self::with_metrics(settings, ports, budget, Metrics::new())
    }

    /// A controller counting into `metrics`, which clients built before it may share
    /// (`connect::Connected::metrics`).
    pub fn with_metrics(settings: Settings, ports: Ports, budget: ScaleSetBudget, metrics: Metrics) -> Self {
        let (reports, _) = watch::channel(PassReport::default());
        let fleet = Fleet::with_name_prefix(settings.computer_name_prefix.clone());
        Self {
            shared: Arc::new(Shared {
                settings,
                ports,
                metrics,
                state: Mutex::new(State {
                    fleet,
                    budget,
                    turns: HashMap::new(),
                    relisted_at: None,
                    orphan_markers: Vec::new(),
                    audit: audit::AuditState::default(),
                    busy_refusals: reconcile::BusyRefusals::default(),
                    demand: demand::DemandState::default(),
                    boot_clock: boot_clock::BootClock::default(),
                    targets_in_force: None,
                }),
                relist: tokio::sync::Mutex::new(()),
                nudge: Notify::new(),
                recovered: AtomicBool::new(false),
                operations: TaskTracker::new(),
                reports,
                fatal: Fatal::default(),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn ports(&self) -> &Ports {
        &self.shared.ports
    }

    /// Wakes the reconcile loop (debounced there).
    pub fn nudge(&self) {
        self.shared.nudge.notify_one();
    }

    /// Resolves when [`Controller::nudge`] was called.
    pub async fn nudged(&self) {
        self.shared.nudge.notified().await;
    }

    /// Has start-up recovery finished? Hooks are refused with 503 until then.
    pub fn is_recovered(&self) -> bool {
        self.shared.recovered.load(Ordering::Acquire)
    }

    /// Reports of every reconcile pass (the demo's table, the loop's progress).
    pub fn reports(&self) -> watch::Receiver<PassReport> {
        self.shared.reports.subscribe()
    }

    /// Scale-set operations still running (deletes and reimages run in the background).
    pub fn operations(&self) -> &TaskTracker {
        &self.shared.operations
    }

    /// Resolves with the fault once the controller can no longer be trusted; the
    /// process supervisor exits on it.
    pub async fn failed(&self) -> FatalError {
        self.shared.fatal.raised.cancelled().await;
        self.shared.fatal.error.get().cloned().unwrap_or(FatalError::StatePoisoned)
    }

    fn raise(&self, error: FatalError) {
        if self.shared.fatal.error.set(error.clone()).is_ok() {
            tracing::error!(error = %error, "fatal: the operator must restart");
        }
        self.shared.fatal.raised.cancel();
    }

    /// The state, for a moment between awaits. A poisoned lock means a panic left it
    /// half-changed: the controller raises a fatal error (the process exits and
    /// recovers from the outside world) and lets this caller finish on what is there.
    fn state(&self) -> MutexGuard<'_, State> {
        match self.shared.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                self.raise(FatalError::StatePoisoned);
                poisoned.into_inner()
            }
        }
    }

    /// State of every known instance (the demo's table, diagnostics).
    pub fn instance_states(&self) -> Vec<(InstanceId, InstanceState)> {
        self.state().fleet.records().map(|r| (r.id().clone(), r.state())).collect()
    }

    /// Instances whose job-started is recorded (the busy set).
    pub fn busy_set(&self) -> Vec<(InstanceId, crate::model::JobRef)> {
        self.state().fleet.records().filter_map(|r| r.busy_job().map(|a| (r.id().clone(), a.job.clone()))).collect()
    }

    /// Take `id`'s turn: its hooks and corrections run one at a time.
    async fn turn(&self, id: &InstanceId) -> OwnedMutexGuard<()> {
        let lock = self.state().turns.entry(id.clone()).or_default().clone();
        lock.lock_owned().await
    }

    /// Re-reads capacity and the instance list into the fleet.
    async fn refresh_cloud(&self) -> Result<(), ScaleSetError> {
        let scale_set = &self.shared.ports.scale_set;
        let capacity = scale_set.capacity().await.inspect_err(|e| self.record_cloud_error(e))?;
        let listed = scale_set.list_instances().await.inspect_err(|e| self.record_cloud_error(e))?;
        let mut state = self.state();
        let state = &mut *state;
        for cloud in listed.iter().filter(|c| state.fleet.get(&c.id).is_none()) {
            state.boot_clock.appeared(&cloud.id);
        }
        let orphans = state.fleet.merge_cloud(capacity, &listed, Instant::now(), time::OffsetDateTime::now_utc());
        state.orphan_markers.extend(orphans);
        let fleet = &state.fleet;
        state.turns.retain(|id, lock| fleet.get(id).is_some() || Arc::strong_count(lock) > 1);
        Ok(())
    }

    /// The pool's targets for this moment (`Settings::targeting`); a change of the
    /// schedule entry in force is logged once.
    pub(crate) fn effective_spec(&self) -> PoolSpec {
        self.effective_spec_at(self.settings().targeting.clock.now())
    }

    /// [`Self::effective_spec`] at the wall-clock time `wall`.
    pub(crate) fn effective_spec_at(&self, wall: time::OffsetDateTime) -> PoolSpec {
        let settings = self.settings();
        let (spec, in_force) = settings.targeting.apply(&settings.spec, wall);
        let previous = self.state().targets_in_force.replace(in_force);
        if previous != Some(in_force) {
            let t = in_force.targets;
            tracing::info!(min = t.min, parked = t.parked, free_target_percentage = t.free_target_percentage, schedule_entry = ?in_force.entry, "pool targets in force");
            let metrics = self.metrics();
            metrics.target_min.set(i64::from(t.min));
            metrics.target_parked.set(i64::from(t.parked));
        }
        spec
    }

    /// Observe the boots whose runner is online or busy now (see `boot_clock`).
    fn stop_boot_clocks(&self) {
        let done = {
            let state = &mut *self.state();
            let fleet = &state.fleet;
            state.boot_clock.finished(Instant::now(), |id| fleet.get(id).map(|r| r.state()))
        };
        for (path, took) in done {
            let label = crate::metrics::PathLabel { path: path.as_str() };
            self.shared.metrics.boot_duration.get_or_create(&label).observe(took.as_secs_f64());
        }
    }

    fn record_cloud_error(&self, err: &ScaleSetError) {
        self.shared.metrics.api_error(Api::ScaleSet, err.fault().kind());
    }

    /// The instance calling from `ip`. An address not in the fleet triggers one
    /// re-listing (a VM can boot and call before the periodic pass has seen it).
    pub(crate) async fn resolve(&self, ip: IpAddr) -> Result<InstanceRecord, HookError> {
        let ip = ip.to_canonical();
        if let Some(record) = self.state().fleet.by_ip(ip) {
            return Ok(record.clone());
        }
        {
            let _gate = self.shared.relist.lock().await;
            let due = {
                let mut state = self.state();
                if let Some(record) = state.fleet.by_ip(ip) {
                    return Ok(record.clone()); // another caller's re-listing found it
                }
                let due = state.relisted_at.is_none_or(|t| t.elapsed() >= RELIST_MIN_GAP);
                if due {
                    state.relisted_at = Some(Instant::now());
                }
                due
            };
            // A re-listing spends a read like a pass does; without one the caller is
            // refused (403) and asks again, as booting VMs do.
            if due && self.state().budget.try_spend(Call::Read) {
                self.refresh_cloud().await.map_err(HookError::CloudUnavailable)?;
            }
        }
        self.state().fleet.by_ip(ip).cloned().ok_or(HookError::UnknownInstance { ip })
    }

    /// Current numbers for `/readyz`, the demo and tests.
    pub fn target(&self) -> Target {
        self.shared.reports.borrow().target
    }
}
