//! Test-only helpers. Azurite is the real Azure Storage queue service for tests:
//! this crate starts it (or uses `AZURITE_QUEUE_URL`) and builds queue URLs that
//! carry an account SAS signed with Azurite's published development key, because
//! the official SDK sends Entra tokens only and Azurite accepts SAS. Nothing here
//! ships in the operator.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Azurite's well-known development account (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite queue service (stopped on drop), or an external one.
pub struct Azurite {
    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub endpoint: String,
    child: Option<Child>,
}

impl Azurite {
    /// Use `AZURITE_QUEUE_URL` (the queue service endpoint, e.g.
    /// `http://127.0.0.1:10001/devstoreaccount1`) if set; otherwise start
    /// `azurite-queue` from the repository's `node_modules` on a free loopback port.
    pub fn start() -> Self {
        if let Ok(endpoint) = std::env::var("AZURITE_QUEUE_URL") {
            return Self { endpoint: endpoint.trim_end_matches('/').to_owned(), child: None };
        }
        let bin = workspace_root().join("node_modules/.bin/azurite-queue");
        assert!(
            bin.exists(),
            "{} is missing: run `npm ci` at the repository root (the README test command does), or set AZURITE_QUEUE_URL",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent"])
            .args(["--queueHost", "127.0.0.1", "--queuePort", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-queue starts");
        let azurite = Self { endpoint: format!("http://127.0.0.1:{port}/{DEV_ACCOUNT}"), child: Some(child) };
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(30));
        azurite
    }

    /// URL of queue `name`, with an account SAS valid for a day.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{name}?{}", self.endpoint, account_sas(DEV_ACCOUNT, DEV_KEY))
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An account SAS for the queue service (all resource types, read/write/delete/
/// list/add/create/update/process), signed with `key` as the Storage service does.
pub fn account_sas(account: &str, key: &str) -> String {
    let version = "2020-12-06";
    let expiry = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .replace_nanosecond(0)
        .expect("zero nanoseconds is valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats");
    let (permissions, services, resource_types, protocol) = ("rwdlacup", "q", "sco", "https,http");
    // Account SAS string-to-sign for versions 2020-12-06 and later.
    let string_to_sign =
        format!("{account}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n{protocol}\n{version}\n\n");
    let key = base64::engine::general_purpose::STANDARD.decode(key).expect("the key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!(
        "sv={version}&ss={services}&srt={resource_types}&sp={permissions}&se={}&spr={}&sig={}",
        encode(&expiry),
        encode(protocol),
        encode(&signature)
    )
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_for_port(addr: SocketAddr, limit: Duration) {
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(started.elapsed() < limit, "Azurite did not listen on {addr} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_carries_every_field_url_encoded() {
        let sas = account_sas(DEV_ACCOUNT, DEV_KEY);
        for field in ["sv=2020-12-06", "ss=q", "srt=sco", "sp=rwdlacup", "spr=https%2Chttp", "se=", "sig="] {
            assert!(sas.contains(field), "{sas} lacks {field}");
        }
        assert!(!sas.contains('+') && !sas.contains('/'), "signature is percent-encoded: {sas}");
    }
}
