//! Production wiring: the real clients behind the operator's ports, built from the
//! configuration — managed identity, the scale set through Resource Manager, the GitHub
//! credential from Key Vault, GitHub's REST API, the busy-record queue and, with
//! `pool.learned`, the learned demand state's blob.

use std::sync::Arc;

use azure_core::http::ClientOptions;

use crate::{
    azure::{self, ArmError, ArmScaleSet, CredentialSource, IdentityError, KeyVaultError, KeyVaultSecrets},
    config::Config,
    github::{
        scaleset::{ScaleSetClient, ScaleSetClientError, ScaleSetClientSettings},
        GithubClient, GithubClientError, GithubClientSettings,
    },
    learned::{LearnedError, LearnedState},
    metrics::Metrics,
    ports::{Ports, ScaleSetApi, SecretStore},
    queue::{carries_sas, QueueBusyRecord, QueueError},
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
    #[error("building the runner scale set client failed")]
    ScaleSetApiFailed(#[source] ScaleSetClientError),
    #[error("the busy-record queue cannot be used")]
    QueueFailed(#[source] QueueError),
    #[error("the learned demand state cannot be loaded")]
    LearnedFailed(#[source] LearnedError),
}

/// Every port, and the runner scale set API (used with `github.demand = "scale_set"`; it
/// sends nothing until the listener starts).
pub struct Connected {
    pub ports: Ports,
    pub scale_set_api: Arc<dyn ScaleSetApi>,
    /// With `pool.learned`: the learned demand state, loaded from its blob (or seeded).
    pub learned: Option<LearnedState>,
    /// The operator's metrics, which the clients built here already count into (the
    /// runner scale set API's requests and calls): the controller is made with them
    /// (`Controller::with_metrics`).
    pub metrics: Metrics,
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
    let queue_credential = if carries_sas(&config.queue.url) { None } else { Some(credential.clone()) };
    let busy = QueueBusyRecord::new(&config.queue.url, queue_credential).map_err(ConnectError::QueueFailed)?;
    // The learned state's blob lives in the same account and authenticates the same way.
    let learned = match &config.pool.learned {
        Some(learned) => {
            let blob_credential = if carries_sas(&learned.state_url) { None } else { Some(credential) };
            let (state, _origin) =
                LearnedState::open(learned, blob_credential).await.map_err(ConnectError::LearnedFailed)?;
            Some(state)
        }
        None => None,
    };

    let metrics = Metrics::new();
    let scale_set_api = Arc::new(
        ScaleSetClient::new(github.clone(), ScaleSetClientSettings::default())
            .map_err(ConnectError::ScaleSetApiFailed)?
            .with_observer(metrics.scale_set_api_observer()),
    );
    let ports = Ports { scale_set, github, busy: Arc::new(busy), secrets };
    Ok(Connected { ports, scale_set_api, learned, metrics })
}
