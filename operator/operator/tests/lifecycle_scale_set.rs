//! The operator in scale-set mode (`github.demand = "scale_set"`) with its real clients —
//! Resource Manager, Key Vault, managed identity, GitHub REST, the runner scale set API,
//! Storage Queue — against fake-azure, fake-github and Azurite, with VM doubles that
//! register with a JIT config from the scale set and run the jobs the Actions service
//! assigns them. Every exchange, the scale set API's included, is checked against its
//! contract at the end.

mod common;

use std::time::{Duration, Instant};

use common::scale_set::{
    assert_clean, capacity_writes, count, rest_by_endpoint, scaleset_by_endpoint, world, Auth, Finished, Options, World,
};
use fake_github::{JobFlow, JobPhase};
use operator::queue::QueueBusyRecord;

/// Jobs queued at once on an empty pool.
const BURST: usize = 5;

/// Queue the burst once the listener listens, and wait for the pool to serve it and
/// return to zero.
async fn burst_on_an_empty_pool(w: &World) {
    w.listening(Duration::from_secs(30)).await;
    w.queue(BURST);
    w.settle(BURST as u32, 0, Duration::from_secs(90)).await;
}

/// What every case asserts at its end.
fn assert_served_through_the_scale_set(f: &Finished, jobs: usize) {
    assert_clean(f);
    let ran = f.stats.ran.lock().unwrap().len();
    assert_eq!(ran, jobs, "every job ran once");
    let scale_set_jobs = f.github.scaleset_jobs();
    assert_eq!(scale_set_jobs.len(), jobs);
    for job in &scale_set_jobs {
        assert_eq!(job.phase, JobPhase::Completed, "{job:?}");
        assert_eq!(job.result.as_deref(), Some("succeeded"), "{job:?}");
        assert_eq!(job.reassignments, 0, "no assignment timed out: {job:?}");
    }
    let scaleset = scaleset_by_endpoint(&f.github);
    let rest = rest_by_endpoint(&f.github.exchanges());
    assert!(
        count(&scaleset, "POST /tenant/{id}/_apis/runtime/runnerscalesets/{id}/generatejitconfig") >= jobs,
        "JIT configs from the scale set: {scaleset:#?}"
    );
    assert_eq!(count(&rest, "generate-jitconfig"), 0, "no REST JIT config: {rest:#?}");
    assert_eq!(count(&rest, "DELETE"), 0, "no runner removed through REST: {rest:#?}");
    // Every runner is gone: ephemeral ones after their job, any other through the scale set API.
    let runners = f.github.runners(&f.scope);
    assert!(runners.is_empty(), "runners left: {runners:?}");
    assert!(f.github.scaleset_sessions().is_empty(), "the session was closed at shutdown");
    println!("scale set requests: {scaleset:#?}\nREST requests: {rest:#?}");
}

/// The operator's own metrics count what the scale set API saw: the same JIT configs and
/// message deletions (none is in flight once the pool has settled), and at least every
/// message poll the fake answered (the last long poll may be cut by the shutdown). For one
/// operator process: a restarted one counts from zero.
fn assert_the_metrics_count_the_scale_set_api(f: &Finished, jobs: usize) {
    let scaleset = scaleset_by_endpoint(&f.github);
    let operator_count = |series: &str| {
        common::sample(&f.metrics, series).unwrap_or_else(|| panic!("{series}:\n{}", f.metrics)) as usize
    };
    let requests = |endpoint: &str| {
        operator_count(&format!("vmss_runner_scale_set_api_requests_total{{endpoint=\"{endpoint}\"}}"))
    };
    let seen = |key: &str| scaleset.get(key).copied().unwrap_or(0);
    let sets = "/tenant/{id}/_apis/runtime/runnerscalesets/{id}";
    assert_eq!(requests("generate_jit_config"), seen(&format!("POST {sets}/generatejitconfig")), "{scaleset:#?}");
    assert_eq!(requests("delete_message"), seen(&format!("DELETE {sets}/messages/{{id}}")), "{scaleset:#?}");
    assert!(requests("get_message") >= seen(&format!("GET {sets}/messages")), "{scaleset:#?}\n{}", f.metrics);
    let issued = r#"vmss_runner_scale_set_api_calls_total{endpoint="generate_jit_config",outcome="ok"}"#;
    assert!(operator_count(issued) >= jobs, "{}", f.metrics);
}

