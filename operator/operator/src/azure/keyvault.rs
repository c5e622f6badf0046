//! The GitHub credential in Azure Key Vault, read with the Azure SDK
//! (`azure_security_keyvault_secrets` 1.x). Each `get` reads the secret's current version, so
//! a rotated PAT or App key is picked up on the next read. The value only ever leaves this
//! module inside a [`SecretValue`], which never prints; errors carry the vault's status and
//! code, never a response body that could hold a value.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::{
    credentials::TokenCredential,
    http::{ClientOptions, StatusCode},
};
use azure_security_keyvault_secrets::{models::Secret, SecretClient, SecretClientOptions};

use crate::ports::{SecretError, SecretStore, SecretValue};

/// A plain-text cause that holds no secret material.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cause(String);

#[derive(Debug, thiserror::Error)]
pub enum KeyVaultError {
    #[error("creating the Key Vault client for {url} failed")]
    ClientFailed {
        url: String,
        #[source]
        source: azure_core::Error,
    },
}

/// Secrets of one vault.
pub struct KeyVaultSecrets {
    client: SecretClient,
    vault_url: String,
}

impl std::fmt::Debug for KeyVaultSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultSecrets").field("vault_url", &self.vault_url).finish()
    }
}

impl KeyVaultSecrets {
    /// A client for the vault at `vault_url` (e.g. `https://myvault.vault.azure.net/`).
    /// `client_options` customise the SDK pipeline (retries; tests pass a loopback transport).
    pub fn new(
        vault_url: &str,
        credential: Arc<dyn TokenCredential>,
        client_options: Option<ClientOptions>,
    ) -> Result<Self, KeyVaultError> {
        let options = SecretClientOptions { client_options: client_options.unwrap_or_default(), ..Default::default() };
        let client = SecretClient::new(vault_url, credential, Some(options))
            .map_err(|source| KeyVaultError::ClientFailed { url: vault_url.to_owned(), source })?;
        Ok(Self { client, vault_url: vault_url.to_owned() })
    }
}

/// Describe an SDK error without its response body.
fn describe(err: &azure_core::Error) -> Cause {
    match err.http_status() {
        Some(status) => Cause(format!("Key Vault answered {} ({:?})", u16::from(status), err.kind())),
        None => Cause(crate::report::chain(err)),
    }
}

#[async_trait]
impl SecretStore for KeyVaultSecrets {
    async fn get(&self, name: &str) -> Result<SecretValue, SecretError> {
        let failed = |source: Cause| SecretError::ReadFailed { name: name.to_owned(), source: Box::new(source) };
        let response = match self.client.get_secret(name, None).await {
            Ok(response) => response,
            Err(err) if err.http_status() == Some(StatusCode::NotFound) => {
                return Err(SecretError::NotFound { name: name.to_owned() })
            }
            Err(err) => {
                let cause = describe(&err);
                tracing::warn!(secret = name, error = %cause, "reading the secret from Key Vault failed");
                return Err(failed(cause));
            }
        };
        // A decoding error could quote the body, which holds the value: keep only that it failed.
        let secret: Secret =
            response.into_model().map_err(|_| failed(Cause("the vault's answer could not be decoded".into())))?;
        secret.value.map(SecretValue::new).ok_or_else(|| failed(Cause("the secret has no value".into())))
    }
}
