//! The real scale set client (`operator::github::scaleset`) against the stateful HTTP
//! fake of GitHub's runner scale set API, on loopback: the auth chain with a PAT and
//! with a GitHub App, repository and organization scope, scale sets in named runner
//! groups, sessions, the long poll in the github.com and the GHES flow, JIT runners
//! with the duplicate-name recovery, runner removal, and the faults of PROTOCOL.md
//! §10 and §16. Every error a test provokes is also checked for secrets.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use contract::{Api, Contract};
use fake_github::{AppKey, BrokerFault, FakeGithub, JobFlow};
use operator::{
    config::{GithubAppConfig, GithubScope},
    github::{
        scaleset::{CallEvent, Endpoint, ScaleSetClient, ScaleSetClientSettings},
        GithubClient, GithubClientSettings,
    },
    ports::{ActionsError, JobMessage, Message, RemoveOutcome, ScaleSetApi, ScaleSetSpec},
    report::chain,
};
use operator_sim::memory::InMemorySecretStore;

const REPO: &str = "octo-org/octo-repo";
const ORG: &str = "octo-org";
const PAT: &str = "ghp_scalesetpat000000000000000000000001";
const SECRET: &str = "github-credential";
const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 77;
const SET: &str = "vmss-linux";

async fn fake() -> FakeGithub {
    let fake = FakeGithub::start().await;
    fake.scaleset_configure(|c| c.poll_hold = Duration::from_millis(200));
    fake
}

fn github_settings(fake: &FakeGithub, scope: GithubScope) -> GithubClientSettings {
    let mut s = GithubClientSettings::new(format!("{}/api/v3", fake.url()), scope, SECRET);
    s.request_timeout = Duration::from_secs(5);
    s
}

async fn pat_github(fake: &FakeGithub, scope: GithubScope) -> Arc<GithubClient> {
    fake.add_pat(PAT);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, PAT));
    Arc::new(GithubClient::new(github_settings(fake, scope), secrets).await.expect("github client"))
}

async fn app_github(fake: &FakeGithub, scope: GithubScope) -> Arc<GithubClient> {
    let key = AppKey::generate();
    fake.add_app(APP_ID, &key.public_pem, INSTALLATION, ORG);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, &key.private_pem));
    let mut s = github_settings(fake, scope);
    s.app = Some(GithubAppConfig { app_id: APP_ID, installation_id: INSTALLATION });
    Arc::new(GithubClient::new(s, secrets).await.expect("github client"))
}

/// Test timings: the production values scaled down so a retry costs milliseconds.
fn settings() -> ScaleSetClientSettings {
    ScaleSetClientSettings {
        poll_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry_base_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(2),
        ..ScaleSetClientSettings::default()
    }
}

/// What the metrics hook heard.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<CallEvent>>>);

impl Heard {
    fn sent(&self, endpoint: Endpoint) -> usize {
        self.0.lock().unwrap().iter().filter(|e| **e == CallEvent::RequestSent(endpoint)).count()
    }

    fn finished(&self, endpoint: Endpoint, outcome: &str) -> usize {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| matches!(e, CallEvent::Finished { endpoint: p, outcome: o } if *p == endpoint && *o == outcome))
            .count()
    }
}

fn client_with(github: Arc<GithubClient>, settings: ScaleSetClientSettings) -> (ScaleSetClient, Heard) {
    let heard = Heard::default();
    let events = heard.0.clone();
    let client = ScaleSetClient::new(github, settings)
        .expect("scale set client")
        .with_observer(move |e| events.lock().unwrap().push(e));
    (client, heard)
}

fn client(github: Arc<GithubClient>) -> (ScaleSetClient, Heard) {
    client_with(github, settings())
}

fn spec(name: &str, runner_group_id: u64) -> ScaleSetSpec {
    ScaleSetSpec { name: name.into(), runner_group_id, extra_labels: vec![] }
}

/// How many times the fake was asked for an admin connection (R3).
fn r3_calls(fake: &FakeGithub) -> usize {
    fake.scaleset_exchanges().iter().filter(|e| e.path.contains("/actions/runner-registration")).count()
}

