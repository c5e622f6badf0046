//! The controller: the operator's state and everything that changes it. Hooks from
//! the API, start-up recovery and the reconcile pass all go through here; the HTTP
//! layer above only translates.

mod align;
mod audit;
mod hooks;
mod reconcile;
mod recover;
pub use crate::truth::KINDS as CORRECTION_KINDS;
pub use recover::{RecoveryError, RecoveryReport};

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use tokio::{
    sync::{watch, Notify, OwnedMutexGuard},
    time::Instant,
};
use tokio_util::task::TaskTracker;

use crate::{
    budget::WriteBudget,
    config::{Config, GithubScope},
    fleet::{Fleet, InstanceRecord, OrphanMarker},
    metrics::Metrics,
    model::{InstanceId, InstanceState},
    policy::{PoolSpec, Target},
    ports::{Ports, ScaleSetError},
};

pub use crate::pass::{PassReport, ReconcileAction, ReconcileError};
pub use hooks::{HookError, HookOutcome, Registration};

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
        }
    }

    pub fn from_config(config: &Config) -> Self {
        let pool = &config.pool;
        Self {
            pool: config.azure.vmss_name().to_owned(),
            spec: PoolSpec {
                min: pool.min,
                max: pool.max,
                free_target_percentage: pool.free_target_percentage,
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
        }
    }
}

/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    ports: Ports,
    fleet: Mutex<Fleet>,
    /// Hooks of one instance are handled one at a time; different instances in parallel.
    instance_locks: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    /// Single-flight for re-listing the scale set when an unknown address calls.
    relist: tokio::sync::Mutex<Option<Instant>>,
    budget: Mutex<WriteBudget>,
    metrics: Metrics,
    nudge: Notify,
    recovered: AtomicBool,
    operations: TaskTracker,
    reports: watch::Sender<PassReport>,
    /// Busy markers of instances that vanished while busy, removed by the next pass.
    orphan_markers: Mutex<Vec<OrphanMarker>>,
    audit: Mutex<audit::AuditState>,
}

/// The smallest gap between two re-listings triggered by unknown callers.
const RELIST_MIN_GAP: Duration = Duration::from_secs(2);

impl Controller {
    pub fn new(settings: Settings, ports: Ports) -> Self {
        Self::with_budget(settings, ports, WriteBudget::azure_vmss())
    }

    pub fn with_budget(settings: Settings, ports: Ports, budget: WriteBudget) -> Self {
        let (reports, _) = watch::channel(PassReport::default());
        let fleet = Fleet::with_name_prefix(settings.computer_name_prefix.clone());
        Self {
            shared: Arc::new(Shared {
                settings,
                ports,
                fleet: Mutex::new(fleet),
                instance_locks: Mutex::new(HashMap::new()),
                relist: tokio::sync::Mutex::new(None),
                budget: Mutex::new(budget),
                metrics: Metrics::new(),
                nudge: Notify::new(),
                recovered: AtomicBool::new(false),
                operations: TaskTracker::new(),
                reports,
                orphan_markers: Mutex::new(Vec::new()),
                audit: Mutex::new(audit::AuditState::default()),
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

    /// Reports of every reconcile pass (for the demo and tests).
    pub fn reports(&self) -> watch::Receiver<PassReport> {
        self.shared.reports.subscribe()
    }

    /// Scale-set operations still running (deletes and reimages run in the background).
    pub fn operations(&self) -> &TaskTracker {
        &self.shared.operations
    }

    fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.shared.fleet.lock().expect("fleet lock poisoned")
    }

    /// State of every known instance, for tests, the demo and diagnostics.
    pub fn instance_states(&self) -> Vec<(InstanceId, InstanceState)> {
        self.fleet().records().map(|r| (r.id.clone(), r.state())).collect()
    }

    /// Instances whose job-started is recorded (the busy set).
    pub fn busy_set(&self) -> Vec<(InstanceId, crate::model::JobRef)> {
        self.fleet().records().filter_map(|r| r.busy_job().map(|a| (r.id.clone(), a.job.clone()))).collect()
    }

    async fn lock_instance(&self, id: &InstanceId) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.shared.instance_locks.lock().expect("instance locks poisoned");
            locks.entry(id.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Re-reads capacity and the instance list into the fleet.
    async fn refresh_cloud(&self) -> Result<(), ScaleSetError> {
        let scale_set = &self.shared.ports.scale_set;
        let capacity = scale_set.capacity().await.inspect_err(|e| self.record_cloud_error(e))?;
        let listed = scale_set.list_instances().await.inspect_err(|e| self.record_cloud_error(e))?;
        let orphans = self.fleet().merge_cloud(capacity, &listed, Instant::now(), time::OffsetDateTime::now_utc());
        if !orphans.is_empty() {
            self.shared.orphan_markers.lock().expect("orphan markers poisoned").extend(orphans);
        }
        self.forget_locks_of_vanished_instances();
        Ok(())
    }

    fn forget_locks_of_vanished_instances(&self) {
        let fleet = self.fleet();
        let mut locks = self.shared.instance_locks.lock().expect("instance locks poisoned");
        locks.retain(|id, lock| fleet.get(id).is_some() || Arc::strong_count(lock) > 1);
    }

    fn record_cloud_error(&self, err: &ScaleSetError) {
        self.shared.metrics.api_error("scale_set", err.fault().kind());
    }

    /// The instance calling from `ip`. An address not in the fleet triggers one
    /// re-listing (a VM can boot and call before the periodic pass has seen it).
    pub(crate) async fn resolve(&self, ip: IpAddr) -> Result<InstanceRecord, HookError> {
        let ip = ip.to_canonical();
        if let Some(record) = self.fleet().by_ip(ip) {
            return Ok(record.clone());
        }
        {
            let mut last = self.shared.relist.lock().await;
            if let Some(record) = self.fleet().by_ip(ip) {
                return Ok(record.clone()); // another caller's re-listing found it
            }
            let due = last.is_none_or(|t| t.elapsed() >= RELIST_MIN_GAP);
            if due {
                *last = Some(Instant::now());
                self.refresh_cloud().await.map_err(HookError::CloudUnavailable)?;
            }
        }
        self.fleet().by_ip(ip).cloned().ok_or(HookError::UnknownInstance { ip })
    }

    /// Current numbers for `/readyz`, the demo and tests.
    pub fn target(&self) -> Target {
        self.shared.reports.borrow().target
    }

    /// Is the busy record reachable, and the scale set? (`/readyz`)
    pub async fn readiness(&self) -> Result<(), String> {
        if !self.is_recovered() {
            return Err("recovering state from the scale set, the busy record and GitHub".into());
        }
        self.shared.ports.busy.ping().await.map_err(|e| format!("busy record unreachable: {e}"))?;
        self.shared.ports.scale_set.capacity().await.map_err(|e| format!("scale set unreachable: {e}"))?;
        Ok(())
    }
}
