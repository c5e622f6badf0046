//! GitHub calls and scale-set writes of the operator in scale-set mode, through its real
//! clients against fake-azure, fake-github and Azurite, with the VM doubles of the
//! scale-set lifecycle test (`tests/common/scale_set.rs`). Printed figures, not
//! assertions: `cargo bench -p operator --bench scale_set`; results go in
//! docs/benchmarks.md.
//!
//! - **Calls per job**: a burst of 30 jobs on an empty pool, with production's
//!   reconcile period (30 s) and poll hold (50 s); every request the fake received, by
//!   endpoint, divided by the jobs.
//! - **REST quota at idle**: a settled pool of one idle runner for a window of real
//!   time with a 5 s reconcile period; the REST requests counted, then scaled to 30 s.
//! - **50-job burst**: an empty pool (`min = 0`, `max = 60`); the scale-set writes and
//!   the wall time from queuing the jobs to every job having a runner, with fake-azure's
//!   boot delay stated.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::scale_set::{capacity_writes, rest_by_endpoint, scaleset_by_endpoint, world, Options, World, VMSS};

/// fake-github's GetMessage hold and the operator's reconcile period in production.
const PRODUCTION_POLL_HOLD: Duration = Duration::from_secs(50);
const PRODUCTION_PERIOD_SECS: f64 = 30.0;

fn print_breakdown(title: &str, map: &BTreeMap<String, usize>, per: f64) {
    println!("  {title}:");
    for (endpoint, n) in map {
        println!("    {n:>5}  {:>6.2}/job  {endpoint}", *n as f64 / per);
    }
}

/// Which of the three kinds of the target a scale-set endpoint is.
fn kind(endpoint: &str) -> &'static str {
    if endpoint.contains("generatejitconfig") {
        "jit config"
    } else if endpoint.contains("/agents/") && endpoint.starts_with("DELETE") {
        "runner removal"
    } else if endpoint.contains("/messages") || endpoint.contains("acquirejobs") {
        "polls, acks, acquisitions"
    } else {
        "set-up (token, set, session)"
    }
}

async fn calls_per_job(jobs: usize) {
    let options = Options {
        max: jobs as u32 + 10,
        poll_hold: PRODUCTION_POLL_HOLD,
        period: "30s",
        ..Options::new("bench-calls", 51)
    };
    let w = world(options).await;
    w.listening(Duration::from_secs(30)).await;
    w.queue(jobs);
    w.settle(jobs as u32, 0, Duration::from_secs(300)).await;
    let f = w.finish().await;
    common::scale_set::assert_clean(&f);
    let rest = rest_by_endpoint(&f.github.exchanges());
    let scaleset = scaleset_by_endpoint(&f.github);
    let (rest_total, scaleset_total): (usize, usize) = (rest.values().sum(), scaleset.values().sum());
    let per = jobs as f64;
    println!(
        "calls-per-job burst={jobs} (period 30s, poll hold 50s): total={} ({:.2}/job): REST {rest_total} ({:.2}/job), scale set API {scaleset_total} ({:.2}/job)",
        rest_total + scaleset_total,
        (rest_total + scaleset_total) as f64 / per,
        rest_total as f64 / per,
        scaleset_total as f64 / per,
    );
    print_breakdown("REST", &rest, per);
    print_breakdown("scale set API", &scaleset, per);
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (endpoint, n) in &scaleset {
        *kinds.entry(kind(endpoint)).or_default() += n;
    }
    println!("  scale set API by kind:");
    for (k, n) in &kinds {
        println!("    {n:>5}  {:>6.2}/job  {k}", *n as f64 / per);
    }
    let per_job_kinds: usize = ["jit config", "runner removal", "polls, acks, acquisitions"]
        .iter()
        .map(|k| kinds.get(k).copied().unwrap_or(0))
        .sum();
    let target = per_job_kinds as f64 / per;
    println!(
        "  target <= 3 per job (JIT config + removal + amortised polls/acks): {target:.2}/job -> {}; with REST and set-up: {:.2}/job -> {}",
        if target <= 3.0 { "holds" } else { "missed" },
        (rest_total + scaleset_total) as f64 / per,
        if (rest_total + scaleset_total) as f64 / per <= 3.0 { "holds" } else { "missed" },
    );
}