fn calls(fake: &FakeGithub, method: &str, path_contains: &str) -> usize {
    fake.scaleset_exchanges().iter().filter(|e| e.method == method && e.path.contains(path_contains)).count()
}

/// Every exchange of the client fits the descriptions: the scale set API's
/// (`contracts/actions-scaleset/`) and, for R1/R2, GitHub's REST description.
fn assert_contract(fake: &FakeGithub) {
    let scaleset = fake.scaleset_exchanges();
    assert!(!scaleset.is_empty(), "no scale set API exchange");
    let problems = Contract::load(Api::ActionsScaleset).check_all(&scaleset);
    assert!(problems.is_empty(), "scale set API contract violations:\n{}", problems.join("\n"));
    let problems = Contract::load(Api::GithubRest).check_all(&fake.exchanges());
    assert!(problems.is_empty(), "REST contract violations:\n{}", problems.join("\n"));
}

/// The value of header `name` on every request matching `method` and `path_contains`.
fn header_values(fake: &FakeGithub, method: &str, path_contains: &str, name: &str) -> Vec<String> {
    let requests = fake.scaleset_request_headers(method, path_contains);
    assert!(!requests.is_empty(), "no {method} request to {path_contains}");
    requests
        .into_iter()
        .map(|headers| headers.into_iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap_or_default())
        .collect()
}

/// Every matching request carried `name: value`.
fn assert_header(fake: &FakeGithub, method: &str, path_contains: &str, name: &str, value: &str) {
    for got in header_values(fake, method, path_contains, name) {
        assert_eq!(got, value, "{name} on {method} {path_contains}");
    }
}

/// Polls (acknowledging each message) until a job message matching `want` arrives.
async fn poll_until(api: &ScaleSetClient, last: &mut i64, want: impl Fn(&JobMessage) -> bool) -> (Message, JobMessage) {
    for _ in 0..30 {
        if let Some(m) = api.next_message(*last, 10).await.expect("poll") {
            *last = m.id;
            api.acknowledge(m.id).await.expect("ack");
            let jobs = m.jobs.clone().expect("decodable jobs");
            if let Some(found) = jobs.into_iter().find(|j| want(j)) {
                return (m, found);
            }
        }
    }
    panic!("the expected job message never came");
}

/// The secrets the fake handed out: admin and message-queue tokens, JIT configs, and
/// the message queue URL's query values.
fn secrets_of(fake: &FakeGithub) -> Vec<String> {
    let mut secrets = vec![PAT.to_owned()];
    for e in fake.scaleset_exchanges() {
        let Some(body) = e.response_body else { continue };
        for key in ["token", "messageQueueAccessToken", "encodedJITConfig"] {
            if let Some(v) = body.get(key).and_then(|v| v.as_str()) {
                secrets.push(v.to_owned());
            }
        }
        if let Some(query) = body.get("messageQueueUrl").and_then(|v| v.as_str()).and_then(|u| u.split_once('?')) {
            secrets.extend(query.1.split('&').filter_map(|kv| kv.split_once('=')).map(|(_, v)| v.to_owned()));
        }
    }
    secrets.retain(|s| s.len() >= 8);
    secrets
}

/// No secret and no URL query appears in the error's rendered chain.
fn assert_clean(fake: &FakeGithub, err: &ActionsError) {
    let text = chain(err);
    let secrets = secrets_of(fake);
    assert!(secrets.len() >= 2, "the fake handed out no token to look for");
    for secret in secrets {
        assert!(!text.contains(&secret), "a secret in {text:?}");
    }
    assert!(!text.contains('?'), "a query string in {text:?}");
}

