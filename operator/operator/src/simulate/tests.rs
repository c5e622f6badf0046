use std::time::Duration;

use operator_sim::workload::{TraceJob, Workload};

use super::{prices::Prices, quantile, report, run_setting, Setting};

fn workload(jobs: &[(f64, f64)]) -> Workload {
    Workload::new(
        jobs.iter()
            .map(|&(arrival, duration)| TraceJob {
                arrival: 1_700_000_000.0 + arrival,
                duration,
                labels: vec!["self-hosted".into(), "linux".into()],
                name: String::new(),
            })
            .collect(),
    )
    .unwrap()
}

fn one_vm() -> Setting {
    Setting { min: 1, max: 4, free_target_percentage: 0, ..Setting::default() }
}

#[test]
fn a_job_arriving_at_a_warm_pool_waits_at_most_one_runner_poll() {
    // The first job marks the start; the one that matters arrives an hour later, when
    // the pool's one VM has long been idle.
    let w = workload(&[(0.0, 1.0), (3600.0, 600.0)]);
    let out = run_setting(&w, &one_vm());
    assert!(out.waits[1] <= Duration::from_secs(5), "waited {:?}", out.waits[1]);
    assert_eq!(out.busy_time, Duration::from_secs(601));
    assert_eq!(out.throttled_total(), 0);
    assert_eq!(out.busy_vm_killed, 0);
}

#[test]
fn one_vm_that_is_only_ever_reimaged_costs_exactly_the_horizon() {
    // min 1, free target 0: one VM, created at the start and reimaged after each job.
    let w = workload(&[(600.0, 300.0), (3000.0, 300.0)]);
    let out = run_setting(&w, &one_vm());
    assert_eq!(out.capacity_writes, 1, "capacity raised once, to min");
    assert_eq!(out.delete_writes, 0);
    // Reimaged after the first job; the run ends when the last job does.
    assert_eq!(out.reimage_writes, 1);
    // Every second of the run, one VM existed; it ran jobs for 600 s of them.
    assert_eq!(out.vm_time, out.horizon);
    assert_eq!(out.idle_time(), out.horizon - Duration::from_secs(600));
    // Nothing parks: the idle cost is the idle VM-hours at the running price.
    assert_eq!(out.parked_time, Duration::ZERO);
    let prices = Prices { currency: "EUR".into(), running_per_hour: 0.36, parked_per_hour: 0.01 };
    let idle_hours = out.idle_time().as_secs_f64() / 3600.0;
    assert!((out.idle_cost(&prices, false) - idle_hours * 0.36).abs() < 1e-9);
    assert!((out.total_cost(&prices, false) - out.horizon.as_secs_f64() / 3600.0 * 0.36).abs() < 1e-9);
}

#[test]
fn a_burst_is_served_within_azures_throttling_limits() {
    let jobs: Vec<(f64, f64)> = (0..50).map(|i| (600.0 + f64::from(i), 900.0)).collect();
    let out = run_setting(&workload(&jobs), &Setting { min: 2, max: 20, ..Setting::default() });
    assert_eq!(out.waits.len(), 50);
    assert_eq!(out.throttled_total(), 0, "{:?}", out.throttled);
    assert!(out.max_writes_in_a_minute <= 12, "{}", out.max_writes_in_a_minute);
    assert!(out.peak_pool <= 20);
    assert_eq!(out.busy_time, Duration::from_secs(50 * 900));
}

#[test]
fn the_same_trace_and_setting_print_the_same_bytes() {
    let jobs: Vec<(f64, f64)> =
        (0..40).map(|i| (f64::from(i * i % 97) * 30.0, 120.0 + f64::from(i % 7) * 60.0)).collect();
    let w = workload(&jobs);
    let setting = Setting { min: 1, max: 10, free_target_percentage: 50, ..Setting::default() };
    let print = || {
        let out = run_setting(&w, &setting);
        let b = report::Baselines::of(&w, &setting, &out);
        let prices = Prices::default();
        format!(
            "{}{}{}{:?}",
            report::workload_summary(&w),
            report::outcome_summary(&setting, &out, &prices),
            report::baselines_summary(&setting, &out, &b, &prices),
            out.timeline
        )
    };
    let first = print();
    assert_eq!(first, print());
    assert!(first.contains("job wait: p50"), "{first}");
    assert!(first.contains("start 45s") && first.contains("  cost: idle USD "), "{first}");
}

