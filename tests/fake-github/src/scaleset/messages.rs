//! The message queue of a scale set (M1/M2, PROTOCOL.md §7): job messages wait in `pending`
//! until a poll packs up to 50 of them into a message with the next id; the message stays
//! until acknowledged, and a poll returns the oldest unacknowledged one above its
//! `lastMessageId`. `statistics` are computed when a message is answered, never stored.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use axum::http::HeaderMap;
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::{auth, error, http::Reply, stats, tick};
use crate::server::{Inner, Shared};

/// At most this many job messages travel in one message (SS README).
pub(crate) const BATCH: usize = 50;

pub(crate) struct Queue {
    next_id: i64,
    pending: VecDeque<Value>,
    unacked: BTreeMap<i64, Vec<Value>>,
    /// A message the next poll delivers again, whatever its `lastMessageId` (fault).
    redeliver: Option<(i64, Vec<Value>)>,
}

impl Queue {
    pub fn starting_at(first_id: i64) -> Self {
        Self { next_id: first_id, pending: VecDeque::new(), unacked: BTreeMap::new(), redeliver: None }
    }

    /// The message a poll with `last_id` gets, making a new one from pending job messages
    /// when no stored one qualifies.
    fn take(&mut self, last_id: i64) -> Option<(i64, Vec<Value>)> {
        if let Some(again) = self.redeliver.take() {
            return Some(again);
        }
        if let Some((id, body)) = self.unacked.range(last_id.saturating_add(1)..).next() {
            return Some((*id, body.clone()));
        }
        if self.pending.is_empty() {
            return None;
        }
        let take = self.pending.len().min(BATCH);
        let body: Vec<Value> = self.pending.drain(..take).collect();
        let id = self.next_id;
        self.next_id += 1;
        self.unacked.insert(id, body.clone());
        // A client whose lastMessageId is from an older set (ids restart with a recreated set)
        // does not see it: the message waits for a poll from a lower id (GARM#506).
        (id > last_id).then_some((id, body))
    }

