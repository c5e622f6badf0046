//! `--report out.html`: one self-contained page (no script, no network, inline SVG)
//! with the figures the command prints: a timeline of demand, busy runners and pool
//! size with each job's wait, the distribution of waits, and a chart of p95 wait
//! against idle VM-hours with the baselines, the bound and — for a sweep — every
//! setting, the Pareto front and the recommended setting. Every number drawn is also
//! written as text in the page, with an `id` a test can find.

use std::{fmt::Write as _, time::Duration};

use operator_sim::workload::Workload;

use super::{
    baselines, quantile,
    report::{hours, Baselines},
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
        ("bound-idle-vm-hours", format!("{:.1}", b.bound.idle_time() / 3600.0)),
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
    let _ = writeln!(out, "<h2>Wait against idle VM-hours</h2>{}", pareto(setting, outcome, b, sweep));
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

/// p95 wait (x) against idle VM-hours (y): this setting, the baselines, the bound, and a
/// sweep's settings with its front and recommendation.
fn pareto(
    setting: &Setting,
    outcome: &Outcome,
    b: &Baselines,
    sweep: Option<(&[Point], Option<&Point>, Duration)>,
) -> String {
    let p95 = |x: &baselines::Baseline| baselines::quantile(&x.waits, 0.95);
    let mut marks: Vec<(String, f64, f64, &str)> = vec![
        (
            format!("this setting ({setting})"),
            quantile(&outcome.waits, 0.95).as_secs_f64(),
            hours(outcome.idle_time()),
            "#1f77b4",
        ),
        (format!("static pool N = {}", b.static_n), p95(&b.static_pool), b.static_pool.idle_time() / 3600.0, "#8c564b"),
        ("one fresh VM per job".into(), p95(&b.per_job), b.per_job.idle_time() / 3600.0, "#9467bd"),
        ("clairvoyant zero-wait bound".into(), 0.0, b.bound.idle_time() / 3600.0, "#2ca02c"),
    ];
    let points = sweep.map(|s| s.0).unwrap_or_default();
    let all_x = points.iter().map(|p| p.p95.as_secs_f64()).chain(marks.iter().map(|m| m.1));
    let all_y = points.iter().map(|p| p.idle_hours).chain(marks.iter().map(|m| m.2));
    let (xmax, ymax) = (all_x.fold(1.0, f64::max) * 1.05, all_y.fold(1.0, f64::max) * 1.05);
    let x = |v: f64| PAD + v / xmax * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / ymax * (H - 2.0 * PAD);
    let mut svg = format!(
        "<svg id=\"pareto\" width=\"{W}\" height=\"{}\" viewBox=\"0 0 {W} {}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"{PAD}\" y=\"16\">p95 wait (s, to {xmax:.0}) against idle VM-hours (to {ymax:.0})</text>",
        H + 20.0 * marks.len() as f64 + 40.0,
        H + 20.0 * marks.len() as f64 + 40.0
    );
    for p in points {
        let _ = write!(
            svg,
            "<circle class=\"setting\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#bbb\"><title>{} p95 {}s idle {:.1}</title></circle>",
            x(p.p95.as_secs_f64()),
            y(p.idle_hours),
            esc(&p.setting.to_string()),
            p.p95.as_secs(),
            p.idle_hours
        );
    }
    if !points.is_empty() {
        let front: Vec<String> = pareto_front(points)
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.p95.as_secs_f64()), y(p.idle_hours)))
            .collect();
        let _ =
            write!(svg, "<polyline class=\"front\" fill=\"none\" stroke=\"#ff7f0e\" points=\"{}\"/>", front.join(" "));
    }
    if let Some((_, Some(best), target)) = sweep {
        marks.push((
            format!("recommended for p95 <= {}s: {}", target.as_secs(), best.setting),
            best.p95.as_secs_f64(),
            best.idle_hours,
            "#d62728",
        ));
    }
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#2ca02c\" stroke-dasharray=\"4\"/>",
        W - PAD,
        y(b.bound.idle_time() / 3600.0)
    );
    for (i, (label, px, py, color)) in marks.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{color}\"/>\
             <text class=\"legend\" x=\"{PAD}\" y=\"{:.1}\" fill=\"{color}\">● {} — p95 {:.0}s, idle {:.1} VM-hours</text>",
            x(*px),
            y(*py),
            H + 20.0 * i as f64,
            esc(label),
            px,
            py
        );
    }
    svg.push_str("</svg>");
    svg
}
