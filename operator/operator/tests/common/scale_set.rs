//! The operator in scale-set mode (`github.demand = "scale_set"`) with its real clients
//! against the HTTP fakes and Azurite, and VM doubles that do what cloud-init, `run.sh
//! --jitconfig` and the hook scripts do: shared by the scale-set lifecycle test and the
//! `scale_set` bench.
//!
//! A VM double asks the operator for its registration, starts its runner with the JIT
//! config at fake-github (the Actions service then hands it an assigned job of its set,
//! at the service's next request), sends job-started, works, sends job-completed, ends
//! its job at the fake and reports runner-exited until it is recycled.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use contract::{Api, Contract, Exchange};
use fake_azure::{ArmSettings, FakeAzure, IdentitySettings, InstancePhase, ScaleSetSpec, WriteLimit};
use fake_github::{AppKey, FakeGithub, JobFlow, JobPhase, ScaleSetJobSpec, Scope};
use operator::{
    controller::{Controller, ListenerStatus},
    model::{InstanceState, JobRef},
    queue::QueueBusyRecord,
};
use serde_json::json;
use test_support::Azurite;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::on_fakes::{self, FakesConfig, OperatorOnFakes};

pub const REPO: &str = "octo-org/octo-repo";
pub const ORG: &str = "octo-org";
pub const RUNNER_GROUP: &str = "linux";
/// The scale set's extra labels (its name is the label workflows use).
pub const LABELS: [&str; 2] = ["self-hosted", "linux"];
/// The VM scale set's name, and so the runner scale set's (the default).
pub const VMSS: &str = "vmss-runners";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Pat,
    App,
}

/// What differs between cases.
#[derive(Clone, Debug)]
pub struct Options {
    /// Organization scope with the runner group [`RUNNER_GROUP`]; else repository scope.
    pub org: bool,
    pub auth: Auth,
    pub flow: JobFlow,
    pub min: u32,
    pub max: u32,
    pub pct: u8,
    /// Instances running at the start.
    pub running: u32,
    /// Distinct per test in one binary: the VM doubles' 127.x.y.z addresses.
    pub ip_block: u8,
    /// The busy record's queue name.
    pub queue: String,
    /// fake-azure's time from capacity write to a running instance.
    pub boot_delay: Duration,
    /// How long the fake's GetMessage holds when there is nothing to say.
    pub poll_hold: Duration,
    /// How long a job runs on its VM.
    pub job_time: Duration,
    /// `reconcile.period` (the shared configuration's is 5 s).
    pub period: &'static str,
}

impl Options {
    pub fn new(queue: &str, ip_block: u8) -> Self {
        Self {
            org: false,
            auth: Auth::Pat,
            flow: JobFlow::GithubCom,
            min: 0,
            max: 10,
            pct: 0,
            running: 0,
            ip_block,
            queue: queue.to_owned(),
            boot_delay: Duration::from_millis(300),
            poll_hold: Duration::from_millis(200),
            job_time: Duration::from_millis(700),
            period: "5s",
        }
    }
}

/// Counters of the VM doubles.
#[derive(Default)]
pub struct VmStats {
    pub jobs_run: AtomicU32,
    pub busy_vm_killed: AtomicU32,
    /// Registrations answered with something other than a JIT config.
    pub not_jit: AtomicU32,
    /// JIT configs fake-github did not accept.
    pub jit_refused: AtomicU32,
    /// REST job ids, one per job run.
    pub ran: Mutex<Vec<u64>>,
}

