//! `operator simulate --sweep`: many settings of the same workload, each on its own
//! thread and runtime, and what a reader decides with: the Pareto front of p95 wait
//! against idle cost, and the cheapest setting that meets a p95 target (and, when the
//! grid holds both, the cheapest running-only and the cheapest parked one). Results
//! are kept in grid order, so the printout does not depend on which thread finished
//! first.

use std::{
    fmt::Write as _,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use operator_sim::workload::Workload;

use super::{
    prices::Prices,
    quantile,
    report::{hours, money},
    run_setting, Outcome, Setting,
};

/// One setting's figures in a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub setting: Setting,
    pub p95: Duration,
    pub idle_hours: f64,
    pub parked_hours: f64,
    pub total_hours: f64,
    /// Idle running VM-hours and parked hours at their prices.
    pub idle_cost: f64,
    pub throttled: u32,
}

impl Point {
    pub fn of(setting: Setting, outcome: &Outcome, prices: &Prices) -> Self {
        let parks = setting.parks();
        Self {
            setting,
            p95: quantile(&outcome.waits, 0.95),
            idle_hours: hours(outcome.idle_time()),
            parked_hours: hours(outcome.parked_time),
            total_hours: hours(outcome.vm_time),
            idle_cost: outcome.idle_cost(prices, parks),
            throttled: outcome.throttled_total(),
        }
    }

    /// Parks nothing: every warm VM runs.
    pub fn running_only(&self) -> bool {
        !self.setting.parks()
    }
}

/// The values a grid combines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axes {
    pub mins: Vec<u32>,
    pub frees: Vec<u8>,
    pub delays: Vec<Duration>,
    pub parked: Vec<u32>,
}

/// Every combination of the axes' values, in this order: min, then free target, then
/// scale-in delay, then parked reserve.
pub fn grid(base: &Setting, axes: &Axes) -> Vec<Setting> {
    let mut out = Vec::new();
    for &min in &axes.mins {
        for &free_target_percentage in &axes.frees {
            for &scale_in_delay in &axes.delays {
                for &parked in &axes.parked {
                    out.push(Setting { min, free_target_percentage, scale_in_delay, parked, ..base.clone() });
                }
            }
        }
    }
    out
}

/// Run every setting on `threads` threads; `progress` is called after each run.
pub fn run(
    workload: &Workload,
    settings: &[Setting],
    prices: &Prices,
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Vec<Point> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Point>>> = Mutex::new(vec![None; settings.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(settings.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(setting) = settings.get(i) else { break };
                let point = Point::of(setting.clone(), &run_setting(workload, setting), prices);
                results.lock().expect("results poisoned")[i] = Some(point);
                progress();
            });
        }
    });
    results.into_inner().expect("results poisoned").into_iter().map(|p| p.expect("every setting ran")).collect()
}

/// The points no other point beats on both p95 wait and idle cost, by p95.
pub fn pareto_front(points: &[Point]) -> Vec<&Point> {
    let dominated = |p: &Point| {
        points
            .iter()
            .any(|q| q.p95 <= p.p95 && q.idle_cost <= p.idle_cost && (q.p95 < p.p95 || q.idle_cost < p.idle_cost))
    };
    let mut front: Vec<&Point> = points.iter().filter(|p| !dominated(p)).collect();
    front.sort_by(|a, b| a.p95.cmp(&b.p95).then(a.idle_cost.total_cmp(&b.idle_cost)));
    front
}

/// The setting with the lowest idle cost whose p95 wait is at most `target` (the first
/// in grid order among equals).
pub fn cheapest_meeting<'a>(points: impl IntoIterator<Item = &'a Point>, target: Duration) -> Option<&'a Point> {
    points.into_iter().filter(|p| p.p95 <= target).min_by(|a, b| a.idle_cost.total_cmp(&b.idle_cost))
}

/// The cheapest running-only setting and the cheapest parked one meeting `target`.
pub fn cheapest_by_kind(points: &[Point], target: Duration) -> (Option<&Point>, Option<&Point>) {
    (
        cheapest_meeting(points.iter().filter(|p| p.running_only()), target),
        cheapest_meeting(points.iter().filter(|p| !p.running_only()), target),
    )
}

pub fn line(p: &Point, prices: &Prices) -> String {
    format!(
        "  {:<50} p95 {:>5}s  idle {:>8.1} VM-h  parked {:>8.1} h  idle cost {:>12}  total {:>8.1} VM-h{}",
        p.setting.to_string(),
        p.p95.as_secs(),
        p.idle_hours,
        p.parked_hours,
        money(prices, p.idle_cost),
        p.total_hours,
        if p.throttled > 0 { format!("  {} x 429", p.throttled) } else { String::new() }
    )
}