#[tokio::test]
async fn a_job_runs_through_the_whole_lifecycle_at_repository_scope_with_a_pat() {
    let fake = fake().await;
    let (api, heard) = client(pat_github(&fake, GithubScope::Repository(REPO.into())).await);

    assert_eq!(api.runner_group_id(None).await.unwrap(), 1);
    assert_eq!(api.find_scale_set(1, SET).await.unwrap(), None);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    assert_eq!((set.name.as_str(), set.runner_group_id, set.labels.clone()), (SET, 1, vec![SET.to_owned()]));
    assert_eq!(api.find_scale_set(1, SET).await.unwrap(), Some(set.clone()), "found by name once created");
    assert_eq!(api.get_scale_set(set.id).await.unwrap(), Some(set.clone()));
    let created = fake
        .scaleset_exchanges()
        .into_iter()
        .find(|e| e.method == "POST" && e.path.contains("runnerscalesets?"))
        .unwrap();
    let body = created.request_body.unwrap();
    assert_eq!(body["RunnerSetting"], serde_json::json!({"disableUpdate": true}), "capital R, updates disabled");
    assert_eq!(body["labels"], serde_json::json!([{"type": "System", "name": SET}]));

    let stats = api.open_session(set.id, "operator-host").await.unwrap();
    assert_eq!(stats.assigned_jobs, 0);
    assert_eq!(fake.scaleset_sessions()[0].owner, "operator-host");
    assert_eq!(api.next_message(0, 10).await.unwrap(), None, "202 after the hold");
    assert_eq!(fake.scaleset_max_capacity(set.id), Some(10));

    let job_id = fake.scaleset_queue_job_for(set.id).unwrap();
    let mut last = 0;
    let (m, assigned) = poll_until(&api, &mut last, |j| matches!(j, JobMessage::Assigned { .. })).await;
    let JobMessage::Assigned { job } = assigned else { unreachable!() };
    assert_eq!((job.job_id.as_str(), job.request_id, job.repository.as_str()), (job_id.as_str(), 0, REPO));
    assert_eq!(job.runner_assign_time, None, "Go's zero time is none");
    assert!(job.queue_time.is_some());
    assert_eq!(m.statistics.assigned_jobs, 1);
    assert!(fake.scaleset_sets()[0].unacked_message_ids.is_empty(), "acknowledged");
    let first_message = m.id;

    let config = api.generate_jit_config(set.id, "vmss-linux-0001").await.unwrap();
    assert_eq!(fake.start_runner_with_jit(&config.encoded), Some(config.runner_id));
    let (_, started) = poll_until(&api, &mut last, |j| matches!(j, JobMessage::Started { .. })).await;
    let JobMessage::Started { job, runner_id, runner_name } = started else { unreachable!() };
    assert_eq!(
        (job.job_id.as_str(), runner_id, runner_name.as_str()),
        (job_id.as_str(), config.runner_id, "vmss-linux-0001")
    );
    let polls: Vec<_> =
        fake.scaleset_exchanges().into_iter().filter(|e| e.method == "GET" && e.path.contains("/messages")).collect();
    assert!(!polls[0].path.contains("lastMessageId"), "not sent while 0: {}", polls[0].path);
    assert!(polls.iter().any(|e| e.path.contains(&format!("&lastMessageId={first_message}"))), "appended to the query");
    let ack = format!("/messages/{first_message}?sessionId=");
    assert_eq!(calls(&fake, "DELETE", &ack), 1, "the ack keeps the queue URL's query");

    let found = api.runner_by_name("vmss-linux-0001").await.unwrap().unwrap();
    assert_eq!((found.id, found.scale_set_id), (config.runner_id, set.id));
    assert_eq!(api.remove_runner(config.runner_id).await.unwrap(), RemoveOutcome::Busy, "it runs a job");

    fake.scaleset_finish_job(config.runner_id, "succeeded").unwrap();
    let (m, completed) = poll_until(&api, &mut last, |j| matches!(j, JobMessage::Completed { .. })).await;
    let JobMessage::Completed { job, result, runner_id, .. } = completed else { unreachable!() };
    assert_eq!((job.job_id.as_str(), result.as_str(), runner_id), (job_id.as_str(), "succeeded", config.runner_id));
    assert!(job.finish_time.is_some());
    assert_eq!(m.statistics.running_jobs, 0);
    assert_eq!(api.remove_runner(config.runner_id).await.unwrap(), RemoveOutcome::Removed, "gone: 204 all the same");

    let idle = api.generate_jit_config(set.id, "vmss-linux-0002").await.unwrap();
    assert!(fake.scaleset_runner_online(idle.runner_id));
    assert_eq!(api.remove_runner(idle.runner_id).await.unwrap(), RemoveOutcome::Removed);
    assert_eq!(api.runner_by_name("vmss-linux-0002").await.unwrap(), None);

    api.close_session().await.unwrap();
    assert!(fake.scaleset_sessions().is_empty());
    api.close_session().await.unwrap();
    assert!(matches!(api.next_message(last, 10).await, Err(ActionsError::SessionGone)));

    assert_eq!(r3_calls(&fake), 1, "one admin connection serves every call while it is valid");
    assert_eq!(heard.finished(Endpoint::CreateSession, "ok"), 1);
    assert_eq!(heard.finished(Endpoint::GetMessage, "session_gone"), 1);
    assert_eq!(heard.sent(Endpoint::AdminConnection), 1);
    assert!(heard.sent(Endpoint::GetMessage) >= 4);
    assert_contract(&fake);
}

