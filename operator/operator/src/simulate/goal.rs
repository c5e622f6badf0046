//! `operator simulate --goal`: issue 16's figures from one command. With demand from the
//! scale set, boot 90 s, reimage 60 s, start from parked 45 s and the price table:
//!
//! 1. **Whole trace**: the cheapest running-only setting (nothing parked) whose job wait
//!    p95 is at most 60 s, and its idle cost; the cheapest parked setting meeting the same
//!    p95; the ratio of their idle costs (the goal: at most 0.5).
//! 2. **The last 14 days**: the same, and besides the fixed settings a few hand-picked
//!    schedules and the learned mode with its default tuning, seeded from the jobs before
//!    the window only (it then learns online from what it sees, as the operator does).
//!    The goal: the learned mode's idle cost within 10 % of the best hand-picked fixed or
//!    scheduled setting's, at the same p95.
//! 3. **The break-even start time**: the shortest start from parked at which parking no
//!    longer pays — no parked setting meets the p95 for less idle money than the cheapest
//!    running-only one — by bisection on whole seconds between the assumed start and a
//!    fresh boot. It assumes that a longer start never shortens a wait nor lowers a cost,
//!    so each probe runs only the parked settings that still paid at the longest start
//!    known to pay, and of those only the Pareto front's [`CANDIDATES`] cheapest (a
//!    setting beaten on both p95 and cost is taken not to outlast the one beating it).
//!
//! The grids are fixed here so the figures are the same for everyone; `docs/simulate.md`
//! ("The goal run") lists them and the figures they gave.

use std::{io::Write, path::PathBuf, sync::Arc, time::Duration, time::Instant};

use operator_sim::workload::Workload;

use super::{
    baselines,
    command::{progress_bar, window_summary, SimulateError},
    html::{self, Mark},
    prices::Prices,
    report::money,
    sweep::{self, cheapest_by_kind, cheapest_meeting, line, Axes, Point},
    window::Window,
    Mode, Setting,
};
use crate::targets::{LearnedDemand, LearnedParams, ScheduleEntry};

/// The p95 job wait every setting of the goal must meet.
pub const TARGET: Duration = Duration::from_secs(60);
/// The goal's window: the trace's last 14 days.
pub const LAST: Duration = Duration::from_secs(14 * 86_400);
/// The goal's bound on parked idle cost over running-only idle cost.
pub const RATIO_GOAL: f64 = 0.5;
/// How far above the best hand-picked setting the learned mode may come.
pub const LEARNED_GOAL: f64 = 1.10;

/// The world and the fixed parts of every goal setting.
pub fn base() -> Setting {
    Setting {
        min: 0,
        max: 60,
        free_target_percentage: 0,
        scale_in_delay: Duration::from_secs(300),
        boot: Duration::from_secs(90),
        reimage: Duration::from_secs(60),
        start: super::DEFAULT_START,
        parked: 0,
        demand: true,
        mode: Mode::Fixed,
    }
}

/// Running-only settings: a warm floor (`min`) and headroom (the free target), nothing
/// parked. Around the cheapest settings meeting 60 s in a wider first sweep (`min` 8–20,
/// free 20–50 %: `docs/simulate.md`).
pub fn running_axes() -> Axes {
    Axes {
        mins: vec![12, 13, 14, 15, 16],
        frees: vec![30, 40, 50],
        delays: vec![Duration::from_secs(300)],
        parked: vec![0],
    }
}

/// Parked settings: from no warm floor and no headroom (the reserve is all) to the
/// running-only floor with a small reserve behind it.
pub fn parked_axes() -> Axes {
    Axes {
        mins: vec![0, 4, 8, 12],
        frees: vec![0, 30],
        delays: vec![Duration::from_secs(300)],
        parked: vec![4, 8, 12, 16],
    }
}

/// Every fixed goal setting: the running-only grid, then the parked one.
pub fn settings(base: &Setting) -> Vec<Setting> {
    let mut all = sweep::grid(base, &running_axes());
    all.extend(sweep::grid(base, &parked_axes()));
    all
}

/// Weekdays' working hours in UTC, when the trace's demand peaks at 20–30 jobs (nights
/// and weekends peak at about 11, one workflow run's fan-out).
const WORKDAYS: &str = "* 8-21 * * mon-fri";

