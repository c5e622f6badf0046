//! Sessions and the message queue under trouble: the 409 a crashed listener leaves, token
//! expiry and refresh, eviction, a set deleted server-side, lost and duplicated messages, and
//! the capacity header.

mod common;

use std::time::Duration;

use common::{next_message, Client, Message};
use fake_github::{BrokerFault, FakeGithub, JobPhase};
use reqwest::Method;

async fn setup() -> (FakeGithub, Client, u64) {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| c.poll_hold = Duration::from_millis(150));
    let c = Client::connect(&fake, "acme").await;
    let id = c.create_set("linux").await["id"].as_u64().unwrap();
    (fake, c, id)
}

#[tokio::test]
async fn a_session_left_by_an_unclean_exit_blocks_with_409_until_it_expires() {
    let (fake, c, id) = setup().await;
    fake.scaleset_configure(|c| c.session_idle_timeout = Duration::from_millis(1000));
    let crashed = c.open_session(id).await;
    let _ = crashed; // the listener dies without DELETE
    let conflict = c.try_session(id).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.type_name(),
        "GitHub.Actions.Runtime.WebApi.RunnerScaleSetSessionConflictException, GitHub.Actions.Runtime.WebApi"
    );
    assert_eq!(conflict.json()["message"], "The actions runner scaleset linux already has an active session.");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.try_session(id).await.status, 409, "not idle long enough yet");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let fresh = c.try_session(id).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
}

#[tokio::test]
async fn polling_keeps_a_session_alive_and_a_stale_one_left_by_the_test_conflicts() {
    let (fake, c, id) = setup().await;
    fake.scaleset_configure(|c| c.session_idle_timeout = Duration::from_millis(600));
    let s = c.open_session(id).await;
    for _ in 0..6 {
        assert_eq!(c.poll(&s, 0, 1).await.status, 202);
    }
    assert_eq!(fake.scaleset_sessions().len(), 1, "polled back to back for 900 ms: never idle for 600 ms");
    assert_eq!(c.close(id, &s).await.status, 204);

    let stale = fake.scaleset_leave_stale_session(id, "old-pod").unwrap();
    assert_eq!(fake.scaleset_sessions()[0].session_id, stale);
    assert_eq!(c.try_session(id).await.status, 409);
    assert!(fake.scaleset_expire_session(id));
    assert_eq!(c.try_session(id).await.status, 200);
}

#[tokio::test]
async fn an_expired_queue_token_gets_401_and_patch_issues_a_new_one() {
    let (fake, c, id) = setup().await;
    let s = c.open_session(id).await;
    assert_eq!(fake.scaleset_expire_message_queue_tokens(id), 1);
    assert_eq!(c.poll(&s, 0, 1).await.status, 401);
    assert_eq!(c.ack(&s, 1).await.status, 401);
    let refreshed = c.refresh(id, &s).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let s2 = common::Session::from(&refreshed.json());
    assert_eq!(s2.id, s.id, "the same session");
    assert_ne!(s2.token, s.token);
    assert_eq!(c.poll(&s2, 0, 1).await.status, 202);
}

#[tokio::test]
async fn a_token_that_runs_out_mid_poll_answers_401() {
    let (fake, c, id) = setup().await;
    fake.scaleset_configure(|c| c.poll_hold = Duration::from_secs(20));
    let s = c.open_session(id).await;
    let expire = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.scaleset_expire_message_queue_tokens(id);
    };
    let started = std::time::Instant::now();
    let (answer, ()) = tokio::join!(c.poll(&s, 0, 1), expire);
    assert_eq!(answer.status, 401);
    assert!(started.elapsed() < Duration::from_secs(5), "answered when the token ran out, not after the hold");

    // The same by fault, without a control call.
    let s = common::Session::from(&c.refresh(id, &s).await.json());
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::UnauthorizedAfter(Duration::from_millis(50)), 1);
    assert_eq!(c.poll(&s, 0, 1).await.status, 401);
    assert_eq!(c.poll(&s, 0, 1).await.status, 401, "the fault expired the token for real");
}