struct Vms {
    stats: Arc<VmStats>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct World {
    pub azure: Arc<FakeAzure>,
    pub github: Arc<FakeGithub>,
    pub azurite: Azurite,
    pub scope: Scope,
    /// fake-github's id of [`RUNNER_GROUP`] (organization scope).
    pub runner_group_id: Option<u64>,
    pub options: Options,
    toml: String,
    pub addr: SocketAddr,
    pub controller: Controller,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    vms: Vms,
}

/// What a case leaves for its assertions.
pub struct Finished {
    /// Contract violations of every fake's exchanges, the scale set API's included.
    pub problems: Vec<String>,
    pub azure: Arc<FakeAzure>,
    pub github: Arc<FakeGithub>,
    pub stats: Arc<VmStats>,
    pub scope: Scope,
    /// The operator's `/metrics` text at the end.
    pub metrics: String,
}

pub async fn world(options: Options) -> World {
    let arm = ArmSettings {
        boot_delay: options.boot_delay,
        // Ten times Azure's rate, as the operator's budget in `on_fakes::start`.
        write_limit: Some(WriteLimit { burst: 12, refill_every: Duration::from_millis(1500) }),
        ..ArmSettings::default()
    };
    let azure = Arc::new(FakeAzure::start_with(IdentitySettings::default(), arm).await);
    let vmss_id = azure.arm.add_scale_set(ScaleSetSpec {
        ip_block: options.ip_block,
        computer_name_prefix: "vmssrun".into(),
        ..ScaleSetSpec::uniform(VMSS, options.running)
    });
    let github = Arc::new(FakeGithub::start().await);
    let hold = options.poll_hold;
    github.scaleset_configure(|c| {
        c.poll_hold = hold;
        c.flow = options.flow;
    });
    let scope = if options.org { Scope::org(ORG) } else { Scope::repo(REPO) };
    let (secret, app_line) = match options.auth {
        Auth::Pat => {
            github.add_pat("ghp_scaleset_1");
            ("ghp_scaleset_1".to_owned(), String::new())
        }
        Auth::App => {
            let key = AppKey::generate();
            github.add_app(4242, &key.public_pem, 77, scope.owner());
            (key.private_pem, ", app = { app_id = 4242, installation_id = 77 }".to_owned())
        }
    };
    azure.key_vault.set_secret(on_fakes::CREDENTIAL_SECRET, &secret);
    let azurite = Azurite::start();
    let queue_url = azurite.queue_url(&options.queue);
    QueueBusyRecord::new(&queue_url, None).unwrap().ensure_queue().await.unwrap();
    let runner_group_id = options.org.then(|| github.add_runner_group(ORG, RUNNER_GROUP));
    let scope_lines = if options.org {
        format!("scope = {{ organization = \"{ORG}\" }}\nrunner_group = \"{RUNNER_GROUP}\"")
    } else {
        format!("scope = {{ repository = \"{REPO}\" }}")
    };
    let fakes = FakesConfig {
        vmss_id,
        queue_url,
        scope_lines,
        credential_extra: app_line,
        jit: true,
        demand: "scale_set",
        min: options.min,
        max: options.max,
        pct: options.pct,
    };
    let toml = on_fakes::config_toml(&azure, &github, &fakes)
        .replace("period = \"5s\"", &format!("period = \"{}\"", options.period));
    let OperatorOnFakes { controller, addr, shutdown, server } =
        on_fakes::start_with_toml(&azure, &toml, "127.0.0.1:0".parse().unwrap()).await;
    let vms = start_vms(azure.clone(), github.clone(), addr, options.job_time);
    World { azure, github, azurite, scope, runner_group_id, options, toml, addr, controller, shutdown, server, vms }
}

/// Watches the fake scale set and runs one VM double per running boot.
fn start_vms(azure: Arc<FakeAzure>, github: Arc<FakeGithub>, operator: SocketAddr, job_time: Duration) -> Vms {
    let stats = Arc::new(VmStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (stats, stop) = (stats.clone(), stop.clone());
        async move {
            let mut running: HashMap<(String, u32), (JoinHandle<()>, Arc<AtomicBool>)> = HashMap::new();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(25)) => {}
                }
                let boots: Vec<_> =
                    azure.arm.instances(VMSS).into_iter().filter(|i| i.phase == InstancePhase::Running).collect();
                let live: HashSet<(String, u32)> = boots.iter().map(|i| (i.id.clone(), i.generation)).collect();
                running.retain(|key, (handle, in_job)| {
                    if live.contains(key) {
                        return true;
                    }
                    if in_job.load(Ordering::SeqCst) {
                        stats.busy_vm_killed.fetch_add(1, Ordering::SeqCst);
                    }
                    handle.abort();
                    false
                });
                for boot in boots {
                    if let std::collections::hash_map::Entry::Vacant(slot) = running.entry((boot.id, boot.generation)) {
                        let in_job = Arc::new(AtomicBool::new(false));
                        let vm = vm(boot.ip, operator, github.clone(), stats.clone(), in_job.clone(), job_time);
                        slot.insert((tokio::spawn(vm), in_job));
                    }
                }
            }
            for (_, (handle, _)) in running {
                handle.abort();
            }
        }
    });
    Vms { stats, stop, task }
}

