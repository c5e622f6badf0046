//! The operator with its real clients — Resource Manager, Key Vault, managed identity,
//! GitHub REST, Storage Queue — against the stateful HTTP fakes and Azurite, with
//! simulated VMs calling the operator from their own loopback addresses. Every exchange
//! with a fake is checked against the official API descriptions at the end.

mod common;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use common::on_fakes::{self, FakesConfig, OperatorOnFakes};
use contract::{Api, Contract};
use fake_azure::{ArmOp, ArmSettings, FakeAzure, IdentitySettings, InstancePhase, ScaleSetSpec, WriteLimit};
use fake_github::{AppKey, FakeGithub, Scope};
use operator::{controller::Controller, model::JobRef, queue::QueueBusyRecord};
use serde_json::json;
use test_support::Azurite;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const REPO: &str = "octo-org/octo-repo";
const ORG: &str = "octo-org";
const LABELS: [&str; 2] = ["self-hosted", "linux"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Pat,
    App,
}

struct Pool {
    min: u32,
    max: u32,
    pct: u8,
    running: u32,
}

struct World {
    azure: Arc<FakeAzure>,
    github: Arc<FakeGithub>,
    _azurite: Azurite,
    vmss: String,
    scope: Scope,
    /// What the operator was started with, to start it again on the same address.
    fakes: FakesConfig,
    addr: SocketAddr,
    controller: Controller,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    vms: Vms,
}

/// Counters of the simulated VMs.
#[derive(Default)]
struct VmStats {
    jobs_run: AtomicU32,
    busy_vm_killed: AtomicU32,
    ran: Mutex<Vec<u64>>,
}

