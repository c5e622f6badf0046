//! The HTTP side: one handler that authenticates, applies faults and rate limits,
//! routes by path and records every exchange.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode},
    response::Response,
    Router,
};
use contract::Exchange;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    auth::{Credentials, Principal},
    state::{FakeRunner, Refusal, RunnerState, Scope},
    Fault,
};

const DOCS: &str = "https://docs.github.com/rest";
const API_VERSION: &str = "2022-11-28";
const RATE_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

pub(crate) struct FaultRule {
    pub method: Option<String>,
    pub path_contains: Option<String>,
    pub fault: Fault,
    pub remaining: usize,
}

pub(crate) struct Bucket {
    used: u64,
    reset_at: OffsetDateTime,
}

pub(crate) struct Secondary {
    pub times: usize,
    pub retry_after: Duration,
    pub status: u16,
}

pub(crate) struct Limits {
    pub limit: u64,
    pub window: Duration,
    pub status: u16,
    pub buckets: HashMap<String, Bucket>,
    pub secondary: Option<Secondary>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { limit: 5000, window: Duration::from_secs(3600), status: 403, buckets: HashMap::new(), secondary: None }
    }
}

impl Limits {
    fn bucket(&mut self, key: &str, now: OffsetDateTime) -> &mut Bucket {
        let window = self.window;
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket { used: 0, reset_at: now + window });
        if now >= bucket.reset_at {
            bucket.used = 0;
            bucket.reset_at = now + window;
        }
        bucket
    }

    fn headers(&self, bucket: &Bucket) -> Vec<(&'static str, String)> {
        vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.limit.saturating_sub(bucket.used).to_string()),
            ("x-ratelimit-used", bucket.used.to_string()),
            ("x-ratelimit-reset", bucket.reset_at.unix_timestamp().to_string()),
            ("x-ratelimit-resource", "core".to_owned()),
        ]
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub runners: RunnerState,
    pub creds: Credentials,
    pub limits: Limits,
    pub faults: Vec<FaultRule>,
    pub exchanges: Vec<Exchange>,
    pub installation_token_ttl: Option<Duration>,
    pub requests: u64,
    pub workflow_runs: Vec<crate::workflows::WorkflowRun>,
    /// The runner scale set API (Actions service), which shares `runners`.
    pub broker: crate::scaleset::Broker,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    pub base_url: Mutex<String>,
    /// Wakes the Actions service's long polls when a job message is queued.
    pub broker_wake: tokio::sync::Notify,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the state from the others.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), headers: Vec::new() }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, json!({"message": message.into(), "documentation_url": DOCS}))
    }

    fn not_found() -> Self {
        Self::error(404, "Not Found")
    }

    fn bad_credentials() -> Self {
        Self::json(401, json!({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}))
    }
}

/// Who must authenticate for a route.
enum Auth {
    Token,
    Jwt,
}

enum Route {
    AccessToken(u64),
    Installation(Scope),
    Runners(Scope, Vec<String>),
    RunnerGroups(String),
    WorkflowRuns(String),
    RunJobs(String, u64),
}

fn route(segments: &[&str]) -> Option<(Auth, Route)> {
    match segments {
        ["app", "installations", id, "access_tokens"] => Some((Auth::Jwt, Route::AccessToken(id.parse().ok()?))),
        ["repos", owner, repo, "installation"] => {
            Some((Auth::Jwt, Route::Installation(Scope::Repo(format!("{owner}/{repo}")))))
        }
        ["orgs", org, "installation"] => Some((Auth::Jwt, Route::Installation(Scope::Org((*org).to_owned())))),
        ["repos", owner, repo, "actions", "runners", rest @ ..] => Some((
            Auth::Token,
            Route::Runners(Scope::Repo(format!("{owner}/{repo}")), rest.iter().map(|s| s.to_string()).collect()),
        )),
        ["orgs", org, "actions", "runners", rest @ ..] => Some((
            Auth::Token,
            Route::Runners(Scope::Org((*org).to_owned()), rest.iter().map(|s| s.to_string()).collect()),
        )),
        ["orgs", org, "actions", "runner-groups"] => Some((Auth::Token, Route::RunnerGroups((*org).to_owned()))),
        ["repos", owner, repo, "actions", "runs"] => {
            Some((Auth::Token, Route::WorkflowRuns(format!("{owner}/{repo}"))))
        }
        ["repos", owner, repo, "actions", "runs", id, "jobs"] => {
            Some((Auth::Token, Route::RunJobs(format!("{owner}/{repo}"), id.parse().ok()?)))
        }
        _ => None,
    }
}

