//! Production wiring: the real clients behind the operator's ports, built from the
//! configuration — managed identity, the scale set through Resource Manager, the GitHub
//! credential from Key Vault, GitHub's REST API and the busy-record queue.

use std::sync::Arc;

use azure_core::http::ClientOptions;

use crate::{
    azure::{self, ArmError, ArmScaleSet, CredentialSource, IdentityError, KeyVaultError, KeyVaultSecrets},
    config::Config,
    github::{GithubClient, GithubClientError, GithubClientSettings},
    ports::{Ports, SecretStore},
    queue::QueueBusyRecord,
};

/// How to reach Azure; the defaults are production's.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    pub credential_source: CredentialSource,
    /// SDK pipeline options for the credential and Key Vault (tests pass a loopback transport).
    pub azure_client_options: Option<ClientOptions>,
}

/// Why the operator could not connect to one of its dependencies at start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("creating the Azure credential failed")]
    CredentialFailed(#[source] IdentityError),
    #[error("the runner scale set cannot be used")]
    ScaleSetFailed(#[source] ArmError),
    #[error("creating the Key Vault client failed")]
    KeyVaultFailed(#[source] KeyVaultError),
    #[error("the GitHub client could not start")]
    GithubFailed(#[source] GithubClientError),
    #[error("creating the queue client for {url} failed: {message}")]
    QueueFailed { url: String, message: String },
}

/// The connected clients. `ports` is what the controller uses; the typed handles are
/// kept for diagnostics and metrics.
pub struct Connected {
    pub ports: Ports,
    pub scale_set: Arc<ArmScaleSet>,
    pub github: Arc<GithubClient>,
}

/// Connect every port. Fails at start — with the cause — rather than later: the scale set
/// must be a Uniform one, and the GitHub credential must be readable.
pub async fn connect(config: &Config, options: ConnectOptions) -> Result<Connected, ConnectError> {
    let credential = azure::credential(options.credential_source, &config.azure, options.azure_client_options.clone())
        .map_err(ConnectError::CredentialFailed)?;

    let scale_set = Arc::new(
        ArmScaleSet::new(&config.azure.resource_manager_url, &config.azure.vmss_resource_id, credential.clone())
            .map_err(ConnectError::ScaleSetFailed)?,
    );
    let info = scale_set.verify().await.map_err(ConnectError::ScaleSetFailed)?;
    tracing::info!(scale_set = ?info, "runner scale set verified");

    let secrets: Arc<dyn SecretStore> = Arc::new(
        KeyVaultSecrets::new(&config.github.credential.key_vault_url, credential.clone(), options.azure_client_options)
            .map_err(ConnectError::KeyVaultFailed)?,
    );
    let github = Arc::new(
        GithubClient::new(GithubClientSettings::from_config(&config.github), secrets.clone())
            .await
            .map_err(ConnectError::GithubFailed)?,
    );

    // A queue URL that carries a SAS authenticates itself (local runs against Azurite);
    // otherwise the managed identity's Entra token is used, as shared keys are disabled.
    let queue_credential = if config.queue.url.contains("sig=") { None } else { Some(credential) };
    let busy = QueueBusyRecord::new(&config.queue.url, queue_credential)
        .map_err(|e| ConnectError::QueueFailed { url: redact_query(&config.queue.url), message: e.to_string() })?;

    Ok(Connected {
        ports: Ports { scale_set: scale_set.clone(), github: github.clone(), busy: Arc::new(busy), secrets },
        scale_set,
        github,
    })
}

/// A URL without its query, so a SAS never reaches a log line.
fn redact_query(url: &str) -> String {
    url.split('?').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_urls_lose_their_sas_in_messages() {
        assert_eq!(super::redact_query("http://127.0.0.1:1/acct/q?sv=1&sig=secret"), "http://127.0.0.1:1/acct/q");
    }
}