fn workdays(min: Option<u32>, parked: Option<u32>) -> ScheduleEntry {
    ScheduleEntry { cron: WORKDAYS.into(), timezone: "UTC".into(), min, parked, free_target_percentage: None }
}

/// Hand-picked schedules: a base setting with more warm or parked VMs on weekdays'
/// working hours, picked from the trace's demand by hour of the week
/// (`docs/simulate.md`, "The goal run").
pub fn schedules(base: &Setting) -> Vec<Setting> {
    let scheduled = |min: u32, free: u8, parked: u32, name: &str, entry: ScheduleEntry| Setting {
        min,
        free_target_percentage: free,
        parked,
        mode: Mode::Scheduled { name: name.into(), entries: vec![entry] },
        ..base.clone()
    };
    vec![
        scheduled(12, 30, 0, "workdays-min-16", workdays(Some(16), None)),
        scheduled(8, 30, 8, "workdays-min-14", workdays(Some(14), None)),
        scheduled(4, 30, 8, "workdays-min-12-parked-16", workdays(Some(12), Some(16))),
        scheduled(0, 0, 12, "workdays-parked-24", workdays(None, Some(24))),
    ]
}

/// The learned mode, its default tuning, seeded from `history` (as
/// `pool.learned.seed_trace` seeds it: `crate::learned::seed`). Its floors are the pool's
/// `min = 0`, `parked = 0`, free target 0 %: with demand from the scale set every assigned
/// job is seen, and the learned warm and parked counts are the headroom.
pub fn learned(base: &Setting, history: &Workload, params: LearnedParams) -> Setting {
    learned_setting(base, learned_mode(history, params))
}

fn learned_setting(base: &Setting, mode: Mode) -> Setting {
    Setting { min: 0, free_target_percentage: 0, parked: 0, mode, ..base.clone() }
}

/// The learned tunings the goal chooses from, on the history alone: slot lengths from an
/// hour to a day, burst windows around a boot; nothing warm (`warm_quantile` 0) and the
/// reserve at the largest burst of the weeks kept (`reserve_quantile` 1).
pub fn tunings() -> Vec<LearnedParams> {
    let mut out = Vec::new();
    for slot_hours in [1, 2, 4, 6, 8, 12, 24] {
        for window in [90, 120, 180] {
            out.push(LearnedParams {
                slot: Duration::from_secs(slot_hours * 3600),
                burst_window: Duration::from_secs(window),
                warm_quantile: 0.0,
                reserve_quantile: 1.0,
                ..LearnedParams::default()
            });
        }
    }
    out
}

/// The learned tuning chosen without seeing the window.
pub struct Tuned {
    /// Each tuning on the validation window (the 14 days before the window, seeded from
    /// the jobs before those), in [`tunings`] order.
    pub points: Vec<(LearnedParams, Point)>,
    /// The cheapest meeting [`TARGET`] there, or the one with the shortest p95 if none does.
    pub chosen: LearnedParams,
    /// The validation window's summary line.
    pub validation: String,
}

/// Choose the learned tuning on `history` alone: its last [`LAST`] are the validation
/// window, the jobs before them the seed, as the goal's window and its history are.
pub fn tune(history: &Workload, prices: &Prices, threads: usize) -> Tuned {
    let validation = Window::Last(LAST).split(history);
    let base = base();
    let candidates = tunings();
    let seed = Seed::of(&validation.history);
    let settings: Vec<Setting> =
        candidates.iter().map(|params| learned_setting(&base, seed.mode(params.clone()))).collect();
    let points = sweep_with_bar(&validation.window, &settings, prices, threads, "learned tunings");
    let chosen = cheapest_meeting(points.iter(), TARGET)
        .or_else(|| points.iter().min_by_key(|p| p.p95))
        .and_then(|best| points.iter().position(|p| std::ptr::eq(p, best)))
        .map_or_else(LearnedParams::default, |i| candidates[i].clone());
    let summary = window_summary("learned tuning, chosen on the 14 days before the last 14", &validation);
    Tuned { points: candidates.into_iter().zip(points).collect(), chosen, validation: summary }
}

