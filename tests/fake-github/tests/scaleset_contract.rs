//! The fake's answers, and the requests of a client that follows SS, conform to the
//! description in `contracts/actions-scaleset/` for a whole lifecycle in both job flows.

mod common;

use std::time::Duration;

use common::{next_message, Client};
use contract::{Api, Contract};
use fake_github::{FakeGithub, JobFlow};
use reqwest::Method;
use serde_json::json;

async fn lifecycle(flow: JobFlow) -> FakeGithub {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| {
        c.poll_hold = Duration::from_millis(100);
        c.flow = flow;
        c.assignment_timeout = Duration::from_secs(30);
    });
    let c = Client::connect(&fake, "acme").await;
    c.admin(Method::GET, "_apis/runtime/runnergroups/?groupName=Default", None).await;
    c.admin(Method::GET, "_apis/runtime/runnerscalesets?runnerGroupId=1&name=linux", None).await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    c.admin(Method::POST, "_apis/runtime/runnerscalesets", Some(json!({"name": "linux", "runnerGroupId": 1}))).await;
    c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}"), None).await;
    let patch = json!({"runnerGroupId": 1, "RunnerSetting": {}, "createdOn": "0001-01-01T00:00:00Z"});
    c.admin(Method::PATCH, &format!("_apis/runtime/runnerscalesets/{id}"), Some(patch)).await;

    let s = c.open_session(id).await;
    assert_eq!(c.try_session(id).await.status, 409);
    let mut last = 0;
    assert_eq!(c.poll(&s, last, 4).await.status, 202);
    fake.scaleset_queue_job_for(id).unwrap();
    let first = next_message(&c, &s, &mut last, 4).await;
    if flow == JobFlow::Ghes {
        let request = first.jobs[0]["runnerRequestId"].as_i64().unwrap();
        let url = format!("{}_apis/runtime/runnerscalesets/{id}/acquirejobs?api-version=6.0-preview", c.base);
        c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}/acquirablejobs"), None).await;
        assert_eq!(common::send(&c.http, Method::POST, &url, Some(&s.token), Some(json!([request]))).await.status, 200);
        next_message(&c, &s, &mut last, 4).await;
    }
    let jit = c.jit(id, "linux-1").await.json();
    assert_eq!(c.jit(id, "linux-1").await.status, 409);
    let runner = jit["runner"]["id"].as_u64().unwrap();
    c.admin(Method::GET, &format!("_apis/distributedtask/pools/0/agents/{runner}"), None).await;
    c.admin(Method::GET, "_apis/distributedtask/pools/0/agents?agentName=linux-1", None).await;
    fake.start_runner_with_jit(jit["encodedJITConfig"].as_str().unwrap()).unwrap();
    next_message(&c, &s, &mut last, 4).await;
    assert_eq!(
        c.admin(Method::DELETE, &format!("_apis/distributedtask/pools/0/agents/{runner}"), None).await.status,
        400
    );
    fake.scaleset_finish_job(runner, "succeeded").unwrap();
    next_message(&c, &s, &mut last, 4).await;
    c.admin(Method::GET, &format!("_apis/distributedtask/pools/0/agents/{runner}"), None).await;
    c.admin(Method::DELETE, &format!("_apis/distributedtask/pools/0/agents/{runner}"), None).await;

    fake.scaleset_expire_message_queue_tokens(id);
    assert_eq!(c.poll(&s, last, 4).await.status, 401);
    let s = common::Session::from(&c.refresh(id, &s).await.json());
    assert_eq!(c.close(id, &s).await.status, 204);
    assert_eq!(c.close(id, &s).await.status, 400);
    assert_eq!(c.refresh(id, &s).await.status, 404);
    assert_eq!(c.admin(Method::DELETE, &format!("_apis/runtime/runnerscalesets/{id}"), None).await.status, 204);
    assert_eq!(c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}"), None).await.status, 404);
    assert_eq!(c.admin_with(Method::GET, "_apis/runtime/runnergroups/", None, None).await.status, 401);
    fake
}

fn assert_conforms(fake: &FakeGithub, at_least: usize) {
    let exchanges = fake.scaleset_exchanges();
    assert!(exchanges.len() >= at_least, "only {} exchanges", exchanges.len());
    let problems = Contract::load(Api::ActionsScaleset).check_all(&exchanges);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_github_com_lifecycle_conforms_to_the_description() {
    let fake = lifecycle(JobFlow::GithubCom).await;
    assert_conforms(&fake, 30);
}

#[tokio::test]
async fn a_ghes_lifecycle_with_acquisition_conforms_to_the_description() {
    let fake = lifecycle(JobFlow::Ghes).await;
    let exchanges = fake.scaleset_exchanges();
    assert!(exchanges.iter().any(|e| e.path.contains("/acquirejobs")));
    assert_conforms(&fake, 33);
}

#[tokio::test]
async fn a_reassignment_and_a_full_batch_conform_too() {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| {
        c.poll_hold = Duration::from_millis(100);
        c.assignment_timeout = Duration::from_millis(100);
        c.max_reassignments = 1;
    });
    let c = Client::connect(&fake, "o/r").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let s = c.open_session(id).await;
    for _ in 0..60 {
        fake.scaleset_queue_job_for(id).unwrap();
    }
    let mut last = 0;
    for _ in 0..4 {
        next_message(&c, &s, &mut last, 100).await;
    }
    assert!(fake.scaleset_jobs().iter().all(|j| j.reassignments == 1));
    assert_conforms(&fake, 8);
}

#[tokio::test]
async fn the_rest_exchanges_of_the_auth_chain_stay_with_the_rest_contract() {
    let fake = FakeGithub::start().await;
    let _ = Client::connect(&fake, "acme").await;
    let rest = fake.exchanges();
    assert_eq!(rest.len(), 1, "only R2: {rest:?}");
    assert_eq!(Contract::load(Api::GithubRest).check_all(&rest), Vec::<String>::new());
    assert_eq!(fake.scaleset_exchanges()[0].path, "/actions/runner-registration", "R3, /api/v3 cut off");
}

#[tokio::test]
async fn the_check_catches_an_unknown_field_in_a_recorded_answer_or_request() {
    let fake = lifecycle(JobFlow::GithubCom).await;
    let contract = Contract::load(Api::ActionsScaleset);
    let exchanges = fake.scaleset_exchanges();
    let message = exchanges.iter().find(|e| e.path.contains("/messages?") && e.status == 200).unwrap().clone();
    let mut extra = message.clone();
    extra.response_body.as_mut().unwrap()["enabled"] = json!(true);
    let problems = contract.check(&extra).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("`enabled`")), "{problems:?}");

    let mut inner = message;
    let body = inner.response_body.as_ref().unwrap()["body"].as_str().unwrap();
    let mut jobs: serde_json::Value = serde_json::from_str(body).unwrap();
    jobs[0]["assignedTo"] = json!("x");
    inner.response_body.as_mut().unwrap()["body"] = json!(jobs.to_string());
    let problems = contract.check(&inner).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("inside the JSON string at `/body`")), "{problems:?}");

    let mut create = exchanges.iter().find(|e| e.method == "POST" && e.path.contains("/sessions?")).unwrap().clone();
    create.request_body.as_mut().unwrap()["maxRunners"] = json!(3);
    let problems = contract.check(&create).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("request body") && p.contains("`maxRunners`")), "{problems:?}");
}
