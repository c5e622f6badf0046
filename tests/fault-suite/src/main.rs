//! Reproduce fault-suite runs: `fault-suite --seed 1234` runs one seed with its
//! log; `fault-suite --seeds 0..200` runs a range and prints the summary line.

use clap::Parser;
use fault_suite::{run_scenario, scenario::Scenario};

#[derive(Parser)]
#[command(about = "Run the operator's deterministic fault suite")]
struct Args {
    /// Run one seed and print its scenario, log and violations.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, e.g. `0..200`.
    #[arg(long, default_value = "0..200")]
    seeds: String,
    /// Run the seeds' scenarios without faults (the bare bounds, no allowance).
    #[arg(long)]
    fault_free: bool,
}

/// Log timestamps in simulated time since the run began (the runtime's paused clock).
#[derive(Default)]
struct SimulatedClock(std::sync::OnceLock<tokio::time::Instant>);

impl tracing_subscriber::fmt::time::FormatTime for SimulatedClock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let start = *self.0.get_or_init(tokio::time::Instant::now);
        write!(w, "t={:>6.1}s", tokio::time::Instant::now().duration_since(start).as_secs_f64())
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            .with_ansi(false)
            .with_timer(SimulatedClock::default())
            .init();
        let scenario = if args.fault_free { Scenario::draw(seed).without_faults() } else { Scenario::draw(seed) };
        println!("{scenario:#?}");
        let outcome = run_scenario(scenario);
        println!("{outcome:#?}");
        return if outcome.violations.is_empty() { 0.into() } else { 1.into() };
    }
    let Some((from, to)) = args.seeds.split_once("..").and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
    else {
        eprintln!("--seeds wants a range like 0..200");
        return 2.into();
    };
    let summary = if args.fault_free {
        fault_suite::run_many_with(from..to, |seed| Scenario::draw(seed).without_faults())
    } else {
        fault_suite::run_many(from..to)
    };
    println!("{summary}");
    if summary.violations == 0 {
        0.into()
    } else {
        1.into()
    }
}
