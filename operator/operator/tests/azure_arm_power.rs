//! Deallocating and starting scale-set instances through the Resource Manager client
//! (`ArmScaleSet`) against the stateful fakes on loopback, as `azure_arm.rs` does for the other
//! calls: batched `POST {vmss}/deallocate` and `/start`, their long-running operations, the power
//! states the instance listing reads, and the write bucket they spend. Every exchange is checked
//! against the official Compute description at the end of each test.

use std::{sync::Arc, time::Duration};

use azure_core::http::ClientOptions;
use contract::{Api, Contract};
use fake_azure::{ArmOp, ArmSettings, FakeAzure, Fault, IdentitySettings, InstancePhase, ScaleSetSpec};
use operator::{
    azure::{credential, ArmScaleSet, ArmTimings, CredentialSource},
    config::AzureConfig,
    model::InstanceId,
    ports::{CloudFault, CloudState, ScaleSet, ScaleSetError},
};
use serde_json::json;

const SET: &str = "runners";

struct World {
    fakes: FakeAzure,
    config: AzureConfig,
}

impl World {
    async fn start(running: u32, arm: ArmSettings) -> Self {
        let fakes = FakeAzure::start_with(IdentitySettings::default(), arm).await;
        let vmss_resource_id = fakes.arm.add_scale_set(ScaleSetSpec::uniform(SET, running));
        let config = AzureConfig {
            vmss_resource_id,
            managed_identity_client_id: None,
            computer_name_prefix: None,
            resource_manager_url: fakes.arm.base_url(),
        };
        Self { fakes, config }
    }

    fn client_with(&self, timings: ArmTimings) -> ArmScaleSet {
        let options = ClientOptions { transport: Some(self.fakes.sdk_transport()), ..Default::default() };
        let credential =
            credential(CredentialSource::ManagedIdentity, &self.config, Some(options)).expect("credential");
        ArmScaleSet::with_timings(&self.config.resource_manager_url, &self.config.vmss_resource_id, credential, timings)
            .expect("client")
    }

    fn client(&self) -> ArmScaleSet {
        self.client_with(fast())
    }

    fn phases(&self) -> Vec<(String, InstancePhase, u32)> {
        self.fakes.arm.instances(SET).into_iter().map(|i| (i.id, i.phase, i.generation)).collect()
    }

    fn assert_contracts(&self) {
        let exchanges = self.fakes.arm.exchanges();
        assert!(!exchanges.is_empty());
        let problems = Contract::load(Api::Compute).check_all(&exchanges);
        assert!(problems.is_empty(), "Compute exchanges break the contract:\n{}", problems.join("\n"));
    }
}

fn fast() -> ArmTimings {
    ArmTimings {
        request_timeout: Duration::from_secs(5),
        throttle_retries: 3,
        max_retry_after: Duration::from_secs(5),
        poll_min: Duration::from_millis(50),
        poll_max: Duration::from_millis(200),
        operation_timeout: Duration::from_secs(20),
    }
}

fn ids(list: &[&str]) -> Vec<InstanceId> {
    list.iter().map(|i| InstanceId::new(*i)).collect()
}

fn running(id: &str, generation: u32) -> (String, InstancePhase, u32) {
    (id.to_owned(), InstancePhase::Running, generation)
}

#[tokio::test]
async fn deallocate_and_start_return_when_their_operation_has_finished() {
    let world = World::start(3, ArmSettings::default()).await;
    let client = world.client();
    let before = client.list_instances().await.unwrap();

    client.deallocate_instances(&ids(&["0", "1"])).await.expect("deallocate");
    let deallocated = (InstancePhase::Deallocated, 0);
    let phases: Vec<_> = world.phases().into_iter().map(|(_, p, g)| (p, g)).collect();
    assert_eq!(phases, [deallocated, deallocated, (InstancePhase::Running, 0)], "returned once deallocated");
    let listed = client.list_instances().await.unwrap();
    let states: Vec<_> = listed.iter().map(|i| i.state).collect();
    assert_eq!(states, [CloudState::Deallocated, CloudState::Deallocated, CloudState::Running]);
    for (after, before) in listed.iter().zip(&before) {
        assert_eq!((&after.name, after.private_ip), (&before.name, before.private_ip), "name and address kept");
    }
    assert_eq!(client.capacity().await.unwrap(), 3, "a deallocated instance keeps its slot");

    client.start_instances(&ids(&["0"])).await.expect("start");
    assert_eq!(world.phases()[0], running("0", 0), "running again on the same disk");
    assert_eq!(client.list_instances().await.unwrap()[0].state, CloudState::Running);

    let writes = world.fakes.arm.writes(SET);
    assert_eq!((writes.deallocate, writes.start, writes.total()), (1, 1, 2), "one call per batch");
    assert_eq!((writes.deallocated_ids, writes.started_ids), (vec!["0".to_owned(), "1".into()], vec!["0".to_owned()]));
    let posts: Vec<_> = world.fakes.arm.exchanges().into_iter().filter(|e| e.method == "POST").collect();
    assert!(posts[0].path.contains(&format!("/virtualMachineScaleSets/{SET}/deallocate?api-version=2025-04-01")));
    assert_eq!(posts[0].request_body, Some(json!({ "instanceIds": ["0", "1"] })));
    assert!(posts[1].path.contains(&format!("/virtualMachineScaleSets/{SET}/start?api-version=2025-04-01")));
    assert_eq!(posts[1].request_body, Some(json!({ "instanceIds": ["0"] })));
    let polls = world.fakes.arm.exchanges().iter().filter(|e| e.path.contains("/operations/")).count();
    assert!(polls >= 2, "the Azure-AsyncOperation status was polled ({polls})");
    world.assert_contracts();
}

