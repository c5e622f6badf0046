//! `operator simulate` as a command: read the trace, the price table and the window, run
//! one setting, a sweep or the goal run, print the figures, and write the report page and
//! the plot. Standard output depends only on the inputs; wall times and the progress bar
//! go to standard error.

use std::{io::Write, path::PathBuf, time::Instant};

use operator_sim::workload::{Workload, WorkloadError};

use super::{
    goal, html,
    prices::{Prices, PricesError},
    report, run_setting,
    sweep::{self, Axes},
    window::{self, Window},
    Mode, Setting,
};
use crate::{cli::SimulateArgs, targets::LearnedParams};

/// Why a simulation could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("reading the trace {path} failed")]
    Trace {
        path: PathBuf,
        #[source]
        source: WorkloadError,
    },
    #[error("reading the price table {path} failed")]
    Prices {
        path: PathBuf,
        #[source]
        source: PricesError,
    },
    #[error("the trace window is invalid: {0}")]
    Window(String),
    #[error("the trace window {0} holds no job")]
    EmptyWindow(String),
    #[error("writing {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the summary failed")]
    Output(#[source] std::io::Error),
    #[error("the learned tuning is invalid: {0}")]
    LearnedTuning(String),
    #[error("the simulation found a VM removed while its job ran")]
    BusyVmRemoved,
}

/// The setting the options name.
pub fn setting_of(args: &SimulateArgs) -> Setting {
    Setting {
        min: args.min,
        max: args.max,
        free_target_percentage: args.free_target,
        scale_in_delay: args.scale_in_delay,
        boot: args.boot,
        reimage: args.reimage,
        start: args.start,
        parked: args.parked,
        demand: args.scale_set,
        mode: Mode::Fixed,
    }
}

/// The learned tuning the `--learned-*` options name, the defaults elsewhere.
pub fn learned_params_of(args: &SimulateArgs) -> Result<LearnedParams, SimulateError> {
    let default = LearnedParams::default();
    let params = LearnedParams {
        slot: args.learned_slot.unwrap_or(default.slot),
        half_life: args.learned_half_life.unwrap_or(default.half_life),
        history_weeks: args.learned_history_weeks.unwrap_or(default.history_weeks),
        warm_quantile: args.learned_warm_quantile.unwrap_or(default.warm_quantile),
        reserve_quantile: args.learned_reserve_quantile.unwrap_or(default.reserve_quantile),
        lead: args.learned_lead.unwrap_or(default.lead),
        burst_window: args.learned_burst_window.unwrap_or(default.burst_window),
    };
    let problems = params.problems();
    if problems.is_empty() {
        Ok(params)
    } else {
        let named: Vec<String> =
            problems.iter().map(|p| format!("--learned-{}: {p}", p.field().replace('_', "-"))).collect();
        Err(SimulateError::LearnedTuning(named.join("; ")))
    }
}

/// The price table the options name: `--prices`, or the defaults.
pub fn prices_of(args: &SimulateArgs) -> Result<Prices, SimulateError> {
    match &args.prices {
        Some(path) => Prices::load(path).map_err(|source| SimulateError::Prices { path: path.clone(), source }),
        None => Ok(Prices::default()),
    }
}

/// Threads for a sweep: `--threads`, or one per core.
pub fn threads_of(args: &SimulateArgs) -> usize {
    args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1))
}

fn write_file(path: &PathBuf, contents: &str) -> Result<(), SimulateError> {
    std::fs::write(path, contents).map_err(|source| SimulateError::Write { path: path.clone(), source })
}

