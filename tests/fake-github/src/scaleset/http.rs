//! The HTTP side of the Actions service: one handler that routes, authenticates, applies
//! faults, records the exchange and answers with an `ActivityId` on every response.
//!
//! | path (under `/tenant/<n>/`) | auth |
//! |---|---|
//! | `_apis/runtime/runnerscalesets[/{id}]`, `…/{id}/sessions[/{sid}]`, `…/{id}/generatejitconfig`, `…/{id}/acquirablejobs`, `_apis/runtime/runnergroups/`, `_apis/distributedtask/pools/0/agents[/{id}]` | admin token + `api-version` |
//! | `…/{id}/acquirejobs` | message-queue token + `api-version` |
//! | `…/{id}/messages[/{messageId}]?sessionId=` (the session's `messageQueueUrl`) | message-queue token |
//!
//! R3 `POST /actions/runner-registration` (and under `/api/v3`) is answered here too.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::Response,
};
use contract::Exchange;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::{acquire, auth, error, messages, runners, sessions, sets, tick, BrokerFault, FaultRule, RecordedRequest};
use crate::{server::Shared, state::Scope};

/// An answer before it is written: status, JSON body, extra headers.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), headers: Vec::new() }
    }

    pub fn empty(status: u16) -> Self {
        Self { status, body: None, headers: Vec::new() }
    }
}

/// Whether a request belongs to the Actions service rather than the REST API.
pub(crate) fn serves(path: &str) -> bool {
    path.starts_with("/tenant/")
        || path == "/actions/runner-registration"
        || path == "/api/v3/actions/runner-registration"
}

/// Percent-decoded query parameters (`+` is a space).
fn params(query: Option<&str>) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The first injected fault whose method and path match, counted down; with its matchers, so
/// a fault that found no message to change can be armed again.
fn take_fault(shared: &Shared, method: &Method, path: &str) -> Option<FaultRule> {
    let mut inner = shared.lock();
    let rule = inner.broker.faults.iter_mut().find(|r| {
        r.remaining > 0
            && r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && r.path_contains.as_deref().is_none_or(|p| path.contains(p))
    })?;
    rule.remaining -= 1;
    Some(FaultRule {
        method: rule.method.clone(),
        path_contains: rule.path_contains.clone(),
        fault: rule.fault.clone(),
        remaining: 1,
    })
}