#[tokio::test]
async fn an_organization_set_in_a_named_group_with_an_app_acquires_its_jobs_in_the_ghes_flow() {
    let fake = fake().await;
    fake.scaleset_set_flow(JobFlow::Ghes);
    let group = fake.add_runner_group(ORG, "linux-pool");
    let (api, _) = client(app_github(&fake, GithubScope::Organization(ORG.into())).await);

    assert_eq!(api.runner_group_id(Some("linux-pool")).await.unwrap(), group);
    assert_eq!(api.runner_group_id(Some("Default")).await.unwrap(), 1);
    let missing = api.runner_group_id(Some("no-such-group")).await.unwrap_err();
    assert!(matches!(&missing, ActionsError::InvalidAnswer(m) if m.contains("no-such-group")), "{missing:?}");

    let set = match api.find_scale_set(group, SET).await.unwrap() {
        Some(found) => found,
        None => api.create_scale_set(&spec(SET, group)).await.unwrap(),
    };
    assert_eq!(set.runner_group_id, group);
    api.open_session(set.id, "host").await.unwrap();

    let job_id = fake.scaleset_queue_job_for(set.id).unwrap();
    let mut last = 0;
    let (_, available) = poll_until(&api, &mut last, |j| matches!(j, JobMessage::Available { .. })).await;
    let JobMessage::Available { job } = available else { unreachable!() };
    assert_eq!(job.job_id, job_id);
    assert_ne!(job.request_id, 0, "GHES names the request to acquire");
    assert_eq!(api.acquire_jobs(set.id, &[job.request_id]).await.unwrap(), vec![job.request_id]);
    assert!(fake.scaleset_job(&job_id).unwrap().acquired);
    let (_, assigned) = poll_until(&api, &mut last, |j| matches!(j, JobMessage::Assigned { .. })).await;
    assert!(matches!(assigned, JobMessage::Assigned { job } if job.job_id == job_id));
    assert_eq!(api.acquire_jobs(set.id, &[]).await.unwrap(), Vec::<i64>::new(), "nothing to ask, nothing sent");
    api.close_session().await.unwrap();
    assert_contract(&fake);

    // Two tokens (§4): the admin token on admin calls, the queue's on M1, M2 and A10,
    // the registration token on R3.
    assert_header(&fake, "POST", "/actions/runner-registration", "authorization", "RemoteAuth <registration token>");
    for (method, path) in [("GET", "runnergroups/?"), ("POST", "/sessions?"), ("DELETE", "/sessions/")] {
        assert_header(&fake, method, path, "authorization", "Bearer <admin token>");
        assert_header(&fake, method, path, "content-type", "application/json");
    }
    for (method, path) in [("GET", "/messages"), ("DELETE", "/messages/"), ("POST", "/acquirejobs")] {
        assert_header(&fake, method, path, "authorization", "Bearer <message-queue token>");
    }
    assert_header(&fake, "GET", "/messages", "accept", "application/json; api-version=6.0-preview");
    assert_header(&fake, "GET", "/messages", "x-scalesetmaxcapacity", "10");
    assert_header(&fake, "DELETE", "/messages/", "content-type", "application/json");
    for agent in header_values(&fake, "GET", "/messages", "user-agent") {
        let agent: serde_json::Value = serde_json::from_str(&agent).expect("a JSON User-Agent (§2.4)");
        assert_eq!(
            (agent["system"].as_str(), agent["scale_set_id"].as_u64()),
            (Some("vmss-github-runner"), Some(set.id))
        );
    }
}

