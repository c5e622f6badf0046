//! The real GitHub client against the stateful HTTP fake of GitHub's runner API, on
//! loopback: repository and organization scope, PAT and App auth, JIT and token
//! registration, pagination and conditional requests, busy runners, rate limits,
//! credential rotation and faults. Every test ends by checking every recorded
//! exchange against GitHub's official REST description.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use contract::{Api, Contract};
use fake_github::{AppKey, FakeGithub, Fault, LimitStatus, Scope};
use operator::{
    config::{GithubAppConfig, GithubScope},
    github::{GithubClient, GithubClientError, GithubClientSettings},
    ports::{DeregisterOutcome, Github, GithubError, JitRequest, RunnerStatus},
};
use operator_sim::memory::InMemorySecretStore;

const REPO: &str = "octo-org/octo-repo";
const ORG: &str = "octo-org";
const PAT: &str = "ghp_patvalue0000000000000000000000000001";
const SECRET: &str = "github-credential";
const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 77;

fn repo() -> GithubScope {
    GithubScope::Repository(REPO.into())
}

fn org() -> GithubScope {
    GithubScope::Organization(ORG.into())
}

fn settings(fake: &FakeGithub, scope: GithubScope) -> GithubClientSettings {
    let mut s = GithubClientSettings::new(fake.url(), scope, SECRET);
    s.request_timeout = Duration::from_secs(5);
    s.max_rate_limit_wait = Duration::from_secs(5);
    s
}

async fn pat_client(fake: &FakeGithub, scope: GithubScope) -> (GithubClient, Arc<InMemorySecretStore>) {
    fake.add_pat(PAT);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, PAT));
    let client = GithubClient::new(settings(fake, scope), secrets.clone()).await.expect("client");
    (client, secrets)
}

async fn app_client(fake: &FakeGithub, scope: GithubScope) -> (GithubClient, Arc<InMemorySecretStore>, AppKey) {
    let key = AppKey::generate();
    fake.add_app(APP_ID, &key.public_pem, INSTALLATION, ORG);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, &key.private_pem));
    let mut s = settings(fake, scope);
    s.app = Some(GithubAppConfig { app_id: APP_ID, installation_id: INSTALLATION });
    let client = GithubClient::new(s, secrets.clone()).await.expect("client");
    (client, secrets, key)
}

fn jit(name: &str) -> JitRequest {
    JitRequest { name: name.into(), labels: vec!["self-hosted".into(), "linux".into()], runner_group: None }
}

/// Every request the client sent and every answer the fake gave fits GitHub's description.
fn assert_contract(fake: &FakeGithub) {
    let exchanges = fake.exchanges();
    assert!(!exchanges.is_empty(), "the test sent no request");
    let problems = Contract::load(Api::GithubRest).check_all(&exchanges);
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
}

fn count(fake: &FakeGithub, method: &str, path_contains: &str) -> usize {
    fake.exchanges().iter().filter(|e| e.method == method && e.path.contains(path_contains)).count()
}

#[tokio::test]
async fn a_jit_runner_at_repository_scope_registers_runs_a_job_and_is_gone_after_it() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    let scope = Scope::repo(REPO);
    let job = fake.enqueue_job(&scope, &["self-hosted", "linux"]);

    let config = gh.jit_config(&jit("vm-000001")).await.unwrap();
    let listed = gh.get_runner(config.runner_id).await.unwrap().expect("created with its config");
    assert_eq!((listed.status, listed.busy), (RunnerStatus::Offline, false));

    let runner = fake.start_runner_with_jit(&config.encoded).expect("the config starts a runner");
    assert_eq!(runner, config.runner_id);
    assert_eq!(fake.start_runner_with_jit(&config.encoded), None, "a JIT config works once");
    assert_eq!(fake.poll_job(runner), Some(job));

    let busy = gh.get_runner(runner).await.unwrap().unwrap();
    assert_eq!((busy.status, busy.busy), (RunnerStatus::Online, true));
    assert_eq!(gh.deregister_runner(runner).await.unwrap(), DeregisterOutcome::Busy, "GitHub keeps a busy runner");
    assert!(fake.runner(runner).is_some());

    fake.finish_job(runner);
    assert_eq!(gh.get_runner(runner).await.unwrap(), None, "an ephemeral runner leaves after its job");
    assert_eq!(gh.deregister_runner(runner).await.unwrap(), DeregisterOutcome::AlreadyGone);
    assert!(fake.job(job).unwrap().done);
    assert_eq!(gh.registration_url(), format!("{}/{REPO}", fake.url()));
    assert_contract(&fake);
}