/// A history's demand samples, taken once for every model seeded from it.
struct Seed {
    samples: Vec<(time::OffsetDateTime, u32)>,
    days: f64,
}

impl Seed {
    fn of(history: &Workload) -> Self {
        let days = history.summary().span.as_secs_f64() / 86_400.0;
        Self { samples: crate::learned::seed::demand_samples(history), days }
    }

    /// `pool.learned` tuned by `params`, seeded from these samples.
    fn mode(&self, params: LearnedParams) -> Mode {
        let tuning = describe_tuning(&params);
        let mut model = LearnedDemand::new(params);
        model.seed(self.samples.iter().copied());
        let days = self.days;
        Mode::Learned { name: format!("{tuning}, seeded from {days:.1} days before"), model: Arc::new(model) }
    }
}

/// `pool.learned` tuned by `params`, seeded from `history`.
pub fn learned_mode(history: &Workload, params: LearnedParams) -> Mode {
    Seed::of(history).mode(params)
}

/// The tuning in words: "default tuning", or the fields that differ from it.
pub fn describe_tuning(params: &LearnedParams) -> String {
    let d = LearnedParams::default();
    let mut parts = Vec::new();
    let secs = |x: Duration| humantime::format_duration(x).to_string();
    if params.warm_quantile != d.warm_quantile {
        parts.push(format!("warm q {}", params.warm_quantile));
    }
    if params.reserve_quantile != d.reserve_quantile {
        parts.push(format!("reserve q {}", params.reserve_quantile));
    }
    if params.burst_window != d.burst_window {
        parts.push(format!("burst window {}", secs(params.burst_window)));
    }
    if params.slot != d.slot {
        parts.push(format!("slot {}", secs(params.slot)));
    }
    if params.lead != d.lead {
        parts.push(format!("lead {}", secs(params.lead)));
    }
    if params.half_life != d.half_life {
        parts.push(format!("half-life {}", secs(params.half_life)));
    }
    if params.history_weeks != d.history_weeks {
        parts.push(format!("{} weeks kept", params.history_weeks));
    }
    if parts.is_empty() {
        "default tuning".into()
    } else {
        format!("tuning {}", parts.join(", "))
    }
}

/// What one window of the trace gave.
pub struct Comparison {
    pub points: Vec<Point>,
    pub running: Option<Point>,
    pub parked: Option<Point>,
    /// The clairvoyant zero-wait bound's idle cost on the same jobs (running-only).
    pub bound_cost: f64,
}

impl Comparison {
    pub fn ratio(&self) -> Option<f64> {
        match (&self.running, &self.parked) {
            (Some(r), Some(p)) if r.idle_cost > 0.0 => Some(p.idle_cost / r.idle_cost),
            _ => None,
        }
    }
}

fn sweep_with_bar(
    workload: &Workload,
    settings: &[Setting],
    prices: &Prices,
    threads: usize,
    what: &str,
) -> Vec<Point> {
    let bar = progress_bar(settings.len(), what);
    let points = sweep::run(workload, settings, prices, threads, &|| bar.inc(1));
    bar.finish_and_clear();
    points
}

/// `settings` on `workload`, and the cheapest setting of each kind meeting [`TARGET`].
pub fn compare(workload: &Workload, settings: &[Setting], prices: &Prices, threads: usize) -> Comparison {
    let points = sweep_with_bar(workload, settings, prices, threads, "goal settings");
    let (running, parked) = cheapest_by_kind(&points, TARGET);
    let (running, parked) = (running.cloned(), parked.cloned());
    let base = base();
    let jobs: Vec<(f64, f64)> = workload.jobs.iter().map(|j| (workload.offset(j).as_secs_f64(), j.duration)).collect();
    let bound = baselines::clairvoyant(&jobs, base.boot.as_secs_f64(), base.reimage.as_secs_f64());
    Comparison { points, running, parked, bound_cost: prices.cost(false, bound.idle_time() / 3600.0, 0.0) }
}

/// One evaluation of the break-even search: at this start time, the parked settings run
/// and the cheapest of them meeting the target.
#[derive(Clone, Debug)]
pub struct StartProbe {
    pub start: Duration,
    pub runs: usize,
    pub parked: Option<Point>,
}