#[tokio::test]
async fn an_undecodable_body_or_another_message_type_keeps_the_id_and_statistics() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();

    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::UndecodableBody, 1);
    fake.scaleset_queue_job_for(set.id).unwrap();
    let m = loop {
        if let Some(m) = api.next_message(0, 10).await.unwrap() {
            break m;
        }
    };
    let reason = m.jobs.clone().unwrap_err();
    assert!(reason.contains("cannot be decoded") && !reason.contains("not json"), "{reason}");
    assert_eq!(m.statistics.assigned_jobs, 1, "its statistics still apply");
    api.acknowledge(m.id).await.unwrap();
    assert!(fake.scaleset_sets()[0].unacked_message_ids.is_empty(), "acknowledged by its id");

    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::MessageType("SomethingElse".into()), 1);
    fake.scaleset_queue_job_for(set.id).unwrap();
    let m = loop {
        if let Some(m) = api.next_message(m.id, 10).await.unwrap() {
            break m;
        }
    };
    assert_eq!(m.jobs, Err("unsupported message type \"SomethingElse\"".into()));
    assert_eq!(m.statistics.assigned_jobs, 2);
}

#[tokio::test]
async fn a_jit_name_left_by_a_runner_of_the_same_set_is_freed_and_issued_again() {
    let fake = fake().await;
    let (api, heard) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    let first = api.generate_jit_config(set.id, "runner-a").await.unwrap();
    // A repeat of the same name (as after a lost answer): 409, then the old one is removed.
    let second = api.generate_jit_config(set.id, "runner-a").await.unwrap();
    assert_ne!(first.runner_id, second.runner_id);
    assert_eq!(heard.finished(Endpoint::RemoveRunner, "ok"), 1);
    assert_eq!(calls(&fake, "POST", "generatejitconfig"), 3);

    // Busy under that name: the name stays taken.
    let busy = api.generate_jit_config(set.id, "runner-b").await.unwrap();
    fake.start_runner_with_jit(&busy.encoded).unwrap();
    fake.scaleset_queue_job_for(set.id).unwrap();
    let mut started = false;
    for _ in 0..20 {
        if api.remove_runner(busy.runner_id).await.unwrap() == RemoveOutcome::Busy {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started, "the runner never took the job");
    let err = api.generate_jit_config(set.id, "runner-b").await.unwrap_err();
    assert!(matches!(&err, ActionsError::RunnerExists { name } if name == "runner-b"), "{err:?}");

    // Taken by a runner of another scale set: never removed.
    let other = api.create_scale_set(&spec("vmss-other", 1)).await.unwrap();
    let theirs = api.generate_jit_config(other.id, "runner-c").await.unwrap();
    let err = api.generate_jit_config(set.id, "runner-c").await.unwrap_err();
    assert!(matches!(&err, ActionsError::RunnerExists { .. }), "{err:?}");
    assert_eq!(api.runner_by_name("runner-c").await.unwrap().map(|r| r.id), Some(theirs.runner_id));
    assert_clean(&fake, &err);
    assert_contract(&fake);
}

#[tokio::test]
async fn a_stale_session_is_a_conflict_until_it_expires() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    fake.scaleset_leave_stale_session(set.id, "crashed-predecessor").unwrap();
    let err = api.open_session(set.id, "host").await.unwrap_err();
    assert!(matches!(err, ActionsError::SessionConflict), "{err:?}");
    assert_clean(&fake, &err);
    assert!(fake.scaleset_expire_session(set.id));
    api.open_session(set.id, "host").await.unwrap();
    // Opening again while holding a session replaces it instead of conflicting with it.
    api.open_session(set.id, "host").await.unwrap();
    assert_eq!(fake.scaleset_sessions().len(), 1);
}