fn credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("token ")).map(str::trim)
}

fn query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The runner scale set API has its own auth, errors, faults and record.
    if crate::scaleset::http::serves(uri.path()) {
        return crate::scaleset::http::handle(shared, method, uri, headers, body).await;
    }
    // GitHub Enterprise Server serves the same API under /api/v3.
    let full_path = uri.path().to_owned();
    let api_path = full_path.strip_prefix("/api/v3").unwrap_or(&full_path).to_owned();
    let recorded_path = match uri.query() {
        Some(q) => format!("{api_path}?{q}"),
        None => api_path.clone(),
    };
    let request_body: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };

    // Faults first, as a proxy or an overloaded GitHub would answer.
    let fault = {
        let mut inner = shared.lock();
        inner.requests += 1;
        let m = method.as_str();
        inner
            .faults
            .iter_mut()
            .find(|r| {
                r.remaining > 0
                    && r.method.as_deref().is_none_or(|fm| fm.eq_ignore_ascii_case(m))
                    && r.path_contains.as_deref().is_none_or(|p| api_path.contains(p))
            })
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            })
    };
    let reply = match fault {
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Reply::error(504, "hung")
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            serve(&shared, &method, &api_path, &full_path, uri.query(), &headers, request_body.as_ref())
        }
        Some(Fault::Status(status)) => Reply::json(status, json!({"message": "Server Error"})),
        Some(Fault::Unauthorized) => Reply::bad_credentials(),
        None => serve(&shared, &method, &api_path, &full_path, uri.query(), &headers, request_body.as_ref()),
    };

    shared.lock().exchanges.push(Exchange {
        method: method.as_str().to_uppercase(),
        path: recorded_path,
        request_body,
        status: reply.status,
        response_body: reply.body.clone(),
    });

    let mut response = Response::new(match &reply.body {
        Some(b) => Body::from(b.to_string()),
        None => Body::empty(),
    });
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    if reply.body.is_some() {
        h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
    }
    h.insert("x-github-api-version-selected", HeaderValue::from_static("2022-11-28"));
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    // A REST call may have changed a runner the Actions service's long polls report on.
    shared.broker_wake.notify_waiters();
    response
}