/// The break-even search's result.
pub struct BreakEven {
    /// Every start time evaluated, in the order evaluated.
    pub probes: Vec<StartProbe>,
    /// The shortest whole-second start at which parking no longer pays; `None` if it still
    /// pays at a fresh boot's time.
    pub start: Option<Duration>,
}

/// Bisect on whole seconds for the shortest start at which `pays` turns false, knowing it
/// holds at `low`. `probe` is called once per second evaluated.
pub fn bisect(low: u64, high: u64, probe: &mut dyn FnMut(u64) -> bool) -> Option<u64> {
    if probe(high) {
        return None;
    }
    let (mut low, mut high) = (low, high);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if probe(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(high)
}

/// At most this many settings are carried from one break-even probe to the next.
pub const CANDIDATES: usize = 4;

/// The settings of `points` that pay against `running_cost` (parked, meeting the target,
/// for less idle money) and that no other paying one beats on both p95 and idle cost, the
/// [`CANDIDATES`] cheapest of them.
fn paying(points: &[Point], running_cost: f64) -> Vec<Setting> {
    let pays: Vec<Point> =
        points.iter().filter(|p| !p.running_only() && p.p95 <= TARGET && p.idle_cost < running_cost).cloned().collect();
    let mut front = sweep::pareto_front(&pays);
    front.sort_by(|a, b| a.idle_cost.total_cmp(&b.idle_cost));
    front.into_iter().take(CANDIDATES).map(|p| p.setting.clone()).collect()
}

/// The break-even start time on `workload`: parked settings at each probed start time
/// against `running_cost`, the idle cost of the cheapest running-only setting (which no
/// start time changes), from `base.start` (where the settings in `points` were run) up to
/// `base.boot`.
pub fn break_even(
    workload: &Workload,
    points: &[Point],
    base: &Setting,
    prices: &Prices,
    threads: usize,
    running_cost: f64,
) -> BreakEven {
    let mut probes: Vec<StartProbe> = Vec::new();
    // The candidates that paid at the longest start known to pay: the bisection probes
    // only above it, so it is the one to carry.
    let mut candidates = paying(points, running_cost);
    let found = bisect(base.start.as_secs(), base.boot.as_secs(), &mut |secs| {
        let at: Vec<Setting> =
            candidates.iter().map(|s| Setting { start: Duration::from_secs(secs), ..s.clone() }).collect();
        let points = sweep_with_bar(workload, &at, prices, threads, &format!("parked settings, start {secs}s"));
        let still = paying(&points, running_cost);
        let probe = StartProbe {
            start: Duration::from_secs(secs),
            runs: at.len(),
            parked: cheapest_meeting(points.iter(), TARGET).cloned(),
        };
        probes.push(probe);
        let pays = !still.is_empty();
        if pays {
            candidates = still;
        }
        pays
    });
    BreakEven { probes, start: found.map(Duration::from_secs) }
}

/// A mark for `point`: `label` on the legend's first line, the setting on its second.
pub fn mark(label: &str, point: &Point, color: &'static str) -> Mark {
    Mark {
        label: label.into(),
        detail: point.setting.to_string(),
        p95: point.p95.as_secs_f64(),
        idle_hours: point.idle_hours,
        idle_cost: point.idle_cost,
        color,
    }
}

/// The marks of a comparison: the cheapest of each kind meeting [`TARGET`].
pub fn comparison_marks(c: &Comparison) -> Vec<Mark> {
    kind_marks(c.running.as_ref(), c.parked.as_ref(), TARGET)
}

/// Marks for the cheapest running-only and parked settings meeting `target`.
fn kind_marks(running: Option<&Point>, parked: Option<&Point>, target: Duration) -> Vec<Mark> {
    let mut marks = Vec::new();
    if let Some(p) = running {
        marks.push(mark(&format!("cheapest running-only meeting p95 <= {}s", target.as_secs()), p, "#d62728"));
    }
    if let Some(p) = parked {
        marks.push(mark(&format!("cheapest parked meeting p95 <= {}s", target.as_secs()), p, "#1f77b4"));
    }
    marks
}

/// The chart `id` of p95 wait against idle cost for `points` with `marks`, as a
/// standalone SVG.
pub fn plot(id: &str, points: &[Point], marks: &[Mark], target: Duration, prices: &Prices) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        html::chart(id, points, marks, None, Some(target), prices)
    )
}