#[tokio::test]
async fn an_expired_message_queue_token_is_refreshed_transparently() {
    let fake = fake().await;
    let (api, heard) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();

    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::UnauthorizedAfter(Duration::from_millis(50)), 1);
    assert_eq!(api.next_message(0, 10).await.unwrap(), None, "401 mid-poll, refreshed, polled again");
    assert_eq!(calls(&fake, "PATCH", "/sessions/"), 1);

    fake.scaleset_queue_job_for(set.id).unwrap();
    let m = loop {
        if let Some(m) = api.next_message(0, 10).await.unwrap() {
            break m;
        }
    };
    assert!(fake.scaleset_expire_message_queue_tokens(set.id) > 0);
    api.acknowledge(m.id).await.unwrap();
    assert_eq!(calls(&fake, "PATCH", "/sessions/"), 2, "the ack refreshed too");
    assert_eq!(heard.finished(Endpoint::RefreshSession, "ok"), 2);
}

#[tokio::test]
async fn a_session_refresh_returns_the_current_statistics() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    assert!(matches!(api.refresh_session().await, Err(ActionsError::SessionGone)), "no session held yet");
    let opened = api.open_session(set.id, "host").await.unwrap();
    assert_eq!(opened.assigned_jobs, 0);
    fake.scaleset_queue_job_for(set.id).unwrap();
    fake.scaleset_queue_job_for(set.id).unwrap();
    let refreshed = api.refresh_session().await.unwrap();
    assert_eq!(refreshed.assigned_jobs, 2, "{refreshed:?}");
    assert_eq!(calls(&fake, "PATCH", "/sessions/"), 1);
    // The refreshed session still polls.
    assert!(api.next_message(0, 10).await.unwrap().is_some());
}

#[tokio::test]
async fn an_evicted_session_is_gone_and_a_new_one_can_be_opened() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();
    assert!(fake.scaleset_evict_session(set.id));
    let err = api.next_message(0, 10).await.unwrap_err();
    assert!(matches!(err, ActionsError::SessionGone), "{err:?}");
    assert_clean(&fake, &err);
    api.open_session(set.id, "host").await.unwrap();
    assert_eq!(api.next_message(0, 10).await.unwrap(), None);
}

#[tokio::test]
async fn a_refresh_answered_404_is_session_gone() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::Status(401), 1);
    fake.scaleset_inject(Some("PATCH"), Some("/sessions/"), BrokerFault::Status(404), 1);
    let err = api.next_message(0, 10).await.unwrap_err();
    assert!(matches!(err, ActionsError::SessionGone), "{err:?}");
    assert!(matches!(api.acknowledge(1).await, Err(ActionsError::SessionGone)), "the session was dropped");
}

#[tokio::test]
async fn a_deleted_scale_set_is_not_found_everywhere() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();
    assert!(fake.scaleset_delete_scale_set(set.id));
    let err = api.next_message(0, 10).await.unwrap_err();
    assert!(matches!(err, ActionsError::ScaleSetNotFound | ActionsError::SessionGone), "{err:?}");
    assert_eq!(api.get_scale_set(set.id).await.unwrap(), None);
    let err = api.open_session(set.id, "host").await.unwrap_err();
    assert!(matches!(err, ActionsError::ScaleSetNotFound), "{err:?}");
    let err = api.generate_jit_config(set.id, "r").await.unwrap_err();
    assert!(matches!(err, ActionsError::ScaleSetNotFound), "{err:?}");
    assert_clean(&fake, &err);
    assert_eq!(api.find_scale_set(1, SET).await.unwrap(), None, "recreate it");
}