/// The request headers, the credential replaced by its kind.
fn recorded_headers(shared: &Shared, headers: &HeaderMap) -> Vec<(String, String)> {
    let inner = shared.lock();
    headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("<not text>");
            let shown = if name.as_str() == "authorization" {
                match value.split_once(' ') {
                    Some(("RemoteAuth", t))
                        if inner.runners.registration_token_scope(t.trim(), OffsetDateTime::now_utc()).is_some() =>
                    {
                        "RemoteAuth <registration token>".to_owned()
                    }
                    Some((scheme, t)) => match inner.broker.tokens.kind(t.trim()) {
                        Some(kind) => format!("{scheme} <{kind}>"),
                        None => format!("{scheme} <unrecognised>"),
                    },
                    None => "<unrecognised>".to_owned(),
                }
            } else {
                value.to_owned()
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

/// What the faults change in a request answered normally.
#[derive(Default)]
struct Flags {
    bom: bool,
    lost_ack: bool,
    poll: messages::PollFaults,
    without_url: bool,
}

pub(crate) async fn handle(shared: Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let recorded_path = {
        let p = path.strip_prefix("/api/v3").unwrap_or(&path);
        uri.query().map_or_else(|| p.to_owned(), |q| format!("{p}?{q}"))
    };
    let parsed: Result<Option<Value>, ()> =
        if body.is_empty() { Ok(None) } else { serde_json::from_slice(&body).map(Some).map_err(|_| ()) };

    let mut flags = Flags::default();
    // R3 is a GitHub REST endpoint: its injected errors take GitHub's error shape.
    let rest = path.ends_with("/actions/runner-registration");
    let fail = |status: u16, message: &str| {
        if rest {
            Reply::json(status, json!({"message": message, "documentation_url": "https://docs.github.com/rest"}))
        } else {
            error::error(status, "VssServiceException", message)
        }
    };
    let request_headers = recorded_headers(&shared, &headers);
    let rule = take_fault(&shared, &method, &path);
    let early = match rule.as_ref().map(|r| r.fault.clone()) {
        Some(BrokerFault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some(fail(504, "hung"))
        }
        Some(BrokerFault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(BrokerFault::Status(status)) => Some(fail(status, "Injected failure.")),
        Some(BrokerFault::TooManyRequests { retry_after }) => {
            let mut reply = fail(429, "Too many requests.");
            reply.headers.push(("retry-after", retry_after.as_secs().to_string()));
            Some(reply)
        }
        Some(BrokerFault::EmptyOk) => Some(Reply::empty(200)),
        Some(BrokerFault::Bom) => {
            flags.bom = true;
            None
        }
        Some(BrokerFault::LostAck) => {
            flags.lost_ack = true;
            None
        }
        Some(BrokerFault::Duplicate) => {
            flags.poll.duplicate = true;
            None
        }
        Some(BrokerFault::UnauthorizedAfter(d)) => {
            flags.poll.unauthorized_after = Some(d);
            None
        }
        Some(BrokerFault::SessionWithoutQueueUrl) => {
            flags.without_url = true;
            None
        }
        Some(BrokerFault::UndecodableBody) => {
            flags.poll.undecodable = true;
            None
        }
        Some(BrokerFault::MessageType(kind)) => {
            flags.poll.message_type = Some(kind);
            None
        }
        None => None,
    };
    let reply = match (early, &parsed) {
        (Some(reply), _) => reply,
        (None, Err(())) => error::bad_request("The request body is not JSON."),
        (None, Ok(request)) => {
            let faults = (flags.without_url, flags.lost_ack, std::mem::take(&mut flags.poll));
            route(&shared, &method, &uri, &headers, request.as_ref(), faults).await
        }
    };

    let mut inner = shared.lock();
    if let Some(rule) = rule.filter(|r| r.fault.needs_a_message() && reply.status == 202) {
        inner.broker.faults.insert(0, rule);
    }
    inner.broker.requests.push(RecordedRequest {
        method: method.as_str().to_uppercase(),
        path: recorded_path.clone(),
        headers: request_headers,
    });
    inner.broker.exchanges.push(Exchange {
        method: method.as_str().to_uppercase(),
        path: recorded_path,
        request_body: parsed.unwrap_or(None),
        status: reply.status,
        response_body: reply.body.clone(),
    });
    drop(inner);
    respond(reply, flags.bom)
}

fn respond(reply: Reply, bom: bool) -> Response {
    let body = match &reply.body {
        Some(b) if bom => Body::from(format!("\u{feff}{b}")),
        Some(b) => Body::from(b.to_string()),
        None => Body::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    if reply.body.is_some() {
        h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
    }
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        h.insert("activityid", v);
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    response
}

/// Which token a route takes.
enum Auth {
    Admin,
    Queue,
}

/// `faults`: a session without `messageQueueUrl`, a lost ack, the poll's faults.
async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&Value>,
    faults: (bool, bool, messages::PollFaults),
) -> Reply {
    let (without_url, lost_ack, poll) = faults;
    let now = Instant::now();
    let base_url = shared.lock().broker.base_url.clone();
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let q = params(uri.query());
    let m = method.as_str();

    let rest = match segments.as_slice() {
        ["actions", "runner-registration"] | ["api", "v3", "actions", "runner-registration"] if m == "POST" => {
            let mut inner = shared.lock();
            return auth::runner_registration(&mut inner, headers, body, &base_url, now);
        }
        ["tenant", n, rest @ ..] => match n.parse::<usize>() {
            Ok(n) => (n, rest.to_vec()),
            Err(_) => return error::not_found_route(),
        },
        _ => return error::not_found_route(),
    };
    let (tenant, rest) = rest;
    let base = format!("{base_url}/tenant/{tenant}/");

    // The long poll holds without the lock; everything else runs under it.
    if let ["_apis", "runtime", "runnerscalesets", id, "messages"] = rest.as_slice() {
        let Ok(set_id) = id.parse::<u64>() else { return error::not_found_route() };
        if m != "GET" {
            return error::not_found_route();
        }
        return messages::get(
            shared.clone(),
            headers,
            set_id,
            q.get("sessionId").map(String::as_str),
            q.get("lastMessageId").map(String::as_str),
            poll,
        )
        .await;
    }

    let mut guard = shared.lock();
    let inner = &mut *guard;
    if tick(inner, now).queued {
        shared.broker_wake.notify_waiters();
    }
    let Some(scope) = inner.broker.scope_of_tenant(tenant).cloned() else { return error::not_found_route() };
    let auth = match rest.as_slice() {
        ["_apis", "runtime", "runnerscalesets", _, "acquirejobs"] => Auth::Queue,
        ["_apis", "runtime", "runnerscalesets", _, "messages", _] => Auth::Queue,
        _ => Auth::Admin,
    };
    let is_message_delete = matches!(rest.as_slice(), ["_apis", "runtime", "runnerscalesets", _, "messages", _]);
    if !is_message_delete && !q.contains_key("api-version") {
        return error::bad_request("The api-version query parameter is required.");
    }
    if let Auth::Admin = auth {
        if let Err(refused) = inner.broker.tokens.check_admin(auth::bearer(headers), tenant, now) {
            return auth::refusal(refused);
        }
    }
    // A path naming a scale set of this tenant that does not exist is a 404 of its own.
    let set_in_path = match rest.as_slice() {
        ["_apis", "runtime", "runnerscalesets", id, ..] => match id.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return error::not_found_route(),
        },
        _ => None,
    };
    if let Some(id) = set_in_path {
        if inner.broker.sets.get(&id).is_none_or(|s| s.tenant != tenant) {
            return error::set_not_found(id);
        }
    }

    let reply = dispatch(inner, m, &rest, &q, headers, body, &scope, tenant, &base, now, without_url, lost_ack);
    if tick(inner, Instant::now()).queued {
        shared.broker_wake.notify_waiters();
    }
    reply
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    inner: &mut crate::server::Inner,
    m: &str,
    rest: &[&str],
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Option<&Value>,
    scope: &Scope,
    tenant: usize,
    base: &str,
    now: Instant,
    without_url: bool,
    lost_ack: bool,
) -> Reply {
    let id = |s: &str| s.parse::<u64>().unwrap_or_default();
    let query = |k: &str| q.get(k).map(String::as_str);
    match (m, rest) {
        ("GET", ["_apis", "runtime", "runnerscalesets"]) => {
            let group = query("runnerGroupId").and_then(|g| g.parse().ok());
            sets::list(inner, tenant, query("name"), group, base)
        }
        ("POST", ["_apis", "runtime", "runnerscalesets"]) => sets::create(inner, tenant, scope, body, base),
        ("GET", ["_apis", "runtime", "runnerscalesets", s]) => sets::get(inner, id(s), base),
        ("PATCH", ["_apis", "runtime", "runnerscalesets", s]) => sets::update(inner, id(s), scope, body, base),
        ("DELETE", ["_apis", "runtime", "runnerscalesets", s]) => sets::delete(inner, id(s)),
        ("POST", ["_apis", "runtime", "runnerscalesets", s, "sessions"]) => {
            sessions::create(inner, id(s), body, base, now, !without_url)
        }
        ("PATCH", ["_apis", "runtime", "runnerscalesets", s, "sessions", sid]) => {
            sessions::refresh(inner, id(s), sid, base, now, !without_url)
        }
        ("DELETE", ["_apis", "runtime", "runnerscalesets", s, "sessions", sid]) => {
            sessions::delete(inner, id(s), sid, now)
        }
        ("POST", ["_apis", "runtime", "runnerscalesets", s, "acquirejobs"]) => {
            let set_id = id(s);
            if let Err(reply) = messages::authorize_token(inner, headers, set_id, now) {
                return reply;
            }
            let Some(ids) =
                body.and_then(Value::as_array).and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>())
            else {
                return error::bad_request("The body must be a JSON array of runner request ids.");
            };
            let acquired = acquire::acquire(inner, set_id, &ids, now);
            Reply::json(200, json!({"count": acquired.len(), "value": acquired}))
        }
        ("GET", ["_apis", "runtime", "runnerscalesets", s, "acquirablejobs"]) => {
            let value = acquire::acquirable(inner, id(s));
            if value.is_empty() {
                Reply::empty(204)
            } else {
                Reply::json(200, json!({"count": value.len(), "value": value}))
            }
        }
        ("POST", ["_apis", "runtime", "runnerscalesets", s, "generatejitconfig"]) => {
            runners::generate_jit(inner, id(s), scope, body, base)
        }
        ("DELETE", ["_apis", "runtime", "runnerscalesets", s, "messages", mid]) => {
            messages::delete(inner, headers, id(s), query("sessionId"), mid, lost_ack, now)
        }
        ("GET", ["_apis", "runtime", "runnergroups"]) => sets::runner_groups(inner, scope, query("groupName")),
        ("GET", ["_apis", "distributedtask", "pools", "0", "agents"]) => {
            runners::by_name(inner, scope, query("agentName"))
        }
        ("GET", ["_apis", "distributedtask", "pools", "0", "agents", r]) => match r.parse() {
            Ok(r) => runners::get(inner, scope, r),
            Err(_) => error::not_found_route(),
        },
        ("DELETE", ["_apis", "distributedtask", "pools", "0", "agents", r]) => match r.parse() {
            Ok(r) => runners::remove(inner, scope, r),
            Err(_) => error::not_found_route(),
        },
        _ => error::not_found_route(),
    }
}
