//! The runner scale set API end to end in the github.com flow, driven with plain reqwest:
//! auth chain, scale set, session, long poll and ack, JIT runner, the job's messages, removal.

mod common;

use std::time::Duration;

use common::{next_message, Client, Message};
use fake_github::{FakeGithub, Scope};
use reqwest::Method;
use serde_json::{json, Value};

async fn fake() -> FakeGithub {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| c.poll_hold = Duration::from_millis(200));
    fake
}

#[tokio::test]
async fn a_job_travels_from_queue_to_completion_in_the_github_com_flow() {
    let fake = fake().await;
    let c = Client::connect(&fake, "o/r").await;
    assert!(c.base.starts_with(&format!("{}/tenant/", fake.url())) && c.base.ends_with('/'), "{}", c.base);

    let groups = c.admin(Method::GET, "_apis/runtime/runnergroups/?groupName=Default", None).await;
    assert_eq!(
        groups.json(),
        json!({"count": 1, "value": [{"id": 1, "name": "Default", "size": 0, "isDefaultGroup": true}]})
    );

    let set = c.create_set("vmss-linux").await;
    let id = set["id"].as_u64().unwrap();
    assert_eq!(set["labels"], json!([{"type": "System", "name": "vmss-linux"}]));
    assert_eq!(set["RunnerSetting"], json!({"disableUpdate": true}));
    assert_eq!(set["runnerGroupName"], "Default");
    assert!(set["createdOn"].as_str().unwrap() > "2026", "createdOn is now, not the zero time");
    assert!(set["runnerJitConfigUrl"].as_str().unwrap().ends_with(&format!("/runnerscalesets/{id}/generatejitconfig")));

    let by_name = c.admin(Method::GET, "_apis/runtime/runnerscalesets?runnerGroupId=1&name=vmss-linux", None).await;
    assert_eq!(by_name.json()["count"], 1);
    assert_eq!(by_name.json()["value"][0]["id"], id);
    let none = c.admin(Method::GET, "_apis/runtime/runnerscalesets?runnerGroupId=1&name=other", None).await;
    assert_eq!(none.json(), json!({"count": 0, "value": []}));

    let s = c.open_session(id).await;
    assert_eq!(s.statistics["totalAssignedJobs"], 0);
    assert!(s.queue_url.contains(&format!("/runnerscalesets/{id}/messages?sessionId={}", s.id)));
    let mut last = 0;
    assert_eq!(c.poll(&s, last, 10).await.status, 202, "nothing to say: 202 after the hold");

    let job_id = fake.scaleset_queue_job(&Scope::repo("o/r"), fake_github::ScaleSetJobSpec::runs_on(&["vmss-linux"]));
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobAssigned"]);
    let assigned = &m.jobs[0];
    assert_eq!(assigned["jobId"], job_id.as_str());
    assert_eq!(assigned["runnerRequestId"], 0, "github.com sends no request id");
    assert_eq!(assigned["repositoryName"], "r");
    assert_eq!(assigned["ownerName"], "o");
    assert_eq!(assigned["requestLabels"], json!(["vmss-linux"]));
    assert_eq!(assigned["runnerAssignTime"], "0001-01-01T00:00:00Z");
    assert_eq!(m.statistics["totalAssignedJobs"], 1);
    assert_eq!(m.statistics["totalRunningJobs"], 0);

    let jit = c.jit(id, "vmss-linux-0001").await;
    assert_eq!(jit.status, 200, "{}", jit.text);
    let runner = jit.json()["runner"].clone();
    assert_eq!(runner["name"], "vmss-linux-0001");
    assert_eq!(runner["runnerScaleSetId"], id);
    let encoded = jit.json()["encodedJITConfig"].as_str().unwrap().to_owned();
    let files = decode_jit(&encoded);
    for file in [".runner", ".credentials", ".credentials_rsaparams"] {
        assert!(files.get(file).and_then(Value::as_str).is_some(), "{file} missing from {files}");
    }
    let runner_id = runner["id"].as_u64().unwrap();
    let listed = fake.runners(&Scope::repo("o/r"));
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].online, "registered, not yet connected");
    assert_eq!(fake.scaleset_statistics(id).unwrap().total_registered_runners, 1);

    assert_eq!(fake.start_runner_with_jit(&encoded), Some(runner_id));
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobStarted"]);
    assert_eq!(m.jobs[0]["runnerId"], runner_id);
    assert_eq!(m.jobs[0]["runnerName"], "vmss-linux-0001");
    assert_ne!(m.jobs[0]["runnerAssignTime"], "0001-01-01T00:00:00Z");
    assert_eq!(m.statistics["totalRunningJobs"], 1);
    assert_eq!(m.statistics["totalBusyRunners"], 1);

    // The REST view shows the same runner, busy.
    let rest = c
        .http
        .get(format!("{}/repos/o/r/actions/runners", c.api))
        .header("authorization", format!("Bearer {}", common::PAT))
        .header("user-agent", "t")
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(rest["runners"][0]["id"], runner_id);
    assert_eq!(rest["runners"][0]["busy"], true);
    assert_eq!(rest["runners"][0]["status"], "online");

    let busy = c.admin(Method::DELETE, &format!("_apis/distributedtask/pools/0/agents/{runner_id}"), None).await;
    assert_eq!(busy.status, 400);
    assert!(busy.type_name().contains("JobStillRunningException"));
    let busy_set = c.admin(Method::DELETE, &format!("_apis/runtime/runnerscalesets/{id}"), None).await;
    assert_eq!(busy_set.status, 400, "a set with a busy runner cannot be deleted");

    assert_eq!(fake.scaleset_finish_job(runner_id, "succeeded"), Some(job_id.clone()));
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobCompleted"]);
    assert_eq!(m.jobs[0]["result"], "succeeded");
    assert_eq!(m.jobs[0]["runnerName"], "vmss-linux-0001");
    assert_ne!(m.jobs[0]["finishTime"], "0001-01-01T00:00:00Z");
    assert_eq!(
        m.statistics,
        json!({"totalAvailableJobs": 0, "totalAcquiredJobs": 0, "totalAssignedJobs": 0,
        "totalRunningJobs": 0, "totalRegisteredRunners": 0, "totalBusyRunners": 0, "totalIdleRunners": 0})
    );
    assert!(fake.runners(&Scope::repo("o/r")).is_empty(), "the ephemeral runner is gone");

    let gone = c.admin(Method::DELETE, &format!("_apis/distributedtask/pools/0/agents/{runner_id}"), None).await;
    assert_eq!(gone.status, 204, "removing an unknown runner is a success");
    assert_eq!(c.close(id, &s).await.status, 204);
    let again = c.close(id, &s).await;
    assert_eq!(again.status, 400);
    assert!(again.type_name().contains("RunnerScaleSetSessionExpiredException"));
    assert_eq!(c.admin(Method::DELETE, &format!("_apis/runtime/runnerscalesets/{id}"), None).await.status, 204);
    let a2 = c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}"), None).await;
    assert_eq!(a2.status, 404);
    assert!(a2.type_name().contains("RunnerScaleSetNotFoundException"));
}