#[tokio::test]
async fn an_idle_runner_is_removed_and_a_taken_name_is_refused() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    let config = gh.jit_config(&jit("vm-a")).await.unwrap();
    assert!(matches!(gh.jit_config(&jit("vm-a")).await, Err(GithubError::NameTaken { name }) if name == "vm-a"));
    fake.start_runner_with_jit(&config.encoded).unwrap();
    assert_eq!(gh.deregister_runner(config.runner_id).await.unwrap(), DeregisterOutcome::Removed);
    assert!(gh.list_runners().await.unwrap().is_empty());
    assert_contract(&fake);
}

#[tokio::test]
async fn organization_scope_resolves_the_runner_group_once_and_registers_into_it() {
    let fake = FakeGithub::start().await;
    let group = fake.add_runner_group(ORG, "vmss-pool");
    let (gh, _) = pat_client(&fake, org()).await;

    let mut request = jit("vm-1");
    request.runner_group = Some("vmss-pool".into());
    let first = gh.jit_config(&request).await.unwrap();
    request.name = "vm-2".into();
    let second = gh.jit_config(&request).await.unwrap();
    for id in [first.runner_id, second.runner_id] {
        assert_eq!(fake.runner(id).unwrap().runner_group_id, group);
    }
    assert_eq!(count(&fake, "GET", "/actions/runner-groups"), 1, "the group id is cached");
    let default = gh.jit_config(&jit("vm-3")).await.unwrap();
    assert_eq!(fake.runner(default.runner_id).unwrap().runner_group_id, 1, "GitHub's default group");

    request.name = "vm-4".into();
    request.runner_group = Some("no-such-group".into());
    assert!(matches!(gh.jit_config(&request).await, Err(GithubError::Server { status: 404, .. })));

    // Org runners take org jobs.
    let job = fake.enqueue_job(&Scope::org(ORG), &["linux"]);
    let runner = fake.start_runner_with_jit(&first.encoded).unwrap();
    assert_eq!(fake.dispatch(), vec![(job, runner)]);
    assert_eq!(gh.deregister_runner(runner).await.unwrap(), DeregisterOutcome::Busy);
    assert_eq!(gh.registration_url(), format!("{}/{ORG}", fake.url()));
    assert_contract(&fake);
}

#[tokio::test]
async fn token_registration_at_organization_scope_through_a_ghes_style_api_root() {
    let fake = FakeGithub::start().await;
    fake.add_pat(PAT);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, PAT));
    let mut s = settings(&fake, org());
    s.api_url = format!("{}/api/v3/", fake.url());
    let gh = GithubClient::new(s, secrets).await.unwrap();
    assert_eq!(gh.registration_url(), format!("{}/{ORG}", fake.url()), "GHES: the web host without /api/v3");

    let token = gh.registration_token().await.unwrap();
    assert!(token.expires_at > time::OffsetDateTime::now_utc() + time::Duration::minutes(55));
    assert!(!format!("{token:?}").contains(&token.token));
    let scope = Scope::org(ORG);
    assert_eq!(fake.register_runner_with_token(&Scope::org("elsewhere"), &token.token, "vm-1", &["linux"], true), None);
    let id = fake.register_runner_with_token(&scope, &token.token, "vm-1", &["linux"], true).unwrap();
    let runners = gh.list_runners().await.unwrap();
    assert_eq!(runners.len(), 1);
    assert_eq!((runners[0].id, runners[0].name.as_str(), runners[0].status), (id, "vm-1", RunnerStatus::Online));

    fake.enqueue_job(&scope, &["linux"]);
    assert!(fake.poll_job(id).is_some());
    fake.mark_offline(id);
    let offline = gh.get_runner(id).await.unwrap().unwrap();
    assert_eq!((offline.status, offline.busy), (RunnerStatus::Offline, true));
    assert_eq!(gh.deregister_runner(id).await.unwrap(), DeregisterOutcome::Busy, "offline but busy is still busy");
    assert_contract(&fake);
}

