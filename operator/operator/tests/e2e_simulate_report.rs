//! `operator simulate --report`: the real binary writes the page, and a real headless
//! Chromium (installed by `scripts/install-apt-tools.sh`, pinned in
//! `tools/apt-packages.txt`) renders it: the charts exist, they carry the numbers the
//! command printed, and the browser logs no console message.

use std::{path::Path, process::Command};

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (install it with scripts/install-apt-tools.sh)")
}

/// The value after `label` in the printed summary, e.g. `p95 ` → `452s`.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    let line = stdout.lines().find(|l| l.contains("job wait:")).expect("the wait line is printed");
    let rest = &line[line.find(label).expect("the label is printed") + label.len()..];
    rest.split_whitespace().next().expect("a value follows")
}

#[test]
fn the_report_renders_in_chromium_with_the_printed_numbers_and_no_console_message() {
    let dir = tempfile::tempdir().unwrap();
    // Three bursts of jobs a few minutes apart, each longer than a boot.
    let mut trace = String::new();
    for (n, arrival) in [0u32, 5, 10, 15, 20, 400, 402, 404, 406, 408, 410, 1500, 1501, 1502].iter().enumerate() {
        trace.push_str(&format!(
            "{{\"arrival\": {}, \"duration\": {}, \"labels\": [\"self-hosted\", \"linux\"]}}\n",
            1_750_000_000 + arrival,
            300 + 30 * n
        ));
    }
    std::fs::write(dir.path().join("trace.jsonl"), trace).unwrap();
    let page = dir.path().join("report.html");
    let run = Command::new(env!("CARGO_BIN_EXE_operator"))
        .args(["simulate", "--trace"])
        .arg(dir.path().join("trace.jsonl"))
        .args(["--min", "1", "--max", "10", "--free-target", "50", "--report"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8(run.stdout).unwrap();
    let p95 = printed(&stdout, "p95 ");
    let p50 = printed(&stdout, "p50 ");
    let idle = {
        let line = stdout.lines().find(|l| l.contains("VM-hours: total")).unwrap();
        line.split("idle ").nth(1).unwrap().split_whitespace().next().unwrap().trim_end_matches(',').to_owned()
    };
    // `  cost: idle USD 1.23 (...)`
    let idle_cost = {
        let line = stdout.lines().find(|l| l.starts_with("  cost: idle ")).expect("the cost line is printed");
        line["  cost: idle ".len()..].split(" (").next().unwrap().to_owned()
    };

    let dom = chromium(&["--dump-dom"], &page);
    assert!(dom.status.success());
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    for chart in ["<svg id=\"timeline\"", "<svg id=\"waits\"", "<svg id=\"pareto\""] {
        assert!(dom_text.contains(chart), "{chart} is missing from the rendered page");
    }
    assert!(dom_text.contains("class=\"pool\"") && dom_text.contains("class=\"cdf\""), "the lines are drawn");
    assert!(dom_text.contains(&format!("id=\"fig-p95\">{p95}<")), "the table shows the printed p95 {p95}");
    assert!(dom_text.contains(&format!("p95 {p95}</text>")), "the wait chart marks the printed p95 {p95}");
    assert!(dom_text.contains(&format!("p50 {p50}</text>")), "the wait chart marks the printed p50 {p50}");
    assert!(
        dom_text.contains(&format!("idle {idle} VM-hours, idle cost {idle_cost}</text>")),
        "the chart names the printed idle {idle} VM-hours and idle cost {idle_cost}"
    );
    assert!(
        dom_text.contains(&format!("id=\"fig-idle-cost\">{idle_cost}<")),
        "the table shows the idle cost {idle_cost}"
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged to the console: {console:?}");

    let shot = dir.path().join("report.png");
    let screenshot = chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1000,1400"], &page);
    assert!(screenshot.status.success());
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a drawn page, not a blank one ({} bytes)", png.len());
}
