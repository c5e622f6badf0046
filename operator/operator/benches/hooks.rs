//! Hook throughput and latency on loopback, and the operator's memory at 1,000
//! instances. Printed figures, not assertions: `just bench` (or
//! `cargo bench -p operator --bench hooks`); results go in docs/benchmarks.md.
//!
//! Each simulated VM holds one keep-alive HTTP/1.1 connection from its own
//! 127.x.y.z address and sends job-started then job-completed, so every hook takes
//! the full path: identity lookup, per-instance lock, busy-record write or delete.

use std::{
    net::{IpAddr, SocketAddr},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use operator::{
    controller::{Controller, Settings},
    model::JobRef,
    policy::PoolSpec,
    ports::{BusyRecord, Ports},
    queue::QueueBusyRecord,
    run::{run, RunSettings},
};
use operator_sim::memory::{
    InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetSettings,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
    sync::Mutex,
};
use tokio_util::sync::CancellationToken;

/// A keep-alive HTTP/1.1 connection from one source address.
struct Conn {
    stream: BufReader<TcpStream>,
    host: SocketAddr,
}

impl Conn {
    async fn open(from: IpAddr, to: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let stream = socket.connect(to).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream: BufReader::new(stream), host: to }
    }

    async fn post(&mut self, path: &str, body: &str) -> u16 {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await.unwrap();
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).await.unwrap();
        let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        status
    }
}

