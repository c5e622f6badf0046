//! One scale set in the stateful Azure fakes on loopback and the operator's Resource Manager
//! client (`ArmScaleSet`) on it, with the SDK's real `ManagedIdentityCredential` fetching its
//! tokens from the fake IMDS: the world of `azure_arm.rs` and `azure_arm_power.rs`.

use std::time::Duration;

use azure_core::http::ClientOptions;
use contract::Api;

use super::assert_conform;
use fake_azure::{ArmSettings, FakeAzure, IdentitySettings, InstancePhase, ScaleSetSpec};
use operator::{
    azure::{credential, ArmScaleSet, ArmTimings, CredentialSource},
    config::AzureConfig,
    model::InstanceId,
};

/// The scale set's name.
pub const SET: &str = "runners";

pub struct ArmWorld {
    pub fakes: FakeAzure,
    pub config: AzureConfig,
}

impl ArmWorld {
    /// A Uniform scale set of `running` instances, every fake at its defaults.
    pub async fn start(running: u32) -> Self {
        Self::start_with(running, IdentitySettings::default(), ArmSettings::default()).await
    }

    pub async fn start_with(running: u32, identity: IdentitySettings, arm: ArmSettings) -> Self {
        let fakes = FakeAzure::start_with(identity, arm).await;
        let vmss_resource_id = fakes.arm.add_scale_set(ScaleSetSpec::uniform(SET, running));
        let config = AzureConfig {
            vmss_resource_id,
            managed_identity_client_id: None,
            computer_name_prefix: None,
            resource_manager_url: fakes.arm.base_url(),
        };
        Self { fakes, config }
    }

    pub fn client_with(&self, timings: ArmTimings) -> ArmScaleSet {
        let options = ClientOptions { transport: Some(self.fakes.sdk_transport()), ..Default::default() };
        let credential =
            credential(CredentialSource::ManagedIdentity, &self.config, Some(options)).expect("credential");
        ArmScaleSet::with_timings(&self.config.resource_manager_url, &self.config.vmss_resource_id, credential, timings)
            .expect("client")
    }

    /// A client with [`fast`] timings.
    pub fn client(&self) -> ArmScaleSet {
        self.client_with(fast())
    }

    /// Each instance's id, phase and model generation, as the fake holds them.
    pub fn phases(&self) -> Vec<(String, InstancePhase, u32)> {
        self.fakes.arm.instances(SET).into_iter().map(|i| (i.id, i.phase, i.generation)).collect()
    }

    /// Every exchange of every fake conforms to its official description.
    pub fn assert_contracts(&self) {
        assert_conform(Api::Compute, &self.fakes.arm.exchanges());
        assert_conform(Api::Imds, &self.fakes.identity.exchanges());
    }
}

/// Timings short enough for tests: polls every 50-200 ms, an operation given up after 20 s.
pub fn fast() -> ArmTimings {
    ArmTimings {
        request_timeout: Duration::from_secs(5),
        throttle_retries: 3,
        max_retry_after: Duration::from_secs(5),
        poll_min: Duration::from_millis(50),
        poll_max: Duration::from_millis(200),
        operation_timeout: Duration::from_secs(20),
    }
}

pub fn ids(list: &[&str]) -> Vec<InstanceId> {
    list.iter().map(|i| InstanceId::new(*i)).collect()
}