/// The chart of a sweep: the cheapest setting of each kind meeting `target`.
pub fn sweep_plot(points: &[Point], target: Duration, prices: &Prices) -> String {
    let (running, parked) = cheapest_by_kind(points, target);
    plot("sweep-pareto", points, &kind_marks(running, parked, target), target, prices)
}

fn comparison_text(name: &str, c: &Comparison, prices: &Prices) -> String {
    let mut out = format!("{name}:\n");
    for (kind, p) in [("running-only", &c.running), ("parked", &c.parked)] {
        match p {
            Some(p) => out.push_str(&format!(
                "  cheapest {kind} setting with p95 <= {}s:\n{}\n",
                TARGET.as_secs(),
                line(p, prices)
            )),
            None => out.push_str(&format!("  no {kind} setting meets p95 <= {}s\n", TARGET.as_secs())),
        }
    }
    out.push_str(&format!("  clairvoyant zero-wait bound: idle cost {}\n", money(prices, c.bound_cost)));
    match c.ratio() {
        Some(r) => out.push_str(&format!(
            "  parked / running-only idle cost: {r:.3} (goal <= {RATIO_GOAL}: {})\n",
            if r <= RATIO_GOAL { "met" } else { "missed" }
        )),
        None => out.push_str("  parked / running-only idle cost: not measured (a kind met no setting)\n"),
    }
    out
}

fn learned_text(hand_picked: &[Point], learned: &Point, prices: &Prices) -> String {
    let mut out = String::from("last 14 days, learned mode against the best hand-picked fixed or scheduled setting:\n");
    out.push_str(&format!("  learned:\n{}\n", line(learned, prices)));
    match cheapest_meeting(hand_picked.iter(), TARGET) {
        Some(best) => {
            out.push_str(&format!("  best hand-picked with p95 <= {}s:\n{}\n", TARGET.as_secs(), line(best, prices)));
            let ratio = learned.idle_cost / best.idle_cost;
            let met = learned.p95 <= TARGET && ratio <= LEARNED_GOAL;
            out.push_str(&format!(
                "  learned / best hand-picked idle cost: {ratio:.3}, learned p95 {}s (goal: p95 <= {}s and <= {LEARNED_GOAL}: {})\n",
                learned.p95.as_secs(),
                TARGET.as_secs(),
                if met { "met" } else { "missed" }
            ));
        }
        None => out.push_str(&format!("  no hand-picked setting meets p95 <= {}s\n", TARGET.as_secs())),
    }
    out
}

fn tuning_text(tuned: &Tuned, prices: &Prices) -> String {
    let mut out = tuned.validation.clone();
    out.push_str(&format!("  each tuning ({}), warm quantile 0, reserve quantile 1:\n", tuned.points.len()));
    for (_, point) in &tuned.points {
        out.push_str(&line(point, prices));
        out.push('\n');
    }
    let default = if tuned.chosen == LearnedParams::default() { " (the configuration's default)" } else { "" };
    out.push_str(&format!(
        "  chosen, the cheapest with p95 <= {}s: {}{default}\n",
        TARGET.as_secs(),
        describe_tuning(&tuned.chosen)
    ));
    out
}

fn break_even_text(b: &BreakEven, running_cost: f64, base: &Setting, prices: &Prices) -> String {
    let mut out = format!(
        "break-even start time (against the cheapest running-only setting's {}):\n",
        money(prices, running_cost)
    );
    let mut probes = b.probes.clone();
    probes.sort_by_key(|p| p.start);
    for p in &probes {
        match &p.parked {
            Some(point) => out.push_str(&format!(
                "  start {:>3}s ({} settings run): cheapest parked meeting p95 {} ({:.3} x running-only): {}\n",
                p.start.as_secs(),
                p.runs,
                money(prices, point.idle_cost),
                point.idle_cost / running_cost,
                point.setting
            )),
            None => out.push_str(&format!(
                "  start {:>3}s ({} settings run): no parked setting meets p95 <= {}s\n",
                p.start.as_secs(),
                p.runs,
                TARGET.as_secs()
            )),
        }
    }
    match b.start {
        Some(s) => out.push_str(&format!("  parking stops paying at a start of {}s\n", s.as_secs())),
        None => out.push_str(&format!("  parking still pays at a start of {}s (a fresh boot)\n", base.boot.as_secs())),
    }
    out
}