fn decode_jit(encoded: &str) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let outer: Value = serde_json::from_slice(&b64.decode(encoded).unwrap()).unwrap();
    for (_, v) in outer.as_object().unwrap() {
        b64.decode(v.as_str().unwrap()).expect("each file is base64");
    }
    outer
}

#[tokio::test]
async fn every_answer_has_an_activity_id_and_errors_have_one_json_shape() {
    let fake = fake().await;
    let c = Client::connect(&fake, "acme").await;
    let missing = c.admin(Method::GET, "_apis/runtime/runnerscalesets/99", None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers.get("activityid").is_some());
    assert!(missing.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    let body = missing.json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert!(body["typeName"].is_string() && body["message"].is_string());
    let ok = c.admin(Method::GET, "_apis/runtime/runnergroups/", None).await;
    assert!(ok.headers.get("activityid").is_some());
}

#[tokio::test]
async fn admin_calls_need_the_admin_token_and_an_api_version() {
    let fake = fake().await;
    let c = Client::connect(&fake, "acme").await;
    let path = "_apis/runtime/runnerscalesets?name=x&runnerGroupId=1";
    assert_eq!(c.admin(Method::GET, path, None).await.status, 200);
    assert_eq!(c.admin_with(Method::GET, path, None, None).await.status, 401);
    assert_eq!(c.admin_with(Method::GET, path, None, Some("forged")).await.status, 401);
    let no_version = common::send(&c.http, Method::GET, &format!("{}{path}", c.base), Some(&c.admin_token), None).await;
    assert_eq!(no_version.status, 400);

    // Another tenant's token does not open this one.
    let other = Client::connect(&fake, "other-org").await;
    assert_ne!(other.base, c.base);
    assert_eq!(c.admin_with(Method::GET, path, None, Some(&other.admin_token)).await.status, 401);

    fake.scaleset_expire_admin_tokens();
    assert_eq!(c.admin(Method::GET, path, None).await.status, 401);
    let fresh = Client::connect(&fake, "acme").await;
    assert_eq!(fresh.base, c.base, "the same scope keeps its tenant");
    assert_eq!(fresh.admin(Method::GET, path, None).await.status, 200);
}

#[tokio::test]
async fn the_admin_token_is_a_jwt_whose_exp_follows_the_configured_lifetime() {
    let fake = fake().await;
    fake.scaleset_configure(|c| c.admin_token_ttl = Duration::from_secs(600));
    let c = Client::connect(&fake, "acme").await;
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(&c.admin_token).unwrap();
    let header = jsonwebtoken::decode_header(&c.admin_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = claims["exp"].as_i64().unwrap();
    assert!((now + 590..=now + 610).contains(&exp), "exp {exp}, now {now}");
}

#[tokio::test]
async fn runner_registration_takes_only_a_registration_token_of_the_same_scope() {
    let fake = fake().await;
    fake.add_pat(common::PAT);
    let token = common::registration_token(&fake, "acme").await;
    let url = format!("{}/acme", fake.url());
    assert_eq!(common::runner_registration(&fake, "forged", &url).await.status, 401);
    assert_eq!(common::runner_registration(&fake, &token, &format!("{}/other", fake.url())).await.status, 404);

    fake.scaleset_fail_registration(401, 1);
    assert_eq!(common::runner_registration(&fake, &token, &url).await.status, 401, "the injected refusal");
    let ok = common::runner_registration(&fake, &token, &format!("{url}/")).await;
    assert_eq!(ok.status, 201, "then it works (a trailing slash is fine)");
    let body = ok.json();
    assert_eq!(body["token_schema"], "OAuthAccessToken");
    assert_eq!(body.as_object().unwrap().len(), 3);
}

#[tokio::test]
async fn a_duplicate_set_name_in_a_group_is_refused_and_other_groups_may_reuse_it() {
    let fake = fake().await;
    let c = Client::connect(&fake, "acme").await;
    let gpu = fake.add_runner_group("acme", "gpu");
    c.create_set("linux").await;
    let dup = c
        .admin(Method::POST, "_apis/runtime/runnerscalesets", Some(json!({"name": "linux", "runnerGroupId": 1})))
        .await;
    assert_eq!(dup.status, 400);
    assert!(dup.json()["message"].as_str().unwrap().contains("already exists in runner group Default"), "{}", dup.text);
    let other = c
        .admin(Method::POST, "_apis/runtime/runnerscalesets", Some(json!({"name": "linux", "runnerGroupId": gpu})))
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.json()["runnerGroupName"], "gpu");

    let groups = c.admin(Method::GET, "_apis/runtime/runnergroups/?groupName=gpu", None).await.json();
    assert_eq!(groups["value"][0]["id"], gpu);
    assert_eq!(groups["value"][0]["isDefaultGroup"], false);
    let none = c.admin(Method::GET, "_apis/runtime/runnergroups/?groupName=nope", None).await.json();
    assert_eq!(none, json!({"count": 0, "value": []}));

    // A partial PATCH changes only what it names; `RunnerSetting: {}` is no reset.
    let id = other.json()["id"].as_u64().unwrap();
    let patch = json!({"name": "linux-big", "RunnerSetting": {}, "createdOn": "0001-01-01T00:00:00Z"});
    let patched = c.admin(Method::PATCH, &format!("_apis/runtime/runnerscalesets/{id}"), Some(patch)).await.json();
    assert_eq!(patched["name"], "linux-big");
    assert_eq!(patched["runnerGroupId"], gpu);
    assert_eq!(patched["labels"], json!([{"type": "System", "name": "linux"}]), "labels are not renamed");
}

#[tokio::test]
async fn jit_names_are_unique_and_the_agents_endpoints_find_runners() {
    let fake = fake().await;
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let first = c.jit(id, "r-1").await.json();
    let dup = c.jit(id, "r-1").await;
    assert_eq!(dup.status, 409);
    assert!(dup.type_name().contains("AgentExistsException"));
    let rid = first["runner"]["id"].as_u64().unwrap();
    let got = c.admin(Method::GET, &format!("_apis/distributedtask/pools/0/agents/{rid}"), None).await.json();
    assert_eq!(got, json!({"id": rid, "name": "r-1", "runnerScaleSetId": id}));
    let by_name = c.admin(Method::GET, "_apis/distributedtask/pools/0/agents?agentName=r-1", None).await.json();
    assert_eq!(by_name["count"], 1);
    let none = c.admin(Method::GET, "_apis/distributedtask/pools/0/agents?agentName=r-2", None).await.json();
    assert_eq!(none, json!({"count": 0, "value": []}));
    let missing = c.admin(Method::GET, "_apis/distributedtask/pools/0/agents/999999", None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.type_name().contains("AgentNotFoundException"));
    assert_eq!(c.admin(Method::DELETE, &format!("_apis/distributedtask/pools/0/agents/{rid}"), None).await.status, 204);
    assert_eq!(fake.start_runner_with_jit(first["encodedJITConfig"].as_str().unwrap()), None, "config died with it");
    assert_eq!(c.jit(id, "r-1").await.status, 200, "the name is free again");
}

#[tokio::test]
async fn a_poll_holding_wakes_when_a_job_is_queued() {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| c.poll_hold = Duration::from_secs(30));
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let s = c.open_session(id).await;
    let poll = c.poll(&s, 0, 5);
    let queue = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.scaleset_queue_job_for(id).unwrap()
    };
    let started = std::time::Instant::now();
    let (answer, job) = tokio::join!(poll, queue);
    assert!(started.elapsed() < Duration::from_secs(5), "the poll did not wait for its hold to end");
    let m = Message::parse(&answer);
    assert_eq!(m.jobs[0]["jobId"], job.as_str());
    assert_eq!(fake.scaleset_sessions()[0].polls_in_flight, 0);
}

