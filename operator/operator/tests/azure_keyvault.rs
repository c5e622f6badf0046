//! The operator's Key Vault client (`KeyVaultSecrets`, the Azure SDK's `SecretClient`) against
//! the fake vault over TLS on loopback, with the SDK's managed-identity credential fetching
//! tokens from the fake IMDS. Every exchange is checked against the official descriptions.

mod common;

use std::time::Duration;

use azure_core::http::{ClientOptions, RetryOptions};
use common::assert_conform;
use contract::Api;
use fake_azure::{FakeAzure, Fault, KeyVaultOp, VAULT_RESOURCE};
use operator::{
    azure::{credential, CredentialSource, KeyVaultSecrets},
    config::AzureConfig,
    ports::{SecretError, SecretStore},
};

const NAME: &str = "github-pat";
const FIRST: &str = "ghp_first0123456789abcdefghijklmnopqrstu";
const SECOND: &str = "ghp_second123456789abcdefghijklmnopqrst";

async fn vault(fakes: &FakeAzure) -> KeyVaultSecrets {
    let config = AzureConfig {
        vmss_resource_id: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v".into(),
        managed_identity_client_id: None,
            computer_name_prefix: None,
        resource_manager_url: fakes.arm.base_url(),
    };
    let options = || ClientOptions { transport: Some(fakes.sdk_transport()), ..Default::default() };
    let credential = credential(CredentialSource::ManagedIdentity, &config, Some(options())).expect("credential");
    // No SDK retries, so an injected failure is seen as it is.
    let client_options = ClientOptions { retry: RetryOptions::none(), ..options() };
    KeyVaultSecrets::new(&fakes.key_vault.url(), credential, Some(client_options)).expect("vault client")
}

fn assert_contracts(fakes: &FakeAzure) {
    assert_conform(Api::KeyVaultSecrets, &fakes.key_vault.exchanges());
    assert_conform(Api::Imds, &fakes.identity.exchanges());
}

/// The error, its Display, Debug and whole source chain.
fn everything_printed(err: &SecretError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn the_current_version_is_read_and_a_rotation_is_seen_on_the_next_read() {
    let fakes = FakeAzure::start().await;
    fakes.key_vault.set_secret(NAME, FIRST);
    let store = vault(&fakes).await;

    assert_eq!(store.get(NAME).await.expect("read").expose(), FIRST);
    fakes.key_vault.set_secret(NAME, SECOND);
    assert_eq!(store.get(NAME).await.expect("read after rotation").expose(), SECOND);

    let statuses: Vec<u16> = fakes.key_vault.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [401, 200, 200], "the SDK's challenge first, then authorized reads");
    assert_eq!(fakes.identity.resources(), [VAULT_RESOURCE.to_owned()].into(), "a token for the vault's resource");
    assert_eq!(fakes.identity.tokens_issued(), 1, "the second read uses the cached token");
    assert_contracts(&fakes);
}

#[tokio::test]
async fn a_missing_secret_is_not_found() {
    let fakes = FakeAzure::start().await;
    let store = vault(&fakes).await;

    let err = store.get("absent").await.unwrap_err();

    assert!(matches!(&err, SecretError::NotFound { name } if name == "absent"), "{err:?}");
    assert_contracts(&fakes);
}

#[tokio::test]
async fn the_secret_never_appears_in_debug_display_or_errors() {
    let fakes = FakeAzure::start().await;
    fakes.key_vault.set_secret(NAME, FIRST);
    let store = vault(&fakes).await;
    let value = store.get(NAME).await.unwrap();
    assert!(!format!("{value} {value:?} {store:?}").contains(FIRST));

    fakes.key_vault.inject(Some(KeyVaultOp::GetSecret), Fault::ServerError, 1);
    let err = store.get(NAME).await.unwrap_err();
    let printed = everything_printed(&err);
    assert!(matches!(err, SecretError::ReadFailed { .. }), "{printed}");
    assert!(printed.contains("500"), "{printed}");
    assert!(!printed.contains(FIRST) && !printed.contains("ghp_"), "{printed}");
    assert_contracts(&fakes);
}

#[tokio::test]
async fn throttling_and_timeouts_are_read_failures_and_a_refused_token_is_renegotiated() {
    let fakes = FakeAzure::start().await;
    fakes.key_vault.set_secret(NAME, FIRST);
    let store = vault(&fakes).await;

    fakes.key_vault.inject(None, Fault::Throttle { retry_after: Duration::from_secs(1) }, 1);
    let err = store.get(NAME).await.unwrap_err();
    assert!(everything_printed(&err).contains("429"), "{err:?}");

    // The SDK answers a 401 challenge by authorizing again and resending once.
    fakes.key_vault.inject(None, Fault::ExpiredToken, 1);
    assert_eq!(store.get(NAME).await.expect("after the challenge").expose(), FIRST);

    fakes.key_vault.inject(None, Fault::Slow(Duration::from_millis(200)), 1);
    assert_eq!(store.get(NAME).await.expect("slow read").expose(), FIRST);
    assert_contracts(&fakes);
}
