//! The bounded HTTP/1.1 server. A job on a runner VM is untrusted code that can reach the
//! runner API from its VM's address, so nothing one caller does may starve the others:
//!
//! - **Connections are capped** per source address and in total ([`ConnectionGate`]); one
//!   over a cap is closed right at accept, before any byte is read, counted in
//!   `vmss_runner_connections_refused_total{reason}` and logged at most once per source per
//!   interval ([`PerSourceLog`]).
//! - **Only HTTP/1.1** is spoken (hyper's `http1` connection, no h2c upgrade or preface).
//! - **Slow clients are cut off**: a request head must arrive within `header_read_timeout`,
//!   and hyper runs the same clock while a kept-alive connection idles before its next
//!   request; the body and the answer within `request_timeout` ([`super::guard`]).
//! - **Memory per connection is bounded**: hyper's read buffer holds at most
//!   [`HttpLimits::read_buffer_bytes`], and a head over `max_header_bytes` is refused.
//! - `accept` failing for lack of file descriptors (EMFILE) pauses the loop briefly instead
//!   of spinning; the binary raises its own descriptor limit at start (`main.rs`).

use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, Request};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{
    config::ServerConfig,
    metrics::{Metrics, ReasonLabel},
};

/// Every bound of the server, from `server.*` in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    /// A refused source is logged at most once in this interval (per source and code).
    pub log_interval: Duration,
}

impl HttpLimits {
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            max_body_bytes: server.max_body_bytes,
            max_header_bytes: server.max_header_bytes,
            max_uri_bytes: server.max_uri_bytes,
            max_connections: server.max_connections,
            max_connections_per_source: server.max_connections_per_source,
            header_read_timeout: server.header_read_timeout.get(),
            request_timeout: server.request_timeout.get(),
            log_interval: DEFAULT_LOG_INTERVAL,
        }
    }

    /// hyper's limit on a request head. Heads up to `max_header_bytes` reach the router's
    /// guard, which answers a larger one with 431 in the API's error shape; hyper itself
    /// closes with a bare 431 only beyond four times that.
    pub fn hyper_header_bytes(&self) -> usize {
        self.max_header_bytes.saturating_mul(4).max(8 * 1024)
    }

    /// hyper's read buffer per connection (at least its minimum, 8 KiB).
    pub fn read_buffer_bytes(&self) -> usize {
        (self.hyper_header_bytes() + 4 * 1024).max(8 * 1024)
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

/// How often one source's refusals are logged, at most.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Sources remembered by [`PerSourceLog`]; beyond it lines are suppressed (and counted),
/// so a spread of addresses cannot grow the map without bound.
const MAX_REMEMBERED_SOURCES: usize = 4096;

/// A source and the kind of line about it (an error code, a refusal reason).
type LineKey = (IpAddr, &'static str);

/// When a line was last written for a key, and how many were left out since.
type LastLine = (Instant, u64);

/// "Log this at most once per interval per source and code", with a count of what was left out.
#[derive(Debug)]
pub struct PerSourceLog {
    interval: Duration,
    seen: Mutex<HashMap<LineKey, LastLine>>,
    suppressed: Counter,
}

impl PerSourceLog {
    pub fn new(interval: Duration, suppressed: Counter) -> Self {
        Self { interval, seen: Mutex::new(HashMap::new()), suppressed }
    }

    /// `Some(left_out)` when a line about `source` and `code` may be written now, with the
    /// number of lines left out since the last one; `None` when it must be left out.
    pub fn admit(&self, source: IpAddr, code: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() >= MAX_REMEMBERED_SOURCES {
            let interval = self.interval;
            seen.retain(|_, (at, _)| now.saturating_duration_since(*at) < interval);
        }
        let full = seen.len() >= MAX_REMEMBERED_SOURCES;
        match seen.get_mut(&(source, code)) {
            Some((at, left_out)) if now.saturating_duration_since(*at) < self.interval => {
                *left_out += 1;
                self.suppressed.inc();
                None
            }
            Some((at, left_out)) => {
                *at = now;
                Some(std::mem::take(left_out))
            }
            None if full => {
                self.suppressed.inc();
                None
            }
            None => {
                seen.insert((source, code), (now, 0));
                Some(0)
            }
        }
    }
}

/// Why a connection was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    PerSource,
    Total,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerSource => "per_source",
            Self::Total => "total",
        }
    }
}

/// Counts open connections per source and in total; admits a new one only under both caps.
#[derive(Debug)]
pub struct ConnectionGate {
    max_total: usize,
    max_per_source: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    gauge: Gauge,
}

