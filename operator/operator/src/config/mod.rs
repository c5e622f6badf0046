//! The operator's one configuration: typed, documented, layered and validated.
//!
//! Layers, lowest first: built-in defaults < a TOML or JSON file < environment
//! variables prefixed `OPERATOR_` (nested keys joined by `__`, e.g.
//! `OPERATOR_POOL__MIN=2`). The JSON schema in `schema/operator-config.schema.json`
//! is generated from these types (`operator config schema`).

mod duration;
mod load;
mod targets;
mod validate;

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use duration::HumanDuration;
pub use load::{load, load_str, ConfigError, ENV_PREFIX};
pub use targets::{LearnedConfig, PricesConfig, ScheduleConfig};
pub use validate::Violation;

/// Operator configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "vmss-github-runner operator configuration")]
pub struct Config {
    /// Where runners register and how the operator authenticates to GitHub.
    pub github: GithubConfig,
    /// The Azure scale set that holds the runners.
    pub azure: AzureConfig,
    /// The Storage Queue that records busy runners.
    pub queue: QueueConfig,
    /// Pool size and timings.
    pub pool: PoolConfig,
    /// How often the operator re-reads the truth and acts.
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    /// The HTTP API the runner VMs call.
    #[serde(default)]
    pub server: ServerConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
}

/// GitHub settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// REST API base URL. `https://api.github.com` for github.com, `https://HOST/api/v3` for GitHub Enterprise Server.
    #[serde(default = "default_github_api_url")]
    pub api_url: String,
    /// Register runners at one repository or at an organization.
    pub scope: GithubScope,
    /// Runner group to add runners to (organization scope only). GitHub's default group when absent.
    #[serde(default)]
    pub runner_group: Option<String>,
    /// Where the pool learns of demand. `scale_set` (the default): a GitHub runner scale
    /// set tells the operator of every job assigned to it, so the pool can scale from zero
    /// and grow to a burst in one step. `none`: the pool sees only the jobs its own runners
    /// run (for a GitHub without the scale set API, such as GHES before 3.9); `pool.min`
    /// must then be at least 1.
    #[serde(default)]
    pub demand: DemandSource,
    /// Name of the runner scale set (`scale_set` demand): what workflows put in
    /// `runs-on:`. Defaults to the VM scale set's name. The operator creates it in
    /// `runner_group`, or adopts one of that name.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100), pattern(r"^[A-Za-z0-9._-]+$"))]
    pub scale_set_name: Option<String>,
    /// Labels every runner gets; workflows select the pool with `runs-on`. With
    /// `scale_set` demand these are extra labels of the scale set (set when it is created;
    /// `runs-on: <scale set name>` is the form that always routes) and may be empty.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub labels: Vec<String>,
    /// Hand each runner a one-time JIT config (recommended). When false, hand out a
    /// registration token and the `config.sh --ephemeral` arguments instead.
    #[serde(default = "default_true")]
    pub jit: bool,
    /// Where the GitHub credential lives. It is read only by the operator.
    pub credential: CredentialConfig,
}

/// Where the pool learns of demand (`github.demand`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DemandSource {
    /// GitHub's runner scale set API: assigned jobs, from zero.
    #[default]
    ScaleSet,
    /// Only the pool's own runners (the job hooks and GitHub's runner list).
    None,
}

/// Registration scope: exactly one of a repository or an organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GithubScope {
    /// A repository as `owner/name`.
    Repository(#[schemars(pattern(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$"))] String),
    /// An organization login.
    Organization(#[schemars(pattern(r"^[A-Za-z0-9-]+$"))] String),
}

impl GithubScope {
    /// The URL runners register against (`config.sh --url`).
    pub fn runner_url(&self, web_url: &str) -> String {
        match self {
            Self::Repository(repo) => format!("{web_url}/{repo}"),
            Self::Organization(org) => format!("{web_url}/{org}"),
        }
    }
}

/// Key Vault reference to the GitHub credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Vault URI, e.g. `https://myvault.vault.azure.net/`.
    pub key_vault_url: String,
    /// Secret name holding a PAT, or the GitHub App private key (PEM) when `app` is set.
    #[schemars(pattern(r"^[0-9A-Za-z-]{1,127}$"))]
    pub secret_name: String,
    /// Authenticate as a GitHub App; the secret is then the App's private key.
    #[serde(default)]
    pub app: Option<GithubAppConfig>,
    /// How often to re-read the secret, so a rotated PAT or App key needs no restart
    /// (it is also re-read at once when GitHub refuses the current one).
    #[serde(default = "default_credential_refresh")]
    pub refresh_period: HumanDuration,
}