    pub fn unacked_ids(&self) -> Vec<i64> {
        self.unacked.keys().copied().collect()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// Queues a job message for the set's listener (dropped if the set is gone).
pub(crate) fn emit(inner: &mut Inner, set_id: u64, message: Value) {
    if let Some(set) = inner.broker.sets.get_mut(&set_id) {
        set.queue.pending.push_back(message);
        inner.broker.events_emitted += 1;
    }
}

fn message_json(inner: &mut Inner, set_id: u64, id: i64, body: &[Value]) -> Value {
    json!({
        "messageId": id,
        "messageType": "RunnerScaleSetJobMessages",
        "body": Value::Array(body.to_vec()).to_string(),
        "statistics": stats::statistics(inner, set_id),
    })
}

/// Checks a message-queue token (GetMessage, DeleteMessage, `acquirejobs`): live, of the
/// path's set, of the set's current session. Returns the session.
pub(crate) fn authorize_token(inner: &Inner, headers: &HeaderMap, set_id: u64, now: Instant) -> Result<Uuid, Reply> {
    let (token_set, session_id) = inner.broker.tokens.check_queue(auth::bearer(headers), now).map_err(auth::refusal)?;
    if token_set != set_id {
        return Err(auth::refusal(auth::Refused::Unknown));
    }
    if !inner.broker.sets.contains_key(&set_id) {
        return Err(error::set_not_found(set_id));
    }
    // A token of a session that expired or was evicted no longer opens the queue.
    match inner.broker.sessions.get(&set_id) {
        Some(s) if s.id == session_id => Ok(session_id),
        _ => Err(error::unauthorized("The message session has expired.")),
    }
}

/// [`authorize_token`], and the `sessionId` of the URL must be the token's session: clients
/// must keep the query of `messageQueueUrl` (§7.5).
pub(crate) fn authorize(
    inner: &Inner,
    headers: &HeaderMap,
    set_id: u64,
    session_query: Option<&str>,
    now: Instant,
) -> Result<Uuid, Reply> {
    let session_id = authorize_token(inner, headers, set_id, now)?;
    if !session_query.is_some_and(|q| q.eq_ignore_ascii_case(&session_id.to_string())) {
        return Err(error::bad_request("The sessionId of the message queue URL is missing or wrong."));
    }
    Ok(session_id)
}

/// Keeps the session busy while a poll holds; ends that even when the client goes away.
struct Holding {
    shared: Arc<Shared>,
    set_id: u64,
    session_id: Uuid,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if let Some(s) = inner.broker.sessions.get_mut(&self.set_id).filter(|s| s.id == self.session_id) {
            s.polls = s.polls.saturating_sub(1);
            s.last_seen = Instant::now();
        }
    }
}

/// Options a fault sets on one poll.
#[derive(Default)]
pub(crate) struct PollFaults {
    pub duplicate: bool,
    pub unauthorized_after: Option<Duration>,
    /// Deliver the message with a `body` that holds no JSON array.
    pub undecodable: bool,
    /// Deliver the message with this `messageType`.
    pub message_type: Option<String>,
}

/// M1 `GET {messageQueueUrl}[&lastMessageId=n]`: the message at once, or a hold of
/// `poll_hold` and 202 with no body. Records `X-ScaleSetMaxCapacity`.
pub(crate) async fn get(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    set_id: u64,
    session_query: Option<&str>,
    last_id: Option<&str>,
    faults: PollFaults,
) -> Reply {
    let now = Instant::now();
    let Ok(last_id) = last_id.map_or(Ok(0), str::parse::<i64>) else {
        return error::bad_request("lastMessageId must be an integer.");
    };
    let capacity = match headers.get("x-scalesetmaxcapacity").map(|v| v.to_str().unwrap_or("").parse::<u32>()) {
        None => None,
        Some(Ok(c)) if c <= i32::MAX as u32 => Some(c),
        Some(_) => return error::bad_request("X-ScaleSetMaxCapacity must be an integer from 0 to 2147483647."),
    };
    let (session_id, hold_until) = {
        let mut inner = shared.lock();
        let session_id = match authorize(&inner, headers, set_id, session_query, now) {
            Ok(session_id) => session_id,
            Err(reply) => return reply,
        };
        if let Some(set) = inner.broker.sets.get_mut(&set_id) {
            if capacity.is_some() {
                set.max_capacity = capacity;
            }
        }
        if let Some(s) = inner.broker.sessions.get_mut(&set_id) {
            s.polls += 1;
            s.last_seen = now;
        }
        (session_id, now + inner.broker.config.poll_hold)
    };
    let _holding = Holding { shared: shared.clone(), set_id, session_id };

    if let Some(after) = faults.unauthorized_after {
        tokio::time::sleep(after).await;
        shared.lock().broker.tokens.expire_queue(set_id, Instant::now());
        return error::unauthorized("The message queue token has expired.");
    }

    loop {
        let wake = shared.broker_wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let next = {
            let mut guard = shared.lock();
            let inner = &mut *guard;
            let now = Instant::now();
            let t = tick(inner, now);
            if t.queued {
                shared.broker_wake.notify_waiters();
            }
            if let Err(reply) = authorize(inner, headers, set_id, session_query, now) {
                return reply;
            }
            let taken = inner.broker.sets.get_mut(&set_id).and_then(|s| s.queue.take(last_id));
            if let Some((id, body)) = taken {
                if faults.duplicate {
                    if let Some(set) = inner.broker.sets.get_mut(&set_id) {
                        set.queue.redeliver = Some((id, body.clone()));
                    }
                }
                let mut message = message_json(inner, set_id, id, &body);
                if faults.undecodable {
                    message["body"] = json!("not json");
                }
                if let Some(kind) = &faults.message_type {
                    message["messageType"] = json!(kind);
                }
                return Reply::json(200, message);
            }
            if now >= hold_until {
                return Reply::empty(202);
            }
            // Wake for whichever comes first: the end of the hold, a timeout inside the service,
            // or the token running out (which answers 401 mid-poll).
            let expiry = inner.broker.tokens.queue_expiry(set_id);
            [Some(hold_until), t.next, expiry].into_iter().flatten().filter(|at| *at > now).min().unwrap_or(hold_until)
        };
        tokio::select! {
            _ = &mut wake => {}
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// M2 `DELETE {messageQueueUrl path}/{messageId}?{query}`: 204. A lost ack answers the same
/// but keeps the message.
pub(crate) fn delete(
    inner: &mut Inner,
    headers: &HeaderMap,
    set_id: u64,
    session_query: Option<&str>,
    message_id: &str,
    lost: bool,
    now: Instant,
) -> Reply {
    if let Err(reply) = authorize(inner, headers, set_id, session_query, now) {
        return reply;
    }
    let Ok(id) = message_id.parse::<i64>() else { return error::bad_request("The message id must be an integer.") };
    if !lost {
        if let Some(set) = inner.broker.sets.get_mut(&set_id) {
            set.queue.unacked.remove(&id);
        }
    }
    Reply::empty(204)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_gets_the_oldest_unacked_message_above_its_last_id() {
        let mut q = Queue::starting_at(1);
        assert_eq!(q.take(0), None);
        q.pending.extend([json!(1), json!(2)]);
        assert_eq!(q.take(0), Some((1, vec![json!(1), json!(2)])));
        assert_eq!(q.take(0), Some((1, vec![json!(1), json!(2)])), "not acknowledged: redelivered");
        assert_eq!(q.take(1), None, "nothing above 1");
        q.pending.push_back(json!(3));
        assert_eq!(q.take(1), Some((2, vec![json!(3)])));
        q.unacked.remove(&1);
        assert_eq!(q.take(0), Some((2, vec![json!(3)])));
        assert_eq!(q.unacked_ids(), vec![2]);
    }

    #[test]
    fn a_message_carries_at_most_fifty_job_messages() {
        let mut q = Queue::starting_at(7);
        q.pending.extend((0..120).map(|i| json!(i)));
        let sizes: Vec<(i64, usize)> =
            [0, 7, 8].iter().map(|last| q.take(*last).map(|(id, b)| (id, b.len())).unwrap()).collect();
        assert_eq!(sizes, vec![(7, 50), (8, 50), (9, 20)]);
    }

    #[test]
    fn a_last_message_id_from_an_older_set_sees_nothing_until_it_restarts_from_zero() {
        let mut q = Queue::starting_at(1);
        q.pending.push_back(json!("assigned"));
        assert_eq!(q.take(41), None);
        assert_eq!(q.take(0), Some((1, vec![json!("assigned")])));
    }
}