fn serve(
    shared: &Shared,
    method: &Method,
    api_path: &str,
    full_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Reply {
    let now = OffsetDateTime::now_utc();
    let base_url = shared.base_url.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut guard = shared.lock();
    let inner = &mut *guard;
    // GitHub refuses requests without a User-Agent, and unsupported API versions. The fake
    // also insists on the version header, which GitHub would default: the client must send it.
    if headers.get("user-agent").is_none() {
        return Reply::error(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
        );
    }
    match headers.get("x-github-api-version").and_then(|v| v.to_str().ok()) {
        Some(API_VERSION) => {}
        _ => return Reply::error(400, format!("The fake requires 'X-GitHub-Api-Version: {API_VERSION}'.")),
    }
    let segments: Vec<&str> = api_path.trim_matches('/').split('/').collect();
    let Some((auth, route)) = route(&segments) else {
        return Reply::not_found();
    };

    // Authenticate.
    let presented = credential(headers);
    let principal = match (auth, presented) {
        (_, None) => None,
        (Auth::Token, Some(t)) => inner.creds.token(t, now),
        (Auth::Jwt, Some(t)) => match inner.creds.verify_jwt(t, now) {
            Ok(app) => Some(Principal::App(app)),
            Err(message) => {
                return Reply::json(401, json!({"message": message, "documentation_url": DOCS, "status": "401"}));
            }
        },
    };
    let Some(principal) = principal else {
        return Reply::bad_credentials();
    };

    // Rate limits: secondary first (it has no header of its own but retry-after), then primary.
    let key = principal.bucket();
    let limit = inner.limits.limit;
    let secondary = inner.limits.secondary.as_mut().filter(|s| s.times > 0).map(|s| {
        s.times -= 1;
        (s.status, s.retry_after)
    });
    if let Some((status, retry_after)) = secondary {
        let bucket = inner.limits.bucket(&key, now);
        bucket.used += 1;
        let bucket = Bucket { used: bucket.used, reset_at: bucket.reset_at };
        let mut reply = Reply::json(
            status,
            json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": format!("{RATE_DOCS}#about-secondary-rate-limits"),
            }),
        );
        reply.headers = inner.limits.headers(&bucket);
        reply.headers.push(("retry-after", retry_after.as_secs().to_string()));
        return reply;
    }
    let status = inner.limits.status;
    let bucket = inner.limits.bucket(&key, now);
    if bucket.used >= limit {
        let bucket = Bucket { used: bucket.used, reset_at: bucket.reset_at };
        let mut reply = Reply::json(
            status,
            json!({"message": "API rate limit exceeded for this credential.", "documentation_url": RATE_DOCS}),
        );
        reply.headers = inner.limits.headers(&bucket);
        return reply;
    }

    let mut reply = match route {
        Route::AccessToken(id) => access_token(inner, &principal, id, now),
        Route::Installation(scope) => installation(inner, &principal, &scope, &base_url),
        Route::Runners(scope, rest) => {
            runners(inner, method, &scope, &rest, raw_query, body, now, &base_url, full_path)
        }
        Route::RunnerGroups(org) if method == Method::GET => {
            let groups: Vec<Value> = inner
                .runners
                .groups(&org)
                .iter()
                .map(|g| {
                    json!({
                        "id": g.id, "name": g.name, "visibility": "all", "default": g.default,
                        "runners_url": format!("{base_url}/orgs/{org}/actions/runner-groups/{}/runners", g.id),
                        "inherited": false, "allows_public_repositories": false,
                    })
                })
                .collect();
            paginate(groups, "runner_groups", raw_query, &base_url, full_path)
        }
        Route::RunnerGroups(_) => Reply::not_found(),
        Route::WorkflowRuns(repo) if method == Method::GET => {
            let q = query(raw_query);
            let owner = simple_user(repo.split('/').next().unwrap_or(&repo), "Organization", &base_url);
            // Newest first, as GitHub lists them.
            let mut runs: Vec<&crate::workflows::WorkflowRun> = inner
                .workflow_runs
                .iter()
                .filter(|r| r.repository == repo && crate::workflows::created_matches(q.get("created"), r.created_at))
                .collect();
            runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
            let runs: Vec<Value> =
                runs.iter().map(|r| crate::workflows::run_json(r, owner.clone(), &base_url)).collect();
            paginate(runs, "workflow_runs", raw_query, &base_url, full_path)
        }
        Route::RunJobs(repo, id) if method == Method::GET => {
            match inner.workflow_runs.iter().find(|r| r.repository == repo && r.id == id) {
                Some(run) => {
                    let jobs =
                        run.jobs.iter().map(|(jid, j)| crate::workflows::job_json(run, *jid, j, &base_url)).collect();
                    paginate(jobs, "jobs", raw_query, &base_url, full_path)
                }
                None => Reply::not_found(),
            }
        }
        Route::WorkflowRuns(_) | Route::RunJobs(..) => Reply::not_found(),
    };

    // Conditional GET: a matching ETag answers 304 and costs nothing.
    let etag = reply.headers.iter().find(|(n, _)| *n == "etag").map(|(_, v)| v.clone());
    let not_modified = etag.is_some_and(|tag| {
        headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    });
    let bucket = inner.limits.bucket(&key, now);
    if not_modified {
        reply.status = 304;
        reply.body = None;
        reply.headers.retain(|(n, _)| *n == "etag");
    } else {
        bucket.used += 1;
    }
    let bucket = Bucket { used: bucket.used, reset_at: bucket.reset_at };
    reply.headers.extend(inner.limits.headers(&bucket));
    reply
}

