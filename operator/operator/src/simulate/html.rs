//! `--report out.html`: one self-contained page (no script, no network, inline SVG)
//! with the figures the command prints: a timeline of demand, busy runners and pool
//! size with each job's wait, the distribution of waits, and a chart of p95 wait
//! against idle cost with the baselines, the bound and — for a sweep — every setting
//! (running-only and parked apart), the Pareto front and the recommended setting. Every
//! number drawn is also written as text in the page, with an `id` a test can find.

use std::{fmt::Write as _, time::Duration};

use operator_sim::workload::Workload;

use super::{
    baselines,
    prices::Prices,
    quantile,
    report::{hours, money, Baselines},
    sweep::{pareto_front, Point},
    Outcome, Setting,
};

const W: f64 = 900.0;
const H: f64 = 260.0;
const PAD: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page for one setting's run, and the sweep's points if there was one.
pub fn page(
    workload: &Workload,
    setting: &Setting,
    outcome: &Outcome,
    b: &Baselines,
    sweep: Option<(&[Point], Option<&Point>, Duration)>,
    prices: &Prices,
    printed: &str,
) -> String {
    let mut out = String::new();
    let w = &outcome.waits;
    let figures = [
        ("p50", format!("{}s", quantile(w, 0.5).as_secs())),
        ("p95", format!("{}s", quantile(w, 0.95).as_secs())),
        ("p99", format!("{}s", quantile(w, 0.99).as_secs())),
        ("max", format!("{}s", w.iter().max().copied().unwrap_or_default().as_secs())),
        ("total-vm-hours", format!("{:.1}", hours(outcome.vm_time))),
        ("idle-vm-hours", format!("{:.1}", hours(outcome.idle_time()))),
        ("parked-hours", format!("{:.1}", hours(outcome.parked_time))),
        ("idle-cost", money(prices, outcome.idle_cost(prices, setting.parks()))),
        ("total-cost", money(prices, outcome.total_cost(prices, setting.parks()))),
        ("bound-idle-vm-hours", format!("{:.1}", b.bound.idle_time() / 3600.0)),
        ("bound-idle-cost", money(prices, prices.cost(false, b.bound.idle_time() / 3600.0, 0.0))),
        ("static-n", b.static_n.to_string()),
        ("writes", outcome.writes.to_string()),
        ("throttled", outcome.throttled_total().to_string()),
    ];
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>operator simulate: {title}</title>\n\
         <style>body{{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:960px}}\
         table{{border-collapse:collapse}}td,th{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}}\
         th:first-child,td:first-child{{text-align:left}}pre{{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}}\
         svg{{background:#fff;border:1px solid #ccc;margin:8px 0}}text{{font:11px sans-serif}}</style></head><body>\n\
         <h1>Pool setting: {title}</h1>\n",
        title = esc(&setting.to_string())
    );
    let _ = writeln!(out, "<table id=\"figures\"><tr><th>figure</th><th>value</th></tr>");
    for (id, value) in &figures {
        let _ = writeln!(out, "<tr><td>{id}</td><td id=\"fig-{id}\">{value}</td></tr>");
    }
    let _ = writeln!(out, "</table>");
    let _ = writeln!(out, "<h2>Timeline</h2>{}", timeline(workload, outcome));
    let _ = writeln!(out, "<h2>Job waits</h2>{}", distribution(w));
    let _ = writeln!(
        out,
        "<h2>Wait against idle cost</h2><p>prices: {}</p>{}",
        esc(&prices.describe()),
        pareto(setting, outcome, b, sweep, prices)
    );
    let _ = writeln!(out, "<h2>As printed</h2><pre id=\"printed\">{}</pre>\n</body></html>", esc(printed));
    out
}

