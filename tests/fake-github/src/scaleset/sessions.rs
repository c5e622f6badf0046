//! Message sessions (A7–A9, PROTOCOL.md §6): at most one per scale set; one that no
//! GetMessage touched for `session_idle_timeout` expires, which is what finally clears the
//! 409 a crashed listener leaves behind (§16.1).

use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::{error, http::Reply, sets, stats};
use crate::server::Inner;

pub(crate) struct Session {
    pub id: Uuid,
    pub owner: String,
    pub last_seen: Instant,
    /// GetMessage calls holding right now; a session is never idle while one is.
    pub polls: u32,
}

/// The session as create and refresh return it. `with_url: false` is the degraded answer
/// of ARC#4370 (no `messageQueueUrl`).
fn session_json(inner: &mut Inner, set_id: u64, token: &str, base: &str, with_url: bool) -> Reply {
    let Some(session) = inner.broker.sessions.get(&set_id) else { return error::session_evicted() };
    let (id, owner) = (session.id, session.owner.clone());
    let mut body = json!({
        "sessionId": id.to_string(),
        "ownerName": owner,
        "runnerScaleSet": sets::set_json(inner, set_id, base),
        "messageQueueAccessToken": token,
        "statistics": stats::statistics(inner, set_id),
    });
    if with_url {
        body["messageQueueUrl"] =
            json!(format!("{base}_apis/runtime/runnerscalesets/{set_id}/messages?sessionId={id}"));
    }
    Reply::json(200, body)
}

/// Opens a session for `owner` (also the test control for a stale one); `Err` on conflict.
pub(crate) fn open(inner: &mut Inner, set_id: u64, owner: &str, now: Instant) -> Result<String, Reply> {
    let Some(set) = inner.broker.sets.get(&set_id) else { return Err(error::set_not_found(set_id)) };
    if inner.broker.sessions.contains_key(&set_id) {
        return Err(error::session_conflict(&set.name));
    }
    let id = Uuid::new_v4();
    inner.broker.sessions.insert(set_id, Session { id, owner: owner.to_owned(), last_seen: now, polls: 0 });
    let ttl = inner.broker.config.message_queue_token_ttl;
    Ok(inner.broker.tokens.issue_queue(set_id, id, ttl, now))
}

/// A7 `POST runnerscalesets/{id}/sessions` with `{"ownerName"}`, with or without a zero
/// `sessionId` (SS sends one, ARC ≤ 0.13 did not).
pub(crate) fn create(
    inner: &mut Inner,
    set_id: u64,
    body: Option<&Value>,
    base: &str,
    now: Instant,
    with_url: bool,
) -> Reply {
    let owner = body.and_then(|b| sets::field(b, "ownerName")).and_then(Value::as_str).filter(|o| !o.is_empty());
    let Some(owner) = owner else { return error::bad_request("ownerName is required.") };
    match open(inner, set_id, owner, now) {
        Ok(token) => session_json(inner, set_id, &token, base, with_url),
        Err(reply) => reply,
    }
}

fn matching(inner: &Inner, set_id: u64, session_id: &str) -> bool {
    inner.broker.sessions.get(&set_id).is_some_and(|s| s.id.to_string().eq_ignore_ascii_case(session_id))
}

/// A8 `PATCH …/sessions/{sessionId}`: a new message-queue token, or 404 `RunnerAdminException`
/// when the session is gone (expired or evicted).
pub(crate) fn refresh(
    inner: &mut Inner,
    set_id: u64,
    session_id: &str,
    base: &str,
    now: Instant,
    with_url: bool,
) -> Reply {
    if !matching(inner, set_id, session_id) {
        return error::session_evicted();
    }
    let Some(session) = inner.broker.sessions.get_mut(&set_id) else { return error::session_evicted() };
    session.last_seen = now;
    let id = session.id;
    let ttl = inner.broker.config.message_queue_token_ttl;
    let token = inner.broker.tokens.issue_queue(set_id, id, ttl, now);
    session_json(inner, set_id, &token, base, with_url)
}

/// A9 `DELETE …/sessions/{sessionId}`: 204, or 400 `RunnerScaleSetSessionExpiredException`.
pub(crate) fn delete(inner: &mut Inner, set_id: u64, session_id: &str, now: Instant) -> Reply {
    if !matching(inner, set_id, session_id) {
        return error::session_expired(session_id);
    }
    end(inner, set_id, now);
    Reply::empty(204)
}

/// The session ends (deleted, expired or evicted); the set is idle from now on.
pub(crate) fn end(inner: &mut Inner, set_id: u64, now: Instant) -> bool {
    let ended = inner.broker.sessions.remove(&set_id).is_some();
    if let Some(set) = inner.broker.sets.get_mut(&set_id) {
        if ended {
            set.idle_since = now;
        }
    }
    ended
}

/// Ends the sessions idle for `session_idle_timeout`; returns when the next one would.
pub(crate) fn expire_idle(inner: &mut Inner, now: Instant) -> Option<Instant> {
    let timeout = inner.broker.config.session_idle_timeout;
    let due: Vec<(u64, Instant)> = inner
        .broker
        .sessions
        .iter()
        .filter(|(_, s)| s.polls == 0)
        .map(|(set, s)| (*set, s.last_seen + timeout))
        .collect();
    let mut next: Option<Instant> = None;
    for (set, at) in due {
        if at <= now {
            end(inner, set, now);
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    next
}