struct Vms {
    stats: Arc<VmStats>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

async fn world(org: bool, auth: Auth, pool: Pool, ip_block: u8, queue: &str) -> World {
    let arm = ArmSettings {
        write_limit: Some(WriteLimit { burst: 12, refill_every: Duration::from_millis(1500) }),
        ..ArmSettings::default()
    };
    let azure = Arc::new(FakeAzure::start_with(IdentitySettings::default(), arm).await);
    let vmss_name = "vmss-runners";
    let vmss_id = azure.arm.add_scale_set(ScaleSetSpec {
        ip_block,
        computer_name_prefix: "vmssrun".into(),
        ..ScaleSetSpec::uniform(vmss_name, pool.running)
    });
    let github = Arc::new(FakeGithub::start().await);
    let scope = if org { Scope::org(ORG) } else { Scope::repo(REPO) };
    let (secret, app_line) = match auth {
        Auth::Pat => {
            github.add_pat("ghp_lifecycle_1");
            ("ghp_lifecycle_1".to_owned(), String::new())
        }
        Auth::App => {
            let key = AppKey::generate();
            github.add_app(4242, &key.public_pem, 77, scope.owner());
            (key.private_pem, ", app = { app_id = 4242, installation_id = 77 }".to_owned())
        }
    };
    azure.key_vault.set_secret(on_fakes::CREDENTIAL_SECRET, &secret);
    let azurite = Azurite::start();
    let queue_url = azurite.queue_url(queue);
    QueueBusyRecord::new(&queue_url, None).unwrap().ensure_queue().await.unwrap();

    let scope_lines = if org {
        github.add_runner_group(ORG, "linux");
        format!("scope = {{ organization = \"{ORG}\" }}\nrunner_group = \"linux\"")
    } else {
        format!("scope = {{ repository = \"{REPO}\" }}")
    };
    let fakes = FakesConfig {
        vmss_id,
        queue_url,
        scope_lines,
        credential_extra: app_line,
        jit: true,
        demand: "none",
        min: pool.min,
        max: pool.max,
        pct: pool.pct,
    };
    let OperatorOnFakes { controller, addr, shutdown, server } =
        on_fakes::start(&azure, &github, &fakes, "127.0.0.1:0".parse().unwrap()).await;
    let vms = start_vms(azure.clone(), vmss_name, github.clone(), scope.clone(), addr);
    World {
        azure,
        github,
        _azurite: azurite,
        vmss: vmss_name.into(),
        scope,
        fakes,
        addr,
        controller,
        shutdown,
        server,
        vms,
    }
}

/// Watches the fake scale set and runs one VM task per running boot.
fn start_vms(azure: Arc<FakeAzure>, vmss: &str, github: Arc<FakeGithub>, scope: Scope, operator: SocketAddr) -> Vms {
    let stats = Arc::new(VmStats::default());
    let stop = CancellationToken::new();
    let vmss = vmss.to_owned();
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
                    azure.arm.instances(&vmss).into_iter().filter(|i| i.phase == InstancePhase::Running).collect();
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
                    let key = (boot.id.clone(), boot.generation);
                    if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(key) {
                        let in_job = Arc::new(AtomicBool::new(false));
                        let vm = vm(boot.ip, operator, github.clone(), scope.clone(), stats.clone(), in_job.clone());
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

/// One boot: what cloud-init and the hook scripts do.
async fn vm(
    ip: std::net::IpAddr,
    operator: SocketAddr,
    github: Arc<FakeGithub>,
    scope: Scope,
    stats: Arc<VmStats>,
    in_job: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder().local_address(ip).build().unwrap();
    let base = format!("http://{operator}/api/v1");
    let registration: serde_json::Value = loop {
        match client.post(format!("{base}/registration")).json(&json!({})).send().await {
            Ok(r) if r.status() == 200 => break r.json().await.unwrap(),
            Ok(r) if r.status() == 409 => {
                return;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let runner = match registration["mode"].as_str() {
        Some("jit") => github.start_runner_with_jit(registration["encoded_jit_config"].as_str().unwrap()),
        _ => github.register_runner_with_token(
            &scope,
            registration["token"].as_str().unwrap(),
            registration["runner_name"].as_str().unwrap(),
            &LABELS,
            true,
        ),
    };
    let Some(runner) = runner else { return };
    let job_id = loop {
        if let Some(job) = github.poll_job(runner) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    in_job.store(true, Ordering::SeqCst);
    let job = JobRef { repository: REPO.into(), run_id: job_id, run_attempt: 1, job_name: "build".into() };
    post(&client, &format!("{base}/hooks/job-started"), json!(job)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    post(&client, &format!("{base}/hooks/job-completed"), json!(job)).await;
    github.finish_job(runner);
    in_job.store(false, Ordering::SeqCst);
    stats.jobs_run.fetch_add(1, Ordering::SeqCst);
    stats.ran.lock().unwrap().push(job_id);
    post(&client, &format!("{base}/hooks/runner-exited"), json!({"exit_code": 0})).await;
    // Like boot.sh: repeat the report until the VM is recycled (an operator restarted
    // in between would not know otherwise).
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        post(&client, &format!("{base}/hooks/runner-exited"), json!({"exit_code": 0})).await;
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
    /// Stop the operator (SIGTERM: the pass in flight and started operations finish
    /// within the grace time) and start a new one on the same address, which knows
    /// nothing but what it recovers from the scale set, the queue and GitHub. Hard
    /// kills at any point are the in-process fault suite's (`tests/fault-suite`):
    /// inside one test process a task cannot be killed without letting its children run on.
    async fn restart(&mut self, downtime: Duration) {
        self.shutdown.cancel();
        let _ = (&mut self.server).await;
        tokio::time::sleep(downtime).await;
        let started = on_fakes::start(&self.azure, &self.github, &self.fakes, self.addr).await;
        self.controller = started.controller;
        self.shutdown = started.shutdown;
        self.server = started.server;
    }

    fn enqueue(&self, n: usize) {
        for _ in 0..n {
            self.github.enqueue_job(&self.scope, &LABELS);
        }
    }

    /// Wait until `jobs` jobs ran and the pool is back to `min` idle instances.
    async fn settle(&self, jobs: u32, min: usize, limit: Duration) {
        let started = Instant::now();
        loop {
            let states = self.controller.instance_states();
            let idle = states.iter().all(|(_, s)| *s == operator::model::InstanceState::Idle);
            if self.vms.stats.jobs_run.load(Ordering::SeqCst) >= jobs && states.len() == min && idle {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "not settled after {limit:?}: {} jobs run, states {states:?}",
                self.vms.stats.jobs_run.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(self) -> (Vec<String>, Arc<FakeAzure>, Arc<FakeGithub>, Arc<VmStats>) {
        self.vms.stop.cancel();
        let _ = self.vms.task.await;
        self.shutdown.cancel();
        let _ = self.server.await;
        let mut problems = Contract::load(Api::Compute).check_all(&self.azure.arm.exchanges());
        problems.extend(Contract::load(Api::KeyVaultSecrets).check_all(&self.azure.key_vault.exchanges()));
        problems.extend(Contract::load(Api::Imds).check_all(&self.azure.identity.exchanges()));
        problems.extend(Contract::load(Api::GithubRest).check_all(&self.github.exchanges()));
        (problems, self.azure, self.github, self.vms.stats)
    }
}

fn assert_clean(problems: &[String], stats: &VmStats) {
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
    assert_eq!(stats.busy_vm_killed.load(Ordering::SeqCst), 0, "a VM was deleted or reimaged while busy");
    let ran = stats.ran.lock().unwrap();
    assert_eq!(ran.len(), ran.iter().collect::<HashSet<_>>().len(), "a job ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_at_repository_scope_with_a_pat() {
    let w = world(false, Auth::Pat, Pool { min: 1, max: 4, pct: 50, running: 1 }, 21, "repo-pat").await;
    w.enqueue(3);
    w.settle(3, 1, Duration::from_secs(60)).await;
    let vmss = w.vmss.clone();
    let (problems, azure, github, stats) = w.finish().await;
    assert_clean(&problems, &stats);
    let writes = azure.arm.writes(&vmss);
    assert!(writes.set_capacity >= 1, "scaled out: {writes:?}");
    assert!(writes.reimage + writes.delete >= 1, "recycled: {writes:?}");
    assert_eq!(writes.throttled, 0, "stayed within Azure's write limit: {writes:?}");
    assert!(github.runners(&Scope::repo(REPO)).iter().all(|r| !r.busy()), "no runner left busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_at_organization_scope_with_a_github_app() {
    let w = world(true, Auth::App, Pool { min: 1, max: 4, pct: 50, running: 1 }, 22, "org-app").await;
    w.enqueue(3);
    w.settle(3, 1, Duration::from_secs(60)).await;
    let (problems, _azure, github, stats) = w.finish().await;
    assert_clean(&problems, &stats);
    assert!(github.jwts_accepted() >= 1 && github.installation_tokens_issued() >= 1, "App auth was used");
    assert!(
        github.installation_tokens_issued() < github.jwts_accepted() + 2,
        "installation tokens are cached, not fetched per call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_jobs_is_served_within_the_scale_set_write_budget() {
    let w = world(false, Auth::Pat, Pool { min: 2, max: 20, pct: 50, running: 2 }, 23, "burst").await;
    w.enqueue(50);
    w.settle(50, 2, Duration::from_secs(150)).await;
    let vmss = w.vmss.clone();
    let (problems, azure, _github, stats) = w.finish().await;
    assert_clean(&problems, &stats);
    let writes = azure.arm.writes(&vmss);
    // 50 job-started hooks written one by one would be 50 capacity writes; the burst
    // is coalesced into a few, and deletes and reimages are batched.
    assert!(writes.set_capacity < 25, "capacity writes for 50 jobs: {writes:?}");
    assert!(writes.total() < 50, "fewer scale-set writes than jobs: {writes:?}");
    // The operator's bucket and Azure's tick on different clocks, so a write can meet an
    // empty Azure bucket; one 429 realigns them (the budget pauses until Retry-After).
    assert!(writes.throttled <= 3, "the operator's budget kept it under the scale set's limit: {writes:?}");
    println!("burst of 50 jobs: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_survived() {
    let w = world(false, Auth::Pat, Pool { min: 1, max: 4, pct: 50, running: 1 }, 24, "throttle").await;
    w.azure.arm.inject(
        Some(ArmOp::SetCapacity),
        fake_azure::Fault::Throttle { retry_after: Duration::from_secs(1) },
        2,
    );
    w.azure.arm.inject(Some(ArmOp::ListVms), fake_azure::Fault::ServerError, 2);
    w.azure.arm.inject(Some(ArmOp::ReimageInstances), fake_azure::Fault::ServerError, 1);
    w.github.inject_matching(Some("POST"), Some("generate-jitconfig"), fake_github::Fault::Status(502), 1);
    w.enqueue(3);
    w.settle(3, 1, Duration::from_secs(90)).await;
    assert_eq!(w.azure.arm.pending_faults(), 0, "every injected fault was met");
    let metrics = w.controller.metrics().render();
    assert!(metrics.contains("vmss_runner_cloud_api_errors_total{api=\"scale_set\""), "{metrics}");
    let (problems, _azure, _github, stats) = w.finish().await;
    assert_clean(&problems, &stats);
}

/// The fault suite's HTTP tier (`tests/fault-suite` runs hundreds of seeds in-process):
/// a few seeds of random fault schedules through the real Resource Manager and GitHub
/// clients — 429 with Retry-After, 500/502, slow answers, vanished instances — while jobs
/// flow, and an operator restart at a random moment (recovery through the real clients). Reproduce one with `FAULT_SEEDS=N cargo test -p operator --test lifecycle seeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fault_schedules_through_the_real_clients() {
    use rand::{RngExt, SeedableRng};
    let seeds: Vec<u64> = match std::env::var("FAULT_SEEDS") {
        Ok(s) => s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let (org, auth) = if seed % 2 == 0 { (true, Auth::App) } else { (false, Auth::Pat) };
        let pool = Pool { min: 1, max: 5, pct: 50, running: 1 };
        let mut w = world(org, auth, pool, 30 + seed as u8, &format!("seeded-{seed}")).await;
        let restart_at = Duration::from_millis(rng.random_range(2_000..=8_000));
        let mut restarted = false;
        let jobs = rng.random_range(6..=12);
        let mut injected = 0;
        let mut enqueued = 0;
        let started = Instant::now();
        // Faults arrive for the first ten seconds while the jobs trickle in.
        while started.elapsed() < Duration::from_secs(10) {
            if enqueued < jobs && rng.random_bool(0.3) {
                w.enqueue(1);
                enqueued += 1;
            }
            if rng.random_bool(0.25) {
                injected += 1;
                let ops = [
                    ArmOp::ListVms,
                    ArmOp::ListNics,
                    ArmOp::SetCapacity,
                    ArmOp::DeleteInstances,
                    ArmOp::ReimageInstances,
                    ArmOp::GetScaleSet,
                ];
                let op = ops[rng.random_range(0..ops.len())];
                let fault = match rng.random_range(0..4) {
                    0 => fake_azure::Fault::Throttle { retry_after: Duration::from_secs(1) },
                    1 => fake_azure::Fault::ServerError,
                    2 => fake_azure::Fault::Slow(Duration::from_millis(400)),
                    // A 404 for instances (already gone) is routine; for the scale set
                    // itself it means it was deleted, which the operator treats as fatal.
                    _ if matches!(op, ArmOp::DeleteInstances | ArmOp::ReimageInstances) => fake_azure::Fault::NotFound,
                    _ => fake_azure::Fault::ServerError,
                };
                w.azure.arm.inject(Some(op), fault, 1);
            }
            if rng.random_bool(0.15) {
                injected += 1;
                let (method, path) = [
                    (Some("GET"), Some("runners")),
                    (Some("POST"), Some("generate-jitconfig")),
                    (Some("POST"), Some("registration-token")),
                    (Some("DELETE"), Some("runners/")),
                ][rng.random_range(0..4)];
                let fault = if rng.random_bool(0.5) {
                    fake_github::Fault::Status(502)
                } else {
                    fake_github::Fault::Delay(Duration::from_millis(300))
                };
                w.github.inject_matching(method, path, fault, 1);
            }
            if !restarted && started.elapsed() >= restart_at {
                restarted = true;
                w.restart(Duration::from_millis(rng.random_range(0..=1_500))).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if enqueued < jobs {
            w.enqueue((jobs - enqueued) as usize);
        }
        w.settle(jobs, 1, Duration::from_secs(120)).await;
        let busy = QueueBusyRecord::new(&w._azurite.queue_url(&format!("seeded-{seed}")), None).unwrap();
        let markers = operator::ports::BusyRecord::load(&busy).await.unwrap();
        assert!(markers.is_empty(), "seed {seed}: busy record not empty at the end: {markers:?}");
        println!(
            "seed {seed}: {jobs} jobs, {injected} faults scheduled, operator restarted at {restart_at:?}, settled in {:?}",
            started.elapsed()
        );
        let (problems, _azure, _github, stats) = w.finish().await;
        assert_clean(&problems, &stats);
        assert_eq!(stats.jobs_run.load(Ordering::SeqCst), jobs, "seed {seed}: every job ran once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_then_rotated_credential_needs_no_restart() {
    let w = world(false, Auth::Pat, Pool { min: 1, max: 2, pct: 0, running: 1 }, 25, "rotate").await;
    // The first VM registers with the original PAT and waits for a job.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.github.revoke("ghp_lifecycle_1");
    // Rotation: a new PAT at GitHub and in Key Vault. The next 401 makes the operator re-read it.
    w.github.add_pat("ghp_lifecycle_2");
    w.azure.key_vault.set_secret(on_fakes::CREDENTIAL_SECRET, "ghp_lifecycle_2");
    w.enqueue(3);
    w.settle(3, 1, Duration::from_secs(60)).await;
    let (problems, azure, _github, stats) = w.finish().await;
    assert_clean(&problems, &stats);
    assert!(azure.key_vault.reads() >= 2, "the credential was read again after the 401");
}