#[tokio::test]
async fn no_instance_ids_send_nothing_since_azure_would_act_on_the_whole_scale_set() {
    let world = World::start(2, ArmSettings::default()).await;
    let client = world.client();
    client.deallocate_instances(&[]).await.unwrap();
    client.start_instances(&[]).await.unwrap();
    assert!(world.fakes.arm.exchanges().iter().all(|e| e.method != "POST"));
    assert_eq!(world.phases(), [running("0", 0), running("1", 0)]);
}

#[tokio::test]
async fn the_listing_reads_each_power_state_as_it_passes() {
    let arm = ArmSettings {
        deallocate_delay: Duration::from_secs(30),
        start_delay: Duration::from_secs(30),
        ..ArmSettings::default()
    };
    let world = Arc::new(World::start(2, arm).await);
    let client = Arc::new(world.client());

    let deallocating = tokio::spawn({
        let client = client.clone();
        async move { client.deallocate_instances(&ids(&["0"])).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.list_instances().await.unwrap()[0].state, CloudState::Deallocating);
    deallocating.abort();

    world.fakes.arm.deallocate_by_hand(SET, "1");
    assert_eq!(client.list_instances().await.unwrap()[1].state, CloudState::Deallocated, "someone else's");
    let starting = tokio::spawn({
        let client = client.clone();
        async move { client.start_instances(&ids(&["1"])).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = client.list_instances().await.unwrap();
    assert_eq!(listed[1].state, CloudState::Reimaging, "a start shows as an update, as a reimage does");
    starting.abort();
    world.assert_contracts();
}

#[tokio::test]
async fn a_forbidden_operation_status_is_confirmed_from_the_power_state() {
    let world = World::start(2, ArmSettings::default()).await;
    let client = world.client();
    world.fakes.arm.inject(Some(ArmOp::OperationStatus), Fault::Forbidden, 100);

    client.deallocate_instances(&ids(&["0", "1"])).await.expect("confirmed by PowerState/deallocated");
    assert!(world.phases().iter().all(|(_, p, _)| *p == InstancePhase::Deallocated), "{:?}", world.phases());
    client.start_instances(&ids(&["1"])).await.expect("confirmed by the instance running");
    assert_eq!(world.phases()[1], running("1", 0));
    assert_eq!(world.fakes.arm.pending_faults(), 98, "one forbidden status poll per operation, then the list");
    world.assert_contracts();
}

#[tokio::test]
async fn deallocations_spend_the_delete_bucket_and_starts_none() {
    let arm = ArmSettings {
        deallocate_delay: Duration::from_millis(10),
        start_delay: Duration::from_millis(10),
        ..ArmSettings::default()
    };
    let world = World::start(3, arm).await;
    let client = world.client_with(ArmTimings { throttle_retries: 0, poll_min: Duration::from_millis(10), ..fast() });
    for _ in 0..6 {
        client.deallocate_instances(&ids(&["0"])).await.expect("within the burst of 12");
        client.start_instances(&ids(&["0"])).await.expect("starts spend no per-scale-set token");
    }
    for _ in 0..6 {
        client.deallocate_instances(&ids(&["2"])).await.expect("within the burst of 12");
    }
    let err = client.delete_instances(&ids(&["1"])).await.unwrap_err();
    assert!(matches!(err, ScaleSetError::DeleteFailed { source: CloudFault::Throttled { .. }, .. }), "{err:?}");
    let err = client.deallocate_instances(&ids(&["1"])).await.unwrap_err();
    assert!(matches!(err, ScaleSetError::DeallocateFailed { source: CloudFault::Throttled { .. }, .. }), "{err:?}");
    client.start_instances(&ids(&["2"])).await.expect("a start still goes through");
    client.set_capacity(4).await.expect("the Update bucket is untouched");
    assert_eq!(world.fakes.arm.writes(SET).throttled, 2);
    world.assert_contracts();
}

#[tokio::test]
async fn an_instance_held_by_another_operation_refuses_with_a_conflict() {
    let arm = ArmSettings { deallocate_delay: Duration::from_secs(30), ..ArmSettings::default() };
    let world = Arc::new(World::start(1, arm).await);
    let client = Arc::new(world.client());
    let deallocating = tokio::spawn({
        let client = client.clone();
        async move { client.deallocate_instances(&ids(&["0"])).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let err = client.start_instances(&ids(&["0"])).await.unwrap_err();
    assert!(
        matches!(&err, ScaleSetError::StartFailed { source: CloudFault::Conflict(m), .. } if m.contains("OperationNotAllowed")),
        "{err:?}"
    );
    let err = client.reimage_instances(&ids(&["0"])).await.unwrap_err();
    assert_eq!(err.fault().kind(), "conflict");
    deallocating.abort();
    let err = client.deallocate_instances(&ids(&["7"])).await.unwrap_err();
    assert!(matches!(err, ScaleSetError::DeallocateFailed { source: CloudFault::NotFound, .. }), "{err:?}");
    world.assert_contracts();
}