async fn settled_idle_pool(window: Duration) -> World {
    let options =
        Options { min: 1, max: 2, poll_hold: PRODUCTION_POLL_HOLD, period: "5s", ..Options::new("bench-idle", 52) };
    let w = world(options).await;
    w.listening(Duration::from_secs(30)).await;
    w.settle(0, 1, Duration::from_secs(60)).await;
    // One more period so the pass after the settle is not in the window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rest_before = w.github.exchanges().len();
    let scaleset_before = w.github.scaleset_requests().len();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let exchanges = w.github.exchanges();
    let window_rest = &exchanges[rest_before..];
    let not_modified = window_rest.iter().filter(|e| e.status == 304).count();
    let charged = window_rest.len() - not_modified;
    let rest = rest_by_endpoint(window_rest);
    let requests = w.github.scaleset_requests();
    let scaleset = common::scale_set::by_endpoint(
        requests[scaleset_before..].iter().map(|r| (r.method.as_str(), r.path.as_str())),
    );
    // Scaled: requests per second at a 5 s period, times 5/30 for the 30 s period, times 3600.
    let scale = 3600.0 / elapsed * (5.0 / PRODUCTION_PERIOD_SECS);
    println!(
        "rest-at-idle window={elapsed:.0}s period=5s: {} REST requests ({charged} charged, {not_modified} answered 304) -> at period 30s: {:.0}/h requests, {:.0}/h charged to the quota",
        window_rest.len(),
        window_rest.len() as f64 * scale,
        charged as f64 * scale,
    );
    for (endpoint, n) in &rest {
        println!("    {n:>5}  {:>7.0}/h at 30s  {endpoint}", *n as f64 * scale);
    }
    println!("  scale set API in the window (not REST quota; poll hold 50 s, not scaled):");
    for (endpoint, n) in &scaleset {
        println!("    {n:>5}  {:>7.0}/h  {endpoint}", *n as f64 * 3600.0 / elapsed);
    }
    w
}

async fn burst_of_50(boot_delay: Duration) {
    const JOBS: usize = 50;
    let options = Options {
        max: 60,
        boot_delay,
        poll_hold: PRODUCTION_POLL_HOLD,
        period: "30s",
        job_time: Duration::from_secs(2),
        ..Options::new("bench-burst", 53)
    };
    let w = world(options).await;
    w.listening(Duration::from_secs(30)).await;
    let started = Instant::now();
    w.queue(JOBS);
    let mut first_write = None;
    let all_have_runners = loop {
        if first_write.is_none() && w.azure.arm.capacity(VMSS) > 0 {
            first_write = Some(started.elapsed());
        }
        if w.github.scaleset_jobs().iter().all(|j| j.runner_id.is_some()) {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "jobs without a runner after 5 min");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let writes_to_serve = w.azure.arm.writes(VMSS);
    let capacities = capacity_writes(&w.azure);
    w.settle(JOBS as u32, 0, Duration::from_secs(300)).await;
    let total = started.elapsed();
    let f = w.finish().await;
    common::scale_set::assert_clean(&f);
    let writes = f.azure.arm.writes(VMSS);
    println!(
        "burst-50 min=0 max=60 boot_delay={boot_delay:?}: every job had a runner after {:.2}s (first capacity write seen after {:.2}s); \
         scale-set writes until then: {} ({} capacity, values {capacities:?}); until back at 0 ({:.1}s): {} ({} capacity, {} delete, {} reimage, {} throttled)",
        all_have_runners.as_secs_f64(),
        first_write.unwrap_or_default().as_secs_f64(),
        writes_to_serve.total(),
        writes_to_serve.set_capacity,
        total.as_secs_f64(),
        writes.total(),
        writes.set_capacity,
        writes.delete,
        writes.reimage,
        writes.throttled,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this bench has no test cases.
    }
    let idle_secs: u64 = std::env::var("SCALE_SET_BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!(
            "operator scale-set benchmarks on {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        calls_per_job(30).await;
        let idle = settled_idle_pool(Duration::from_secs(idle_secs)).await;
        drop(idle.finish().await);
        burst_of_50(Duration::from_millis(300)).await;
        burst_of_50(Duration::from_secs(3)).await;
    });
}
