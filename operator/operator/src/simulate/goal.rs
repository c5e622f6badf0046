//! `operator simulate --goal`: issue 16's figures from one command. On the whole trace and
//! on its last 14 days, with demand from the scale set, boot 90 s, reimage 60 s, start
//! from parked 45 s and the price table:
//!
//! 1. the cheapest running-only setting (nothing parked) whose job wait p95 is at most
//!    60 s, and its idle cost;
//! 2. the cheapest parked setting meeting the same p95, and the ratio of its idle cost to
//!    the running-only one's (the goal: at most 0.5);
//! 3. the break-even start time: the shortest start from parked at which the cheapest
//!    parked setting meeting the p95 costs at least as much idle money as the cheapest
//!    running-only one (or meets it no more), found by bisection on whole seconds between
//!    the assumed start and a fresh boot.
//!
//! The grids are fixed here so the figures are the same for everyone; `docs/simulate.md`
//! ("The goal run") lists them and the figures they gave.

use std::{io::Write, path::PathBuf, time::Duration, time::Instant};

use operator_sim::workload::Workload;

use super::{
    baselines,
    command::{progress_bar, window_summary, SimulateError},
    html::{self, Mark},
    prices::Prices,
    report::money,
    sweep::{self, cheapest_by_kind, line, Axes, Point},
    window::Window,
    Setting,
};

/// The p95 job wait every setting of the goal must meet.
pub const TARGET: Duration = Duration::from_secs(60);
/// The goal's window: the trace's last 14 days.
pub const LAST: Duration = Duration::from_secs(14 * 86_400);
/// The goal's bound on parked idle cost over running-only idle cost.
pub const RATIO_GOAL: f64 = 0.5;

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
    }
}

/// Running-only settings: a warm floor (`min`) and headroom (the free target), nothing parked.
pub fn running_axes() -> Axes {
    Axes {
        mins: vec![8, 12, 14, 16, 18, 20],
        frees: vec![20, 30, 40, 50],
        delays: vec![Duration::from_secs(300)],
        parked: vec![0],
    }
}

/// Parked settings: a smaller warm floor and a parked reserve behind it.
pub fn parked_axes() -> Axes {
    Axes {
        mins: vec![0, 2, 4, 6, 8],
        frees: vec![0, 20, 30],
        delays: vec![Duration::from_secs(300)],
        parked: vec![8, 12, 16, 24],
    }
}

