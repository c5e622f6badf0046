//! The HTTP API, driven through the router without a socket (and once with one).

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{job_json, settings, Harness};
use operator::model::{InstanceId, InstanceState};

const REGISTRATION: &str = "/api/v1/registration";
const STARTED: &str = "/api/v1/hooks/job-started";
const COMPLETED: &str = "/api/v1/hooks/job-completed";
const EXITED: &str = "/api/v1/hooks/runner-exited";

fn state_of(h: &Harness, id: &str) -> InstanceState {
    h.controller.instance_states().into_iter().find(|(i, _)| i.as_str() == id).map(|(_, s)| s).unwrap()
}

fn assert_error_shape(body: &serde_json::Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "one key only: {body}");
}

#[tokio::test]
async fn registration_hands_out_a_jit_config_once_per_boot() {
    let h = Harness::new(2, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    let (status, body) = h.call(vm, REGISTRATION, "{}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "jit");
    assert!(body["runner_name"].as_str().unwrap().starts_with("vmsstest000000-"));
    let encoded = body["encoded_jit_config"].as_str().unwrap();
    assert!(h.github.start_with_jit(encoded).is_some(), "the config works at GitHub");

    let (status, body) = h.call(vm, REGISTRATION, "{}").await;
    assert_eq!(status, 409);
    assert_error_shape(&body, "already_registered");
    assert_eq!(state_of(&h, "0"), InstanceState::AwaitingRegistration, "idle once GitHub shows the runner online");
    h.controller.reconcile().await.unwrap();
    assert_eq!(state_of(&h, "0"), InstanceState::Idle);
}

/// The answer to the first request was lost (say, the operator restarted before
/// replying): the VM asks again, its JIT runner never came online, so that runner is
/// removed at GitHub (voiding its config) and a new registration is issued.
#[tokio::test]
async fn a_registration_whose_runner_never_came_online_is_replaced_on_request() {
    use operator::ports::Github;
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    let (_, first) = h.call(vm, REGISTRATION, "{}").await;
    let (status, second) = h.call(vm, REGISTRATION, "{}").await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["runner_name"], second["runner_name"]);
    let names: Vec<String> = h.github.list_runners().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, [second["runner_name"].as_str().unwrap()], "the unused runner was removed");
    assert!(h.github.start_with_jit(first["encoded_jit_config"].as_str().unwrap()).is_none(), "its config is void");
    assert!(h.github.start_with_jit(second["encoded_jit_config"].as_str().unwrap()).is_some());
    let (status, _) = h.call(vm, REGISTRATION, "{}").await;
    assert_eq!(status, 409, "once the runner is online, never again on this boot");
}

#[tokio::test]
async fn token_mode_returns_config_sh_arguments() {
    let mut s = settings(1, 5, 25);
    s.jit = false;
    let h = Harness::new(1, s).await;
    let (status, body) = h.call(h.ip_of("0"), REGISTRATION, "{}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "token");
    assert_eq!(body["url"], "https://github.com/o/r");
    let args: Vec<&str> = body["config_args"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for flag in ["--ephemeral", "--unattended", "--labels", "self-hosted,linux", "--name"] {
        assert!(args.contains(&flag), "{args:?} lacks {flag}");
    }
    assert!(!args.iter().any(|a| a.starts_with("SIMTOKEN")), "the token is not in the argument list");
}

#[tokio::test]
async fn a_caller_that_is_not_an_instance_is_refused_and_changes_nothing() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let stranger = SocketAddr::from(([127, 9, 9, 9], 5555));
    for path in [REGISTRATION, STARTED, COMPLETED, EXITED] {
        let body = if path == REGISTRATION || path == EXITED { "{}".to_owned() } else { job_json(1) };
        let (status, json) = h.call(stranger, path, &body).await;
        assert_eq!(status, 403, "{path}");
        assert_error_shape(&json, "unknown_instance");
    }
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty());
    assert_eq!(state_of(&h, "0"), InstanceState::AwaitingRegistration);
}

#[tokio::test]
async fn bad_input_gets_one_error_shape_and_changes_no_state() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    let cases = [
        ("application/json", "{not json".to_owned(), 400, "malformed_json"),
        ("text/plain", job_json(1), 415, "unsupported_media_type"),
        (
            "application/json",
            r#"{"repository":"o/r","run_id":1,"run_attempt":1,"job_name":"b","instance":"7"}"#.to_owned(),
            422,
            "invalid_body",
        ),
        (
            "application/json",
            r#"{"repository":"o/r","run_id":"x","run_attempt":1,"job_name":"b"}"#.to_owned(),
            422,
            "invalid_body",
        ),
        (
            "application/json",
            format!(r#"{{"repository":"{}","run_id":1,"run_attempt":1,"job_name":"b"}}"#, "x".repeat(20_000)),
            413,
            "body_too_large",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let (got, json) = h.call_with(vm, STARTED, content_type, body).await;
        assert_eq!(got, status, "{code}: {json}");
        assert_error_shape(&json, code);
    }
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty(), "no marker written");
    assert_eq!(state_of(&h, "0"), InstanceState::AwaitingRegistration);
}