/// The printed result of a sweep.
pub fn summary(points: &[Point], target: Duration, prices: &Prices) -> String {
    let mut out = format!("sweep: {} settings; prices: {}\n", points.len(), prices.describe());
    for p in points {
        let _ = writeln!(out, "{}", line(p, prices));
    }
    let _ = writeln!(out, "Pareto front (p95 wait against idle cost):");
    for p in pareto_front(points) {
        let _ = writeln!(out, "{}", line(p, prices));
    }
    match cheapest_meeting(points, target) {
        Some(p) => {
            let _ = writeln!(out, "cheapest setting with p95 <= {}s:\n{}", target.as_secs(), line(p, prices));
        }
        None => {
            let _ = writeln!(out, "no setting meets p95 <= {}s", target.as_secs());
        }
    }
    let kinds = (points.iter().any(Point::running_only), points.iter().any(|p| !p.running_only()));
    if kinds == (true, true) {
        let _ = write!(out, "{}", comparison(points, target, prices));
    }
    out
}

/// The cheapest running-only and parked settings meeting `target`, and the ratio of their
/// idle costs.
pub fn comparison(points: &[Point], target: Duration, prices: &Prices) -> String {
    let mut out = String::new();
    let (running, parked) = cheapest_by_kind(points, target);
    for (kind, p) in [("running-only", running), ("parked", parked)] {
        match p {
            Some(p) => {
                let _ =
                    writeln!(out, "cheapest {kind} setting with p95 <= {}s:\n{}", target.as_secs(), line(p, prices));
            }
            None => {
                let _ = writeln!(out, "no {kind} setting meets p95 <= {}s", target.as_secs());
            }
        }
    }
    if let (Some(r), Some(p)) = (running, parked) {
        let _ = writeln!(out, "  parked / running-only idle cost: {:.3}", p.idle_cost / r.idle_cost);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(p95: u64, cost: f64, parked: u32) -> Point {
        Point {
            setting: Setting { min: p95 as u32, parked, ..Setting::default() },
            p95: Duration::from_secs(p95),
            idle_hours: cost * 10.0,
            parked_hours: 0.0,
            total_hours: cost * 10.0,
            idle_cost: cost,
            throttled: 0,
        }
    }

    #[test]
    fn the_front_keeps_only_points_nothing_beats_on_both_axes() {
        let points =
            [point(100, 50.0, 0), point(200, 40.0, 0), point(150, 60.0, 0), point(300, 40.0, 0), point(50, 90.0, 0)];
        let front: Vec<(u64, f64)> = pareto_front(&points).iter().map(|p| (p.p95.as_secs(), p.idle_cost)).collect();
        assert_eq!(front, [(50, 90.0), (100, 50.0), (200, 40.0)]);
        let cheapest = cheapest_meeting(&points, Duration::from_secs(160)).unwrap();
        assert_eq!(cheapest.p95, Duration::from_secs(100));
        assert!(cheapest_meeting(&points, Duration::from_secs(10)).is_none());
    }

    #[test]
    fn the_cheapest_of_each_kind_meets_the_target_and_their_ratio_is_printed() {
        let points = [point(40, 100.0, 0), point(55, 80.0, 0), point(58, 30.0, 4), point(70, 10.0, 8)];
        let (running, parked) = cheapest_by_kind(&points, Duration::from_secs(60));
        assert_eq!(running.map(|p| p.idle_cost), Some(80.0));
        assert_eq!(parked.map(|p| p.idle_cost), Some(30.0));
        let printed = summary(&points, Duration::from_secs(60), &Prices::default());
        assert!(printed.contains("parked / running-only idle cost: 0.375"), "{printed}");
        assert!(printed.contains("cheapest parked setting with p95 <= 60s"), "{printed}");
    }

    #[test]
    fn a_grid_has_every_combination_in_order() {
        let axes =
            Axes { mins: vec![1, 2], frees: vec![20, 50], delays: vec![Duration::from_secs(60)], parked: vec![0, 4] };
        let g = grid(&Setting::default(), &axes);
        let keys: Vec<(u32, u8, u32)> = g.iter().map(|s| (s.min, s.free_target_percentage, s.parked)).collect();
        assert_eq!(
            keys,
            [(1, 20, 0), (1, 20, 4), (1, 50, 0), (1, 50, 4), (2, 20, 0), (2, 20, 4), (2, 50, 0), (2, 50, 4)]
        );
    }
}