fn sweep_text(name: &str, points: &[Point], prices: &Prices) -> String {
    let mut out = format!("{name} ({} settings):\n", points.len());
    for p in points {
        out.push_str(&line(p, prices));
        out.push('\n');
    }
    out
}

/// The goal run: both windows, the learned mode, the break-even start, the plot and the page.
pub fn run(
    trace: &Workload,
    prices: &Prices,
    threads: usize,
    report: Option<&PathBuf>,
    plot_path: Option<&PathBuf>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), SimulateError> {
    let base = base();
    let mut printed = format!(
        "goal run (issue 16): p95 <= {}s, demand from the scale set, max {}, scale-in {}s; boot {}s, reimage {}s, start {}s\n\
         prices: {}\n",
        TARGET.as_secs(),
        base.max,
        base.scale_in_delay.as_secs(),
        base.boot.as_secs(),
        base.reimage.as_secs(),
        base.start.as_secs(),
        prices.describe()
    );
    write!(out, "{printed}").map_err(SimulateError::Output)?;
    // Each part is printed as soon as it is known: the whole run takes minutes.
    let emit = |text: String, printed: &mut String, out: &mut dyn Write| -> Result<(), SimulateError> {
        write!(out, "{text}").map_err(SimulateError::Output)?;
        out.flush().map_err(SimulateError::Output)?;
        printed.push_str(&text);
        Ok(())
    };
    let timed = |err: &mut dyn Write, what: &str, runs: usize, since: Instant| {
        let _ = writeln!(err, "{what}: {runs} runs in {:.1} s", since.elapsed().as_secs_f64());
    };

    let started = Instant::now();
    let fixed = settings(&base);
    let whole = compare(trace, &fixed, prices, threads);
    timed(err, "whole trace", whole.points.len(), started);
    emit(sweep_text("whole trace, every setting", &whole.points, prices), &mut printed, out)?;
    emit(comparison_text("whole trace", &whole, prices), &mut printed, out)?;

    let split = Window::Last(LAST).split(trace);
    emit(window_summary("the last 14 days", &split), &mut printed, out)?;
    let started = Instant::now();
    let mut window_settings = fixed.clone();
    window_settings.extend(schedules(&base));
    let tuning_started = Instant::now();
    let tuned = tune(&split.history, prices, threads);
    timed(err, "learned tunings", tuned.points.len(), tuning_started);
    emit(tuning_text(&tuned, prices), &mut printed, out)?;
    window_settings.push(learned(&base, &split.history, tuned.chosen.clone()));
    let mut last = compare(&split.window, &window_settings, prices, threads);
    timed(err, "last 14 days", last.points.len(), started);
    let learned_point = last.points.pop().expect("the learned setting ran");
    // The fixed and parked comparison of the window is over the same grids as the whole trace's.
    let last_fixed = Comparison {
        points: last.points[..fixed.len()].to_vec(),
        running: None,
        parked: None,
        bound_cost: last.bound_cost,
    };
    let (running, parked) = cheapest_by_kind(&last_fixed.points, TARGET);
    let last_fixed = Comparison { running: running.cloned(), parked: parked.cloned(), ..last_fixed };
    emit(sweep_text("last 14 days, every hand-picked setting", &last.points, prices), &mut printed, out)?;
    emit(comparison_text("last 14 days", &last_fixed, prices), &mut printed, out)?;
    emit(learned_text(&last.points, &learned_point, prices), &mut printed, out)?;
    last.points.push(learned_point.clone());

    match &whole.running {
        Some(running) => {
            let started = Instant::now();
            let b = break_even(trace, &whole.points, &base, prices, threads, running.idle_cost);
            timed(err, "break-even", b.probes.iter().map(|p| p.runs).sum(), started);
            emit(break_even_text(&b, running.idle_cost, &base, prices), &mut printed, out)?;
        }
        None => {
            let text = "break-even start time: not searched (no running-only setting met the target)\n";
            emit(text.into(), &mut printed, out)?;
        }
    }

    let whole_plot = plot("goal-pareto", &whole.points, &comparison_marks(&whole), TARGET, prices);
    let mut last_marks = comparison_marks(&last_fixed);
    if let Some(best) =
        cheapest_meeting(last.points.iter().filter(|p| !matches!(p.setting.mode, Mode::Learned { .. })), TARGET)
    {
        last_marks.push(mark(
            &format!("best hand-picked (fixed or scheduled) meeting p95 <= {}s", TARGET.as_secs()),
            best,
            "#2ca02c",
        ));
    }
    last_marks.push(mark("learned mode", &learned_point, "#9467bd"));
    // Its own id: both charts are on one page.
    let last_plot = plot("goal-pareto-last", &last.points, &last_marks, TARGET, prices);
    if let Some(path) = plot_path {
        std::fs::write(path, &whole_plot).map_err(|source| SimulateError::Write { path: path.clone(), source })?;
    }
    if let Some(path) = report {
        let sections = [
            ("Whole trace: p95 wait against idle cost".to_owned(), whole_plot),
            ("The last 14 days: p95 wait against idle cost".to_owned(), last_plot),
        ];
        let page = html::charts_page("operator simulate --goal", &sections, &printed);
        std::fs::write(path, page).map_err(|source| SimulateError::Write { path: path.clone(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_finds_the_first_second_at_which_parking_stops_paying() {
        let mut asked = Vec::new();
        let found = bisect(45, 90, &mut |s| {
            asked.push(s);
            s < 53
        });
        assert_eq!(found, Some(53));
        assert!(asked.len() <= 8, "{asked:?}");
        assert_eq!(bisect(45, 90, &mut |_| true), None, "still pays at a boot's time");
        assert_eq!(bisect(45, 90, &mut |s| s == 45), Some(46));
    }

    #[test]
    fn the_grids_hold_running_only_and_parked_settings_with_demand() {
        let all = settings(&base());
        assert!(all.iter().any(|s| !s.parks()) && all.iter().any(Setting::parks));
        assert!(all
            .iter()
            .all(|s| s.demand && s.start == Duration::from_secs(45) && s.boot == Duration::from_secs(90)));
        for s in schedules(&base()) {
            let Mode::Scheduled { entries, .. } = &s.mode else { panic!("{s}") };
            crate::targets::Schedule::new(entries.clone()).expect("a valid schedule");
            assert!(s.min + s.parked <= s.max);
        }
    }

    #[test]
    fn the_tunings_are_valid_distinct_and_hold_the_default() {
        let all = tunings();
        assert!(all.iter().all(|p| p.problems().is_empty()));
        assert!(all.contains(&LearnedParams::default()), "the default is one of the validated tunings");
        for (i, p) in all.iter().enumerate() {
            assert!(!all[..i].contains(p), "{p:?} twice");
            assert_ne!(describe_tuning(p), "", "{p:?}");
        }
    }

    #[test]
    fn the_learned_setting_is_seeded_from_the_history_alone() {
        use operator_sim::workload::TraceJob;
        let job = |arrival: f64| TraceJob { arrival, duration: 600.0, labels: vec![], name: String::new() };
        // A Monday 10:00 UTC burst of five, a week before the window.
        let monday = 1_759_744_800.0; // 2025-10-06 10:00 UTC
        let history = Workload::new((0..5).map(|i| job(monday + f64::from(i))).collect()).unwrap();
        let Mode::Learned { model, .. } = learned(&base(), &history, LearnedParams::default()).mode else {
            panic!("learned")
        };
        let next_monday = time::OffsetDateTime::from_unix_timestamp(monday as i64 + 7 * 86_400).unwrap();
        let t = model.targets_at(next_monday, crate::targets::Targets::default(), 60);
        assert!(t.min + t.parked >= 5, "the week before's burst is covered: {t:?}");
        let empty = learned(&base(), &Workload::default(), LearnedParams::default());
        let Mode::Learned { model, .. } = empty.mode else { panic!("learned") };
        assert_eq!(model.targets_at(next_monday, crate::targets::Targets::default(), 60).parked, 0);
    }
}