#[tokio::test]
async fn an_evicted_session_refreshes_with_404_and_a_new_session_works() {
    let (fake, c, id) = setup().await;
    let s = c.open_session(id).await;
    assert!(fake.scaleset_evict_session(id));
    assert_eq!(c.poll(&s, 0, 1).await.status, 401, "the old token no longer opens the queue");
    let refresh = c.refresh(id, &s).await;
    assert_eq!(refresh.status, 404);
    assert!(refresh.type_name().contains("RunnerAdminException"));
    let deleted = c.close(id, &s).await;
    assert_eq!(deleted.status, 400);
    assert!(deleted.type_name().contains("RunnerScaleSetSessionExpiredException"));
    let s2 = c.open_session(id).await;
    assert_ne!(s2.id, s.id);
    assert_eq!(c.poll(&s2, 0, 1).await.status, 202);
}

#[tokio::test]
async fn a_set_deleted_server_side_answers_404_everywhere_and_can_be_recreated_with_ids_from_the_start() {
    let (fake, c, id) = setup().await;
    let s = c.open_session(id).await;
    fake.scaleset_queue_job_for(id).unwrap();
    let mut last = 0;
    let first = next_message(&c, &s, &mut last, 5).await;
    assert!(fake.scaleset_delete_scale_set(id));
    for answer in [
        c.admin(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}"), None).await,
        c.try_session(id).await,
        c.poll(&s, last, 5).await,
        c.jit(id, "r").await,
    ] {
        assert_eq!(answer.status, 404, "{}", answer.text);
        assert!(answer.type_name().contains("RunnerScaleSetNotFoundException"), "{}", answer.text);
    }
    let job = &fake.scaleset_jobs()[0];
    assert_eq!((job.phase, job.scale_set_id), (JobPhase::Queued, None), "thrown back to the queue");

    fake.scaleset_configure(|c| c.first_message_id = 100_000_171);
    let new_id = c.create_set("linux").await["id"].as_u64().unwrap();
    assert_ne!(new_id, id);
    let s = c.open_session(new_id).await;
    assert_eq!(c.poll(&s, i64::MAX - 1, 5).await.status, 202, "a stale, larger lastMessageId skips the new set's");
    let again = Message::parse(&c.poll(&s, 0, 5).await);
    assert_eq!((first.id, again.id), (1, 100_000_171), "ids restart with the new set (GARM#506), here from a knob");
    assert_eq!(again.types(), ["JobAssigned"]);
}

#[tokio::test]
async fn an_unacknowledged_message_is_redelivered_and_a_lost_ack_keeps_it() {
    let (fake, c, id) = setup().await;
    let s = c.open_session(id).await;
    fake.scaleset_queue_job_for(id).unwrap();
    let m = Message::parse(&c.poll(&s, 0, 5).await);
    assert_eq!(Message::parse(&c.poll(&s, 0, 5).await).id, m.id, "not acked: redelivered from 0");
    assert_eq!(c.poll(&s, m.id, 5).await.status, 202, "but not above its id");

    fake.scaleset_inject(Some("DELETE"), Some("/messages/"), BrokerFault::LostAck, 1);
    assert_eq!(c.ack(&s, m.id).await.status, 204);
    assert_eq!(fake.scaleset_sets()[0].unacked_message_ids, vec![m.id]);
    assert_eq!(Message::parse(&c.poll(&s, 0, 5).await).id, m.id, "the lost ack left it there");
    assert_eq!(c.ack(&s, m.id).await.status, 204);
    assert!(fake.scaleset_sets()[0].unacked_message_ids.is_empty());
    assert_eq!(c.poll(&s, 0, 5).await.status, 202);
}

