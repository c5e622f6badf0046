//! Prometheus metrics, served at `/metrics`. Names start with `vmss_runner_`.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::{
    github::scaleset::{CallEvent, Endpoint},
    labels::{Api, CorrectionKind, HookKind, OperationKind, OperationOutcome},
    model::InstanceState,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    pub api: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointOutcomeLabels {
    pub endpoint: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub status: u16,
    pub code: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Connections closed at accept, by `reason` (`per_source`, `total`).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// Connections open now, on both listeners.
    pub connections_open: Gauge,
    /// Requests answered 4xx or 5xx, by status and error code.
    pub http_refusals: Family<RefusalLabels, Counter>,
    /// Log lines about refused requests and connections that were left out because the
    /// same source had one within the interval.
    pub log_lines_suppressed: Counter,
    pub instances: Family<StateLabel, Gauge>,
    pub desired_instances: Gauge,
    /// The running floor in force (`pool.min`, a schedule's or the learned mode's).
    pub target_min: Gauge,
    /// The parked reserve in force.
    pub target_parked: Gauge,
    pub actual_instances: Gauge,
    pub hooks: Family<OutcomeLabels, Counter>,
    pub scale_operations: Family<OutcomeLabels, Counter>,
    pub job_start_latency: Histogram,
    pub cloud_api_errors: Family<ApiErrorLabels, Counter>,
    pub github_rate_limit_remaining: Gauge,
    pub azure_rate_limit_remaining: Family<PolicyLabel, Gauge>,
    pub corrections: Family<KindLabel, Counter>,
    pub assigned_jobs: Gauge,
    pub running_jobs: Gauge,
    pub waiting_jobs: Gauge,
    pub listener_state: Family<StateLabel, Gauge>,
    pub scale_set_messages: Family<OutcomeLabels, Counter>,
    pub job_wait: Histogram,
    pub job_duration: Histogram,
    pub boot_duration: Family<PathLabel, Histogram>,
    /// HTTP requests sent to the runner scale set API, retries included, by endpoint.
    pub scale_set_api_requests: Family<EndpointLabel, Counter>,
    /// Calls of the runner scale set API by endpoint and outcome (`ok` or the error's kind).
    pub scale_set_api_calls: Family<EndpointOutcomeLabels, Counter>,
}

