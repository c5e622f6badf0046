//! The operator's Resource Manager client (`ArmScaleSet`) and managed-identity credential against
//! the stateful fakes on loopback: the SDK's real `ManagedIdentityCredential` fetches tokens from
//! the fake IMDS (through `LoopbackTransport`), and every exchange is checked against the
//! official descriptions at the end of each test.

mod common;

use std::{sync::Arc, time::Duration};

use azure_core::http::ClientOptions;
use fake_azure::{ArmOp, ArmSettings, Fault, IdentitySettings, InstancePhase, ScaleSetSpec, WRITE_POLICY};
use operator::{
    azure::{credential, ArmError, ArmScaleSet, ArmTimings, CredentialSource},
    ports::{CloudFault, CloudState, ScaleSet, ScaleSetError},
};

use common::arm_world::{fast, ids, ArmWorld, SET};

#[tokio::test]
async fn capacity_is_read_and_raised_with_a_patch_of_sku_capacity() {
    let world = ArmWorld::start(2).await;
    let client = world.client();
    let info = client.verify().await.expect("verify");
    assert_eq!((info.name.as_str(), info.capacity, info.orchestration_mode.as_str()), (SET, 2, "Uniform"));
    assert_eq!(client.capacity().await.unwrap(), 2);

    client.set_capacity(4).await.expect("set capacity");

    assert_eq!(client.capacity().await.unwrap(), 4);
    assert_eq!(world.fakes.arm.writes(SET).set_capacity, 1);
    assert_eq!(world.fakes.arm.instances(SET).len(), 4);
    let patch = world.fakes.arm.exchanges().into_iter().find(|e| e.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.request_body, Some(serde_json::json!({ "sku": { "capacity": 4 } })));
    assert!(client.rate_limits().contains_key(WRITE_POLICY), "{:?}", client.rate_limits());
    assert_eq!(world.fakes.identity.tokens_issued(), 1, "one token, then the SDK's cache");
    world.assert_contracts();
}

