//! Deallocating and starting scale-set instances through the Resource Manager client
//! (`ArmScaleSet`) against the stateful fakes on loopback, as `azure_arm.rs` does for the other
//! calls: batched `POST {vmss}/deallocate` and `/start`, their long-running operations, the power
//! states the instance listing reads, and the write bucket they spend. Every exchange is checked
//! against the official Compute and IMDS descriptions at the end of each test.

mod common;

use std::{sync::Arc, time::Duration};

use fake_azure::{ArmOp, ArmSettings, Fault, IdentitySettings, InstancePhase};
use operator::{
    azure::ArmTimings,
    ports::{CloudFault, CloudState, ScaleSet, ScaleSetError},
};
use serde_json::json;

use common::arm_world::{fast, ids, ArmWorld, SET};

fn running(id: &str, generation: u32) -> (String, InstancePhase, u32) {
    (id.to_owned(), InstancePhase::Running, generation)
}

#[tokio::test]
async fn deallocate_and_start_return_when_their_operation_has_finished() {
    let world = ArmWorld::start(3).await;
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
    let world = ArmWorld::start(2).await;
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
    let world = Arc::new(ArmWorld::start_with(2, IdentitySettings::default(), arm).await);
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
    let world = ArmWorld::start(2).await;
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
    let world = ArmWorld::start_with(3, IdentitySettings::default(), arm).await;
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
    let world = Arc::new(ArmWorld::start_with(1, IdentitySettings::default(), arm).await);
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