/// Every goal setting: the running-only grid, then the parked one.
pub fn settings(base: &Setting) -> Vec<Setting> {
    let mut all = sweep::grid(base, &running_axes());
    all.extend(sweep::grid(base, &parked_axes()));
    all
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

/// Both grids on `workload`, and the cheapest setting of each kind meeting [`TARGET`].
pub fn compare(workload: &Workload, base: &Setting, prices: &Prices, threads: usize) -> Comparison {
    let points = sweep_with_bar(workload, &settings(base), prices, threads, "goal settings");
    let (running, parked) = cheapest_by_kind(&points, TARGET);
    let (running, parked) = (running.cloned(), parked.cloned());
    let jobs: Vec<(f64, f64)> = workload.jobs.iter().map(|j| (workload.offset(j).as_secs_f64(), j.duration)).collect();
    let bound = baselines::clairvoyant(&jobs, base.boot.as_secs_f64(), base.reimage.as_secs_f64());
    Comparison { points, running, parked, bound_cost: prices.idle_cost(false, bound.idle_time() / 3600.0, 0.0) }
}

/// One evaluation of the break-even search: the cheapest parked setting meeting the
/// target at this start time.
#[derive(Clone, Debug)]
pub struct StartProbe {
    pub start: Duration,
    pub parked: Option<Point>,
}

impl StartProbe {
    /// Parking still pays: a parked setting meets the target for less idle money.
    pub fn pays(&self, running_cost: f64) -> bool {
        self.parked.as_ref().is_some_and(|p| p.idle_cost < running_cost)
    }
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

/// The break-even start time on `workload`: parked grids at each probed start time against
/// `running_cost`, the idle cost of the cheapest running-only setting (which no start time
/// changes). Starts from `base.start` (where parking pays) up to `base.boot`.
pub fn break_even(
    workload: &Workload,
    base: &Setting,
    prices: &Prices,
    threads: usize,
    running_cost: f64,
) -> BreakEven {
    let mut probes = Vec::new();
    let found = bisect(base.start.as_secs(), base.boot.as_secs(), &mut |secs| {
        let at = Setting { start: Duration::from_secs(secs), ..base.clone() };
        let grid = sweep::grid(&at, &parked_axes());
        let points = sweep_with_bar(workload, &grid, prices, threads, &format!("parked settings, start {secs}s"));
        let probe = StartProbe { start: at.start, parked: cheapest_by_kind(&points, TARGET).1.cloned() };
        let pays = probe.pays(running_cost);
        probes.push(probe);
        pays
    });
    BreakEven { probes, start: found.map(Duration::from_secs) }
}

/// The chart of p95 wait against idle cost for the goal's points, as a standalone SVG.
pub fn plot(points: &[Point], target: Duration, prices: &Prices) -> String {
    let (running, parked) = cheapest_by_kind(points, target);
    let marks: Vec<Mark> = [(running, "cheapest running-only", "#d62728"), (parked, "cheapest parked", "#1f77b4")]
        .into_iter()
        .filter_map(|(p, what, color)| {
            p.map(|p| Mark {
                label: format!("{what} meeting p95 <= {}s: {}", target.as_secs(), p.setting),
                p95: p.p95.as_secs_f64(),
                idle_hours: p.idle_hours,
                idle_cost: p.idle_cost,
                color,
            })
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        html::chart("goal-pareto", points, &marks, None, Some(target), prices)
    )
}

fn comparison_text(name: &str, c: &Comparison, prices: &Prices) -> String {
    let mut out = format!("{name}:\n");
    for (kind, p) in [("running-only", &c.running), ("parked", &c.parked)] {
        match p {
            Some(p) => out.push_str(&format!(
                "  cheapest {kind} setting with p95 <= {}s:\n  {}\n",
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

fn break_even_text(b: &BreakEven, running_cost: f64, base: &Setting, prices: &Prices) -> String {
    let mut out = format!(
        "break-even start time (parked grid at each start, against the running-only {}):\n",
        money(prices, running_cost)
    );
    let mut probes = b.probes.clone();
    probes.sort_by_key(|p| p.start);
    for p in &probes {
        match &p.parked {
            Some(point) => out.push_str(&format!(
                "  start {:>3}s: cheapest parked {} ({:.3} x running-only): {}\n",
                p.start.as_secs(),
                money(prices, point.idle_cost),
                point.idle_cost / running_cost,
                point.setting
            )),
            None => out.push_str(&format!(
                "  start {:>3}s: no parked setting meets p95 <= {}s\n",
                p.start.as_secs(),
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

/// The goal run: both windows, the break-even start, the plot and the page.
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

    let started = Instant::now();
    let whole = compare(trace, &base, prices, threads);
    let _ = writeln!(err, "whole trace: {} settings in {:.1} s", whole.points.len(), started.elapsed().as_secs_f64());
    emit(sweep_text("whole trace, every setting", &whole.points, prices), &mut printed, out)?;
    emit(comparison_text("whole trace", &whole, prices), &mut printed, out)?;

    let split = Window::Last(LAST).split(trace);
    let name = "the last 14 days";
    emit(window_summary(name, &split), &mut printed, out)?;
    let started = Instant::now();
    let last = compare(&split.window, &base, prices, threads);
    let _ = writeln!(err, "last 14 days: {} settings in {:.1} s", last.points.len(), started.elapsed().as_secs_f64());
    emit(sweep_text("last 14 days, every setting", &last.points, prices), &mut printed, out)?;
    emit(comparison_text("last 14 days", &last, prices), &mut printed, out)?;

    if let (Some(running), Some(_)) = (&whole.running, &whole.parked) {
        let started = Instant::now();
        let b = break_even(trace, &base, prices, threads, running.idle_cost);
        let _ = writeln!(err, "break-even: {} start times in {:.1} s", b.probes.len(), started.elapsed().as_secs_f64());
        emit(break_even_text(&b, running.idle_cost, &base, prices), &mut printed, out)?;
    } else {
        emit(
            "break-even start time: not searched (a kind met no setting on the whole trace)\n".into(),
            &mut printed,
            out,
        )?;
    }

    if let Some(path) = plot_path {
        std::fs::write(path, plot(&whole.points, TARGET, prices))
            .map_err(|source| SimulateError::Write { path: path.clone(), source })?;
    }
    if let Some(path) = report {
        let sections = [
            ("Whole trace: p95 wait against idle cost".to_owned(), plot(&whole.points, TARGET, prices)),
            ("The last 14 days: p95 wait against idle cost".to_owned(), plot(&last.points, TARGET, prices)),
        ];
        let page = html::charts_page("operator simulate --goal", &sections, &printed);
        std::fs::write(path, page).map_err(|source| SimulateError::Write { path: path.clone(), source })?;
    }
    Ok(())
}

fn sweep_text(name: &str, points: &[Point], prices: &Prices) -> String {
    let mut out = format!("{name} ({} settings):\n", points.len());
    for p in points {
        out.push_str(&line(p, prices));
        out.push('\n');
    }
    out
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
        assert!(all.iter().any(|s| s.parked == 0) && all.iter().any(|s| s.parked > 0));
        assert!(all
            .iter()
            .all(|s| s.demand && s.start == Duration::from_secs(45) && s.boot == Duration::from_secs(90)));
    }
}