fn access_token(inner: &mut Inner, principal: &Principal, id: u64, now: OffsetDateTime) -> Reply {
    let Principal::App(app_id) = principal else { return Reply::bad_credentials() };
    if !inner.creds.apps.get(app_id).is_some_and(|a| a.installations.contains_key(&id)) {
        return Reply::not_found();
    }
    inner.creds.issued_installation_tokens += 1;
    let n = inner.creds.issued_installation_tokens;
    let token = format!("ghs_fake{id:08}x{n:012}");
    let ttl = inner.installation_token_ttl.unwrap_or(Duration::from_secs(3600));
    let expires = now + ttl;
    inner.creds.installation_tokens.insert(token.clone(), (id, expires));
    Reply::json(
        201,
        json!({
            "token": token,
            "expires_at": rfc3339(expires),
            "permissions": {"administration": "write", "organization_self_hosted_runners": "write"},
            "repository_selection": "all",
        }),
    )
}

fn installation(inner: &mut Inner, principal: &Principal, scope: &Scope, base_url: &str) -> Reply {
    let Principal::App(app_id) = principal else { return Reply::bad_credentials() };
    let Some(app) = inner.creds.apps.get(app_id) else { return Reply::not_found() };
    let Some((id, login)) = app.installations.iter().find(|(_, login)| login.as_str() == scope.owner()) else {
        return Reply::not_found();
    };
    let target_type = if matches!(scope, Scope::Org(_)) { "Organization" } else { "User" };
    let created = "2026-01-01T00:00:00Z";
    Reply::json(
        200,
        json!({
            "id": id,
            "account": simple_user(login, target_type, base_url),
            "repository_selection": "all",
            "access_tokens_url": format!("{base_url}/app/installations/{id}/access_tokens"),
            "repositories_url": format!("{base_url}/installation/repositories"),
            "html_url": format!("https://github.com/organizations/{login}/settings/installations/{id}"),
            "app_id": app_id,
            "target_id": 1000 + id,
            "target_type": target_type,
            "permissions": {"administration": "write", "organization_self_hosted_runners": "write"},
            "events": [],
            "created_at": created,
            "updated_at": created,
            "single_file_name": null,
            "app_slug": "vmss-runner-operator",
            "suspended_by": null,
            "suspended_at": null,
        }),
    )
}

