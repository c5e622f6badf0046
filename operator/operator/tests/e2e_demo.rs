//! The whole operator — server, controller, loop — with simulated VMs calling the
//! real HTTP endpoints: a burst of jobs flows through and the pool settles at min.

use std::time::Duration;

use operator::demo::{run_demo, DemoOptions};

async fn run(opts: DemoOptions) -> (operator::demo::DemoSummary, String) {
    let mut out = Vec::new();
    let summary = run_demo(opts, &mut out).await.expect("the demo settles");
    (summary, String::from_utf8(out).unwrap())
}

fn quick(jit: bool, seed: u64) -> DemoOptions {
    DemoOptions {
        jobs: 24,
        min: 2,
        max: 10,
        free_target_percentage: 50,
        jit,
        demand: false,
        seed,
        arrival_window: Duration::from_secs(4),
        job_duration: (Duration::from_secs(2), Duration::from_secs(5)),
        deadline: Duration::from_secs(120),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_jobs_runs_each_job_once_and_the_pool_returns_to_min() {
    let (s, out) = run(quick(true, 11)).await;
    assert_eq!(s.jobs_completed, 24, "{out}");
    assert_eq!(s.jobs_assigned_twice, 0, "{out}");
    assert_eq!(s.busy_vm_killed, 0, "no VM touched while busy:\n{out}");
    assert_eq!(s.final_instances, 2, "{out}");
    assert!(s.peak_instances > 4 && s.peak_instances <= 10, "scaled out within max: {out}");
    assert!(s.writes.reimage + s.writes.delete > 0, "{out}");
    assert!(out.contains("summary: 24 jobs completed of 24"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_token_mode_works_end_to_end() {
    let (s, out) = run(quick(false, 5)).await;
    assert_eq!((s.jobs_completed, s.busy_vm_killed, s.final_instances), (24, 0, 2), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_scale_set_demand_an_empty_pool_grows_to_the_burst_in_one_step_and_back_to_zero() {
    let opts = DemoOptions { min: 0, max: 20, free_target_percentage: 20, demand: true, ..quick(true, 3) };
    let (s, out) = run(opts).await;
    assert_eq!((s.jobs_completed, s.jobs_assigned_twice, s.busy_vm_killed), (24, 0, 0), "{out}");
    assert_eq!(s.final_instances, 0, "back to zero: {out}");
    // Half the jobs (12) arrive at once: the first scale-out covers all of them.
    let first = out.lines().find(|l| l.contains("scale out 0 -> ")).expect("a scale-out from zero");
    let to: u32 = first
        .split("scale out 0 -> ")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(to >= 12, "one step to the burst, not one VM per boot: {first}\n{out}");
    assert!(out.contains("job wait for a runner: p50"), "{out}");
    assert!(s.scale_set_api_calls > 0, "{out}");
}