#[tokio::test]
async fn a_burst_of_server_errors_is_retried_inside_the_call_and_a_longer_one_returned() {
    let fake = fake().await;
    let (api, heard) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    api.find_scale_set(1, SET).await.unwrap();
    let before = heard.sent(Endpoint::FindScaleSet);
    fake.scaleset_inject(Some("GET"), Some("runnerscalesets"), BrokerFault::Status(500), 2);
    assert_eq!(api.find_scale_set(1, SET).await.unwrap(), None);
    assert_eq!(heard.sent(Endpoint::FindScaleSet) - before, 3, "two retries");
    assert_eq!(heard.finished(Endpoint::FindScaleSet, "ok"), 2, "one call each");

    fake.scaleset_inject(Some("GET"), Some("runnerscalesets"), BrokerFault::Status(502), 3);
    let err = api.find_scale_set(1, SET).await.unwrap_err();
    assert!(matches!(&err, ActionsError::Server { status: 502, .. }), "{err:?}");
    assert!(chain(&err).contains("ActivityId"), "kept for support: {}", chain(&err));
    assert_clean(&fake, &err);

    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::Status(503), 2);
    assert_eq!(api.next_message(0, 10).await.unwrap(), None, "the poll too");

    fake.scaleset_inject(Some("GET"), Some("runnerscalesets"), BrokerFault::Status(501), 1);
    let sent = heard.sent(Endpoint::FindScaleSet);
    let found = api.find_scale_set(1, SET).await;
    assert!(matches!(found, Err(ActionsError::Server { status: 501, .. })), "{found:?}");
    assert_eq!(heard.sent(Endpoint::FindScaleSet) - sent, 1, "501 is not retried");
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_and_a_long_one_returned_as_throttled() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    api.find_scale_set(1, SET).await.unwrap();
    fake.scaleset_inject(
        None,
        Some("runnerscalesets"),
        BrokerFault::TooManyRequests { retry_after: Duration::from_secs(1) },
        1,
    );
    let started = Instant::now();
    assert_eq!(api.find_scale_set(1, SET).await.unwrap(), None);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as asked");

    fake.scaleset_inject(
        None,
        Some("runnerscalesets"),
        BrokerFault::TooManyRequests { retry_after: Duration::from_secs(60) },
        1,
    );
    let started = Instant::now();
    let err = api.find_scale_set(1, SET).await.unwrap_err();
    assert!(matches!(err, ActionsError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(60)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "not waited inside the call");
}

#[tokio::test]
async fn an_empty_200_and_a_session_without_a_queue_are_invalid_answers() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    fake.scaleset_inject(Some("POST"), Some("/sessions"), BrokerFault::SessionWithoutQueueUrl, 1);
    let err = api.open_session(set.id, "host").await.unwrap_err();
    assert!(matches!(&err, ActionsError::InvalidAnswer(m) if m.contains("messageQueueUrl")), "{err:?}");
    assert_clean(&fake, &err);
    fake.scaleset_expire_session(set.id);

    api.open_session(set.id, "host").await.unwrap();
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::EmptyOk, 1);
    let err = api.next_message(0, 10).await.unwrap_err();
    assert!(matches!(&err, ActionsError::InvalidAnswer(m) if m.contains("empty")), "{err:?}");
    assert_eq!(api.next_message(0, 10).await.unwrap(), None, "the next poll is fine");
}

#[tokio::test]
async fn a_byte_order_mark_before_the_json_is_ignored() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    fake.scaleset_inject(None, None, BrokerFault::Bom, 100);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();
    let job_id = fake.scaleset_queue_job_for(set.id).unwrap();
    let mut last = 0;
    let (_, assigned) = poll_until(&api, &mut last, |j| matches!(j, JobMessage::Assigned { .. })).await;
    assert!(matches!(assigned, JobMessage::Assigned { job } if job.job_id == job_id));
    let config = api.generate_jit_config(set.id, "r-1").await.unwrap();
    assert!(config.runner_id > 0);
}

