//! Azure credentials. On the scaler VM the operator authenticates as its managed identity
//! (the user-assigned one named by `azure.managed_identity_client_id`, else the VM's
//! system-assigned identity); a developer running it locally uses their Azure CLI login.
//! The source is chosen explicitly, never by trying one after the other, so a production
//! operator cannot silently fall back to someone's CLI session. Tokens come from the SDK's
//! cache, which refreshes them five minutes before they expire.

use std::sync::Arc;

use azure_core::{credentials::TokenCredential, http::ClientOptions};
use azure_identity::{AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

use crate::config::AzureConfig;

/// Where tokens come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CredentialSource {
    /// The VM's managed identity through the Instance Metadata Service (production).
    #[default]
    ManagedIdentity,
    /// `az account get-access-token` of the developer's Azure CLI login (local use).
    AzureCli,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("creating the managed identity credential failed")]
    ManagedIdentityFailed(#[source] azure_core::Error),
    #[error("creating the Azure CLI credential failed")]
    AzureCliFailed(#[source] azure_core::Error),
}

/// Build the credential for `source`. `client_options` customise the managed identity's HTTP
/// pipeline (tests route it to a loopback fake through `ClientOptions::transport`).
pub fn credential(
    source: CredentialSource,
    config: &AzureConfig,
    client_options: Option<ClientOptions>,
) -> Result<Arc<dyn TokenCredential>, IdentityError> {
    match source {
        CredentialSource::ManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: config.managed_identity_client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options.unwrap_or_default(),
            };
            let credential =
                ManagedIdentityCredential::new(Some(options)).map_err(IdentityError::ManagedIdentityFailed)?;
            Ok(credential)
        }
        CredentialSource::AzureCli => {
            let credential = AzureCliCredential::new(None).map_err(IdentityError::AzureCliFailed)?;
            Ok(credential)
        }
    }
}