#[tokio::test]
async fn instances_are_listed_with_state_and_private_ip_across_pages() {
    let world =
        ArmWorld::start_with(3, IdentitySettings::default(), ArmSettings { page_size: 2, ..ArmSettings::default() })
            .await;
    let client = world.client();
    client.set_capacity(5).await.unwrap();

    let listed = client.list_instances().await.expect("list");

    let states: Vec<_> = listed.iter().map(|i| (i.id.as_str(), i.state)).collect();
    assert_eq!(
        states,
        [
            ("0", CloudState::Running),
            ("1", CloudState::Running),
            ("2", CloudState::Running),
            ("3", CloudState::Creating),
            ("4", CloudState::Creating)
        ]
    );
    for (instance, fake) in listed.iter().zip(world.fakes.arm.instances(SET)) {
        assert_eq!(instance.private_ip, Some(fake.ip), "{instance:?}");
        assert_eq!(instance.name, fake.computer_name);
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let booted = client.list_instances().await.unwrap();
    assert!(booted.iter().all(|i| i.state == CloudState::Running), "{booted:?}");
    let pages = world.fakes.arm.exchanges().iter().filter(|e| e.path.contains("$skiptoken")).count();
    assert!(pages >= 4, "nextLink was followed for VMs and NICs ({pages} follow-up pages)");
    world.assert_contracts();
}

#[tokio::test]
async fn batched_delete_and_reimage_return_when_their_operation_has_finished() {
    let world = ArmWorld::start(4).await;
    let client = world.client();

    client.delete_instances(&ids(&["1", "2"])).await.expect("delete");
    let left: Vec<_> = world.fakes.arm.instances(SET).into_iter().map(|i| i.id).collect();
    assert_eq!(left, ["0", "3"], "deleted once the operation succeeded");
    assert_eq!(client.capacity().await.unwrap(), 2);

    client.reimage_instances(&ids(&["0", "3"])).await.expect("reimage");
    let after: Vec<_> = world.fakes.arm.instances(SET).into_iter().map(|i| (i.phase, i.generation)).collect();
    assert_eq!(after, [(InstancePhase::Running, 1); 2], "a fresh boot each");

    let writes = world.fakes.arm.writes(SET);
    assert_eq!((writes.delete, writes.reimage, writes.total()), (1, 1, 2), "one call per batch");
    assert_eq!(
        (writes.deleted_ids, writes.reimaged_ids),
        (vec!["1".to_owned(), "2".into()], vec!["0".to_owned(), "3".into()])
    );
    let polls = world.fakes.arm.exchanges().iter().filter(|e| e.path.contains("/operations/")).count();
    assert!(polls >= 2, "the Azure-AsyncOperation status was polled ({polls})");
    world.assert_contracts();
}

#[tokio::test]
async fn a_forbidden_operation_status_is_confirmed_from_the_instance_list() {
    // The scaler's role is scoped to the scale set: it may not read
    // Microsoft.Compute/locations/operations, so every status poll answers 403.
    let world = ArmWorld::start(4).await;
    let client = world.client();
    world.fakes.arm.inject(Some(ArmOp::OperationStatus), Fault::Forbidden, 100);

    client.delete_instances(&ids(&["1", "2"])).await.expect("a delete confirmed by the instances being gone");
    let left: Vec<_> = world.fakes.arm.instances(SET).into_iter().map(|i| i.id).collect();
    assert_eq!(left, ["0", "3"]);

    client.reimage_instances(&ids(&["0", "3"])).await.expect("a reimage confirmed by the instances running again");
    let after: Vec<_> = world.fakes.arm.instances(SET).into_iter().map(|i| (i.phase, i.generation)).collect();
    assert_eq!(after, [(InstancePhase::Running, 1); 2], "returned only once the fresh boots run");

    assert_eq!(world.fakes.arm.pending_faults(), 98, "one forbidden status poll per operation, then the list");
    world.assert_contracts();
}

#[tokio::test]
async fn an_operation_confirmed_from_the_instance_list_still_has_a_deadline() {
    let arm = ArmSettings { reimage_delay: Duration::from_secs(30), ..ArmSettings::default() };
    let world = ArmWorld::start_with(1, IdentitySettings::default(), arm).await;
    let client = world.client_with(ArmTimings { operation_timeout: Duration::from_secs(1), ..fast() });
    world.fakes.arm.inject(Some(ArmOp::OperationStatus), Fault::Forbidden, 100);

    let started = std::time::Instant::now();
    let err = client.reimage_instances(&ids(&["0"])).await.unwrap_err();
    assert!(matches!(err.fault(), CloudFault::OperationTimedOut(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "within the operation's deadline: {:?}", started.elapsed());
    world.assert_contracts();
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_then_succeeds() {
    let world = ArmWorld::start(1).await;
    let client = world.client();
    world.fakes.arm.inject(Some(ArmOp::SetCapacity), Fault::Throttle { retry_after: Duration::from_secs(1) }, 2);
    let started = std::time::Instant::now();

    client.set_capacity(3).await.expect("set capacity after throttling");

    assert!(started.elapsed() >= Duration::from_secs(2), "waited Retry-After twice: {:?}", started.elapsed());
    assert_eq!(world.fakes.arm.writes(SET).set_capacity, 1);
    assert_eq!(world.fakes.arm.pending_faults(), 0);
    world.assert_contracts();
}

#[tokio::test]
async fn persistent_throttling_gives_up_as_throttled_with_the_retry_after() {
    let world = ArmWorld::start(1).await;
    let client = world.client_with(ArmTimings { throttle_retries: 1, ..fast() });
    world.fakes.arm.inject(Some(ArmOp::DeleteInstances), Fault::Throttle { retry_after: Duration::from_secs(1) }, 5);
    world.fakes.arm.inject(Some(ArmOp::ReimageInstances), Fault::Throttle { retry_after: Duration::from_secs(600) }, 1);

    let err = client.delete_instances(&ids(&["0"])).await.unwrap_err();
    assert!(matches!(err, ScaleSetError::DeleteFailed { .. }), "{err:?}");
    assert!(
        matches!(err.fault(), CloudFault::Throttled { retry_after: Some(d) } if *d == Duration::from_secs(1)),
        "{err:?}"
    );
    let started = std::time::Instant::now();
    let err = client.reimage_instances(&ids(&["0"])).await.unwrap_err();
    assert_eq!(err.fault().kind(), "throttled", "a Retry-After beyond the limit is not waited for");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(world.fakes.arm.writes(SET).total(), 0);
    world.assert_contracts();
}

#[tokio::test]
async fn the_fakes_own_write_limit_answers_429_when_the_budget_is_ignored() {
    let world = ArmWorld::start(1).await;
    let client = world.client_with(ArmTimings { throttle_retries: 0, ..fast() });
    for capacity in 2..14 {
        client.set_capacity(capacity).await.expect("within the burst of 12");
    }
    let err = client.set_capacity(14).await.unwrap_err();
    assert_eq!(err.fault().kind(), "throttled");
    assert_eq!(client.rate_limits().get(WRITE_POLICY), Some(&0));
    assert_eq!(world.fakes.arm.writes(SET).throttled, 1);
    world.assert_contracts();
}

#[tokio::test]
async fn server_errors_and_timeouts_become_typed_faults() {
    let world = ArmWorld::start(1).await;
    let client = world.client_with(ArmTimings { request_timeout: Duration::from_millis(300), ..fast() });
    world.fakes.arm.inject(Some(ArmOp::GetScaleSet), Fault::ServerError, 1);
    world.fakes.arm.inject(Some(ArmOp::ListVms), Fault::Hang, 1);

    let err = client.capacity().await.unwrap_err();
    assert!(matches!(err, ScaleSetError::ReadFailed(CloudFault::Server { status: 500, .. })), "{err:?}");
    let err = client.list_instances().await.unwrap_err();
    assert!(matches!(err, ScaleSetError::ReadFailed(CloudFault::Transport(_))), "{err:?}");

    world.fakes.arm.inject(Some(ArmOp::GetScaleSet), Fault::Slow(Duration::from_millis(100)), 1);
    assert_eq!(client.capacity().await.unwrap(), 1, "slow but within the timeout");
    world.assert_contracts();
}

#[tokio::test]
async fn a_vanished_instance_is_not_found_and_a_conflict_says_so() {
    let world = ArmWorld::start(3).await;
    let client = world.client();
    world.fakes.arm.vanish(SET, "1");

    let err = client.delete_instances(&ids(&["0", "1"])).await.unwrap_err();
    assert!(
        matches!(&err, ScaleSetError::DeleteFailed { ids, source: CloudFault::NotFound } if ids.len() == 2),
        "{err:?}"
    );

    world.fakes.arm.inject(Some(ArmOp::ReimageInstances), Fault::Conflict, 1);
    let err = client.reimage_instances(&ids(&["2"])).await.unwrap_err();
    assert!(matches!(err.fault(), CloudFault::Conflict(m) if m.contains("OperationNotAllowed")), "{err:?}");
    assert_eq!(world.fakes.arm.writes(SET).total(), 0);
    world.assert_contracts();
}

#[tokio::test]
async fn a_refused_token_is_replaced_by_a_new_one_and_the_call_retried() {
    // Tokens living under the SDK's five-minute refresh margin are fetched afresh on each use,
    // as an expiring token is.
    let identity = IdentitySettings { token_lifetime: Duration::from_secs(120), ..IdentitySettings::default() };
    let world = ArmWorld::start_with(2, identity, ArmSettings::default()).await;
    let client = world.client();
    assert_eq!(client.capacity().await.unwrap(), 2);
    let before = world.fakes.identity.tokens_issued();
    world.fakes.identity.expire_all();
    world.fakes.arm.inject(Some(ArmOp::GetScaleSet), Fault::ExpiredToken, 1);

    assert_eq!(client.capacity().await.expect("retried with a new token"), 2);
    assert!(world.fakes.identity.tokens_issued() > before);
    world.assert_contracts();
}

#[tokio::test]
async fn a_token_still_cached_by_the_sdk_but_refused_by_azure_is_a_typed_401() {
    let world = ArmWorld::start(1).await;
    let client = world.client();
    assert_eq!(client.capacity().await.unwrap(), 1);
    world.fakes.identity.expire_all();

    let err = client.capacity().await.unwrap_err();

    assert!(
        matches!(err.fault(), CloudFault::Server { status: 401, message } if message.contains("ExpiredAuthenticationToken")),
        "{err:?}"
    );
    assert_eq!(world.fakes.identity.tokens_issued(), 1, "the SDK's cache still holds the token");
    world.assert_contracts();
}

#[tokio::test]
async fn a_user_assigned_identity_is_asked_for_by_client_id() {
    let identity = IdentitySettings {
        system_assigned: false,
        user_assigned_client_ids: vec!["11111111-2222-3333-4444-555555555555".into()],
        ..IdentitySettings::default()
    };
    let mut world = ArmWorld::start_with(1, identity, ArmSettings::default()).await;
    world.config.managed_identity_client_id = Some("11111111-2222-3333-4444-555555555555".into());

    assert_eq!(world.client().capacity().await.unwrap(), 1);

    let token_request = &world.fakes.identity.exchanges()[0];
    assert!(token_request.path.contains("client_id=11111111-2222-3333-4444-555555555555"), "{}", token_request.path);
    let resources = world.fakes.identity.resources();
    assert!(resources.contains(&world.fakes.arm.audience()), "{resources:?}");
    world.assert_contracts();
}

#[tokio::test]
async fn a_flexible_scale_set_is_refused_at_start() {
    let world = ArmWorld::start(0).await;
    let id = world.fakes.arm.add_scale_set(ScaleSetSpec::flexible("flex"));
    let options = ClientOptions { transport: Some(world.fakes.sdk_transport()), ..Default::default() };
    let credential = credential(CredentialSource::ManagedIdentity, &world.config, Some(options)).unwrap();
    let client = ArmScaleSet::new(&world.config.resource_manager_url, &id, Arc::clone(&credential)).unwrap();

    let err = client.verify().await.unwrap_err();

    assert!(matches!(&err, ArmError::UnsupportedOrchestration { mode, .. } if mode == "Flexible"), "{err:?}");
    let chain = format!("{err}: {}", std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default());
    assert!(chain.contains("only Uniform is supported") && chain.contains("orchestration_mode"), "{chain}");
    world.assert_contracts();
}

#[tokio::test]
async fn plain_http_to_a_remote_host_and_malformed_resource_ids_are_refused() {
    let world = ArmWorld::start(0).await;
    let options = ClientOptions { transport: Some(world.fakes.sdk_transport()), ..Default::default() };
    let credential = credential(CredentialSource::ManagedIdentity, &world.config, Some(options)).unwrap();
    let err = ArmScaleSet::new("http://management.azure.com", &world.config.vmss_resource_id, credential.clone())
        .unwrap_err();
    assert!(matches!(err, ArmError::InvalidEndpoint { .. }), "{err:?}");
    let err = ArmScaleSet::new(&world.config.resource_manager_url, "/subscriptions/x/resourceGroups", credential)
        .unwrap_err();
    assert!(matches!(err, ArmError::InvalidResourceId { .. }), "{err:?}");
}