#[tokio::test]
async fn the_admin_token_is_fetched_once_while_valid_and_again_when_due_or_refused() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    for _ in 0..3 {
        api.find_scale_set(1, SET).await.unwrap();
    }
    assert_eq!(r3_calls(&fake), 1);

    // Refused before its exp (revoked): fetched again, the call repeated once.
    fake.scaleset_expire_admin_tokens();
    api.find_scale_set(1, SET).await.unwrap();
    assert_eq!(r3_calls(&fake), 2);

    // A token that expires within the 60 s margin is due before every call.
    fake.scaleset_configure(|c| c.admin_token_ttl = Duration::from_secs(30));
    fake.scaleset_expire_admin_tokens();
    api.find_scale_set(1, SET).await.unwrap();
    let after = r3_calls(&fake);
    api.find_scale_set(1, SET).await.unwrap();
    api.find_scale_set(1, SET).await.unwrap();
    assert_eq!(r3_calls(&fake), after + 2, "one R3 per admin call");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_admin_token_while_it_is_still_valid() {
    let fake = fake().await;
    // Inside the 60 s margin from the start: every call tries to refresh.
    fake.scaleset_configure(|c| c.admin_token_ttl = Duration::from_secs(30));
    let (api, heard) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    api.find_scale_set(1, SET).await.unwrap();
    fake.scaleset_fail_registration(401, 5);
    assert_eq!(api.find_scale_set(1, SET).await.unwrap(), None, "served with the old token");
    assert_eq!(heard.finished(Endpoint::AdminConnection, "unauthorized"), 1, "the refresh did fail");
    assert_eq!(heard.finished(Endpoint::FindScaleSet, "ok"), 2);
}

#[tokio::test]
async fn a_fresh_registration_token_refused_a_few_times_is_retried() {
    let fake = fake().await;
    let (api, _) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    fake.scaleset_fail_registration(401, 4);
    api.find_scale_set(1, SET).await.unwrap();
    assert_eq!(r3_calls(&fake), 5, "four refusals, then the token");

    let (api, heard) = client(pat_github(&fake, GithubScope::Organization(ORG.into())).await);
    fake.scaleset_fail_registration(403, 5);
    let err = api.find_scale_set(1, SET).await.unwrap_err();
    assert!(matches!(err, ActionsError::Unauthorized), "{err:?}");
    assert_eq!(heard.finished(Endpoint::AdminConnection, "unauthorized"), 1);
    assert_clean(&fake, &err);
}

#[tokio::test]
async fn a_hung_request_ends_in_a_transport_error_without_its_url_query() {
    let fake = fake().await;
    let mut s = settings();
    s.poll_timeout = Duration::from_millis(500);
    s.request_timeout = Duration::from_millis(500);
    let (api, heard) = client_with(pat_github(&fake, GithubScope::Organization(ORG.into())).await, s);
    let set = api.create_scale_set(&spec(SET, 1)).await.unwrap();
    api.open_session(set.id, "host").await.unwrap();
    fake.scaleset_inject(Some("GET"), Some("/messages"), BrokerFault::Hang, 1);
    let started = Instant::now();
    let err = api.next_message(42, 10).await.unwrap_err();
    assert!(matches!(err, ActionsError::Transport(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "a hung poll is not repeated inside the call");
    let text = chain(&err);
    assert!(text.contains("/messages") && !text.contains("sessionId") && !text.contains("lastMessageId"), "{text}");
    assert_clean(&fake, &err);

    // A create whose answer was lost is not repeated: the session it may have opened
    // would answer the repeat with 409.
    api.close_session().await.unwrap();
    fake.scaleset_inject(Some("POST"), Some("/sessions"), BrokerFault::Hang, 1);
    let sent = heard.sent(Endpoint::CreateSession);
    let err = api.open_session(set.id, "host").await.unwrap_err();
    assert!(matches!(err, ActionsError::Transport(_)), "{err:?}");
    assert_eq!(heard.sent(Endpoint::CreateSession) - sent, 1);

    // An idempotent call is repeated, and gives up after its retries.
    let sent = heard.sent(Endpoint::RunnerByName);
    fake.scaleset_inject(Some("GET"), Some("agents"), BrokerFault::Hang, 3);
    let err = api.runner_by_name("r").await.unwrap_err();
    assert!(matches!(err, ActionsError::Transport(_)), "{err:?}");
    assert_eq!(heard.sent(Endpoint::RunnerByName) - sent, 3);
    assert_clean(&fake, &err);
}