#[tokio::test]
async fn listing_follows_every_page_and_a_repeated_listing_is_answered_304_at_no_cost() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    let scope = Scope::repo(REPO);
    let token = gh.registration_token().await.unwrap();
    for i in 0..230 {
        fake.register_runner_with_token(&scope, &token.token, &format!("vm-{i:04}"), &["linux"], true).unwrap();
    }

    let runners = gh.list_runners().await.unwrap();
    assert_eq!(runners.len(), 230);
    assert_eq!(count(&fake, "GET", "/actions/runners?"), 3, "100 per page");
    let remaining = gh.rate_limit_remaining().expect("quota reported");

    let again = gh.list_runners().await.unwrap();
    assert_eq!(again, runners);
    let statuses: Vec<u16> = fake.exchanges().iter().rev().take(3).map(|e| e.status).collect();
    assert_eq!(statuses, vec![304, 304, 304], "every page unchanged");
    assert_eq!(gh.rate_limit_remaining(), Some(remaining), "a 304 costs no quota");

    fake.register_runner_with_token(&scope, &token.token, "vm-new", &["linux"], true).unwrap();
    assert_eq!(gh.list_runners().await.unwrap().len(), 231, "a change is seen");
    assert_contract(&fake);
}

#[tokio::test]
async fn app_auth_mints_one_installation_token_and_reuses_it() {
    let fake = FakeGithub::start().await;
    let (gh, _, _) = app_client(&fake, org()).await;
    gh.registration_token().await.unwrap();
    gh.list_runners().await.unwrap();
    gh.jit_config(&jit("vm-1")).await.unwrap();
    assert_eq!(fake.installation_tokens_issued(), 1, "cached until shortly before it expires");
    assert_eq!(fake.jwts_accepted(), 1);
    assert!(gh.rate_limit_remaining().is_some());
    assert_contract(&fake);
}

#[tokio::test]
async fn an_installation_token_near_its_expiry_is_replaced_with_a_fresh_jwt_each_time() {
    let fake = FakeGithub::start().await;
    // Tokens that live less than the five-minute margin are never reused; the fake
    // refuses any JWT whose jti it has seen, so three successes prove three fresh JWTs.
    fake.set_installation_token_ttl(Duration::from_secs(240));
    let (gh, _, _) = app_client(&fake, repo()).await;
    for _ in 0..3 {
        gh.list_runners().await.unwrap();
    }
    assert_eq!(fake.installation_tokens_issued(), 3);
    assert_eq!(fake.jwts_accepted(), 3);
    assert_contract(&fake);
}

#[tokio::test]
async fn a_rotated_app_key_is_read_again_after_github_refuses_the_old_one() {
    let fake = FakeGithub::start().await;
    let (gh, secrets, _) = app_client(&fake, org()).await;
    gh.list_runners().await.unwrap();

    let new_key = AppKey::generate();
    fake.rotate_app_key(APP_ID, &new_key.public_pem);
    fake.revoke_installation_tokens();
    secrets.set(SECRET, &new_key.private_pem);

    gh.list_runners().await.expect("re-read after the 401, then retried");
    assert_eq!(fake.installation_tokens_issued(), 2);
    assert!(fake.exchanges().iter().any(|e| e.status == 401));
    assert_contract(&fake);
}

#[tokio::test]
async fn a_rotated_pat_is_picked_up_after_a_401_without_a_restart() {
    let fake = FakeGithub::start().await;
    let (gh, secrets) = pat_client(&fake, repo()).await;
    gh.list_runners().await.unwrap();

    let rotated = "ghp_patvalue0000000000000000000000000002";
    fake.add_pat(rotated);
    fake.revoke(PAT);
    secrets.set(SECRET, rotated);

    gh.registration_token().await.expect("the rotated PAT is read at once on the 401");
    let statuses: Vec<u16> = fake.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 401, 201]);
    assert_contract(&fake);
}

#[tokio::test]
async fn the_credential_is_read_again_every_refresh_period() {
    let fake = FakeGithub::start().await;
    fake.add_pat(PAT);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, PAT));
    let mut s = settings(&fake, repo());
    s.refresh_period = Duration::from_millis(200);
    let gh = GithubClient::new(s, secrets.clone()).await.unwrap();
    gh.list_runners().await.unwrap();

    let rotated = "ghp_patvalue0000000000000000000000000003";
    fake.add_pat(rotated);
    secrets.set(SECRET, rotated);
    tokio::time::sleep(Duration::from_millis(300)).await;
    gh.list_runners().await.unwrap();
    fake.revoke(PAT);
    gh.list_runners().await.unwrap();
    assert!(fake.exchanges().iter().all(|e| e.status != 401), "the new PAT was in use before the old one died");
    assert_contract(&fake);
}

