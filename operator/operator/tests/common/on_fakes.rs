//! The operator wired to the HTTP fakes exactly as in production (`connect()` builds
//! the real Resource Manager, Key Vault, GitHub and queue clients) and served on a
//! listener: shared by the lifecycle test and the script e2e test.

use std::{net::SocketAddr, time::Duration};

use azure_core::http::ClientOptions;
use fake_azure::FakeAzure;
use fake_github::FakeGithub;
use operator::{
    budget::ScaleSetBudget,
    config,
    connect::{connect, ConnectOptions},
    controller::{Controller, Settings},
    run::{run, RunSettings},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Key Vault secret holding the GitHub credential in these tests.
pub const CREDENTIAL_SECRET: &str = "github-credential";

/// What differs between the tests; the timings are compressed the same way for all.
#[derive(Clone)]
pub struct FakesConfig {
    pub vmss_id: String,
    pub queue_url: String,
    /// `scope = {...}` and, for an organization, `runner_group = "..."`.
    pub scope_lines: String,
    /// Appended inside `credential = {...}`, e.g. `, app = { app_id = 1, installation_id = 2 }`.
    pub credential_extra: String,
    pub jit: bool,
    /// `github.demand`: `"scale_set"` or `"none"`.
    pub demand: &'static str,
    pub min: u32,
    pub max: u32,
    pub pct: u8,
}

pub struct OperatorOnFakes {
    pub controller: Controller,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<()>,
}

/// The configuration file, about ten times faster than production's timings.
pub fn config_toml(azure: &FakeAzure, github: &FakeGithub, c: &FakesConfig) -> String {
    format!(
        r#"
[github]
api_url = "{api}"
{scope_lines}
labels = ["self-hosted", "linux"]
jit = {jit}
demand = "{demand}"
credential = {{ key_vault_url = "{vault}", secret_name = "{CREDENTIAL_SECRET}", refresh_period = "1h"{extra} }}

[azure]
vmss_resource_id = "{vmss_id}"
resource_manager_url = "{arm}"

[queue]
url = "{queue_url}"

[pool]
min = {min}
max = {max}
free_target_percentage = {pct}
scale_in_delay = "2s"
registration_timeout = "1m"
runner_exit_timeout = "30s"

[reconcile]
period = "5s"
debounce = "200ms"
"#,
        api = github.url(),
        scope_lines = c.scope_lines,
        jit = c.jit,
        demand = c.demand,
        vault = azure.key_vault.url(),
        extra = c.credential_extra,
        vmss_id = c.vmss_id,
        arm = azure.arm.base_url(),
        queue_url = c.queue_url,
        min = c.min,
        max = c.max,
        pct = c.pct,
    )
}

/// Connect to the fakes and serve the API on `listen` until `shutdown`. Called again
/// with the same arguments, it is the operator restarted: a new process that knows
/// nothing but what it recovers.
pub async fn start(azure: &FakeAzure, github: &FakeGithub, c: &FakesConfig, listen: SocketAddr) -> OperatorOnFakes {
    start_with_toml(azure, &config_toml(azure, github, c), listen).await
}

/// [`start`] with a configuration file of the caller's (e.g. [`config_toml`] with a
/// timing changed).
pub async fn start_with_toml(azure: &FakeAzure, toml: &str, listen: SocketAddr) -> OperatorOnFakes {
    start_adjusted(azure, toml, listen, |_| {}).await
}

/// [`start_with_toml`] with the controller's settings adjusted after they are read from
/// the configuration (e.g. a wall clock set to a chosen moment).
pub async fn start_adjusted(
    azure: &FakeAzure,
    toml: &str,
    listen: SocketAddr,
    adjust: impl FnOnce(&mut Settings),
) -> OperatorOnFakes {
    let config = config::load_str(toml).expect("valid config");
    let options = ConnectOptions {
        azure_client_options: Some(ClientOptions { transport: Some(azure.sdk_transport()), ..Default::default() }),
        ..ConnectOptions::default()
    };
    let connected = connect(&config, options).await.expect("connects to the fakes");
    let (ports, scale_set_listener) = operator::listener::wire(&config, connected.ports, connected.scale_set_api);
    // Ten times Azure's speed, like the fake's limit.
    // As `serve` does: the learned model is the one loaded from its blob.
    let learned = connected.learned;
    let mut settings = Settings::served(&config, learned.as_ref());
    adjust(&mut settings);
    // As `serve` does: the metrics the clients already count into.
    let budget = ScaleSetBudget::with_minute(Duration::from_secs(6));
    let controller = Controller::with_metrics(settings, ports, budget, connected.metrics);
    // A restart binds the address its predecessor just released.
    let mut attempts = 0;
    let listener = loop {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => break listener,
            Err(e) if attempts < 50 => {
                attempts += 1;
                eprintln!("binding {listen}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot bind {listen}: {e}"),
        }
    };
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let (controller, shutdown) = (controller.clone(), shutdown.clone());
        let settings = RunSettings {
            http: operator::api::HttpLimits::default(),
            debounce: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(5),
            listener: scale_set_listener,
            learned,
        };
        async move { run(controller, listener, settings, shutdown).await.unwrap() }
    });
    OperatorOnFakes { controller, addr, shutdown, server }
}
