//! `operator simulate --sweep`: many settings of the same workload, each on its own
//! thread and runtime, and what a reader decides with: the Pareto front of p95 wait
//! against idle VM-hours, and the cheapest setting that meets a p95 target. Results
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

use super::{quantile, report::hours, run_setting, Outcome, Setting};

/// One setting's figures in a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub setting: Setting,
    pub p95: Duration,
    pub idle_hours: f64,
    pub total_hours: f64,
    pub throttled: u32,
}

impl Point {
    fn of(setting: Setting, outcome: &Outcome) -> Self {
        Self {
            setting,
            p95: quantile(&outcome.waits, 0.95),
            idle_hours: hours(outcome.idle_time()),
            total_hours: hours(outcome.vm_time),
            throttled: outcome.throttled_total(),
        }
    }
}

/// Every combination of the given values, in this order: min, then free target, then
/// scale-in delay.
pub fn grid(base: &Setting, mins: &[u32], frees: &[u8], delays: &[Duration]) -> Vec<Setting> {
    let mut out = Vec::new();
    for &min in mins {
        for &free_target_percentage in frees {
            for &scale_in_delay in delays {
                out.push(Setting { min, free_target_percentage, scale_in_delay, ..base.clone() });
            }
        }
    }
    out
}

/// Run every setting on `threads` threads; `progress` is called after each run.
pub fn run(workload: &Workload, settings: &[Setting], threads: usize, progress: &(dyn Fn() + Sync)) -> Vec<Point> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Point>>> = Mutex::new(vec![None; settings.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(settings.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(setting) = settings.get(i) else { break };
                let point = Point::of(setting.clone(), &run_setting(workload, setting));
                results.lock().expect("results poisoned")[i] = Some(point);
                progress();
            });
        }
    });
    results.into_inner().expect("results poisoned").into_iter().map(|p| p.expect("every setting ran")).collect()
}

/// The points no other point beats on both p95 wait and idle VM-hours, by p95.
pub fn pareto_front(points: &[Point]) -> Vec<&Point> {
    let dominated = |p: &Point| {
        points
            .iter()
            .any(|q| q.p95 <= p.p95 && q.idle_hours <= p.idle_hours && (q.p95 < p.p95 || q.idle_hours < p.idle_hours))
    };
    let mut front: Vec<&Point> = points.iter().filter(|p| !dominated(p)).collect();
    front.sort_by(|a, b| a.p95.cmp(&b.p95).then(a.idle_hours.total_cmp(&b.idle_hours)));
    front
}

/// The setting with the fewest idle VM-hours whose p95 wait is at most `target`.
pub fn cheapest_meeting(points: &[Point], target: Duration) -> Option<&Point> {
    points.iter().filter(|p| p.p95 <= target).min_by(|a, b| a.idle_hours.total_cmp(&b.idle_hours))
}

fn line(p: &Point) -> String {
    format!(
        "  {:<40} p95 {:>5}s  idle {:>8.1} VM-h  total {:>8.1} VM-h{}",
        p.setting.to_string(),
        p.p95.as_secs(),
        p.idle_hours,
        p.total_hours,
        if p.throttled > 0 { format!("  {} x 429", p.throttled) } else { String::new() }
    )
}

/// The printed result of a sweep.
pub fn summary(points: &[Point], target: Duration) -> String {
    let mut out = format!("sweep: {} settings\n", points.len());
    for p in points {
        let _ = writeln!(out, "{}", line(p));
    }
    let _ = writeln!(out, "Pareto front (p95 wait against idle VM-hours):");
    for p in pareto_front(points) {
        let _ = writeln!(out, "{}", line(p));
    }
    match cheapest_meeting(points, target) {
        Some(p) => {
            let _ = writeln!(out, "cheapest setting with p95 <= {}s:\n{}", target.as_secs(), line(p));
        }
        None => {
            let _ = writeln!(out, "no setting meets p95 <= {}s", target.as_secs());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(p95: u64, idle: f64) -> Point {
        Point {
            setting: Setting { min: p95 as u32, ..Setting::default() },
            p95: Duration::from_secs(p95),
            idle_hours: idle,
            total_hours: idle,
            throttled: 0,
        }
    }

    #[test]
    fn the_front_keeps_only_points_nothing_beats_on_both_axes() {
        let points = [point(100, 50.0), point(200, 40.0), point(150, 60.0), point(300, 40.0), point(50, 90.0)];
        let front: Vec<(u64, f64)> = pareto_front(&points).iter().map(|p| (p.p95.as_secs(), p.idle_hours)).collect();
        assert_eq!(front, [(50, 90.0), (100, 50.0), (200, 40.0)]);
        let cheapest = cheapest_meeting(&points, Duration::from_secs(160)).unwrap();
        assert_eq!(cheapest.p95, Duration::from_secs(100));
        assert!(cheapest_meeting(&points, Duration::from_secs(10)).is_none());
    }

    #[test]
    fn a_grid_has_every_combination_in_order() {
        let g = grid(&Setting::default(), &[1, 2], &[20, 50], &[Duration::from_secs(60)]);
        let keys: Vec<(u32, u8)> = g.iter().map(|s| (s.min, s.free_target_percentage)).collect();
        assert_eq!(keys, [(1, 20), (1, 50), (2, 20), (2, 50)]);
    }
}