impl ConnectionGate {
    pub fn new(max_total: usize, max_per_source: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_source, open: Mutex::new((0, HashMap::new())), gauge })
    }

    /// A slot for a connection from `source`, held until the [`Admission`] drops.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Admission, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (total, per_source) = &mut *open;
        if *total >= self.max_total {
            return Err(Refused::Total);
        }
        let mine = per_source.entry(source).or_insert(0);
        if *mine >= self.max_per_source {
            return Err(Refused::PerSource);
        }
        *mine += 1;
        *total += 1;
        self.gauge.inc();
        Ok(Admission { gate: self.clone(), source })
    }

    /// Connections open now from `source`.
    pub fn open_from(&self, source: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.1.get(&source).copied().unwrap_or(0)
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Admission {
    gate: Arc<ConnectionGate>,
    source: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (total, per_source) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per_source.remove(&self.source);
            }
        }
        self.gate.gauge.dec();
    }
}

/// What the accept loop needs besides the router: the caps and where to count refusals.
#[derive(Clone, Debug)]
pub struct ServerParts {
    pub gate: Arc<ConnectionGate>,
    pub refused: Family<ReasonLabel, Counter>,
    pub log: Arc<PerSourceLog>,
}

impl ServerParts {
    pub fn new(limits: &HttpLimits, metrics: &Metrics, log: Arc<PerSourceLog>) -> Self {
        Self {
            gate: ConnectionGate::new(
                limits.max_connections,
                limits.max_connections_per_source,
                metrics.connections_open.clone(),
            ),
            refused: metrics.connections_refused.clone(),
            log,
        }
    }
}

/// How long `accept` pauses after running out of file descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown`; then stops accepting, asks every open
/// connection to finish its current request, and waits for them (the caller bounds the
/// wait with its grace time).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    parts: ServerParts,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.hyper_header_bytes())
        .max_buf_size(limits.read_buffer_bytes())
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) if is_resource_exhaustion(&err) => {
                if parts.log.admit(IpAddr::from([0, 0, 0, 0]), "accept_failed").is_some() {
                    tracing::error!(error = %err, "accepting a connection failed; pausing accept");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        let admission = match parts.gate.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(reason) => {
                drop(stream); // closed before a byte is read
                parts.refused.get_or_create(&ReasonLabel { reason: reason.as_str() }).inc();
                if let Some(left_out) = parts.log.admit(peer.ip(), reason.as_str()) {
                    tracing::warn!(
                        source = %peer.ip(),
                        reason = reason.as_str(),
                        left_out,
                        "connection refused at accept: over the connection cap"
                    );
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _admission = admission;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// An error of one connection that `accept` reports; the listener is fine.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Out of file descriptors (EMFILE, ENFILE) or memory: wait and accept again.
fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == 23 || code == 24 || code == 12 || code == 105)
}

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
/// The scaler's unit sets `LimitNOFILE`; this makes the binary safe under a lower default
/// (1,024 soft) too.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 1, 1, last])
    }

    #[test]
    fn a_source_over_its_cap_is_refused_while_another_is_admitted() {
        let gate = ConnectionGate::new(10, 2, Gauge::default());
        let a1 = gate.admit(ip(1)).unwrap();
        let _a2 = gate.admit(ip(1)).unwrap();
        assert_eq!(gate.admit(ip(1)).unwrap_err(), Refused::PerSource);
        let _b = gate.admit(ip(2)).expect("another source is not affected");
        drop(a1);
        assert_eq!(gate.open_from(ip(1)), 1);
        assert!(gate.admit(ip(1)).is_ok(), "a closed connection frees its slot");
    }

    #[test]
    fn the_total_cap_holds_across_sources() {
        let gate = ConnectionGate::new(3, 2, Gauge::default());
        let _held: Vec<_> = [1, 2, 3].into_iter().map(|n| gate.admit(ip(n)).unwrap()).collect();
        assert_eq!(gate.admit(ip(4)).unwrap_err(), Refused::Total);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_is_logged_once_per_interval_and_the_lines_left_out_are_counted() {
        let suppressed = Counter::default();
        let log = PerSourceLog::new(Duration::from_secs(60), suppressed.clone());
        assert_eq!(log.admit(ip(1), "unknown_instance"), Some(0));
        assert_eq!(log.admit(ip(1), "unknown_instance"), None);
        assert_eq!(log.admit(ip(1), "unknown_instance"), None);
        assert_eq!(log.admit(ip(2), "unknown_instance"), Some(0), "another source has its own interval");
        assert_eq!(log.admit(ip(1), "malformed_json"), Some(0), "another code too");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(log.admit(ip(1), "unknown_instance"), Some(2), "the next line says how many were left out");
        assert_eq!(suppressed.get(), 2);
    }

    #[test]
    fn hypers_read_buffer_is_bounded_by_the_header_limit() {
        let limits = HttpLimits::default();
        assert_eq!(limits.max_header_bytes, 8 * 1024);
        assert!(limits.read_buffer_bytes() <= 40 * 1024, "{}", limits.read_buffer_bytes());
        assert!(limits.hyper_header_bytes() > limits.max_header_bytes);
    }
}