/// 5 s to about 40 min: a boot takes one to a few minutes on Azure.
fn boot_buckets() -> Histogram {
    Histogram::new(exponential_buckets(5.0, 1.5, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vmss_runner");
        let instances = Family::<StateLabel, Gauge>::default();
        registry.register("instances", "Instances of the pool by lifecycle state", instances.clone());
        let desired_instances = Gauge::default();
        registry.register(
            "desired_instances",
            "Pool size the policy wants (busy plus free target, within min and max)",
            desired_instances.clone(),
        );
        let target_min = Gauge::default();
        registry.register(
            "target_min_instances",
            "Running instances the pool keeps at least, as in force now (configured, scheduled or learned)",
            target_min.clone(),
        );
        let target_parked = Gauge::default();
        registry.register(
            "target_parked_instances",
            "Parked (deallocated) instances the pool keeps in reserve, as in force now",
            target_parked.clone(),
        );
        let actual_instances = Gauge::default();
        registry.register("actual_instances", "Instances the scale set holds (capacity)", actual_instances.clone());
        let hooks = Family::<OutcomeLabels, Counter>::default();
        registry.register("hooks", "Requests from runner VMs by kind and outcome", hooks.clone());
        let scale_operations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "scale_operations",
            "Scale-set and runner operations by kind and outcome",
            scale_operations.clone(),
        );
        let job_start_latency = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "job_start_latency_seconds",
            "Time from handing a runner its registration to its job starting",
            job_start_latency.clone(),
        );
        let cloud_api_errors = Family::<ApiErrorLabels, Counter>::default();
        registry.register(
            "cloud_api_errors",
            "Failed calls to Azure, GitHub, Key Vault and the queue by kind",
            cloud_api_errors.clone(),
        );
        // Zeros from the start, so dashboards and alerts see every series.
        let github_rate_limit_remaining = Gauge::default();
        registry.register(
            "github_rate_limit_remaining",
            "GitHub API requests left in the current rate-limit window (-1 until known)",
            github_rate_limit_remaining.clone(),
        );
        github_rate_limit_remaining.set(-1);
        let azure_rate_limit_remaining = Family::<PolicyLabel, Gauge>::default();
        registry.register(
            "azure_rate_limit_remaining",
            "Scale-set calls left per Azure throttling policy (x-ms-ratelimit-remaining-resource)",
            azure_rate_limit_remaining.clone(),
        );
        let corrections = Family::<KindLabel, Counter>::default();
        registry.register(
            "corrections",
            "Repairs of the operator's picture from GitHub's runner list (lost hooks, ghosts, orphaned markers)",
            corrections.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept: over the per-source or the total cap",
            connections_refused.clone(),
        );
        for reason in ["per_source", "total"] {
            let _ = connections_refused.get_or_create(&ReasonLabel { reason });
        }
        let connections_open = Gauge::default();
        registry.register("connections_open", "HTTP connections open now", connections_open.clone());
        let http_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "http_refusals",
            "Requests answered with an error, by status and error code",
            http_refusals.clone(),
        );
        let log_lines_suppressed = Counter::default();
        registry.register(
            "log_lines_suppressed",
            "Log lines about a refused caller left out: that source was logged less than an interval ago",
            log_lines_suppressed.clone(),
        );
        let assigned_jobs = Gauge::default();
        registry.register(
            "assigned_jobs",
            "Jobs the runner scale set has assigned to the pool, waiting or running (totalAssignedJobs)",
            assigned_jobs.clone(),
        );
        let running_jobs = Gauge::default();
        registry.register("running_jobs", "Jobs of the scale set running (totalRunningJobs)", running_jobs.clone());
        let waiting_jobs = Gauge::default();
        registry.register("waiting_jobs", "Assigned jobs no runner has started yet", waiting_jobs.clone());
        let listener_state = Family::<StateLabel, Gauge>::default();
        registry.register(
            "listener_state",
            "The scale-set listener's state: 1 for the current one (starting, listening, waiting, stopped)",
            listener_state.clone(),
        );
        for state in crate::controller::ListenerStatus::NAMES {
            listener_state.get_or_create(&StateLabel { state }).set(0);
        }
        let scale_set_messages = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "scale_set_messages",
            "Messages from the scale set's queue by kind (message, job) and outcome (applied, undecodable)",
            scale_set_messages.clone(),
        );
        let job_wait = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "job_wait_seconds",
            "Time from a job's assignment to the scale set to a runner taking it (from the scale set's messages)",
            job_wait.clone(),
        );
        let job_duration = Histogram::new(exponential_buckets(4.0, 2.0, 14));
        registry.register(
            "job_duration_seconds",
            "Time from a runner taking a job to its completion (from the scale set's messages)",
            job_duration.clone(),
        );
        let boot_duration = Family::<PathLabel, Histogram>::new_with_constructor(boot_buckets as fn() -> Histogram);
        registry.register(
            "boot_duration_seconds",
            "From the operator's call (capacity raised, reimage started, parked VM started) to the instance's runner online or busy, by path",
            boot_duration.clone(),
        );
        let scale_set_api_requests = Family::<EndpointLabel, Counter>::default();
        registry.register(
            "scale_set_api_requests",
            "HTTP requests sent to the runner scale set API by endpoint, each retry counted",
            scale_set_api_requests.clone(),
        );
        let scale_set_api_calls = Family::<EndpointOutcomeLabels, Counter>::default();
        registry.register(
            "scale_set_api_calls",
            "Calls of the runner scale set API by endpoint and outcome (ok, or the error's kind)",
            scale_set_api_calls.clone(),
        );
        for endpoint in Endpoint::ALL {
            let _ = scale_set_api_requests.get_or_create(&EndpointLabel { endpoint: endpoint.as_str() });
            let _ = scale_set_api_calls
                .get_or_create(&EndpointOutcomeLabels { endpoint: endpoint.as_str(), outcome: "ok" });
        }
        for path in crate::controller::BootPath::ALL {
            let _ = boot_duration.get_or_create(&PathLabel { path: path.as_str() });
        }
        for kind in CorrectionKind::ALL {
            let _ = corrections.get_or_create(&KindLabel { kind: kind.as_str() });
        }
        for kind in OperationKind::ALL {
            for outcome in [OperationOutcome::Ok, OperationOutcome::Failed] {
                let _ =
                    scale_operations.get_or_create(&OutcomeLabels { kind: kind.as_str(), outcome: outcome.as_str() });
            }
        }
        for state in InstanceState::ALL {
            instances.get_or_create(&StateLabel { state: state.as_str() }).set(0);
        }
        Self {
            registry,
            connections_refused,
            connections_open,
            http_refusals,
            log_lines_suppressed,
            instances,
            desired_instances,
            target_min,
            target_parked,
            actual_instances,
            hooks,
            scale_operations,
            job_start_latency,
            cloud_api_errors,
            github_rate_limit_remaining,
            azure_rate_limit_remaining,
            corrections,
            assigned_jobs,
            running_jobs,
            waiting_jobs,
            listener_state,
            scale_set_messages,
            job_wait,
            job_duration,
            boot_duration,
            scale_set_api_requests,
            scale_set_api_calls,
        }
    }

    /// The runner scale set client's metrics hook (`ScaleSetClient::with_observer`),
    /// counting into these metrics.
    pub fn scale_set_api_observer(&self) -> impl Fn(CallEvent) + Send + Sync + 'static {
        let (requests, calls) = (self.scale_set_api_requests.clone(), self.scale_set_api_calls.clone());
        move |event| match event {
            CallEvent::RequestSent(endpoint) => {
                requests.get_or_create(&EndpointLabel { endpoint: endpoint.as_str() }).inc();
            }
            CallEvent::Finished { endpoint, outcome } => {
                calls.get_or_create(&EndpointOutcomeLabels { endpoint: endpoint.as_str(), outcome }).inc();
            }
        }
    }

    pub fn correction(&self, kind: CorrectionKind) {
        self.corrections.get_or_create(&KindLabel { kind: kind.as_str() }).inc();
    }

    /// `outcome` is `applied`, `repeated` or the refusal's code (`HookError::kind`).
    pub fn hook(&self, kind: HookKind, outcome: &'static str) {
        self.hooks.get_or_create(&OutcomeLabels { kind: kind.as_str(), outcome }).inc();
    }

    pub fn scale_operation(&self, kind: OperationKind, outcome: OperationOutcome) {
        self.scale_operations.get_or_create(&OutcomeLabels { kind: kind.as_str(), outcome: outcome.as_str() }).inc();
    }

    /// `kind` is the failing error's own classification (e.g. `CloudFault::kind`).
    pub fn api_error(&self, api: Api, kind: &'static str) {
        self.cloud_api_errors.get_or_create(&ApiErrorLabels { api: api.as_str(), kind }).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
