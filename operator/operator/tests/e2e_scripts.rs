//! The project's proof that the pieces fit: the operator with its real clients (against
//! the Azure and GitHub fakes and Azurite) serves "VMs" that run the repository's real
//! boot and hook scripts (`vm/`, the files cloud-init writes and Packer bakes). Each VM
//! is a network namespace with the instance's own address on a private bridge, so the
//! operator recognises it by source address exactly as in the VNet; only the GitHub
//! runner is a test double (`tests/support/runner-double/run.sh`, `config.sh`).
//!
//! A burst of jobs flows through: scale-out, registration (JIT, or token + config.sh),
//! job hooks, runner exit, reimage or delete, scale-in. Every job must run exactly
//! once, no VM may be reimaged or deleted mid-job, the pool must end at `min`, and the
//! hooks must print nothing but their own log lines into the job log.
//!
//! Needs root (network namespaces); CI and the development machines run the test
//! command as root, and `scripts/install-apt-tools.sh` installs jq, curl and iproute2.

mod common;
mod script_vms;

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use common::on_fakes::{self, FakesConfig, OperatorOnFakes};
use contract::{Api, Contract};
use fake_azure::{ArmSettings, FakeAzure, IdentitySettings, InstancePhase, ScaleSetSpec, WriteLimit};
use fake_github::{FakeGithub, Scope};
use operator::{model::InstanceState, queue::QueueBusyRecord};
use script_vms::{netns::Bridge, VmSettings, Vms};
use test_support::Azurite;

const REPO: &str = "octo-org/octo-repo";
const LABELS: [&str; 2] = ["self-hosted", "linux"];
const VMSS: &str = "vmss-runners";

struct Burst {
    jobs: usize,
    min: u32,
    max: u32,
    /// `pool.parked`: VMs kept parked (deallocated) in reserve.
    parked: u32,
    jit: bool,
    queue: &'static str,
}