fn simple_user(login: &str, kind: &str, base_url: &str) -> Value {
    let u = format!("{base_url}/users/{login}");
    json!({
        "login": login, "id": 1000, "node_id": "MDQ6VXNlcjE=", "type": kind, "site_admin": false,
        "avatar_url": format!("https://avatars.githubusercontent.com/u/1000"), "gravatar_id": "",
        "url": u, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"),
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

fn label_id(name: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.to_ascii_lowercase().hash(&mut h);
    h.finish() % 1_000_000 + 1
}

pub(crate) fn runner_json(r: &FakeRunner) -> Value {
    let labels: Vec<Value> = r
        .labels
        .iter()
        .map(|l| {
            let kind = if FakeRunner::label_is_read_only(l) { "read-only" } else { "custom" };
            json!({"id": label_id(l), "name": l, "type": kind})
        })
        .collect();
    json!({
        "id": r.id,
        "runner_group_id": r.runner_group_id,
        "name": r.name,
        "os": if r.connected { "linux" } else { "unknown" },
        "status": if r.online { "online" } else { "offline" },
        "busy": r.busy(),
        "labels": labels,
        "ephemeral": r.ephemeral,
    })
}

/// `per_page` (default 30, at most 100) and `page` (from 1), a `Link` header as GitHub
/// writes it, and a weak ETag over the page.
fn paginate(items: Vec<Value>, key: &str, raw_query: Option<&str>, base_url: &str, full_path: &str) -> Reply {
    let q = query(raw_query);
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).clamp(1, 100);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let body = json!({"total_count": total, key: slice});
    let link_to = |p: usize| {
        let mut params: Vec<String> =
            q.iter().filter(|(k, _)| *k != "page" && *k != "per_page").map(|(k, v)| format!("{k}={v}")).collect();
        params.sort();
        params.push(format!("per_page={per_page}"));
        params.push(format!("page={p}"));
        format!("<{base_url}{full_path}?{}>", params.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        links.push(format!("{}; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link_to(1)));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    let mut reply = Reply::json(200, body);
    reply.headers.push(("etag", format!("W/\"{:016x}\"", h.finish())));
    if !links.is_empty() {
        reply.headers.push(("link", links.join(", ")));
    }
    reply
}

#[allow(clippy::too_many_arguments)]
fn runners(
    inner: &mut Inner,
    method: &Method,
    scope: &Scope,
    rest: &[String],
    raw_query: Option<&str>,
    body: Option<&Value>,
    now: OffsetDateTime,
    base_url: &str,
    full_path: &str,
) -> Reply {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (method.as_str(), rest.as_slice()) {
        ("GET", []) => {
            let name = query(raw_query).get("name").cloned();
            let list: Vec<Value> = inner
                .runners
                .runners_of(scope)
                .iter()
                .filter(|r| name.as_deref().is_none_or(|n| r.name == n))
                .map(runner_json)
                .collect();
            paginate(list, "runners", raw_query, base_url, full_path)
        }
        ("POST", ["registration-token"]) => {
            let (token, expires) = inner.runners.registration_token(scope, now);
            Reply::json(201, json!({"token": token, "expires_at": rfc3339(expires)}))
        }
        ("POST", ["remove-token"]) => {
            let (token, expires) = inner.runners.remove_token(scope, now);
            Reply::json(201, json!({"token": token, "expires_at": rfc3339(expires)}))
        }
        ("POST", ["generate-jitconfig"]) => {
            let Some(body) = body else {
                return validation("Invalid request.\n\nNo body was sent.");
            };
            let name = body.get("name").and_then(Value::as_str);
            let group = body.get("runner_group_id").and_then(Value::as_u64);
            let labels: Option<Vec<String>> = body
                .get("labels")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_owned)).collect());
            let (Some(name), Some(group), Some(labels)) = (name, group, labels) else {
                return validation("Invalid request.\n\n\"name\", \"runner_group_id\" and \"labels\" are required.");
            };
            match inner.runners.create_jit(scope, name, &labels, group) {
                Ok((runner, encoded)) => {
                    Reply::json(201, json!({"runner": runner_json(&runner), "encoded_jit_config": encoded}))
                }
                Err(Refusal::NameTaken) => {
                    Reply::error(409, format!("Already exists - A runner with the name {name} already exists."))
                }
                Err(Refusal::InvalidLabels) => validation("Invalid request.\n\nlabels must have 1 to 100 items."),
                Err(_) => Reply::not_found(),
            }
        }
        (m, [id]) => {
            let Ok(id) = id.parse::<u64>() else { return Reply::not_found() };
            match m {
                "GET" => match inner.runners.runner(scope, id) {
                    Some(r) => Reply::json(200, runner_json(r)),
                    None => Reply::not_found(),
                },
                "DELETE" => match inner.runners.delete(scope, id) {
                    Ok(()) => Reply { status: 204, body: None, headers: Vec::new() },
                    Err(Refusal::Busy { name }) => {
                        validation(&format!("Bad request - Runner \"{name}\" is still running a job\""))
                    }
                    Err(_) => Reply::not_found(),
                },
                _ => Reply::not_found(),
            }
        }
        _ => Reply::not_found(),
    }
}

fn validation(message: &str) -> Reply {
    Reply::json(
        422,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest/actions/self-hosted-runners"}),
    )
}