/// Demand (busy + queued), busy and pool size over time, and below it each job's wait
/// (the longest wait among the jobs that arrived in each pixel column).
fn timeline(workload: &Workload, outcome: &Outcome) -> String {
    let samples = &outcome.timeline;
    let end = outcome.horizon.as_secs_f64().max(1.0);
    let top = samples.iter().map(|s| s.pool.max(s.busy + s.queued)).max().unwrap_or(1).max(1) as f64;
    let x = |t: f64| PAD + t / end * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / top * (H - 2.0 * PAD);
    let line = |f: &dyn Fn(&super::Sample) -> u32| {
        samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.at.as_secs_f64()), y(f64::from(f(s)))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg id=\"timeline\" width=\"{W}\" height=\"{}\" viewBox=\"0 0 {W} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        H + 120.0,
        H + 120.0
    );
    let _ = write!(
        svg,
        "<polyline class=\"demand\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1\" points=\"{}\"/>\
         <polyline class=\"pool\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" points=\"{}\"/>\
         <polyline class=\"busy\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1\" points=\"{}\"/>",
        line(&|s| s.busy + s.queued),
        line(&|s| s.pool),
        line(&|s| s.busy)
    );
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"16\">instances (blue: pool, green: running jobs, red: demand = running + queued); peak {top:.0}</text>\
         <text x=\"{PAD}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\">{:.1} days</text>",
        H - PAD + 14.0,
        W - PAD - 40.0,
        H - PAD + 14.0,
        end / 86_400.0
    );
    // Waits: one bar per pixel column, the longest wait of the jobs arriving there.
    let columns = (W - 2.0 * PAD) as usize;
    let mut longest = vec![0f64; columns];
    for (job, wait) in workload.jobs.iter().zip(&outcome.waits) {
        let c = ((workload.offset(job).as_secs_f64() / end) * columns as f64) as usize;
        let slot = &mut longest[c.min(columns - 1)];
        *slot = slot.max(wait.as_secs_f64());
    }
    let worst = longest.iter().copied().fold(1.0, f64::max);
    let base = H + 100.0;
    let _ = write!(svg, "<text x=\"{PAD}\" y=\"{}\">job waits (longest per column; max {worst:.0}s)</text>", H - 4.0);
    for (c, wait) in longest.iter().enumerate().filter(|(_, w)| **w > 0.0) {
        let h = wait / worst * 80.0;
        let _ = write!(
            svg,
            "<rect class=\"wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"1\" height=\"{h:.1}\" fill=\"#ff7f0e\"/>",
            PAD + c as f64,
            base - h
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The share of jobs that waited at most t, with p50, p95 and p99 marked.
fn distribution(waits: &[Duration]) -> String {
    let mut sorted: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    let worst = sorted.last().copied().unwrap_or(1.0).max(1.0);
    let n = sorted.len().max(1) as f64;
    let x = |t: f64| PAD + t / worst * (W - 2.0 * PAD);
    let y = |q: f64| H - PAD - q * (H - 2.0 * PAD);
    let step = (sorted.len() / 1000).max(1);
    let points: Vec<String> = sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == sorted.len())
        .map(|(i, t)| format!("{:.1},{:.1}", x(*t), y((i + 1) as f64 / n)))
        .collect();
    let mut svg = format!(
        "<svg id=\"waits\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"{PAD}\" y=\"16\">share of jobs that waited at most t (t up to {worst:.0}s)</text>\
         <polyline class=\"cdf\" fill=\"none\" stroke=\"#1f77b4\" points=\"{}\"/>",
        points.join(" ")
    );
    for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        let t = quantile(waits, q).as_secs();
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#999\" stroke-dasharray=\"3\"/>\
             <text class=\"marker\" id=\"waits-{label}\" x=\"{3:.1}\" y=\"{4:.1}\">{label} {t}s</text>",
            x(t as f64),
            y(0.0),
            y(1.0),
            x(t as f64) + 3.0,
            y(q) + 12.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One labelled mark of the wait-against-cost chart.
pub struct Mark {
    pub label: String,
    /// A second legend line (the setting), if any.
    pub detail: String,
    pub p95: f64,
    pub idle_hours: f64,
    pub idle_cost: f64,
    pub color: &'static str,
}

/// p95 wait (x) against idle cost (y): this setting, the baselines, the bound, and a
/// sweep's settings with its front and recommendation.
fn pareto(
    setting: &Setting,
    outcome: &Outcome,
    b: &Baselines,
    sweep: Option<(&[Point], Option<&Point>, Duration)>,
    prices: &Prices,
) -> String {
    let p95 = |x: &baselines::Baseline| baselines::quantile(&x.waits, 0.95);
    let running = |x: &baselines::Baseline| Mark {
        label: String::new(),
        detail: String::new(),
        p95: p95(x),
        idle_hours: x.idle_time() / 3600.0,
        idle_cost: prices.cost(false, x.idle_time() / 3600.0, 0.0),
        color: "",
    };
    let mut marks = vec![
        Mark {
            label: "this setting".into(),
            detail: setting.to_string(),
            p95: quantile(&outcome.waits, 0.95).as_secs_f64(),
            idle_hours: hours(outcome.idle_time()),
            idle_cost: outcome.idle_cost(prices, setting.parks()),
            color: "#1f77b4",
        },
        Mark { label: format!("static pool N = {}", b.static_n), color: "#8c564b", ..running(&b.static_pool) },
        Mark { label: "one fresh VM per job".into(), color: "#9467bd", ..running(&b.per_job) },
        Mark { label: "clairvoyant zero-wait bound".into(), p95: 0.0, color: "#2ca02c", ..running(&b.bound) },
    ];
    let (points, best, target) = match sweep {
        Some((points, best, target)) => (points, best, Some(target)),
        None => (&[][..], None, None),
    };
    if let (Some(best), Some(target)) = (best, target) {
        marks.push(Mark {
            label: format!("recommended for p95 <= {}s", target.as_secs()),
            detail: best.setting.to_string(),
            p95: best.p95.as_secs_f64(),
            idle_hours: best.idle_hours,
            idle_cost: best.idle_cost,
            color: "#d62728",
        });
    }
    let bound = prices.cost(false, b.bound.idle_time() / 3600.0, 0.0);
    chart("pareto", points, &marks, Some(bound), target, prices)
}

/// The wait-against-cost chart: every point (running-only grey, parked teal), the Pareto
/// front, the labelled marks, a dashed line at `bound` and a dotted one at the target.
pub fn chart(
    id: &str,
    points: &[Point],
    marks: &[Mark],
    bound: Option<f64>,
    target: Option<Duration>,
    prices: &Prices,
) -> String {
    let all_x = points.iter().map(|p| p.p95.as_secs_f64()).chain(marks.iter().map(|m| m.p95));
    let all_y = points.iter().map(|p| p.idle_cost).chain(marks.iter().map(|m| m.idle_cost));
    let (xmax, ymax) = (all_x.fold(1.0, f64::max) * 1.05, all_y.fold(1.0, f64::max) * 1.05);
    let x = |v: f64| PAD + v / xmax * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / ymax * (H - 2.0 * PAD);
    let height = H + 32.0 * marks.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg id=\"{id}\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <text x=\"{PAD}\" y=\"16\" font-family=\"sans-serif\" font-size=\"11\">p95 wait (s, 0 to {xmax:.0}) against idle cost ({}, 0 to {ymax:.0}); \
         grey: running-only settings, teal: parked settings, orange line: Pareto front</text>\
         <line x1=\"{PAD}\" x2=\"{PAD}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
        esc(&prices.currency),
        y(0.0),
        y(ymax),
        W - PAD,
        y(0.0),
        y(0.0)
    );
    let xstep = nice_step(xmax);
    for i in 0..=(xmax / xstep) as u32 {
        let v = f64::from(i) * xstep;
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#999\"/>\
             <text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"10\">{v:.0}s</text>",
            x(v),
            y(0.0),
            y(0.0) + 4.0,
            y(0.0) + 15.0
        );
    }
    let ystep = nice_step(ymax);
    for i in 0..=(ymax / ystep) as u32 {
        let v = f64::from(i) * ystep;
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{1:.1}\" y1=\"{2:.1}\" y2=\"{2:.1}\" stroke=\"#eee\"/>\
             <text x=\"{3:.1}\" y=\"{4:.1}\" text-anchor=\"end\" font-family=\"sans-serif\" font-size=\"10\">{v:.0}</text>",
            PAD,
            W - PAD,
            y(v),
            PAD - 4.0,
            y(v) + 3.0
        );
    }
    for p in points {
        let fill = if p.running_only() { "#bbb" } else { "#17becf" };
        let _ = write!(
            svg,
            "<circle class=\"setting\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{fill}\"><title>{} p95 {}s idle {:.1} VM-hours, parked {:.1} h, idle cost {}</title></circle>",
            x(p.p95.as_secs_f64()),
            y(p.idle_cost),
            esc(&p.setting.to_string()),
            p.p95.as_secs(),
            p.idle_hours,
            p.parked_hours,
            esc(&money(prices, p.idle_cost))
        );
    }
    if !points.is_empty() {
        let front: Vec<String> = pareto_front(points)
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.p95.as_secs_f64()), y(p.idle_cost)))
            .collect();
        let _ =
            write!(svg, "<polyline class=\"front\" fill=\"none\" stroke=\"#ff7f0e\" points=\"{}\"/>", front.join(" "));
    }
    if let Some(bound) = bound {
        let _ = write!(
            svg,
            "<line x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#2ca02c\" stroke-dasharray=\"4\"/>",
            W - PAD,
            y(bound)
        );
    }
    if let Some(target) = target {
        let t = target.as_secs_f64();
        let _ = write!(
            svg,
            "<line class=\"target\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#d62728\" stroke-dasharray=\"2\"/>\
             <text x=\"{3:.1}\" y=\"{2:.1}\" font-family=\"sans-serif\" font-size=\"11\" fill=\"#d62728\">p95 target {4}s</text>",
            x(t),
            y(0.0),
            y(ymax) + 12.0,
            x(t) + 3.0,
            target.as_secs()
        );
    }
    for (i, m) in marks.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"/>\
             <text class=\"legend\" x=\"{PAD}\" y=\"{:.1}\" fill=\"{}\" font-family=\"sans-serif\" font-size=\"11\">● {} — p95 {:.0}s, idle {:.1} VM-hours, idle cost {}</text>\
             <text class=\"detail\" x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\" font-family=\"sans-serif\" font-size=\"10\">{}</text>",
            x(m.p95),
            y(m.idle_cost),
            m.color,
            H + 32.0 * i as f64,
            m.color,
            esc(&m.label),
            m.p95,
            m.idle_hours,
            esc(&money(prices, m.idle_cost)),
            PAD + 12.0,
            H + 32.0 * i as f64 + 13.0,
            esc(&m.detail)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A round step for five to ten ticks up to `max`: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 8.0).max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|step| *step >= raw).unwrap_or(10.0 * power)
}