async fn run_burst(burst: Burst) {
    let started = Instant::now();
    let bridge = Arc::new(Bridge::create().unwrap_or_else(|e| {
        panic!("cannot create the test's network (needs root and iproute2; the test command runs as root): {e}")
    }));
    let host = IpAddr::V4(bridge.host_ip);

    let arm = ArmSettings {
        write_limit: Some(WriteLimit { burst: 12, refill_every: Duration::from_millis(1500) }),
        ..ArmSettings::default()
    };
    let azure = Arc::new(FakeAzure::start_with(IdentitySettings::default(), arm).await);
    let vmss_id = azure.arm.add_scale_set(ScaleSetSpec {
        ip_block: bridge.block,
        ip_first_octet: 10,
        computer_name_prefix: "vmssrun".into(),
        ..ScaleSetSpec::uniform(VMSS, burst.min)
    });
    // The operator calls GitHub's REST API on loopback; the runner doubles in the VMs
    // reach the fake's runner side on the bridge.
    let github = Arc::new(FakeGithub::start().await);
    let runner_side = github.serve_runner_side_on(host).await;
    github.add_pat("ghp_scripts_e2e");
    azure.key_vault.set_secret(on_fakes::CREDENTIAL_SECRET, "ghp_scripts_e2e");
    let azurite = Azurite::start();
    let queue_url = azurite.queue_url(burst.queue);
    QueueBusyRecord::new(&queue_url, None).unwrap().ensure_queue().await.unwrap();

    let fakes = FakesConfig {
        vmss_id,
        queue_url,
        scope_lines: format!("scope = {{ repository = \"{REPO}\" }}"),
        credential_extra: String::new(),
        jit: burst.jit,
        demand: "none",
        min: burst.min,
        max: burst.max,
        pct: 50,
    };
    // The operator listens on the bridge: the VMs' only way to the "scaler".
    let toml = on_fakes::config_toml(&azure, &github, &fakes)
        .replace("[pool]\n", &format!("[pool]\nparked = {}\n", burst.parked));
    let OperatorOnFakes { controller, addr: operator_addr, shutdown, server } =
        on_fakes::start_with_toml(&azure, &toml, SocketAddr::new(host, 0)).await;

    let work = tempfile::tempdir().unwrap();
    let vms = Vms::start(
        azure.clone(),
        VMSS,
        bridge.clone(),
        VmSettings {
            operator: operator_addr,
            fake_github_url: runner_side,
            job_seconds: 2,
            work_dir: work.path().to_owned(),
        },
    );

    let scope = Scope::repo(REPO);
    let enqueued: HashSet<u64> = (0..burst.jobs).map(|_| github.enqueue_job(&scope, &LABELS)).collect();

    // Settle: every job ran and the pool is back to `min` idle instances and its
    // reserve of parked ones.
    let limit = Duration::from_secs(100);
    let settled = loop {
        let ran = script_vms::outcome(work.path()).jobs.len();
        let states = controller.instance_states();
        let count = |state| states.iter().filter(|(_, s)| *s == state).count();
        let (idle, parked) = (count(InstanceState::Idle), count(InstanceState::Parked));
        if ran >= burst.jobs
            && (idle, parked) == (burst.min as usize, burst.parked as usize)
            && states.len() == idle + parked
        {
            break Ok(());
        }
        if started.elapsed() > limit {
            break Err(format!("not settled after {limit:?}: {ran} jobs ran, states {states:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Counted before stopping: the final teardown kills VMs, busy or not.
    let busy_touched = vms.busy_vm_touched.load(Ordering::SeqCst);
    let boots = vms.boots.load(Ordering::SeqCst);
    let stopped = vms.stop().await;
    shutdown.cancel();
    let _ = server.await;
    let outcome = script_vms::outcome(work.path());
    // For a look at every VM's journal after a run: E2E_SCRIPTS_LOG=/some/file.
    if let Ok(path) = std::env::var("E2E_SCRIPTS_LOG") {
        let _ = std::fs::write(path, &outcome.boot_logs);
    }
    if let Err(e) = settled.and(stopped) {
        panic!("{e}\n\nVM boot logs:\n{}", outcome.boot_logs);
    }

    // Every job ran exactly once, and succeeded (a failing hook would fail it).
    let ran: Vec<u64> = outcome.jobs.iter().map(|(id, _)| *id).collect();
    assert_eq!(ran.len(), ran.iter().collect::<HashSet<_>>().len(), "a job ran twice: {ran:?}");
    assert_eq!(ran.iter().copied().collect::<HashSet<_>>(), enqueued, "every enqueued job ran");
    assert!(outcome.jobs.iter().all(|(_, r)| r == "succeeded"), "jobs: {:?}", outcome.jobs);
    assert_eq!(busy_touched, 0, "a VM was reimaged or deleted while its job ran");

    // The pool ended at min, in the scale set too; the operator scaled out and recycled.
    let writes = azure.arm.writes(VMSS);
    let running = azure.arm.instances(VMSS).into_iter().filter(|i| i.phase == InstancePhase::Running).count();
    assert_eq!(running, burst.min as usize, "scale set back at min");
    assert!(writes.set_capacity >= 1, "scaled out: {writes:?}");
    assert!(writes.reimage + writes.delete >= 1, "recycled: {writes:?}");
    if burst.parked > 0 {
        // VMs were told to park (boot.sh says so), deallocated, and started for the burst.
        assert!(writes.deallocate >= 1 && writes.start >= 1, "parked and started: {writes:?}");
        assert!(outcome.boot_logs.contains("told to park"), "no boot.sh was told to park:\n{}", outcome.boot_logs);
        let deallocated =
            azure.arm.instances(VMSS).into_iter().filter(|i| i.phase == InstancePhase::Deallocated).count();
        assert_eq!(deallocated, burst.parked as usize, "the reserve is parked again at the end");
    }

    // The hooks reached the operator, each at least once per job. "repeated" counts too:
    // a reconcile pass may have seen the ephemeral runner gone at GitHub just before its
    // runner-exited (or job-completed) arrived, and boot.sh repeats runner-exited until
    // the VM is recycled.
    let metrics = controller.metrics().render();
    for kind in ["job_started", "job_completed", "runner_exited"] {
        let reached: f64 = ["applied", "repeated"]
            .iter()
            .map(|outcome| {
                counter(&metrics, &format!("vmss_runner_hooks_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"))
            })
            .sum();
        assert!(
            reached >= burst.jobs as f64,
            "{kind} reached the operator {reached} times for {} jobs:\n{metrics}",
            burst.jobs
        );
    }

    // Hook output is shown in the job log: nothing but the scripts' own log lines.
    assert!(outcome.job_log.iter().all(|l| is_script_log_line(l)), "unexpected job log lines: {:#?}", outcome.job_log);
    let reported = outcome.job_log.iter().filter(|l| l.contains("job-started reported")).count();
    assert!(reported >= burst.jobs, "job-started reported {reported} times: {:#?}", outcome.job_log);

    let mut problems = Contract::load(Api::Compute).check_all(&azure.arm.exchanges());
    problems.extend(Contract::load(Api::GithubRest).check_all(&github.exchanges()));
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
    println!(
        "script e2e ({}): {} jobs on {boots} VM boots in {:.1}s; scale-set writes {writes:?}",
        if burst.jit { "JIT" } else { "token + config.sh" },
        burst.jobs,
        started.elapsed().as_secs_f64()
    );
}

/// A line the VM scripts print: `<UTC timestamp> vmss-runner[<script>] <level>: <message>`.
fn is_script_log_line(line: &str) -> bool {
    let mut parts = line.splitn(3, ' ');
    let (Some(ts), Some(who), Some(_rest)) = (parts.next(), parts.next(), parts.next()) else { return false };
    ts.len() == 20 && ts.ends_with('Z') && who.starts_with("vmss-runner[job-")
}

fn counter(metrics: &str, series: &str) -> f64 {
    common::sample(metrics, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_burst_runs_through_the_real_vm_scripts_with_jit_registration() {
    run_burst(Burst { jobs: 8, min: 1, max: 4, parked: 0, jit: true, queue: "scripts-jit" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_registration_runs_config_sh_then_run_sh_through_the_real_vm_scripts() {
    run_burst(Burst { jobs: 3, min: 1, max: 3, parked: 0, jit: false, queue: "scripts-token" }).await;
}

/// The reserve through the real boot.sh: VMs told to park ask again until the fake
/// scale set deallocates them (which kills their boot), are started for the burst, boot
/// the same disk again and register like any VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_vms_are_started_for_a_burst_through_the_real_vm_scripts() {
    run_burst(Burst { jobs: 6, min: 1, max: 6, parked: 2, jit: true, queue: "scripts-parked" }).await;
}