#[test]
fn quantiles_take_the_nearest_rank() {
    let v: Vec<Duration> = (1..=20).map(Duration::from_secs).collect();
    assert_eq!(quantile(&v, 0.5), Duration::from_secs(10));
    assert_eq!(quantile(&v, 0.95), Duration::from_secs(19));
    assert_eq!(quantile(&v, 1.0), Duration::from_secs(20));
    assert_eq!(quantile(&[], 0.5), Duration::ZERO);
}

#[test]
fn a_parked_reserve_serves_a_lone_job_after_a_start_and_bills_its_disk_while_parked() {
    // The first job marks the start; an hour later one job arrives at a pool of no warm
    // VM and one parked: it waits for the start (45 s) and the boot script, not a boot.
    let w = workload(&[(0.0, 60.0), (3600.0, 600.0)]);
    let setting = Setting { min: 0, max: 10, free_target_percentage: 0, parked: 1, demand: true, ..Setting::default() };
    let out = run_setting(&w, &setting);
    assert!(out.waits[1] >= setting.start && out.waits[1] < setting.boot, "waited {:?}", out.waits[1]);
    assert!(out.start_writes >= 1 && out.deallocate_writes >= 1, "{out:?}");
    // Most of the hour the reserve's VM sat deallocated.
    assert!(out.parked_time > Duration::from_secs(45 * 60), "{:?}", out.parked_time);
    let prices = Prices { currency: "EUR".into(), running_per_hour: 0.2, parked_per_hour: 0.01 };
    let (idle, parked) = (out.idle_time().as_secs_f64() / 3600.0, out.parked_time.as_secs_f64() / 3600.0);
    assert!((out.idle_cost(&prices, setting.parks()) - (idle * 0.21 + parked * 0.01)).abs() < 1e-9);
    assert_eq!(out.busy_vm_killed, 0);
}

/// `operator simulate --trace <jobs> <args>` on a trace of `jobs` five-minute jobs, one every
/// 6 hours: what it printed, or why it failed.
fn simulate_every_six_hours(jobs: u32, args: &[&str]) -> Result<String, super::command::SimulateError> {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let lines: String = (0..jobs)
        .map(|i| format!("{{\"arrival\": {}, \"duration\": 300}}\n", 1_750_000_000 + u64::from(i) * 6 * 3600))
        .collect();
    std::fs::write(&trace, lines).unwrap();
    let mut argv = vec!["operator", "simulate", "--trace", trace.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
    let crate::cli::Command::Simulate(args) = cli.command else { panic!("simulate") };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    super::command::run(&args, &mut out, &mut err).map(|()| String::from_utf8(out).unwrap())
}

#[test]
fn a_window_replays_only_its_jobs_and_the_learned_mode_is_seeded_from_the_jobs_before_it() {
    // 20 days of one job every 6 hours.
    let out =
        simulate_every_six_hours(80, &["--last", "7d", "--learned", "--scale-set", "--min", "0", "--free-target", "0"])
            .unwrap();
    // 7 days of one job every 6 hours, both ends in: 29 jobs; the 51 before are the history.
    assert!(out.contains("window: the last 7 days") && out.contains(": 29 jobs over 7.0 days"), "{out}");
    assert!(out.contains("; 51 jobs before it"), "{out}");
    assert!(out.contains("learned default tuning, seeded from 12.5 days before"), "{out}");
}

#[test]
fn the_learned_tuning_options_reach_the_model_and_bad_ones_are_refused_by_name() {
    let run = |extra: &[&str]| {
        let mut args = vec!["--last", "3d", "--learned"];
        args.extend_from_slice(extra);
        simulate_every_six_hours(40, &args)
    };
    let out = run(&["--learned-slot", "1h", "--learned-burst-window", "3m", "--learned-warm-quantile", "0.5"]).unwrap();
    assert!(out.contains("learned tuning warm q 0.5, burst window 3m, slot 1h, seeded from"), "{out}");
    let err = run(&["--learned-slot", "7m", "--learned-burst-window", "10s"]).unwrap_err();
    let text = crate::report::chain(&err);
    assert!(
        text.contains("--learned-slot: slot (420s)") && text.contains("--learned-burst-window: burst_window"),
        "{text}"
    );
    let without = <crate::cli::Cli as clap::Parser>::try_parse_from([
        "operator",
        "simulate",
        "--trace",
        "t",
        "--learned-slot",
        "1h",
    ]);
    assert!(without.is_err(), "a tuning option without --learned is refused");
}
