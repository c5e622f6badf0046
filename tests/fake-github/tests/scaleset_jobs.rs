//! Jobs in the GHES flow (JobAvailable + acquirejobs), reassignment after an assignment no
//! runner started, dormant sets, and the fault knobs.

mod common;

use std::time::{Duration, Instant};

use common::{next_message, Client, Message};
use fake_github::{BrokerFault, FakeGithub, JobFlow, JobPhase};
use reqwest::Method;
use serde_json::json;

async fn setup(flow: JobFlow) -> (FakeGithub, Client, u64) {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| {
        c.poll_hold = Duration::from_millis(150);
        c.flow = flow;
    });
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    (fake, c, id)
}

async fn acquire(c: &Client, id: u64, token: &str, ids: &[i64]) -> common::Answer {
    let url = format!("{}_apis/runtime/runnerscalesets/{id}/acquirejobs?api-version=6.0-preview", c.base);
    common::send(&c.http, Method::POST, &url, Some(token), Some(json!(ids))).await
}

#[tokio::test]
async fn in_the_ghes_flow_a_job_is_available_until_acquired_with_the_queue_token() {
    let (fake, c, id) = setup(JobFlow::Ghes).await;
    let s = c.open_session(id).await;
    let mut last = 0;
    let job_id = fake.scaleset_queue_job_for(id).unwrap();
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobAvailable"]);
    let request_id = m.jobs[0]["runnerRequestId"].as_i64().unwrap();
    assert_ne!(request_id, 0);
    assert_eq!(m.jobs[0]["jobId"], job_id.as_str());
    assert!(m.jobs[0]["acquireJobUrl"].as_str().unwrap().ends_with(&format!("/runnerscalesets/{id}/acquirejobs")));
    assert_eq!(
        (m.statistics["totalAvailableJobs"].as_u64(), m.statistics["totalAssignedJobs"].as_u64()),
        (Some(1), Some(0))
    );

    let acquirable = c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}/acquirablejobs"), None).await;
    assert_eq!(acquirable.json()["value"][0]["runnerRequestId"], request_id);

    assert_eq!(acquire(&c, id, &c.admin_token, &[request_id]).await.status, 401, "the admin token is not the one");
    let acquired = acquire(&c, id, &s.token, &[request_id, 424242]).await;
    assert_eq!(acquired.json(), json!({"count": 1, "value": [request_id]}), "unknown ids are left out");
    assert_eq!(acquire(&c, id, &s.token, &[]).await.json(), json!({"count": 0, "value": []}));
    assert_eq!(
        c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}/acquirablejobs"), None).await.status,
        204,
        "nothing acquirable any more"
    );

    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobAssigned"]);
    assert_eq!(m.jobs[0]["runnerRequestId"], request_id, "GHES keeps the request id");
    assert_eq!(m.statistics["totalAcquiredJobs"], 1);
    assert_eq!(m.statistics["totalAssignedJobs"], 1);
    assert_eq!(m.statistics["totalAvailableJobs"], 0);

    let jit = c.jit(id, "r-1").await.json();
    fake.start_runner_with_jit(jit["encodedJITConfig"].as_str().unwrap()).unwrap();
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobStarted"]);
    let runner = jit["runner"]["id"].as_u64().unwrap();
    assert!(fake.finish_job(runner).is_some(), "the REST control finishes it as well");
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobCompleted"]);
    assert_eq!(m.jobs[0]["result"], "succeeded");
    assert_eq!(fake.scaleset_job(&job_id).unwrap().phase, JobPhase::Completed);
}

#[tokio::test]
async fn each_set_may_have_its_own_flow() {
    let (fake, c, github) = setup(JobFlow::GithubCom).await;
    let ghes = c.create_set("gpu").await["id"].as_u64().unwrap();
    assert!(fake.scaleset_set_flow_for(ghes, JobFlow::Ghes));
    let a = fake.scaleset_queue_job_for(github).unwrap();
    let b = fake.scaleset_queue_job_for(ghes).unwrap();
    assert_eq!(fake.scaleset_job(&a).unwrap().phase, JobPhase::Assigned);
    assert_eq!(fake.scaleset_job(&b).unwrap().phase, JobPhase::Available);
    assert_eq!(fake.scaleset_sets().iter().map(|s| s.flow).collect::<Vec<_>>(), [JobFlow::GithubCom, JobFlow::Ghes]);
}

