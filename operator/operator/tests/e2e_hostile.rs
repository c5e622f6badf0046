//! A hostile runner against the real binary (`operator sandbox --in-memory-queue`), on
//! loopback only and bounded in time and count (issue 11). One instance's address
//! (127.1.1.1, the sandbox's instance 0) holds more connections than the per-source cap,
//! runs slowloris and slow-body connections and a request flood, one attack after the
//! other; throughout, another instance (127.1.1.2) sends its job-started hook (any answer
//! counts: its own state decides which) and the
//! operations listener is asked `/readyz`, each on a fresh connection, and both must be
//! answered within 1 s. The attacker's connections over the cap are closed at accept,
//! slow clients are cut off by the header and request timeouts, and the operator's RSS
//! stays under [`RSS_BOUND_KB`]. The figures are printed (`--nocapture`); the flood lasts
//! `HOSTILE_FLOOD_SECS` seconds (default 5; `docs/benchmarks.md` uses 20), and
//! `HOSTILE_OPERATOR_BIN` names another build of the binary (the release one, for figures).

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const BIN: &str = env!("CARGO_BIN_EXE_operator");
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 1, 1, 1));
const NEIGHBOUR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 1, 1, 2));
const PER_SOURCE: usize = 8;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// What a probe may take, at most, under any attack.
const PROBE_BOUND: Duration = Duration::from_secs(1);
/// The operator's resident set must stay under this (a debug build; the release build
/// needs far less, see `docs/benchmarks.md`).
const RSS_BOUND_KB: u64 = 64 * 1024;

mod sandbox_config;

fn config(listen: SocketAddr, ops: SocketAddr) -> String {
    let limits =
        format!("max_connections_per_source = {PER_SOURCE}\nheader_read_timeout = \"2s\"\nrequest_timeout = \"3s\"\n");
    sandbox_config::sandbox_config(3, 4, &listen.to_string(), &ops.to_string(), &limits)
}

/// A TCP connection from `from` (one of the sandbox's instance addresses) to `to`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// One request on a fresh connection; the status and how long the answer took.
async fn request(from: IpAddr, to: SocketAddr, raw: &str) -> Result<(u16, Duration), String> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = connect_from(from, to).await.map_err(|e| format!("connect: {e}"))?;
        stream.write_all(raw.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))
    };
    let status = tokio::time::timeout(Duration::from_secs(5), exchange).await.map_err(|_| "timed out".to_owned())??;
    Ok((status, started.elapsed()))
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: operator\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n")
}

const JOB: &str = r#"{"repository":"octo-org/octo-repo","run_id":42,"run_attempt":1,"job_name":"build"}"#;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).map_or(0, |v| v as u64)
}

