//! Stateful HTTP fakes of the Azure services the operator calls, each an axum server on a
//! loopback port, for tests only:
//!
//! - [`FakeIdentity`]: the IMDS managed-identity token endpoint; issues tokens the others accept.
//! - [`FakeArm`]: Resource Manager for Uniform VM scale sets (Compute) and their NICs (Network).
//! - [`FakeKeyVault`]: Key Vault secrets over TLS with the SDK's challenge authentication.
//!
//! Every fake records each exchange as a [`contract::Exchange`] for checking against the
//! official API descriptions, and takes injected faults ([`Fault`]) from the test.
//! [`FakeAzure::start`] starts all three with one call.
//!
//! # Why a model of its own
//!
//! The scale set here is a second model of the one in `operator-sim` (`memory::scale_set`,
//! the only in-process one, which the demo and the fault suite run on), and its
//! [`WriteCounts`] and write-limit token bucket ([`WriteLimit`]) repeat what `operator-sim`
//! and `operator-core`'s `budget::ScaleSetBudget` do. That is on purpose: this fake checks
//! the operator's real Resource Manager client against the official API descriptions,
//! and a fake that shared code with the operator's side (its ports, its budget, its
//! simulator) would share its misunderstandings too, and could not catch them. It
//! depends on neither crate; keep it so.

#![allow(
    clippy::result_large_err,
    reason = "handlers return the ready rejection `Response`; a test fake, not a hot path"
)]

mod arm;
mod fault;
mod identity;
mod keyvault;
mod record;
mod server;
mod transport;

pub use arm::{
    ArmOp, ArmSettings, FakeArm, FakeInstance, InstancePhase, OrchestrationMode, ScaleSetSpec, WriteCounts, WriteLimit,
    COMPUTE_API_VERSION, NETWORK_VMSS_API_VERSION, WRITE_POLICY,
};
pub use fault::Fault;
pub use identity::{FakeIdentity, IdentitySettings, TokenProblem, TOKEN_PATH};
pub use keyvault::{FakeKeyVault, KeyVaultOp, KEYVAULT_API_VERSION, VAULT_HOST, VAULT_RESOURCE};
pub use transport::{LoopbackTransport, IMDS_ADDRESS};

/// All three fakes, sharing one identity endpoint.
pub struct FakeAzure {
    pub identity: FakeIdentity,
    pub arm: FakeArm,
    pub key_vault: FakeKeyVault,
}

impl FakeAzure {
    /// Start the fakes with default settings (a system-assigned identity, fast instance delays).
    pub async fn start() -> Self {
        Self::start_with(IdentitySettings::default(), ArmSettings::default()).await
    }

    pub async fn start_with(identity: IdentitySettings, arm: ArmSettings) -> Self {
        let identity = FakeIdentity::start_with(identity).await;
        let arm = FakeArm::start(&identity, arm).await;
        let key_vault = FakeKeyVault::start(&identity).await;
        Self { identity, arm, key_vault }
    }

    /// An SDK transport that reaches these fakes and nothing else.
    pub fn sdk_transport(&self) -> azure_core::http::Transport {
        LoopbackTransport::new(Some(&self.identity), Some(&self.key_vault)).transport()
    }
}