#[tokio::test]
async fn an_assignment_no_runner_starts_is_cancelled_and_reassigned_up_to_three_times() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    fake.scaleset_configure(|c| {
        c.assignment_timeout = Duration::from_millis(200);
        c.poll_hold = Duration::from_secs(5);
    });
    let s = c.open_session(id).await;
    let job_id = fake.scaleset_queue_job_for(id).unwrap();
    let mut last = 0;
    let mut seen = Vec::new();
    while seen.len() < 7 {
        let m = next_message(&c, &s, &mut last, 10).await;
        assert_eq!(m.statistics["totalAssignedJobs"], 1, "one job, however often it is reassigned");
        for j in &m.jobs {
            assert_eq!(j["jobId"], job_id.as_str());
            seen.push(format!("{}{}", j["messageType"].as_str().unwrap(), j["result"].as_str().unwrap_or("")));
        }
    }
    assert_eq!(
        seen,
        [
            "JobAssigned",
            "JobCompletedcanceled",
            "JobAssigned",
            "JobCompletedcanceled",
            "JobAssigned",
            "JobCompletedcanceled",
            "JobAssigned"
        ]
    );
    assert_eq!(fake.scaleset_job(&job_id).unwrap().reassignments, 3);
    let started = Instant::now();
    assert_eq!(c.poll(&s, last, 10).await.status, 202, "after the third reassignment it waits");
    assert!(started.elapsed() >= Duration::from_secs(4));

    let runner = c.jit(id, "late").await.json()["runner"]["id"].as_u64().unwrap();
    fake.scaleset_runner_online(runner);
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobStarted"]);
}

#[tokio::test]
async fn in_the_ghes_flow_a_reassigned_job_is_offered_again_with_a_new_request_id() {
    let (fake, c, id) = setup(JobFlow::Ghes).await;
    fake.scaleset_configure(|c| c.assignment_timeout = Duration::from_millis(200));
    let s = c.open_session(id).await;
    fake.scaleset_queue_job_for(id).unwrap();
    let mut last = 0;
    let first = next_message(&c, &s, &mut last, 10).await.jobs[0]["runnerRequestId"].as_i64().unwrap();
    acquire(&c, id, &s.token, &[first]).await;
    assert_eq!(next_message(&c, &s, &mut last, 10).await.types(), ["JobAssigned"]);
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobCompleted", "JobAvailable"]);
    assert_eq!(m.jobs[0]["result"], "canceled");
    assert_eq!(m.jobs[0]["runnerRequestId"], first);
    let second = m.jobs[1]["runnerRequestId"].as_i64().unwrap();
    assert!(second != first && second != 0);
    assert_eq!(acquire(&c, id, &s.token, &[first]).await.json()["count"], 0, "the old request is gone");
}

#[tokio::test]
async fn a_set_without_a_session_for_the_dormancy_period_is_deleted() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    let kept = c.create_set("kept").await["id"].as_u64().unwrap();
    fake.scaleset_configure(|c| c.dormant_after = Some(Duration::from_millis(400)));
    let s = c.open_session(kept).await;
    for _ in 0..4 {
        assert_eq!(c.poll(&s, 0, 1).await.status, 202);
    }
    let ids: Vec<u64> = fake.scaleset_sets().iter().map(|s| s.id).collect();
    assert_eq!(ids, [kept], "the set without a session went, the polled one stays");
    let gone = c.try_session(id).await;
    assert_eq!(gone.status, 404);
    assert!(gone.type_name().contains("RunnerScaleSetNotFoundException"));

    assert_eq!(c.close(kept, &s).await.status, 204);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(fake.scaleset_sets().is_empty(), "idle from the end of its session on");
}