#[tokio::test]
async fn job_started_is_acknowledged_only_after_the_marker_is_stored() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    h.call(vm, REGISTRATION, "{}").await;
    let (status, body) = h.call(vm, STARTED, &job_json(42)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "busy");
    assert_eq!(body["changed"], true);
    let markers = h.memory_busy.as_ref().unwrap().markers();
    assert_eq!(markers.len(), 1);
    assert_eq!((markers[0].instance.as_str(), markers[0].job.run_id), ("0", 42));

    let (status, body) = h.call(vm, STARTED, &job_json(42)).await;
    assert_eq!((status, &body["changed"]), (200, &serde_json::Value::Bool(false)), "a repeated hook changes nothing");
    assert_eq!(h.memory_busy.as_ref().unwrap().markers().len(), 1);

    let (status, body) = h.call(vm, STARTED, &job_json(43)).await;
    assert_eq!(status, 409);
    assert_error_shape(&body, "job_mismatch");
}

#[tokio::test]
async fn completed_job_waits_for_runner_exit_before_the_vm_is_touched() {
    let h = Harness::new(2, settings(1, 5, 0)).await;
    let vm = h.ip_of("1");
    h.call(vm, REGISTRATION, "{}").await;
    h.call(vm, STARTED, &job_json(7)).await;
    let (status, body) = h.call(vm, COMPLETED, &job_json(7)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "retiring");
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty(), "marker removed on completion");

    h.controller.reconcile().await.unwrap();
    h.controller.operations().close();
    h.controller.operations().wait().await;
    assert_eq!(h.scale_set.writes().total(), 0, "nothing happens to the VM from inside the completed hook");

    let (status, body) = h.call(vm, EXITED, r#"{"exit_code":0}"#).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("recyclable")));
    assert_eq!(state_of(&h, "1"), InstanceState::Recyclable);
}

#[tokio::test]
async fn runner_exit_leads_to_delete_on_a_quiet_pool_and_reimage_on_a_busy_one() {
    // Quiet: instance 0 idle (registered), instance 1 done -> delete 1.
    let h = Harness::new(3, settings(1, 5, 0)).await;
    for id in ["0", "1", "2"] {
        h.call(h.ip_of(id), REGISTRATION, "{}").await;
    }
    h.call(h.ip_of("2"), EXITED, "{}").await;
    h.controller.reconcile().await.unwrap();
    h.controller.operations().close();
    h.controller.operations().wait().await;
    let writes = h.scale_set.writes();
    assert_eq!((writes.delete, writes.deleted_ids.clone()), (1, vec![InstanceId::new("2")]));

    // Busy: the others run jobs and the pool wants free runners -> reimage.
    let h = Harness::new(3, settings(1, 3, 50)).await;
    for id in ["0", "1", "2"] {
        h.call(h.ip_of(id), REGISTRATION, "{}").await;
    }
    h.call(h.ip_of("0"), STARTED, &job_json(1)).await;
    h.call(h.ip_of("1"), STARTED, &job_json(2)).await;
    h.call(h.ip_of("2"), EXITED, "{}").await;
    h.controller.reconcile().await.unwrap();
    h.controller.operations().close();
    h.controller.operations().wait().await;
    assert_eq!(h.scale_set.writes().reimaged_ids, vec![InstanceId::new("2")]);
    assert_eq!(state_of(&h, "2"), InstanceState::AwaitingRegistration, "fresh boot after reimage");
}

#[tokio::test]
async fn a_finished_instance_on_an_old_model_is_replaced_not_reimaged() {
    // The busy pool of the test above, whose scale-set model changed (a new image)
    // while the jobs ran: a reimage would bring the old model back.
    let h = Harness::new(3, settings(1, 6, 50)).await;
    for id in ["0", "1", "2"] {
        h.call(h.ip_of(id), REGISTRATION, "{}").await;
    }
    h.call(h.ip_of("0"), STARTED, &job_json(1)).await;
    h.call(h.ip_of("1"), STARTED, &job_json(2)).await;
    h.scale_set.change_model();
    h.call(h.ip_of("2"), EXITED, "{}").await;
    h.controller.reconcile().await.unwrap();
    h.controller.operations().close();
    h.controller.operations().wait().await;
    let writes = h.scale_set.writes();
    assert!(writes.reimaged_ids.is_empty(), "never reimaged onto its old model: {writes:?}");
    assert_eq!(writes.deleted_ids, vec![InstanceId::new("2")]);
    assert_eq!(writes.set_capacity, 1, "its replacement is created from the current model first");
    assert!(h.scale_set.live() >= 3, "the pool does not shrink while it needs the runner");
}