/// One boot: cloud-init's registration, `run.sh --jitconfig`, the job hooks.
async fn vm(
    ip: IpAddr,
    operator: SocketAddr,
    github: Arc<FakeGithub>,
    stats: Arc<VmStats>,
    in_job: Arc<AtomicBool>,
    job_time: Duration,
) {
    let client = reqwest::Client::builder().local_address(ip).build().unwrap();
    let base = format!("http://{operator}/api/v1");
    let registration: serde_json::Value = loop {
        match client.post(format!("{base}/registration")).json(&json!({})).send().await {
            Ok(r) if r.status() == 200 => break r.json().await.unwrap(),
            Ok(r) if r.status() == 409 => return,
            // 503 while the listener has no scale set yet, or the operator restarts.
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let Some(encoded) = registration["encoded_jit_config"].as_str().filter(|_| registration["mode"] == "jit") else {
        stats.not_jit.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let Some(runner) = github.start_runner_with_jit(encoded) else {
        stats.jit_refused.fetch_add(1, Ordering::SeqCst);
        return;
    };
    // The Actions service gives an idle runner of the set an assigned job at its next
    // request (the listener polls every `poll_hold` at most).
    let job_id = loop {
        match github.runner(runner) {
            Some(r) => {
                if let Some(job) = r.job {
                    break Some(job);
                }
            }
            // Deregistered while idle (scale-in): the runner process exits.
            None => break None,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(job_id) = job_id {
        in_job.store(true, Ordering::SeqCst);
        let job = JobRef { repository: REPO.into(), run_id: job_id, run_attempt: 1, job_name: "build".into() };
        post(&client, &format!("{base}/hooks/job-started"), json!(job)).await;
        tokio::time::sleep(job_time).await;
        post(&client, &format!("{base}/hooks/job-completed"), json!(job)).await;
        github.finish_job(runner);
        in_job.store(false, Ordering::SeqCst);
        stats.jobs_run.fetch_add(1, Ordering::SeqCst);
        stats.ran.lock().unwrap().push(job_id);
    }
    // Like boot.sh: report the exit until the VM is recycled.
    loop {
        post(&client, &format!("{base}/hooks/runner-exited"), json!({"exit_code": 0})).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn post(client: &reqwest::Client, url: &str, body: serde_json::Value) {
    for _ in 0..100 {
        if let Ok(r) = client.post(url).json(&body).send().await {
            if r.status().is_success() || r.status().is_client_error() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl World {
    /// The scale set's id at fake-github, once the listener has created it.
    pub fn scale_set_id(&self) -> Option<u64> {
        self.github.scaleset_sets().into_iter().find(|s| s.name == VMSS).map(|s| s.id)
    }

    /// Wait until the listener has a session open.
    pub async fn listening(&self, limit: Duration) {
        let started = Instant::now();
        while self.controller.listener_status() != Some(ListenerStatus::Listening) {
            assert!(
                started.elapsed() < limit,
                "the listener is not listening after {limit:?}: {:?}",
                self.controller.listener_status()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queue `n` jobs with `runs-on: <the scale set's name>`; their `jobId`s.
    pub fn queue(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.github.scaleset_queue_job(&self.scope, ScaleSetJobSpec::runs_on(&[VMSS]))).collect()
    }

    pub fn jobs_run(&self) -> u32 {
        self.vms.stats.jobs_run.load(Ordering::SeqCst)
    }

    /// Wait until `jobs` jobs ran, every scale-set job completed, and the pool is back
    /// to `min` idle instances.
    pub async fn settle(&self, jobs: u32, min: usize, limit: Duration) {
        let started = Instant::now();
        loop {
            let states = self.controller.instance_states();
            let idle = states.iter().all(|(_, s)| *s == InstanceState::Idle);
            let completed = self.github.scaleset_jobs().iter().all(|j| j.phase == JobPhase::Completed);
            if self.jobs_run() >= jobs
                && completed
                && states.len() == min
                && idle
                && self.azure.arm.capacity(VMSS) as usize == min
            {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "not settled after {limit:?}: {} jobs run, capacity {}, states {states:?}, jobs {:?}",
                self.jobs_run(),
                self.azure.arm.capacity(VMSS),
                self.github.scaleset_jobs().iter().map(|j| j.phase).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and a new operator on the same address (see lifecycle.rs): the listener
    /// closes its session on the way out, so the new one opens its own at once.
    pub async fn restart(&mut self, downtime: Duration) {
        self.shutdown.cancel();
        let _ = (&mut self.server).await;
        tokio::time::sleep(downtime).await;
        let started = on_fakes::start_with_toml(&self.azure, &self.toml, self.addr).await;
        self.controller = started.controller;
        self.shutdown = started.shutdown;
        self.server = started.server;
    }

    /// Stop the VMs and the operator; check every exchange against its contract.
    pub async fn finish(self) -> Finished {
        self.vms.stop.cancel();
        let _ = self.vms.task.await;
        self.shutdown.cancel();
        let _ = self.server.await;
        let metrics = self.controller.metrics().render();
        let mut problems = Contract::load(Api::Compute).check_all(&self.azure.arm.exchanges());
        problems.extend(Contract::load(Api::KeyVaultSecrets).check_all(&self.azure.key_vault.exchanges()));
        problems.extend(Contract::load(Api::Imds).check_all(&self.azure.identity.exchanges()));
        problems.extend(Contract::load(Api::GithubRest).check_all(&self.github.exchanges()));
        problems.extend(Contract::load(Api::ActionsScaleset).check_all(&self.github.scaleset_exchanges()));
        Finished { problems, azure: self.azure, github: self.github, stats: self.vms.stats, scope: self.scope, metrics }
    }
}

/// The capacities the operator wrote to the scale set, in order (accepted writes only).
pub fn capacity_writes(azure: &FakeAzure) -> Vec<u32> {
    azure
        .arm
        .exchanges()
        .iter()
        .filter(|e| e.method == "PATCH" || e.method == "PUT")
        .filter(|e| e.status < 300 && e.path.contains(&format!("virtualMachineScaleSets/{VMSS}?")))
        .filter_map(|e| e.request_body.as_ref()?.pointer("/sku/capacity")?.as_u64())
        .map(|c| c as u32)
        .collect()
}

/// An exchange's endpoint: method and path without the query, ids and GUIDs as `{id}`.
pub fn endpoint(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| {
            let guid = s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4;
            if (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())) || guid {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// Requests by endpoint.
pub fn by_endpoint<'a>(requests: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (method, path) in requests {
        *out.entry(endpoint(method, path)).or_default() += 1;
    }
    out
}

/// The REST exchanges by endpoint.
pub fn rest_by_endpoint(exchanges: &[Exchange]) -> BTreeMap<String, usize> {
    by_endpoint(exchanges.iter().map(|e| (e.method.as_str(), e.path.as_str())))
}

/// The scale set API's requests (R3 included) by endpoint.
pub fn scaleset_by_endpoint(github: &FakeGithub) -> BTreeMap<String, usize> {
    let requests = github.scaleset_requests();
    by_endpoint(requests.iter().map(|r| (r.method.as_str(), r.path.as_str())))
}

/// Requests to endpoints whose key contains `part`.
pub fn count(map: &BTreeMap<String, usize>, part: &str) -> usize {
    map.iter().filter(|(k, _)| k.contains(part)).map(|(_, n)| n).sum()
}

/// The common end-of-case checks: contracts, no busy VM touched, no job twice, every
/// job ran on a JIT runner from the scale set.
pub fn assert_clean(f: &Finished) {
    assert!(f.problems.is_empty(), "contract violations:\n{}", f.problems.join("\n"));
    let stats = &f.stats;
    assert_eq!(stats.busy_vm_killed.load(Ordering::SeqCst), 0, "a VM was deleted or reimaged while busy");
    assert_eq!(stats.not_jit.load(Ordering::SeqCst), 0, "every registration was a JIT config");
    assert_eq!(stats.jit_refused.load(Ordering::SeqCst), 0, "every JIT config was accepted");
    let ran = stats.ran.lock().unwrap();
    assert_eq!(ran.len(), ran.iter().collect::<HashSet<_>>().len(), "a job ran twice: {ran:?}");
}