fn job(n: usize) -> String {
    serde_json::to_string(&JobRef {
        repository: "octo-org/octo-repo".into(),
        run_id: 1_000_000 + n as u64,
        run_attempt: 1,
        job_name: "build".into(),
    })
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Start the operator in-process over `instances` booted VMs with `busy` as the record.
async fn start(instances: u32, busy: Arc<dyn BusyRecord>) -> (SocketAddr, Vec<IpAddr>, CancellationToken) {
    let scale_set = Arc::new(InMemoryScaleSet::with_running(
        ScaleSetSettings { name_prefix: "vmssbench".into(), ip_block: 4, ..ScaleSetSettings::default() },
        instances,
    ));
    let ips = scale_set.running_boots().into_iter().map(|b| b.ip).collect();
    let settings = Settings {
        labels: vec!["bench".into()],
        ..Settings::new(
            "vmss-bench",
            "octo-org/octo-repo",
            PoolSpec {
                scale_in_delay: Duration::from_secs(3600),
                registration_timeout: Duration::from_secs(3600),
                runner_exit_timeout: Duration::from_secs(3600),
                ..PoolSpec::new(instances, instances, 0)
            },
        )
    };
    let ports = Ports {
        scale_set,
        github: Arc::new(InMemoryGithub::new("https://github.com/o/r")),
        busy,
        secrets: Arc::new(InMemorySecretStore::default()),
    };
    let controller = Controller::new(settings, ports);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let run_settings = RunSettings {
        http: operator::api::HttpLimits::default(),
        debounce: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
        listener: None,
        learned: None,
    };
    tokio::spawn(run(controller.clone(), listener, run_settings, shutdown.clone()));
    while !controller.is_recovered() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (addr, ips, shutdown)
}

/// Phase 1 (not timed): every VM connects and registers. Phase 2 (timed): every
/// VM sends job-started then job-completed, `concurrency` VMs at a time.
async fn drive(addr: SocketAddr, ips: &[IpAddr], concurrency: usize) -> (usize, Duration, Vec<Duration>) {
    let mut conns = Vec::with_capacity(ips.len());
    for (n, ip) in ips.iter().enumerate() {
        let mut conn = Conn::open(*ip, addr).await;
        assert_eq!(conn.post("/api/v1/registration", "{}").await, 200);
        conns.push((n, conn));
    }
    let queue = Arc::new(Mutex::new(conns));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some((n, mut conn)) = queue.lock().await.pop() else { break };
                for path in ["/api/v1/hooks/job-started", "/api/v1/hooks/job-completed"] {
                    let t = Instant::now();
                    let status = conn.post(path, &job(n)).await;
                    latencies.push(t.elapsed());
                    assert_eq!(status, 200, "{path}");
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (all.len(), elapsed, all)
}

async fn hooks_case(name: &str, instances: u32, concurrency: usize, busy: Arc<dyn BusyRecord>) {
    let (addr, ips, shutdown) = start(instances, busy).await;
    let (hooks, elapsed, lat) = drive(addr, &ips, concurrency).await;
    println!(
        "hooks {name:<22} hooks={hooks:>6} concurrency={concurrency:>3} throughput={:>7.0}/s p50={:>6.2}ms p99={:>6.2}ms max={:>6.2}ms",
        hooks as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
    );
    shutdown.cancel();
}

fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The real binary (`operator sandbox`) holding 1,000 instances, all
/// registered and busy; its resident memory afterwards.
async fn rss_case(queue_url: Option<&str>) {
    let port = test_support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{{"github": {{"scope": {{"repository": "octo-org/octo-repo"}}, "labels": ["bench"],
             "credential": {{"key_vault_url": "https://kv.vault.azure.net/", "secret_name": "pat"}}}},
            "azure": {{"vmss_resource_id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"}},
            "queue": {{"url": "{}"}},
            "pool": {{"min": 1000, "max": 1000, "free_target_percentage": 0}},
            "server": {{"listen": "{addr}", "operations_listen": "127.0.0.1:{ops_port}"}}}}"#,
        queue_url.unwrap_or("https://unused.queue.core.windows.net/q"),
        ops_port = test_support::free_port()
    );
    let file = dir.path().join("operator.json");
    std::fs::write(&file, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_operator"));
    cmd.args(["sandbox", "--config"]).arg(&file).env("RUST_LOG", "warn");
    if queue_url.is_none() {
        cmd.arg("--in-memory-queue");
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let ready = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(ready.elapsed() < Duration::from_secs(20), "the sandbox did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (idle_rss, _) = rss_of(child.id());
    // The simulated scale set numbers its instances 127.1.x.y (ScaleSetSettings::default).
    let ips: Vec<IpAddr> =
        (0..1000u32).map(|id| IpAddr::from([127, 1, (1 + id / 250) as u8, (1 + id % 250) as u8])).collect();
    // Like the hook scripts (one curl per hook), each request uses its own connection.
    let mut registered = vec![false; ips.len()];
    for _ in 0..50 {
        // The first requests may meet the operator still recovering (503); retry those.
        for (n, ip) in ips.iter().enumerate() {
            if !registered[n] {
                registered[n] = Conn::open(*ip, addr).await.post("/api/v1/registration", "{}").await == 200;
            }
        }
        if registered.iter().all(|r| *r) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (n, ip) in ips.iter().enumerate() {
        assert_eq!(Conn::open(*ip, addr).await.post("/api/v1/hooks/job-started", &job(n)).await, 200);
    }
    let registered = registered.iter().filter(|r| **r).count();
    assert_eq!(registered, 1000);
    tokio::time::sleep(Duration::from_secs(2)).await; // a reconcile pass over the busy pool
    let (rss, hwm) = rss_of(child.id());
    println!(
        "rss {:<22} instances=1000 busy=1000 rss={:.1}MB peak={:.1}MB (at start {:.1}MB)",
        if queue_url.is_some() { "(Azurite queue)" } else { "(in-memory queue)" },
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this bench has no test cases.
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!("operator benchmarks on {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
        hooks_case("in-memory queue", 5000, 64, Arc::new(InMemoryBusyRecord::default())).await;

        let azurite = test_support::Azurite::start();
        let record = QueueBusyRecord::new(&azurite.queue_url("bench"), None).unwrap();
        record.ensure_queue().await.unwrap();
        hooks_case("Azurite queue", 1000, 32, Arc::new(record)).await;

        rss_case(None).await;
        let rss_queue = QueueBusyRecord::new(&azurite.queue_url("rss"), None).unwrap();
        rss_queue.ensure_queue().await.unwrap();
        rss_case(Some(&azurite.queue_url("rss"))).await;
    });
}