#[tokio::test]
async fn lost_job_completed_is_covered_by_runner_exited() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let vm = h.ip_of("0");
    h.call(vm, REGISTRATION, "{}").await;
    h.call(vm, STARTED, &job_json(5)).await;
    let (status, body) = h.call(vm, EXITED, "{}").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("recyclable")));
    assert!(h.memory_busy.as_ref().unwrap().markers().is_empty());
}

#[tokio::test]
async fn hooks_are_refused_with_503_until_state_is_recovered() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    let fresh = operator::controller::Controller::new(settings(1, 5, 25), h.controller.ports().clone());
    let progress = operator::readiness::Progress::new(Duration::from_secs(30));
    let router = operator::api::app(operator::api::AppState::new(fresh, progress), 16 * 1024);
    let mut req = axum::http::Request::post(STARTED)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(job_json(1)))
        .unwrap();
    req.extensions_mut().insert(axum::extract::ConnectInfo(h.ip_of("0")));
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = Harness::new(1, settings(1, 5, 25)).await;
    assert_eq!(h.get("/healthz").await, (200, "ok".to_owned()));
    let (status, body) = h.get("/readyz").await;
    assert_eq!(status, 503, "no reconcile loop runs in this harness: {body}");
    assert!(body.contains("the reconcile loop is not running"), "{body}");
    let (_, registration) = h.call(h.ip_of("0"), REGISTRATION, "{}").await;
    h.github.start_with_jit(registration["encoded_jit_config"].as_str().unwrap()).unwrap();
    h.call(SocketAddr::from(([127, 9, 9, 9], 1)), REGISTRATION, "{}").await;
    h.scale_set.fail_next(operator::ports::CloudFault::Throttled { retry_after: None });
    assert!(h.controller.reconcile().await.is_err());
    h.controller.reconcile().await.unwrap();
    let (status, text) = h.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "vmss_runner_desired_instances",
        "vmss_runner_actual_instances",
        "vmss_runner_instances{state=\"idle\"} 1",
        "vmss_runner_instances{state=\"busy\"} 0",
        "vmss_runner_hooks_total{kind=\"registration\",outcome=\"applied\"} 1",
        "vmss_runner_hooks_total{kind=\"registration\",outcome=\"unknown_instance\"} 1",
        "vmss_runner_job_start_latency_seconds_bucket",
        "vmss_runner_scale_operations_total{kind=\"set_capacity\",outcome=\"ok\"} 0",
        "vmss_runner_cloud_api_errors_total{api=\"scale_set\",kind=\"throttled\"} 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test]
async fn a_burst_of_hooks_makes_one_capacity_change() {
    // 10 registered runners start jobs at once: the pool must grow once, not ten times.
    let h = Harness::new(10, settings(1, 40, 50)).await;
    for id in 0..10 {
        h.call(h.ip_of(&id.to_string()), REGISTRATION, "{}").await;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let looper =
        tokio::spawn(operator::run::reconcile_loop(h.controller.clone(), Duration::from_millis(300), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await; // first pass: nothing to do
    let before = h.scale_set.writes().set_capacity;
    let calls = (0..10).map(|id| {
        let h = &h;
        async move { h.call(h.ip_of(&id.to_string()), STARTED, &job_json(100 + id)).await }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    shutdown.cancel();
    looper.await.unwrap().expect("the loop ends cleanly on shutdown");
    let writes = h.scale_set.writes();
    assert_eq!(writes.set_capacity - before, 1, "one capacity write for the burst: {writes:?}");
    assert_eq!(operator::ports::ScaleSet::capacity(&*h.scale_set).await.unwrap(), 20, "10 busy at 50 % -> 20");
}

#[tokio::test]
async fn instances_finishing_together_are_recycled_in_one_batched_call() {
    let h = Harness::new(6, settings(1, 10, 0)).await;
    for id in 0..6 {
        h.call(h.ip_of(&id.to_string()), REGISTRATION, "{}").await;
    }
    for id in 2..6 {
        h.call(h.ip_of(&id.to_string()), EXITED, "{}").await;
    }
    h.controller.reconcile().await.unwrap();
    h.controller.operations().close();
    h.controller.operations().wait().await;
    let writes = h.scale_set.writes();
    assert_eq!(writes.delete, 1, "one call: {writes:?}");
    assert_eq!(writes.deleted_ids.len(), 4);
}