/// GitHub App identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubAppConfig {
    /// The App's numeric id.
    #[schemars(range(min = 1))]
    pub app_id: u64,
    /// The installation on the repository's owner or the organization.
    #[schemars(range(min = 1))]
    pub installation_id: u64,
}

/// Azure settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Resource id of the runner scale set.
    #[schemars(pattern(
        r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}/providers/Microsoft\.Compute/virtualMachineScaleSets/[-\w._]{1,64}$"
    ))]
    pub vmss_resource_id: String,
    /// Client id of the scaler's user-assigned managed identity (system-assigned when absent).
    #[serde(default)]
    pub managed_identity_client_id: Option<String>,
    /// The scale set's computer-name prefix (`osProfile.computerNamePrefix`). When set,
    /// instances named otherwise were not made by this pool: they are never deleted or
    /// reimaged, and not counted in it (instances with a protection policy never are either).
    #[serde(default)]
    pub computer_name_prefix: Option<String>,
    /// Azure Resource Manager endpoint (another cloud, or a test fake on loopback).
    #[serde(default = "default_resource_manager_url")]
    pub resource_manager_url: String,
}

impl AzureConfig {
    /// The scale set's name: the last segment of its resource id.
    pub fn vmss_name(&self) -> &str {
        self.vmss_resource_id.rsplit('/').next().unwrap_or_default()
    }
}

/// Busy-record queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue URL, e.g. `https://account.queue.core.windows.net/busy-runners`.
    pub url: String,
}

/// Pool size, free target and timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Fewest instances to keep, busy or not. May be 0 with `github.demand = "scale_set"`;
    /// at least 1 otherwise, since the pool then learns of demand only from its own runners.
    #[schemars(range(min = 0, max = 1000))]
    pub min: u32,
    /// Most instances the pool may hold.
    #[schemars(range(min = 1, max = 1000))]
    pub max: u32,
    /// Share of the pool (in percent) to keep free for the next jobs.
    #[schemars(range(min = 0, max = 99))]
    pub free_target_percentage: u8,
    /// How long an instance above the target must sit idle before it is deleted (anti-flap).
    #[serde(default = "default_scale_in_delay")]
    pub scale_in_delay: HumanDuration,
    /// How long a new or reimaged instance may take to register its runner.
    #[serde(default = "default_registration_timeout")]
    pub registration_timeout: HumanDuration,
    /// How long after job-completed to wait for runner-exited before acting on the VM anyway.
    #[serde(default = "default_runner_exit_timeout")]
    pub runner_exit_timeout: HumanDuration,
    /// Keep the newest broken instance (failed provisioning, or no runner within the registration
    /// timeout) for debugging instead of deleting it; at most one, and it is not counted as free.
    #[serde(default)]
    pub keep_unhealthy_for_debugging: bool,
    /// VMs kept parked (deallocated: only their OS disk is billed) in reserve besides the
    /// `min` running ones, started when demand comes. `min + parked` must not exceed `max`.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub parked: u32,
    /// Overrides of `min`, `parked` and `free_target_percentage` by the clock: each entry
    /// applies during every minute its cron pattern matches in its time zone, and the last
    /// matching entry wins. Not with `learned`.
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// Size `min` and `parked` from the pool's demand history instead (learned online,
    /// kept in a blob across restarts). The configured `min` and `parked` stay floors.
    #[serde(default)]
    pub learned: Option<LearnedConfig>,
    /// What a running and a parked runner VM cost, for comparing settings.
    #[serde(default)]
    pub prices: PricesConfig,
}