#[tokio::test]
async fn status_faults_come_in_bursts_and_429_says_when_to_retry() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    let path = format!("_apis/runtime/runnerscalesets/{id}");
    fake.scaleset_inject(Some("GET"), Some(&format!("/runnerscalesets/{id}")), BrokerFault::Status(503), 2);
    for _ in 0..2 {
        let a = c.admin(Method::GET, &path, None).await;
        assert_eq!(a.status, 503);
        assert!(a.headers.get("activityid").is_some());
    }
    assert_eq!(c.admin(Method::GET, &path, None).await.status, 200);
    fake.scaleset_inject(None, None, BrokerFault::TooManyRequests { retry_after: Duration::from_secs(7) }, 1);
    let limited = c.admin(Method::GET, &path, None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "7");
    assert_eq!(c.admin(Method::GET, &path, None).await.status, 200);
}

#[tokio::test]
async fn an_empty_200_changes_nothing_and_a_bom_prefixes_the_json() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    let s = c.open_session(id).await;
    fake.scaleset_queue_job_for(id).unwrap();
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::EmptyOk, 1);
    let empty = c.poll(&s, 0, 5).await;
    assert_eq!((empty.status, empty.text.as_str()), (200, ""));
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::Bom, 1);
    let bom = c.poll(&s, 0, 5).await;
    assert!(bom.text.starts_with('\u{feff}'), "{:?}", bom.text);
    assert!(serde_json::from_str::<serde_json::Value>(&bom.text).is_err(), "not JSON until the BOM is stripped");
    assert_eq!(Message::parse(&bom).types(), ["JobAssigned"], "the message the empty answer did not consume");
}

#[tokio::test]
async fn slow_and_hanging_answers() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    let path = format!("_apis/runtime/runnerscalesets/{id}");
    fake.scaleset_inject(None, Some("/runnerscalesets/"), BrokerFault::Delay(Duration::from_millis(300)), 1);
    let started = Instant::now();
    assert_eq!(c.admin(Method::GET, &path, None).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    fake.scaleset_inject(None, Some("/runnerscalesets/"), BrokerFault::Hang, 1);
    let url = format!("{}{path}?api-version=6.0-preview", c.base);
    let hung = c.http.get(url).bearer_auth(&c.admin_token).timeout(Duration::from_millis(300)).send().await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(c.admin(Method::GET, &path, None).await.status, 200, "only once");
}

#[tokio::test]
async fn a_degraded_session_may_lack_its_queue_url() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    fake.scaleset_inject(Some("POST"), Some("/sessions"), BrokerFault::SessionWithoutQueueUrl, 1);
    let a = c.try_session(id).await;
    assert_eq!(a.status, 200);
    assert!(a.json().get("messageQueueUrl").is_none());
    assert!(a.json()["sessionId"].is_string());
}

#[tokio::test]
async fn reassignments_wait_longer_each_time_and_the_job_counts_nowhere_meanwhile() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    fake.scaleset_configure(|c| {
        c.assignment_timeout = Duration::from_millis(100);
        c.reassignment_backoff = Duration::from_millis(300);
        c.max_reassignments = 2;
        c.poll_hold = Duration::from_secs(5);
    });
    let s = c.open_session(id).await;
    let job_id = fake.scaleset_queue_job_for(id).unwrap();
    let mut last = 0;
    assert_eq!(next_message(&c, &s, &mut last, 10).await.types(), ["JobAssigned"]);
    let cancelled = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(cancelled.types(), ["JobCompleted"]);
    assert_eq!(cancelled.statistics["totalAssignedJobs"], 0, "between cancellation and reassignment");
    assert_eq!(fake.scaleset_job(&job_id).unwrap().phase, JobPhase::Queued);
    let t = Instant::now();
    assert_eq!(next_message(&c, &s, &mut last, 10).await.types(), ["JobAssigned"]);
    // Measured from the cancellation's arrival, a little after the cancellation itself: 300 and
    // 600 ms less that lag.
    let first_wait = t.elapsed();
    assert_eq!(next_message(&c, &s, &mut last, 10).await.types(), ["JobCompleted"]);
    let t = Instant::now();
    assert_eq!(next_message(&c, &s, &mut last, 10).await.types(), ["JobAssigned"]);
    let second_wait = t.elapsed();
    assert!(
        first_wait >= Duration::from_millis(150) && second_wait >= Duration::from_millis(450),
        "{first_wait:?} {second_wait:?}"
    );
}

