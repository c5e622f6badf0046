//! An Azure SDK transport for tests that only ever reaches the loopback fakes.
//!
//! The SDK's `ManagedIdentityCredential` on a VM always calls
//! `http://169.254.169.254/metadata/identity/oauth2/token` (azure_identity 1.0 has no option
//! for another IMDS address; only the App Service / Azure Arc sources read an endpoint from the
//! environment), and the Key Vault client only talks HTTPS to a `*.vault.azure.net` host. This
//! transport, given to the SDK through `ClientOptions::transport`, rewrites the IMDS address to
//! the fake identity endpoint, resolves the fake vault's name to 127.0.0.1, trusts the fake
//! vault's test certificate, and refuses every other destination, so a test cannot reach a real
//! Azure endpoint even by mistake.

use std::{net::SocketAddr, sync::Arc};

use async_trait::async_trait;
use azure_core::{
    error::{Error, ErrorKind},
    http::{AsyncRawResponse, HttpClient, Request, Transport},
};

use crate::{FakeIdentity, FakeKeyVault, VAULT_HOST};

/// The real IMDS address the SDK's VM credential calls.
pub const IMDS_ADDRESS: &str = "169.254.169.254";

#[derive(Clone, Debug)]
pub struct LoopbackTransport {
    client: reqwest::Client,
    imds: Option<SocketAddr>,
    names: Vec<String>,
}

impl LoopbackTransport {
    /// Route IMDS calls to `identity` and vault calls to `vault` (either may be absent).
    pub fn new(identity: Option<&FakeIdentity>, vault: Option<&FakeKeyVault>) -> Self {
        let mut builder = reqwest::Client::builder().no_proxy();
        let mut names = Vec::new();
        if let Some(vault) = vault {
            let certificate = reqwest::Certificate::from_pem(vault.certificate_pem().as_bytes())
                .expect("the fake vault's certificate");
            builder = builder.resolve(VAULT_HOST, vault.addr()).tls_certs_only([certificate]);
            names.push(VAULT_HOST.to_owned());
        }
        let client = builder.build().expect("a reqwest client for the fakes");
        Self { client, imds: identity.map(FakeIdentity::addr), names }
    }

    /// As an SDK transport for `ClientOptions::transport`.
    pub fn transport(self) -> Transport {
        Transport::new(Arc::new(self))
    }
}

fn refused(message: String) -> Error {
    Error::with_message(ErrorKind::Io, message)
}

#[async_trait]
impl HttpClient for LoopbackTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut request = request.clone();
        let url = request.url_mut();
        if url.host_str() == Some(IMDS_ADDRESS) {
            let imds = self.imds.ok_or_else(|| refused("no fake identity endpoint for an IMDS request".to_owned()))?;
            url.set_ip_host(imds.ip()).map_err(|()| refused("cannot rewrite the IMDS address".to_owned()))?;
            url.set_port(Some(imds.port())).map_err(|()| refused("cannot rewrite the IMDS port".to_owned()))?;
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let loopback = host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback && !self.names.contains(&host) {
            return Err(refused(format!("tests may only reach loopback fakes, not {host}")));
        }
        self.client.execute_request(&request).await
    }
}