#[tokio::test]
async fn messages_have_increasing_ids_and_batches_of_at_most_fifty() {
    let fake = fake().await;
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let s = c.open_session(id).await;
    for _ in 0..120 {
        fake.scaleset_queue_job_for(id).unwrap();
    }
    let mut last = 0;
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let m = next_message(&c, &s, &mut last, 1000).await;
        sizes.push(m.jobs.len());
        ids.push(m.id);
        assert_eq!(m.statistics["totalAssignedJobs"], 120, "statistics are the whole truth, not the batch");
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
    assert_eq!(c.poll(&s, last, 1000).await.status, 202);
}

#[tokio::test]
async fn statistics_follow_jobs_and_runners() {
    let fake = fake().await;
    fake.scaleset_configure(|c| c.auto_start = false);
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let stats = |f: &FakeGithub| f.scaleset_statistics(id).unwrap();
    fake.scaleset_queue_job_for(id);
    fake.scaleset_queue_job_for(id);
    assert_eq!(stats(&fake).total_assigned_jobs, 2);
    let a = c.jit(id, "a").await.json()["runner"]["id"].as_u64().unwrap();
    let b = c.jit(id, "b").await.json()["runner"]["id"].as_u64().unwrap();
    assert_eq!((stats(&fake).total_registered_runners, stats(&fake).total_idle_runners), (2, 0));
    fake.scaleset_runner_online(a);
    fake.scaleset_runner_online(b);
    assert_eq!(stats(&fake).total_idle_runners, 2);
    assert!(fake.scaleset_start_job(a).is_some());
    let s = stats(&fake);
    assert_eq!((s.total_assigned_jobs, s.total_running_jobs, s.total_busy_runners, s.total_idle_runners), (2, 1, 1, 1));
    fake.scaleset_finish_job(a, "failed");
    let s = stats(&fake);
    assert_eq!((s.total_assigned_jobs, s.total_running_jobs, s.total_registered_runners), (1, 0, 1));
    let job = fake.scaleset_jobs().into_iter().find(|j| j.runner_id == Some(a)).unwrap();
    assert_eq!(job.result.as_deref(), Some("failed"));
}