/// Probes of the neighbour's hook and of `/readyz`, collected per phase.
#[derive(Default)]
struct Probes {
    hook: Vec<Duration>,
    ready: Vec<Duration>,
    failures: Vec<String>,
    statuses: std::collections::BTreeMap<u16, u32>,
    rss_max_kb: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn summary(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    format!(
        "n={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
        sorted.len(),
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    )
}

struct Operator {
    child: Child,
    api: SocketAddr,
    ops: SocketAddr,
    lines: Arc<AtomicU64>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_operator(dir: &std::path::Path) -> Operator {
    let api = SocketAddr::from(([127, 0, 0, 1], test_support::free_port()));
    let ops = SocketAddr::from(([127, 0, 0, 1], test_support::free_port()));
    let file = dir.join("operator.toml");
    std::fs::write(&file, config(api, ops)).unwrap();
    let bin = std::env::var("HOSTILE_OPERATOR_BIN").unwrap_or_else(|_| BIN.to_owned());
    let mut child = Command::new(bin)
        .args(["sandbox", "--in-memory-queue", "--config"])
        .arg(&file)
        .env("OPERATOR_LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the log as it is written, so a full pipe never slows the operator down.
    let lines = Arc::new(AtomicU64::new(0));
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn({
        let lines = lines.clone();
        move || {
            for _ in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Operator { child, api, ops, lines }
}

/// Runs `attack` while the neighbour and `/readyz` are probed every 50 ms.
async fn during<F, Fut, T>(operator: &Operator, name: &str, attack: F) -> (Probes, T)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let probes = Arc::new(Mutex::new(Probes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn({
        let (probes, stop, api, ops, pid) =
            (probes.clone(), stop.clone(), operator.api, operator.ops, operator.child.id());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let hook = request(NEIGHBOUR, api, &post("/api/v1/hooks/job-started", JOB)).await;
                let ready = request(NEIGHBOUR, ops, &get("/readyz")).await;
                {
                    let mut p = probes.lock().unwrap();
                    // Any answer counts: the neighbour's own state decides which (200 while it
                    // is busy, 409 once a pass found no runner behind its job and recycles it).
                    match hook {
                        Ok((status, took)) if status < 500 || status == 503 => {
                            p.hook.push(took);
                            *p.statuses.entry(status).or_default() += 1;
                        }
                        other => p.failures.push(format!("hook: {other:?}")),
                    }
                    match ready {
                        Ok((200, took)) => p.ready.push(took),
                        other => p.failures.push(format!("readyz: {other:?}")),
                    }
                    p.rss_max_kb = p.rss_max_kb.max(rss_kb(pid));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let out = attack().await;
    stop.store(true, Ordering::Relaxed);
    prober.await.unwrap();
    let probes = Arc::try_unwrap(probes).ok().unwrap().into_inner().unwrap();
    println!(
        "[{name}] neighbour hook {} {:?} | /readyz {} | RSS max {} KiB | probe failures {}",
        summary(&probes.hook),
        probes.statuses,
        summary(&probes.ready),
        probes.rss_max_kb,
        probes.failures.len()
    );
    (probes, out)
}

fn check(name: &str, probes: &Probes) {
    assert!(probes.failures.is_empty(), "[{name}] probes failed: {:?}", probes.failures);
    assert!(!probes.hook.is_empty() && !probes.ready.is_empty(), "[{name}] no probe ran");
    let worst = probes.hook.iter().chain(&probes.ready).max().copied().unwrap_or_default();
    assert!(worst < PROBE_BOUND, "[{name}] a probe took {worst:?}");
    assert!(probes.rss_max_kb < RSS_BOUND_KB, "[{name}] RSS {} KiB", probes.rss_max_kb);
}

/// Opens `n` connections from the attacker at once and says nothing; how many the
/// operator closed at once (within 300 ms, without an answer), and the ones it kept.
async fn hold(api: SocketAddr, n: usize) -> (usize, Vec<TcpStream>) {
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        match connect_from(ATTACKER, api).await {
            Ok(stream) => streams.push(stream),
            Err(_) => refused += 1,
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut kept = Vec::new();
    for mut stream in streams {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(5), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => refused += 1, // closed (or reset) at accept
            Ok(Ok(_)) => panic!("the operator answered a request never sent"),
            Err(_) => kept.push(stream),
        }
    }
    (refused, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_runner_cannot_starve_another_instance_or_the_operations_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(dir.path());
    let started = Instant::now();
    while !matches!(request(NEIGHBOUR, operator.ops, &get("/readyz")).await, Ok((200, _))) {
        assert!(started.elapsed() < Duration::from_secs(30), "the sandbox did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = operator.child.id();
    println!("operator ready; RSS {} KiB", rss_kb(pid));

    // Baseline, with two checks of the protocol: HTTP/2 over cleartext (prior knowledge)
    // is not spoken, and a kept-alive connection is closed once idle for the header timeout.
    let api = operator.api;
    let (baseline, ()) = during(&operator, "baseline", || async move {
        let mut h2c = connect_from(ATTACKER, api).await.unwrap();
        h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), h2c.read_to_end(&mut answer)).await;
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
            "an HTTP/2 preface gets no HTTP/2 answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
        let mut kept_alive = connect_from(ATTACKER, api).await.unwrap();
        kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: o\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 1024];
        assert!(kept_alive.read(&mut buf).await.unwrap() > 0, "answered");
        let idle = Instant::now();
        let closed = tokio::time::timeout(HEADER_TIMEOUT * 2, kept_alive.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "an idle kept-alive connection is closed");
        println!("[baseline] idle kept-alive connection closed after {:?}", idle.elapsed());
    })
    .await;
    check("baseline", &baseline);

    // 1. More idle connections than the per-source cap: the excess is closed at accept, the
    //    kept ones are closed by the header timeout (which is also the idle timeout).
    let attempts = 5 * PER_SOURCE;
    let (held, (refused, kept)) = during(&operator, "hold", || async move {
        let (refused, kept) = hold(api, attempts).await;
        let opened = Instant::now();
        let mut kept = kept;
        for stream in &mut kept {
            let mut byte = [0u8; 1];
            let closed = tokio::time::timeout(HEADER_TIMEOUT * 2, stream.read(&mut byte)).await;
            assert!(matches!(closed, Ok(Ok(0) | Err(_))), "an idle connection was kept past the header timeout");
        }
        let idle_closed_after = opened.elapsed();
        println!("[hold] {attempts} connections from one address: {refused} refused at accept, {} kept and closed idle after {idle_closed_after:?}", kept.len());
        (refused, kept.len())
    })
    .await;
    check("hold", &held);
    assert_eq!(kept, PER_SOURCE, "exactly the per-source cap is admitted");
    assert_eq!(refused, attempts - PER_SOURCE, "every connection over the cap is refused");

    // 2. Slowloris: a header byte every 300 ms on each of the cap's connections.
    let (slowloris, cut_after) = during(&operator, "slowloris", || async move {
        let mut streams = Vec::new();
        for _ in 0..PER_SOURCE {
            let mut s = connect_from(ATTACKER, api).await.unwrap();
            s.write_all(b"POST /api/v1/hooks/job-started HTTP/1.1\r\n").await.unwrap();
            streams.push(s);
        }
        let begun = Instant::now();
        let mut open = streams.len();
        let mut n = 0u32;
        while open > 0 && begun.elapsed() < HEADER_TIMEOUT * 3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            n += 1;
            open = 0;
            for s in &mut streams {
                if s.write_all(format!("X-Slow-{n}: a\r\n").as_bytes()).await.is_ok() {
                    open += 1;
                }
            }
        }
        assert_eq!(open, 0, "slowloris connections outlived the header timeout");
        begun.elapsed()
    })
    .await;
    println!("[slowloris] {PER_SOURCE} connections cut after {cut_after:?} (header timeout {HEADER_TIMEOUT:?})");
    check("slowloris", &slowloris);

    // 2b. Fat heads: the cap's connections each send 30 KiB of an unfinished head (under
    //     hyper's own limit: held until the header timeout), then as many send 40 KiB (over
    //     it: answered 431 and closed at once). Memory per connection stays bounded.
    let (fat, (unfinished_closed, over_limit)) = during(&operator, "fat heads", || async move {
        let line = format!("X-Fat: {}\r\n", "f".repeat(1016));
        let mut held = Vec::new();
        for _ in 0..PER_SOURCE {
            let mut s = connect_from(ATTACKER, api).await.unwrap();
            s.write_all(b"POST /api/v1/hooks/job-started HTTP/1.1\r\n").await.unwrap();
            for _ in 0..30 {
                s.write_all(line.as_bytes()).await.unwrap();
            }
            held.push(s);
        }
        let mut closed = 0;
        for s in &mut held {
            let mut buf = vec![0u8; 256];
            if matches!(tokio::time::timeout(HEADER_TIMEOUT * 2, s.read(&mut buf)).await, Ok(Ok(_) | Err(_))) {
                closed += 1;
            }
        }
        drop(held);
        let mut answers = Vec::new();
        for _ in 0..PER_SOURCE {
            let mut s = connect_from(ATTACKER, api).await.unwrap();
            let _ = s.write_all(b"POST /api/v1/hooks/job-started HTTP/1.1\r\n").await;
            for _ in 0..40 {
                if s.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            let mut buf = vec![0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            answers.push(String::from_utf8_lossy(&buf[..n]).split_whitespace().nth(1).unwrap_or("closed").to_owned());
        }
        (closed, answers)
    })
    .await;
    println!("[fat heads] {unfinished_closed}/{PER_SOURCE} unfinished 30 KiB heads ended within twice the header timeout; 40 KiB heads answered {over_limit:?}");
    check("fat heads", &fat);
    assert_eq!(unfinished_closed, PER_SOURCE);
    assert!(over_limit.iter().all(|a| a == "431" || a == "closed"), "{over_limit:?}");

    // 3. Slow body: a full head announcing 1,000 bytes, then a byte every 300 ms: 408.
    let (slow_body, statuses) = during(&operator, "slow body", || async move {
        let mut tasks = Vec::new();
        for _ in 0..PER_SOURCE {
            tasks.push(tokio::spawn(async move {
                let mut s = connect_from(ATTACKER, api).await.unwrap();
                let head = "POST /api/v1/hooks/job-started HTTP/1.1\r\nHost: o\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
                s.write_all(head.as_bytes()).await.unwrap();
                let begun = Instant::now();
                let mut answer = vec![0u8; 512];
                loop {
                    tokio::select! {
                        read = s.read(&mut answer) => {
                            let n = read.unwrap_or(0);
                            let text = String::from_utf8_lossy(&answer[..n]).to_string();
                            return (text.split_whitespace().nth(1).unwrap_or("none").to_owned(), begun.elapsed());
                        }
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {
                            let _ = s.write_all(b" ").await;
                        }
                    }
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
    .await;
    println!(
        "[slow body] answers {:?}",
        statuses.iter().map(|(s, t)| format!("{s} after {t:.1?}")).collect::<Vec<_>>()
    );
    check("slow body", &slow_body);
    for (status, after) in &statuses {
        assert_eq!(status, "408", "a slow body is answered 408");
        assert!(*after < REQUEST_TIMEOUT + Duration::from_secs(1), "{after:?}");
    }

    // 4. Flood: the cap's worth of keep-alive connections sending bad requests flat out.
    let flood_secs: u64 = std::env::var("HOSTILE_FLOOD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let lines_before = operator.lines.load(Ordering::Relaxed);
    let (flood, sent) = during(&operator, "flood", || async move {
        let sent = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(flood_secs);
        let mut tasks = Vec::new();
        for worker in 0..PER_SOURCE {
            let sent = sent.clone();
            tasks.push(tokio::spawn(async move {
                let body = if worker % 2 == 0 { "[7]" } else { "{\"exit_code\":0}" };
                let path = if worker % 2 == 0 { "/api/v1/hooks/runner-exited" } else { "/nope" };
                let raw = format!(
                    "POST {path} HTTP/1.1\r\nHost: o\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut buf = vec![0u8; 4096];
                while Instant::now() < until {
                    let Ok(mut s) = connect_from(ATTACKER, api).await else { continue };
                    while Instant::now() < until {
                        if s.write_all(raw.as_bytes()).await.is_err() {
                            break;
                        }
                        match s.read(&mut buf).await {
                            Ok(n) if n > 0 => {
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => break,
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        sent.load(Ordering::Relaxed)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flood_lines = operator.lines.load(Ordering::Relaxed) - lines_before;
    println!(
        "[flood] {sent} bad requests in {flood_secs} s from one address ({:.0}/s); {flood_lines} log lines written meanwhile",
        sent as f64 / flood_secs as f64
    );
    check("flood", &flood);
    assert!(sent > 100, "the flood did reach the operator");
    assert!(flood_lines < 20, "a flood from one address writes a handful of lines, not one per request: {flood_lines}");

    let (_, metrics) = {
        let mut s = connect_from(NEIGHBOUR, operator.ops).await.unwrap();
        s.write_all(get("/metrics").as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        ((), text)
    };
    let refused_total = metric(&metrics, r#"vmss_runner_connections_refused_total{reason="per_source"}"#);
    println!("connections refused (per source): {refused_total}; final RSS {} KiB", rss_kb(pid));
    assert!(refused_total >= (attempts - PER_SOURCE) as u64, "{metrics}");
}