#[tokio::test]
async fn a_revoked_credential_is_a_typed_error_that_never_shows_the_secret() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.revoke(PAT);
    let err = gh.list_runners().await.unwrap_err();
    assert!(matches!(err, GithubError::Unauthorized), "{err:?}");
    assert_eq!(count(&fake, "GET", "/actions/runners"), 2, "one retry after re-reading the secret");
    for shown in [format!("{err}"), format!("{err:?}"), format!("{gh:?}")] {
        assert!(!shown.contains(PAT), "secret leaked: {shown}");
    }
    assert_contract(&fake);
}

#[tokio::test]
async fn a_missing_or_unusable_secret_fails_at_start() {
    let fake = FakeGithub::start().await;
    let empty = Arc::new(InMemorySecretStore::default());
    let err = GithubClient::new(settings(&fake, repo()), empty).await.unwrap_err();
    assert!(matches!(err, GithubClientError::CredentialUnavailable(_)), "{err:?}");

    let mut s = settings(&fake, repo());
    s.app = Some(GithubAppConfig { app_id: APP_ID, installation_id: INSTALLATION });
    let not_a_key = Arc::new(InMemorySecretStore::with(SECRET, "ghp_secretbutnotakey"));
    let err = GithubClient::new(s, not_a_key).await.unwrap_err();
    assert!(matches!(err, GithubClientError::CredentialInvalid { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("secretbutnotakey"));
}

#[tokio::test]
async fn a_short_secondary_rate_limit_is_waited_out() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.trigger_secondary_limit(1, Duration::from_secs(1), LimitStatus::Forbidden);
    let started = Instant::now();
    gh.list_runners().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "retry-after honoured");
    let statuses: Vec<u16> = fake.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![403, 200]);
    assert_contract(&fake);
}

#[tokio::test]
async fn a_long_secondary_rate_limit_is_returned_with_its_retry_after() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.trigger_secondary_limit(1, Duration::from_secs(120), LimitStatus::TooManyRequests);
    let err = gh.jit_config(&jit("vm-1")).await.unwrap_err();
    assert!(
        matches!(err, GithubError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(120)),
        "{err:?}"
    );
    assert_eq!(fake.request_count(), 1);
    assert_contract(&fake);
}

#[tokio::test]
async fn a_spent_primary_limit_waits_for_a_near_reset() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.set_rate_limit(2, Duration::from_secs(2), LimitStatus::TooManyRequests);
    gh.list_runners().await.unwrap();
    assert_eq!(gh.rate_limit_remaining(), Some(1));
    gh.registration_token().await.unwrap();
    assert_eq!(gh.rate_limit_remaining(), Some(0));
    // The quota is known to be spent: the client waits for the reset instead of asking.
    gh.registration_token().await.unwrap();
    assert!(fake.exchanges().iter().all(|e| e.status != 429), "no request while the quota is spent");
    assert_contract(&fake);
}

#[tokio::test]
async fn a_spent_primary_limit_with_a_far_reset_gives_up_without_asking_again() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.set_rate_limit(1, Duration::from_secs(3600), LimitStatus::Forbidden);
    gh.list_runners().await.unwrap();
    // A stale client (another process spent the quota) learns it from the 403.
    let other = {
        let secrets = Arc::new(InMemorySecretStore::with(SECRET, PAT));
        GithubClient::new(settings(&fake, repo()), secrets).await.unwrap()
    };
    let err = other.list_runners().await.unwrap_err();
    assert!(
        matches!(err, GithubError::RateLimited { retry_after: Some(d) } if d > Duration::from_secs(3000)),
        "{err:?}"
    );
    let sent = fake.request_count();
    assert!(matches!(other.get_runner(1).await, Err(GithubError::RateLimited { .. })));
    assert!(matches!(gh.get_runner(1).await, Err(GithubError::RateLimited { .. })));
    assert_eq!(fake.request_count(), sent, "no request is sent into a spent quota");
    assert_contract(&fake);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_and_reported_for_writes() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.inject(Fault::Status(502), 1);
    gh.list_runners().await.expect("one 502 is retried");

    fake.inject_matching(Some("GET"), None, Fault::Status(500), 10);
    assert!(matches!(gh.get_runner(1).await, Err(GithubError::Server { status: 500, .. })));
    fake.clear_faults();

    let before = fake.request_count();
    fake.inject_matching(Some("POST"), Some("registration-token"), Fault::Status(500), 1);
    assert!(matches!(gh.registration_token().await, Err(GithubError::Server { status: 500, .. })));
    assert_eq!(fake.request_count(), before + 1, "a POST is not repeated");
    assert_contract(&fake);
}

