//! Issue 4's proof: at least 200 seeds of randomized faults against the real
//! reconcile loop and policy, every invariant checked, the figure printed.
//! A failing seed is reproduced with `cargo run -p fault-suite -- --seed N`.

use fault_suite::{run_many, run_scenario, run_seed, scenario::Scenario};

/// How many seeds the test command runs (override with FAULT_SUITE_SEEDS for a longer soak).
fn seeds() -> u64 {
    std::env::var("FAULT_SUITE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
}

#[test]
fn two_hundred_seeds_of_faults_break_no_invariant() {
    let summary = run_many(0..seeds());
    println!("{summary}");
    assert!(summary.runs >= 200 || std::env::var("FAULT_SUITE_SEEDS").is_ok());
    assert!(summary.faults > summary.runs, "faults were injected: {summary}");
    assert!(summary.kills > 0, "the operator was killed in some runs: {summary}");
    assert_eq!(summary.violations, 0, "{summary}");
}

/// Seeds that once found a bug (see docs/fault-suite.md for what each found).
const REGRESSION_SEEDS: &[u64] = &[];

#[test]
fn regression_seeds_stay_fixed() {
    for &seed in REGRESSION_SEEDS {
        let outcome = run_seed(seed);
        assert!(outcome.violations.is_empty(), "seed {seed}: {:?}", outcome.violations);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let (a, b) = (run_seed(17), run_seed(17));
    assert_eq!((a.faults, a.kills, a.simulated, a.worst_wait), (b.faults, b.kills, b.simulated, b.worst_wait));
}

#[test]
fn without_faults_every_promised_job_starts_within_boot_latency_and_two_periods() {
    for seed in 0..20 {
        let outcome = run_scenario(Scenario::draw(seed).without_faults());
        assert_eq!(outcome.faults, 0);
        assert!(outcome.violations.is_empty(), "seed {seed}: {:?}", outcome.violations);
    }
}