#[tokio::test]
async fn jobs_go_only_to_a_set_carrying_every_runs_on_label() {
    let fake = fake().await;
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let scope = Scope::org("acme");
    let wrong = fake.scaleset_queue_job(&scope, fake_github::ScaleSetJobSpec::runs_on(&["self-hosted", "linux"]));
    assert_eq!(fake.scaleset_job(&wrong).unwrap().phase, fake_github::JobPhase::Queued, "ARC#3330: never matches");
    let right = fake.scaleset_queue_job(&scope, fake_github::ScaleSetJobSpec::runs_on(&["Linux"]));
    assert_eq!(fake.scaleset_job(&right).unwrap().scale_set_id, Some(id));
    let other_org = fake.scaleset_queue_job(&Scope::org("else"), fake_github::ScaleSetJobSpec::runs_on(&["linux"]));
    assert_eq!(fake.scaleset_job(&other_org).unwrap().phase, fake_github::JobPhase::Queued);
}

#[tokio::test]
async fn a_runner_connecting_or_finishing_through_the_rest_side_wakes_a_holding_poll() {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| c.poll_hold = Duration::from_secs(30));
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    let s = c.open_session(id).await;
    fake.scaleset_queue_job_for(id).unwrap();
    let mut last = 0;
    next_message(&c, &s, &mut last, 5).await;
    let jit = c.jit(id, "r-1").await.json();
    let encoded = jit["encodedJITConfig"].as_str().unwrap().to_owned();
    let runner = jit["runner"]["id"].as_u64().unwrap();
    let started = std::time::Instant::now();
    let connect = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.start_runner_with_jit(&encoded)
    };
    let (answer, _) = tokio::join!(c.poll(&s, last, 5), connect);
    assert_eq!(Message::parse(&answer).types(), ["JobStarted"]);
    last = Message::parse(&answer).id;
    let finish = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.finish_job(runner)
    };
    let (answer, _) = tokio::join!(c.poll(&s, last, 5), finish);
    assert_eq!(Message::parse(&answer).types(), ["JobCompleted"]);
    assert!(started.elapsed() < Duration::from_secs(10), "woken, not held to the end");
}

#[tokio::test]
async fn faults_on_runner_registration_answer_in_github_rest_shape() {
    let fake = fake().await;
    fake.add_pat(common::PAT);
    let token = common::registration_token(&fake, "acme").await;
    fake.scaleset_inject(Some("POST"), Some("/actions/runner-registration"), fake_github::BrokerFault::Status(502), 1);
    let failed = common::runner_registration(&fake, &token, &format!("{}/acme", fake.url())).await;
    assert_eq!(failed.status, 502);
    assert!(failed.json()["message"].is_string() && failed.json().get("typeName").is_none());
}