/// Reconcile timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Period of the level-triggered pass when nothing happens.
    #[serde(default = "default_reconcile_period")]
    pub period: HumanDuration,
    /// After a hook, wait this long for more hooks before acting, so a burst makes one scale-set write.
    #[serde(default = "default_debounce")]
    pub debounce: HumanDuration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self { period: default_reconcile_period(), debounce: default_debounce() }
    }
}

/// HTTP server. Runner VMs run untrusted jobs that can reach the API from their address, so
/// every resource a caller can hold is bounded (see `docs/configuration.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port of the runner API (the scaler VM's private address in production).
    #[serde(default = "default_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Address and port of `/metrics` and `/readyz` (and `/healthz`), kept apart from the
    /// runner API so that runner VMs cannot read them. Loopback by default.
    #[serde(default = "default_operations_listen")]
    #[schemars(with = "String")]
    pub operations_listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 256, max = 1048576))]
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) answered normally, in bytes; a larger
    /// one is refused with 431. Bounds the memory an unfinished request can hold.
    #[serde(default = "default_max_header_bytes")]
    #[schemars(range(min = 1024, max = 65536))]
    pub max_header_bytes: usize,
    /// Longest request target (path and query) accepted, in bytes; a longer one is refused with 414.
    #[serde(default = "default_max_uri_bytes")]
    #[schemars(range(min = 64, max = 8192))]
    pub max_uri_bytes: usize,
    /// Open connections allowed in total, on each listener; a connection beyond it is closed
    /// at accept and counted in `vmss_runner_connections_refused_total{reason="total"}`.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_connections: usize,
    /// Open connections allowed from one source address; a connection beyond it is closed at
    /// accept and counted in `vmss_runner_connections_refused_total{reason="per_source"}`.
    #[serde(default = "default_max_connections_per_source")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_connections_per_source: usize,
    /// How long a client may take to send a request head. The same clock runs while a
    /// kept-alive connection waits for its next request, so it is also the idle timeout.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// How long a request may take from its head to its answer: reading the body and the
    /// handler. Past it the caller gets 408 (body still arriving) or 503 (the handler is
    /// still waiting on a dependency; it finishes in the background).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// On SIGTERM, how long in-flight requests and the current pass may take to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            operations_listen: default_operations_listen(),
            max_body_bytes: default_max_body_bytes(),
            max_header_bytes: default_max_header_bytes(),
            max_uri_bytes: default_max_uri_bytes(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            header_read_timeout: default_header_read_timeout(),
            request_timeout: default_request_timeout(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `auto`: readable when stdout is a terminal, JSON otherwise.
    #[serde(default)]
    pub format: LogFormat,
}

/// Log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Auto,
    Json,
    Pretty,
}

fn default_github_api_url() -> String {
    "https://api.github.com".to_owned()
}
fn default_credential_refresh() -> HumanDuration {
    HumanDuration::secs(15 * 60)
}
fn default_resource_manager_url() -> String {
    "https://management.azure.com".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_scale_in_delay() -> HumanDuration {
    HumanDuration::secs(5 * 60)
}
fn default_registration_timeout() -> HumanDuration {
    HumanDuration::secs(10 * 60)
}
fn default_runner_exit_timeout() -> HumanDuration {
    HumanDuration::secs(10 * 60)
}
fn default_reconcile_period() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_debounce() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_operations_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_max_header_bytes() -> usize {
    8 * 1024
}
fn default_max_uri_bytes() -> usize {
    2 * 1024
}
fn default_max_connections() -> usize {
    512
}
fn default_max_connections_per_source() -> usize {
    8
}
fn default_header_read_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(15)
}
fn default_max_body_bytes() -> usize {
    16 * 1024
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::secs(20)
}

/// The committed JSON schema of [`Config`], as `operator config schema` prints it.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serialises");
    text.push('\n');
    text
}
