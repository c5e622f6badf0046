//! The printed summary of a run: the workload, the setting's figures and the baselines.
//! Only simulated quantities are printed, so the same run prints the same bytes.

use std::{fmt::Write as _, time::Duration};

use operator_sim::workload::Workload;

use super::{
    baselines::{self, Baseline},
    prices::Prices,
    quantile, Outcome, Setting,
};

/// The baselines of one run, over the same jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Baselines {
    /// The smallest static pool meeting the setting's p95, and what it did.
    pub static_n: usize,
    pub static_pool: Baseline,
    pub per_job: Baseline,
    pub bound: Baseline,
}

impl Baselines {
    pub fn of(workload: &Workload, setting: &Setting, outcome: &Outcome) -> Self {
        let jobs: Vec<(f64, f64)> =
            workload.jobs.iter().map(|j| (workload.offset(j).as_secs_f64(), j.duration)).collect();
        let p95 = quantile(&outcome.waits, 0.95).as_secs_f64();
        let reimage = setting.reimage.as_secs_f64();
        let (static_n, static_pool) = baselines::smallest_static_pool(&jobs, p95, reimage);
        Self {
            static_n,
            static_pool,
            per_job: baselines::per_job(&jobs, setting.boot.as_secs_f64()),
            bound: baselines::clairvoyant(&jobs, setting.boot.as_secs_f64(), reimage),
        }
    }
}

pub fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / 3600.0
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// What the workload is, so a reader can check it was read as intended.
pub fn workload_summary(workload: &Workload) -> String {
    let s = workload.summary();
    let mut out = format!(
        "workload: {} jobs over {:.1} days, peak concurrency {}, {:.1} busy VM-hours\n",
        s.jobs,
        s.span.as_secs_f64() / 86_400.0,
        s.peak_concurrency,
        hours(s.busy)
    );
    let d = &workload.dropped;
    if d.records > 0 {
        let _ = writeln!(
            out,
            "  dropped {} records: {} with duration <= 0, {} macOS/Windows (GitHub-hosted), {} without a start",
            d.records, d.no_duration, d.hosted_images, d.no_start
        );
    }
    out
}

/// A sum of money, e.g. `USD 1234.56`.
pub fn money(prices: &Prices, amount: f64) -> String {
    format!("{} {amount:.2}", prices.currency)
}

/// The setting's figures.
pub fn outcome_summary(setting: &Setting, outcome: &Outcome, prices: &Prices) -> String {
    let w = &outcome.waits;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "setting: {setting}; boot {}, reimage {}, start {}",
        secs(setting.boot),
        secs(setting.reimage),
        secs(setting.start)
    );
    let _ = writeln!(
        out,
        "  job wait: p50 {}  p95 {}  p99 {}  max {}",
        secs(quantile(w, 0.5)),
        secs(quantile(w, 0.95)),
        secs(quantile(w, 0.99)),
        secs(w.iter().copied().max().unwrap_or_default())
    );
    let _ = writeln!(
        out,
        "  VM-hours: total {:.1}, idle {:.1} (boot, reimage and waiting for a job), parked {:.1}, peak pool {}",
        hours(outcome.vm_time),
        hours(outcome.idle_time()),
        hours(outcome.parked_time),
        outcome.peak_pool
    );
    let _ = writeln!(
        out,
        "  cost: idle {} (idle VM-hours x {:.4} + parked hours x {:.4}), total {}",
        money(prices, outcome.idle_cost(prices, setting.parks())),
        prices.running_vm_per_hour(setting.parks()),
        prices.parked_per_hour,
        money(prices, outcome.total_cost(prices, setting.parks()))
    );
    let _ = writeln!(
        out,
        "  scale-set writes: {} ({} capacity, {} delete, {} reimage, {} deallocate, {} start), at most {} in a minute, {} deferred by the write budget",
        outcome.writes,
        outcome.capacity_writes,
        outcome.delete_writes,
        outcome.reimage_writes,
        outcome.deallocate_writes,
        outcome.start_writes,
        outcome.max_writes_in_a_minute,
        outcome.deferred
    );
    let throttled: Vec<String> = outcome.throttled.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let _ = writeln!(
        out,
        "  429s from Azure's throttling: {}{}",
        outcome.throttled_total(),
        if throttled.is_empty() { String::new() } else { format!(" ({})", throttled.join(", ")) }
    );
    if outcome.busy_vm_killed > 0 {
        let _ = writeln!(out, "  VIOLATION: {} VMs removed while running a job", outcome.busy_vm_killed);
    }
    out
}

/// The baselines, and the setting's idle VM-hours and idle cost against the bound. The
/// baselines park nothing: their idle cost is their idle VM-hours at the running price.
pub fn baselines_summary(setting: &Setting, outcome: &Outcome, b: &Baselines, prices: &Prices) -> String {
    let p95 = |x: &Baseline| format!("{}s", baselines::quantile(&x.waits, 0.95).round());
    let h = |x: &Baseline| x.idle_time() / 3600.0;
    let cost = |x: &Baseline| money(prices, prices.cost(false, h(x), 0.0));
    let mut out = String::from("baselines (the same jobs):\n");
    let _ = writeln!(
        out,
        "  static pool, N = {:<3}          p95 {:>6}  idle {:>9.1} VM-hours  {:>14} (smallest N meeting the setting's p95)",
        b.static_n,
        p95(&b.static_pool),
        h(&b.static_pool),
        cost(&b.static_pool)
    );
    let _ = writeln!(
        out,
        "  one fresh VM per job           p95 {:>6}  idle {:>9.1} VM-hours  {:>14}",
        p95(&b.per_job),
        h(&b.per_job),
        cost(&b.per_job)
    );
    let _ = writeln!(
        out,
        "  clairvoyant zero-wait bound    p95 {:>6}  idle {:>9.1} VM-hours  {:>14} (boot {}, reimage {})",
        p95(&b.bound),
        h(&b.bound),
        cost(&b.bound),
        secs(setting.boot),
        secs(setting.reimage)
    );
    let ratio = if b.bound.idle_time() > 0.0 { hours(outcome.idle_time()) / h(&b.bound) } else { f64::INFINITY };
    let bound_cost = prices.cost(false, h(&b.bound), 0.0);
    let cost_ratio =
        if bound_cost > 0.0 { outcome.idle_cost(prices, setting.parks()) / bound_cost } else { f64::INFINITY };
    let _ = writeln!(
        out,
        "  the setting's idle VM-hours are {ratio:.2} x the bound, its idle cost {cost_ratio:.2} x the bound's"
    );
    out
}
