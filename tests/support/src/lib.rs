//! Test-only helpers. Azurite is the real Azure Storage queue and blob service for
//! tests: [`Azurite::start`] (queue) and [`Azurite::start_blob`] provide one — an
//! external service, a container started through testcontainers, or a Node process (see
//! [`azurite`]) — and build URLs that carry an account SAS signed with Azurite's
//! published development key, because the official SDK sends Entra tokens only and
//! Azurite accepts SAS. Nothing here ships in the operator.

mod azurite;

use std::{net::TcpListener, path::PathBuf};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Azurite's well-known development account (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub use azurite::{Azurite, AzuriteSource, Service};

/// An account SAS for the queue service (all resource types, read/write/delete/
/// list/add/create/update/process), signed with `key` as the Storage service does.
pub fn account_sas(account: &str, key: &str) -> String {
    account_sas_for(account, key, "q")
}

/// An account SAS for `services` (`q`, `b`, or both: `bq`), with the same resource
/// types and permissions as [`account_sas`].
pub fn account_sas_for(account: &str, key: &str, services: &str) -> String {
    let version = "2020-12-06";
    let expiry = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .replace_nanosecond(0)
        .expect("zero nanoseconds is valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats");
    let (permissions, resource_types, protocol) = ("rwdlacup", "sco", "https,http");
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

    #[test]
    fn a_blob_sas_names_the_blob_service() {
        let sas = account_sas_for(DEV_ACCOUNT, DEV_KEY, "b");
        assert!(sas.contains("ss=b&") && !sas.contains("ss=q"), "{sas}");
    }
}
