//! The real binary: config validation, generators, the operator (as `sandbox`, on the
//! in-memory world) starting, answering and stopping cleanly on SIGTERM, and stopping
//! non-zero with the cause when its scale set is gone.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_operator");

mod sandbox_config;

/// A configuration listening on `listen` (the runner API) and `ops` (`/metrics`, `/readyz`).
fn config(min: u32, max: u32, listen: &str, ops: &str) -> String {
    sandbox_config::sandbox_config(min, max, listen, ops, "")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_invalid_config_names_the_field_and_the_rule_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "operator.toml", &config(5, 3, "127.0.0.1:0", "127.0.0.1:0"));
    let out = Command::new(BIN).args(["config", "validate"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pool.min (5) must not exceed pool.max (3)"), "{stderr}");

    let out = Command::new(BIN).args(["sandbox", "--in-memory-queue", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success(), "the operator refuses to start");
    assert!(String::from_utf8_lossy(&out.stderr).contains("pool.min (5)"));
}

#[test]
fn environment_variables_are_validated_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "operator.toml", &config(1, 3, "127.0.0.1:0", "127.0.0.1:0"));
    let ok = Command::new(BIN).args(["config", "validate"]).arg(&file).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = Command::new(BIN)
        .args(["config", "validate"])
        .arg(&file)
        .env("OPERATOR_POOL__FREE_TARGET_PERCENTAGE", "100")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pool.free_target_percentage (100)"));
}

#[test]
fn generators_print_the_committed_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (args, file) in
        [(&["config", "schema"][..], "schema/operator-config.schema.json"), (&["openapi"][..], "schema/openapi.json")]
    {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(root.join(file)).unwrap(), "{file}");
    }
}

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

#[test]
fn the_operator_answers_and_stops_cleanly_on_sigterm() {
    let port = test_support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let ops = format!("127.0.0.1:{}", test_support::free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "operator.json", &{
        let value: toml::Value = toml::from_str(&config(2, 4, &addr, &ops)).unwrap();
        serde_json::to_string(&value).unwrap()
    });
    let mut child = Command::new(BIN)
        .args(["sandbox", "--in-memory-queue", "--config"])
        .arg(&file)
        .env("OPERATOR_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let ready = loop {
        if let Some((200, body)) = get(&ops, "/readyz") {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "operator did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ready.contains("\"ready\":true"), "{ready}");
    let (status, metrics) = get(&ops, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("vmss_runner_actual_instances 2"), "{metrics}");
    for path in ["/metrics", "/readyz"] {
        let (status, body) = get(&addr, path).unwrap();
        assert_eq!(status, 404, "the runner listener does not serve {path}: {body}");
        assert!(body.contains("\"code\":\"not_found\""), "{body}");
    }
    assert_eq!(get(&addr, "/healthz").map(|(s, _)| s), Some(200), "liveness on both listeners");

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "operator did not stop within its grace time");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let mut logs = String::new();
    child.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "JSON logs when stdout is not a terminal: {logs}");
    assert!(lines.iter().any(|l| l["message"] == "shut down cleanly"), "{logs}");
    assert!(
        lines.iter().any(|l| l["pool"] == "vmss-runners" || l["span"]["pool"] == "vmss-runners"),
        "spans carry the pool: {logs}"
    );
}

#[test]
fn the_operator_exits_non_zero_naming_the_cause_when_its_scale_set_is_gone() {
    let port = test_support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let ops = format!("127.0.0.1:{}", test_support::free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "operator.toml", &config(1, 3, &addr, &ops));
    let mut child = Command::new(BIN)
        .args(["sandbox", "--in-memory-queue", "--delete-scale-set-after", "2s", "--config"])
        .arg(&file)
        .env("OPERATOR_LOG__FORMAT", "json")
        .env("OPERATOR_RECONCILE__PERIOD", "5s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !matches!(get(&ops, "/readyz"), Some((200, _))) {
        assert!(started.elapsed() < Duration::from_secs(20), "operator did not become ready");
        assert!(child.try_wait().unwrap().is_none(), "the operator ended before it was ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the operator kept running without its scale set");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "a non-zero exit, so systemd restarts it: {status}");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("the reconcile loop stopped"), "{stderr}");
    assert!(stderr.contains("the scale set no longer exists"), "{stderr}");
    assert!(stderr.contains("the resource was not found"), "the whole chain: {stderr}");
    let mut logs = String::new();
    child.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    let stopped: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert!(
        stopped.iter().any(|l| l["error"].as_str().is_some_and(|e| e.contains("the scale set no longer exists"))),
        "an ERROR log line names the cause: {logs}"
    );
}

#[test]
fn serve_is_production_only_and_the_sandbox_needs_a_sas_or_an_in_memory_queue() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "operator.toml", &config(1, 3, "127.0.0.1:0", "127.0.0.1:0"));
    let out = Command::new(BIN).args(["serve", "--simulated-cloud", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--simulated-cloud'"));

    let out = Command::new(BIN).args(["sandbox", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success(), "a queue URL without a SAS cannot be used without an identity");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give queue.url with a SAS (Azurite), or --in-memory-queue"), "{stderr}");
}

#[test]
fn the_sandbox_keeps_its_busy_record_in_a_sas_queue() {
    let azurite = test_support::Azurite::start();
    let queue_url = azurite.queue_url("sandbox");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        operator::queue::QueueBusyRecord::new(&queue_url, None).unwrap().ensure_queue().await.unwrap();
    });
    let port = test_support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let ops = format!("127.0.0.1:{}", test_support::free_port());
    let dir = tempfile::tempdir().unwrap();
    let text = config(1, 3, &addr, &ops).replace("https://stbusy.queue.core.windows.net/busy-runners", &queue_url);
    let file = write(dir.path(), "operator.toml", &text);
    let mut child = Command::new(BIN)
        .args(["sandbox", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !matches!(get(&ops, "/readyz"), Some((200, _))) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            panic!("the sandbox ended ({status}): {stderr}");
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the sandbox did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success(), "a clean stop");
}