#[tokio::test]
async fn a_duplicated_message_arrives_twice_whatever_the_last_message_id() {
    let (fake, c, id) = setup().await;
    let s = c.open_session(id).await;
    fake.scaleset_queue_job_for(id).unwrap();
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::Duplicate, 1);
    let m = Message::parse(&c.poll(&s, 0, 5).await);
    assert_eq!(c.ack(&s, m.id).await.status, 204);
    let dup = Message::parse(&c.poll(&s, m.id, 5).await);
    assert_eq!((dup.id, dup.jobs.clone()), (m.id, m.jobs.clone()));
    assert_eq!(c.poll(&s, m.id, 5).await.status, 202, "only once more");
}

#[tokio::test]
async fn the_capacity_header_is_recorded_and_bounds_the_jobs_waiting_for_runners() {
    let (fake, c, id) = setup().await;
    fake.scaleset_configure(|c| c.auto_start = false);
    let s = c.open_session(id).await;
    let mut last = 0;
    assert_eq!(c.poll(&s, last, 1).await.status, 202);
    assert_eq!(fake.scaleset_max_capacity(id), Some(1));
    for _ in 0..3 {
        fake.scaleset_queue_job_for(id).unwrap();
    }
    let m = next_message(&c, &s, &mut last, 1).await;
    assert_eq!(m.types(), ["JobAssigned"], "only one job waits at capacity 1");
    assert_eq!(m.statistics["totalAssignedJobs"], 1);

    // A running job no longer waits: the next one is assigned.
    let runner = c.jit(id, "r").await.json()["runner"]["id"].as_u64().unwrap();
    fake.scaleset_runner_online(runner);
    fake.scaleset_start_job(runner).unwrap();
    let m = next_message(&c, &s, &mut last, 1).await;
    assert_eq!(m.types(), ["JobStarted", "JobAssigned"]);

    // A larger capacity lets the rest in; 0 would have let none.
    let m = next_message(&c, &s, &mut last, 10).await;
    assert_eq!(m.types(), ["JobAssigned"]);
    assert_eq!(fake.scaleset_max_capacity(id), Some(10));
    assert_eq!(m.statistics["totalAssignedJobs"], 3);
    let resp = c
        .http
        .get(&s.queue_url)
        .header("authorization", format!("Bearer {}", s.token))
        .header("x-scalesetmaxcapacity", "2147483648")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "beyond MaxInt32");
}

#[tokio::test]
async fn the_queue_url_must_keep_its_session_query() {
    let (_fake, c, id) = setup().await;
    let s = c.open_session(id).await;
    let (path, _) = s.queue_url.split_once('?').unwrap();
    let mut bare = s.clone();
    bare.queue_url = format!("{path}?x=1");
    assert_eq!(c.poll(&bare, 0, 1).await.status, 400);
    let admin_token = c.admin_token.clone();
    let mut admin = s.clone();
    admin.token = admin_token;
    assert_eq!(c.poll(&admin, 0, 1).await.status, 401, "the admin token does not open the queue");
}

#[tokio::test]
async fn a_session_body_may_come_with_or_without_a_zero_session_id() {
    let (fake, c, id) = setup().await;
    let path = format!("_apis/runtime/runnerscalesets/{id}/sessions");
    let arc = c.admin(Method::POST, &path, Some(serde_json::json!({"ownerName": "arc-listener"}))).await;
    assert_eq!(arc.status, 200, "ARC <= 0.13 sends ownerName only");
    assert_eq!(arc.json()["ownerName"], "arc-listener");
    assert!(fake.scaleset_expire_session(id));
    assert_eq!(c.try_session(id).await.status, 200, "SS adds the zero sessionId");
    assert!(fake.scaleset_expire_session(id));
    let nameless = c
        .admin(Method::POST, &path, Some(serde_json::json!({"sessionId": "00000000-0000-0000-0000-000000000000"})))
        .await;
    assert_eq!(nameless.status, 400);
}