/// The pool went from 0 to the whole burst and its spare (the 20 % free target) with
/// one capacity write, and back to zero (`settle`) by deletions; every runner the scale
/// set issued is gone: the spare's unused one removed through the scale set API before
/// its VM went, the ones that ran a job removed by GitHub itself.
fn assert_one_step_to_the_burst(f: &Finished, max: u32) {
    let writes = capacity_writes(&f.azure);
    assert_eq!(writes.len(), 1, "one capacity write: {writes:?}");
    assert!(writes[0] > BURST as u32 && writes[0] <= max, "it covers the burst and a spare: {writes:?}");
    let counts = f.azure.arm.writes(common::scale_set::VMSS);
    assert_eq!(counts.throttled, 0, "within Azure's write limit: {counts:?}");
    assert!(counts.delete >= 1, "recycled by deletion: {counts:?}");
    let scaleset = scaleset_by_endpoint(&f.github);
    let removed = count(&scaleset, "DELETE /tenant/{id}/_apis/distributedtask/pools/{id}/agents/{id}");
    let issued = count(&scaleset, "generatejitconfig");
    // Runners that ran their job are gone at GitHub (ephemeral): removing them again is a
    // wasted call, so only the others (the spare's unused runner) are removed, through the
    // scale set API. No runner is left either way (`assert_served_through_the_scale_set`).
    assert!(removed >= issued - BURST, "the unused runners removed: {removed} of {issued} issued: {scaleset:#?}");
    assert!(removed < issued, "finished runners are not removed again: {removed} of {issued}: {scaleset:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_repository_scope_with_a_pat_grows_an_empty_pool_in_one_step_and_back_to_zero() {
    let w = world(Options { pct: 20, ..Options::new("ss-repo-pat", 41) }).await;
    burst_on_an_empty_pool(&w).await;
    let f = w.finish().await;
    assert_served_through_the_scale_set(&f, BURST);
    assert_the_metrics_count_the_scale_set_api(&f, BURST);
    assert_one_step_to_the_burst(&f, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_organization_scope_with_a_github_app_in_a_runner_group_on_ghes_is_acquired_and_served() {
    let options =
        Options { org: true, auth: Auth::App, flow: JobFlow::Ghes, pct: 20, ..Options::new("ss-org-app", 42) };
    let w = world(options).await;
    burst_on_an_empty_pool(&w).await;
    let group = w.runner_group_id.expect("organization scope");
    let sets = w.github.scaleset_sets();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].flow, JobFlow::Ghes);
    let f = w.finish().await;
    assert_eq!(sets[0].runner_group_id, group, "the set is in the named runner group: {sets:?}");
    assert_served_through_the_scale_set(&f, BURST);
    assert_the_metrics_count_the_scale_set_api(&f, BURST);
    assert_one_step_to_the_burst(&f, 10);
    let scaleset = scaleset_by_endpoint(&f.github);
    assert!(count(&scaleset, "acquirejobs") >= 1, "offered jobs were acquired: {scaleset:#?}");
    assert!(f.github.jwts_accepted() >= 1 && f.github.installation_tokens_issued() >= 1, "App auth was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restarted_mid_burst_opens_its_session_without_a_conflict_and_runs_every_job_once() {
    const JOBS: usize = 8;
    let mut w =
        world(Options { max: 12, job_time: Duration::from_millis(1500), ..Options::new("ss-restart", 43) }).await;
    w.listening(Duration::from_secs(30)).await;
    w.queue(JOBS);
    // Mid-burst: jobs running on their VMs.
    let started = Instant::now();
    while !w.github.scaleset_jobs().iter().any(|j| j.phase == JobPhase::Running) {
        assert!(started.elapsed() < Duration::from_secs(60), "no job started within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = w.jobs_run();
    w.restart(Duration::from_millis(300)).await;
    w.listening(Duration::from_secs(30)).await;
    w.settle(JOBS as u32, 0, Duration::from_secs(120)).await;
    let busy = QueueBusyRecord::new(&w.azurite.queue_url(&w.options.queue), None).unwrap();
    let markers = operator::ports::BusyRecord::load(&busy).await.unwrap();
    assert!(markers.is_empty(), "busy record not empty at the end: {markers:?}");
    let f = w.finish().await;
    assert!((before as usize) < JOBS, "the restart came mid-burst ({before} of {JOBS} jobs had run)");
    assert_served_through_the_scale_set(&f, JOBS);
    let sessions: Vec<u16> = f
        .github
        .scaleset_exchanges()
        .iter()
        .filter(|e| e.method == "POST" && e.path.split('?').next().unwrap_or("").ends_with("/sessions"))
        .map(|e| e.status)
        .collect();
    assert_eq!(sessions.len(), 2, "one session per operator, no conflict: {sessions:?}");
    assert!(sessions.iter().all(|s| *s == 200), "no 409: {sessions:?}");
}