/// Run `operator simulate` with `args`: the summary to `out`, wall times to `err`.
pub fn run(args: &SimulateArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), SimulateError> {
    let trace =
        Workload::load(&args.trace).map_err(|source| SimulateError::Trace { path: args.trace.clone(), source })?;
    let prices = prices_of(args)?;
    let mut printed = report::workload_summary(&trace);
    if args.goal {
        write!(out, "{printed}").map_err(SimulateError::Output)?;
        return goal::run(&trace, &prices, threads_of(args), args.report.as_ref(), args.plot.as_ref(), out, err);
    }
    let window = Window::of(args.last, args.from.as_deref(), args.until.as_deref()).map_err(SimulateError::Window)?;
    let split = window.split(&trace);
    if let Some(name) = window.describe() {
        if split.window.jobs.is_empty() {
            return Err(SimulateError::EmptyWindow(name));
        }
        printed.push_str(&window_summary(&name, &split));
    }
    let workload = split.window;
    write!(out, "{printed}").map_err(SimulateError::Output)?;
    if args.summary_only {
        return Ok(());
    }
    let mut setting = setting_of(args);
    if args.learned {
        // Seeded from the jobs before the window only: never from the jobs it replays.
        setting.mode = goal::learned_mode(&split.history, learned_params_of(args)?);
    }
    if args.sweep {
        return run_sweep(args, &workload, &setting, &prices, printed, out, err);
    }
    let started = Instant::now();
    let outcome = run_setting(&workload, &setting);
    let replayed = started.elapsed();
    let baselines = report::Baselines::of(&workload, &setting, &outcome);
    let figures = format!(
        "{}{}",
        report::outcome_summary(&setting, &outcome, &prices),
        report::baselines_summary(&setting, &outcome, &baselines, &prices)
    );
    write!(out, "{figures}").map_err(SimulateError::Output)?;
    let _ = writeln!(
        err,
        "replayed {:.1} simulated days in {:.1} s",
        outcome.horizon.as_secs_f64() / 86_400.0,
        replayed.as_secs_f64()
    );
    if let Some(path) = &args.report {
        let page = html::page(&workload, &setting, &outcome, &baselines, None, &prices, &format!("{printed}{figures}"));
        write_file(path, &page)?;
    }
    if outcome.busy_vm_killed > 0 {
        return Err(SimulateError::BusyVmRemoved);
    }
    Ok(())
}

/// How a window of the trace was read: its bounds, its jobs and the history before it.
pub fn window_summary(name: &str, split: &window::Split) -> String {
    let s = split.window.summary();
    format!(
        "window: {name}, arrivals {} to {}: {} jobs over {:.1} days, peak concurrency {}, {:.1} busy VM-hours; {} jobs before it\n",
        window::day(split.from),
        window::day(split.until),
        s.jobs,
        s.span.as_secs_f64() / 86_400.0,
        s.peak_concurrency,
        report::hours(s.busy),
        split.history.jobs.len()
    )
}

/// A progress bar on standard error, drawn only when it is a terminal.
pub fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what}, {{elapsed}} (eta {{eta}})"
        ))
        .expect("the template is valid"),
    );
    bar
}

fn run_sweep(
    args: &SimulateArgs,
    workload: &Workload,
    base: &Setting,
    prices: &Prices,
    printed: String,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), SimulateError> {
    let axes = Axes {
        mins: args.sweep_min.clone(),
        frees: args.sweep_free_target.clone(),
        delays: args.sweep_scale_in_delay.clone(),
        parked: args.sweep_parked.clone(),
    };
    let settings = sweep::grid(base, &axes);
    let threads = threads_of(args);
    let bar = progress_bar(settings.len(), "settings");
    let started = Instant::now();
    let points = sweep::run(workload, &settings, prices, threads, &|| bar.inc(1));
    bar.finish_and_clear();
    let summary = sweep::summary(&points, args.target_p95, prices);
    write!(out, "{summary}").map_err(SimulateError::Output)?;
    let _ = writeln!(
        err,
        "swept {} settings on {threads} threads in {:.1} s",
        settings.len(),
        started.elapsed().as_secs_f64()
    );
    let best = sweep::cheapest_meeting(&points, args.target_p95);
    if let Some(path) = &args.plot {
        write_file(path, &goal::sweep_plot(&points, args.target_p95, prices))?;
    }
    if let Some(path) = &args.report {
        // The timeline and baselines are the recommended setting's (or the base's): run it once more.
        let shown = best.map_or(base, |p| &p.setting);
        let outcome = run_setting(workload, shown);
        let baselines = report::Baselines::of(workload, shown, &outcome);
        let page = html::page(
            workload,
            shown,
            &outcome,
            &baselines,
            Some((&points, best, args.target_p95)),
            prices,
            &format!("{printed}{summary}"),
        );
        write_file(path, &page)?;
    }
    Ok(())
}