#[tokio::test]
async fn an_undecodable_body_or_another_message_type_waits_for_a_message_to_spoil() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    let s = c.open_session(id).await;
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::UndecodableBody, 1);
    assert_eq!(c.poll(&s, 0, 5).await.status, 202, "no message yet: the fault stays armed");
    fake.scaleset_queue_job_for(id).unwrap();
    let spoiled = c.poll(&s, 0, 5).await.json();
    assert_eq!(spoiled["body"], "not json");
    assert_eq!(spoiled["messageType"], "RunnerScaleSetJobMessages");
    assert_eq!(spoiled["statistics"]["totalAssignedJobs"], 1);
    let id_spoiled = spoiled["messageId"].as_i64().unwrap();
    assert_eq!(fake.scaleset_sets()[0].unacked_message_ids, vec![id_spoiled], "unacknowledged like any other");
    assert_eq!(Message::parse(&c.poll(&s, 0, 5).await).types(), ["JobAssigned"], "redelivered intact");

    fake.scaleset_inject(
        Some("GET"),
        Some("/messages"),
        BrokerFault::MessageType("RunnerScaleSetJobMessagesV2".into()),
        1,
    );
    let other = c.poll(&s, 0, 5).await.json();
    assert_eq!(other["messageType"], "RunnerScaleSetJobMessagesV2");
    assert_eq!(other["messageId"], id_spoiled);
    assert_eq!(c.ack(&s, id_spoiled).await.status, 204);
    assert_eq!(c.poll(&s, id_spoiled, 5).await.status, 202);
}

#[tokio::test]
async fn request_headers_are_recorded_with_credentials_shown_only_by_kind() {
    let (fake, c, id) = setup(JobFlow::GithubCom).await;
    let s = c.open_session(id).await;
    c.poll(&s, 0, 7).await;
    let header = |h: &Vec<(String, String)>, name: &str| h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());

    let r3 = fake.scaleset_request_headers("POST", "/actions/runner-registration");
    assert_eq!(header(&r3[0], "authorization").as_deref(), Some("RemoteAuth <registration token>"));
    let admin = fake.scaleset_request_headers("POST", "/sessions");
    assert_eq!(header(&admin[0], "authorization").as_deref(), Some("Bearer <admin token>"));
    assert_eq!(header(&admin[0], "content-type").as_deref(), Some("application/json"));
    assert_eq!(header(&admin[0], "user-agent").as_deref(), Some("scaleset-test"));
    let poll = fake.scaleset_request_headers("GET", "/messages");
    assert_eq!(header(&poll[0], "authorization").as_deref(), Some("Bearer <message-queue token>"));
    assert_eq!(header(&poll[0], "accept").as_deref(), Some("application/json; api-version=6.0-preview"));
    assert_eq!(header(&poll[0], "x-scalesetmaxcapacity").as_deref(), Some("7"));

    let _ = common::send(
        &c.http,
        Method::GET,
        &format!("{}_apis/runtime/runnergroups/?api-version=1", c.base),
        Some("forged"),
        None,
    )
    .await;
    let forged = fake.scaleset_request_headers("GET", "/runnergroups/");
    assert_eq!(header(&forged[0], "authorization").as_deref(), Some("Bearer <unrecognised>"));
    let all = format!("{:?}", fake.scaleset_requests());
    for secret in [&c.admin_token, &s.token, "forged"] {
        assert!(!all.contains(secret), "a credential leaked into the record");
    }
}