#[tokio::test]
async fn a_hanging_github_ends_in_a_transport_error_and_a_slow_one_is_waited_for() {
    let fake = FakeGithub::start().await;
    fake.add_pat(PAT);
    let secrets = Arc::new(InMemorySecretStore::with(SECRET, PAT));
    let mut s = settings(&fake, repo());
    s.request_timeout = Duration::from_millis(300);
    let gh = GithubClient::new(s, secrets).await.unwrap();

    fake.inject(Fault::Delay(Duration::from_millis(100)), 1);
    gh.list_runners().await.expect("slow but in time");

    fake.inject(Fault::Hang, 10);
    let started = Instant::now();
    let err = gh.registration_token().await.unwrap_err();
    assert!(matches!(err, GithubError::Transport(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_contract(&fake);
}

#[tokio::test]
async fn an_injected_401_is_retried_once_with_the_credential_read_again() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    fake.inject(Fault::Unauthorized, 1);
    gh.list_runners().await.unwrap();
    fake.inject(Fault::Unauthorized, 2);
    assert!(matches!(gh.list_runners().await, Err(GithubError::Unauthorized)));
    assert_contract(&fake);
}

#[tokio::test]
async fn the_contract_check_is_live_and_catches_a_field_github_does_not_define() {
    let fake = FakeGithub::start().await;
    let (gh, _) = pat_client(&fake, repo()).await;
    gh.jit_config(&jit("vm-1")).await.unwrap();
    let mut exchanges = fake.exchanges();
    let good = Contract::load(Api::GithubRest).check_all(&exchanges);
    assert!(good.is_empty(), "{good:?}");
    let body = exchanges[0].response_body.as_mut().unwrap();
    body["runner"]["vm_instance"] = "vmss_3".into();
    assert!(!Contract::load(Api::GithubRest).check_all(&exchanges).is_empty(), "an undefined field must fail");
}

#[tokio::test]
async fn the_fake_answers_installation_lookups_to_a_fresh_app_jwt_only() {
    let fake = FakeGithub::start().await;
    let key = AppKey::generate();
    fake.add_app(APP_ID, &key.public_pem, INSTALLATION, ORG);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap();
    let jwt = |jti: &str| {
        let claims = serde_json::json!({"iss": APP_ID.to_string(), "iat": now - 60, "exp": now + 540, "jti": jti});
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &encoding).unwrap()
    };
    let http = reqwest::Client::new();
    let get = |path: &str, token: String| {
        http.get(format!("{}{path}", fake.url()))
            .bearer_auth(token)
            .header("user-agent", "test")
            .header("x-github-api-version", "2022-11-28")
            .send()
    };
    let first = jwt("one");
    let org = get("/orgs/octo-org/installation", first.clone()).await.unwrap();
    assert_eq!(org.status(), 200);
    let body: serde_json::Value = org.json().await.unwrap();
    assert_eq!((body["id"].as_u64(), body["app_id"].as_u64()), (Some(INSTALLATION), Some(APP_ID)));
    let repo = get("/repos/octo-org/octo-repo/installation", jwt("two")).await.unwrap();
    assert_eq!(repo.status(), 200);
    assert_eq!(get("/orgs/octo-org/installation", first).await.unwrap().status(), 401, "a replayed jti");
    assert_eq!(get("/orgs/other-org/installation", jwt("three")).await.unwrap().status(), 404);
    assert_eq!(get("/orgs/octo-org/installation", PAT.to_owned()).await.unwrap().status(), 401, "a PAT is no JWT");
    assert_contract(&fake);
}