/// A page of titled charts (inline SVG) and the printed summary, for the goal run.
pub fn charts_page(title: &str, sections: &[(String, String)], printed: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <style>body{{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:960px}}\
         pre{{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}}\
         svg{{background:#fff;border:1px solid #ccc;margin:8px 0}}</style></head><body>\n<h1>{title}</h1>\n",
        title = esc(title)
    );
    for (heading, svg) in sections {
        // A standalone SVG carries an XML declaration; inline, it must not.
        let svg = svg.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>").trim();
        let _ = writeln!(out, "<h2>{}</h2>{svg}", esc(heading));
    }
    let _ = writeln!(out, "<h2>As printed</h2><pre id=\"printed\">{}</pre>\n</body></html>", esc(printed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(106.0), 20.0);
        assert_eq!(nice_step(3284.0), 500.0);
        assert_eq!(nice_step(1097.0), 200.0);
        assert_eq!(nice_step(8.0), 1.0);
    }

    #[test]
    fn the_chart_marks_the_target_and_names_each_mark_with_its_setting() {
        let mark = Mark {
            label: "cheapest".into(),
            detail: "min 0 parked 16".into(),
            p95: 56.0,
            idle_hours: 570.1,
            idle_cost: 334.17,
            color: "#1f77b4",
        };
        let svg = chart("c", &[], &[mark], None, Some(Duration::from_secs(60)), &Prices::default());
        assert!(svg.contains("p95 target 60s"), "{svg}");
        assert!(svg.contains("● cheapest — p95 56s, idle 570.1 VM-hours, idle cost USD 334.17</text>"), "{svg}");
        assert!(svg.contains(">min 0 parked 16</text>"), "{svg}");
    }
}
