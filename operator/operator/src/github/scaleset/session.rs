//! The message session (PROTOCOL.md §6–§8): open (A7), refresh (A8), close (A9), the
//! long poll (M1), acknowledgements (M2) and job acquisition (A10).
//!
//! - A session is accepted only with a `sessionId`, a `messageQueueUrl`, a
//!   `messageQueueAccessToken` and `statistics` (§6.1: during a broker incident a
//!   create "succeeded" without a queue URL); otherwise the answer is invalid, which
//!   the caller treats as transient.
//! - The queue URL is opaque: M1 adds `lastMessageId` to its query (only when > 0),
//!   M2 appends `/{id}` to its path and keeps its query.
//! - M1, M2 and A10 use the message-queue token (A10 although it sits on the admin
//!   URL). A 401 on them refreshes the session once (A8) and repeats the call once; a
//!   second 401 is `Unauthorized`. A refresh answered 404 means the broker evicted
//!   the session: `SessionGone` (SS#123), and the session is dropped.
//! - A 404 on the queue itself is also `SessionGone`: the queue belongs to the
//!   session, and opening a new one is what tells whether the scale set still exists.

use reqwest::{
    header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT},
    Method, RequestBuilder, Url,
};
use tracing::{debug, warn};

use super::{
    errors::SCALE_SET_NOT_FOUND,
    transport::{self, Answer, Policy},
    wire::{self, CreateSession, List},
    Endpoint, ScaleSetClient,
};
use crate::ports::{ActionsError, Message, SecretValue, Statistics};

/// What SS sends as the id of a session it has not got yet.
const NIL_SESSION: &str = "00000000-0000-0000-0000-000000000000";

/// The session this client holds.
#[derive(Clone)]
pub struct Session {
    pub scale_set_id: u64,
    pub id: String,
    pub queue_url: Url,
    pub token: SecretValue,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("scale_set_id", &self.scale_set_id)
            .field("id", &self.id)
            .field("queue_url", &transport::target(&self.queue_url))
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A session answer (A7, A8) checked for everything the protocol needs.
pub fn validate(scale_set_id: u64, body: &[u8]) -> Result<(Session, Statistics), ActionsError> {
    let invalid = |what: &str| ActionsError::InvalidAnswer(format!("{what} in the session"));
    let s: wire::Session =
        wire::decode(body).map_err(|e| ActionsError::InvalidAnswer(format!("a readable session ({e})")))?;
    let id = s.session_id.filter(|id| !id.is_empty() && id != NIL_SESSION).ok_or_else(|| invalid("a sessionId"))?;
    let queue_url = s
        .message_queue_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .ok_or_else(|| invalid("an http(s) messageQueueUrl"))?;
    let token =
        s.message_queue_access_token.filter(|t| !t.is_empty()).ok_or_else(|| invalid("a messageQueueAccessToken"))?;
    let statistics = s.statistics.ok_or_else(|| invalid("statistics"))?.to_port().map_err(|e| invalid(&e))?;
    Ok((Session { scale_set_id, id, queue_url, token: SecretValue::new(token) }, statistics))
}

pub fn bearer(token: &SecretValue) -> Result<HeaderValue, ActionsError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| ActionsError::InvalidAnswer("a token usable in a header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// M1's URL: the queue URL with `lastMessageId` added when > 0 (§7.1).
pub fn poll_url(queue: &Url, last_message_id: i64) -> Url {
    let mut url = queue.clone();
    if last_message_id > 0 {
        url.query_pairs_mut().append_pair("lastMessageId", &last_message_id.to_string());
    }
    url
}

/// M2's URL: `/{id}` appended to the queue URL's path, its query kept (§7.5).
pub fn ack_url(queue: &Url, message_id: i64) -> Result<Url, ActionsError> {
    let mut url = queue.clone();
    url.path_segments_mut()
        .map_err(|()| ActionsError::InvalidAnswer("a message queue URL with a path".into()))?
        .pop_if_empty()
        .push(&message_id.to_string());
    Ok(url)
}

impl ScaleSetClient {
    fn held_session(&self) -> Option<Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_session(&self, session: Option<Session>) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = session;
    }

    /// Drops the held session if it is still `id` (a concurrent open may have
    /// replaced it).
    fn forget_session(&self, id: &str) {
        let mut held = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_ref().is_some_and(|s| s.id == id) {
            *held = None;
        }
    }

    /// A7. A session this client still holds is closed first: left open, it would
    /// answer this create with a 409 of our own making.
    pub(super) async fn open(&self, scale_set_id: u64, owner: &str) -> Result<Statistics, ActionsError> {
        if self.held_session().is_some() {
            if let Err(e) = self.close().await {
                warn!(error = %crate::report::Chain(&e), "closing the previous message session failed; opening a new one anyway");
                self.set_session(None);
            }
        }
        self.learn_scale_set(scale_set_id);
        let body = serde_json::to_vec(&CreateSession { owner_name: owner })
            .map_err(|e| ActionsError::Transport(Box::new(e)))?;
        let path = format!("_apis/runtime/runnerscalesets/{scale_set_id}/sessions");
        // Not repeated after a lost answer: the session it opened would refuse the repeat with 409.
        let answer =
            self.admin_call(Endpoint::CreateSession, Method::POST, &path, &[], Some(body), Policy::ONCE).await?;
        match answer.status {
            200..=299 => {
                let (session, statistics) = validate(scale_set_id, &answer.body)?;
                debug!(scale_set_id, session_id = %session.id, "message session opened");
                self.set_session(Some(session));
                Ok(statistics)
            }
            // The only 409 and 404 this call is known to give (§6.1), whatever the body says.
            409 => Err(ActionsError::SessionConflict),
            404 => Err(ActionsError::ScaleSetNotFound),
            _ => Err(answer.refusal().into_error()),
        }
    }

    /// A9 with the admin token; 400 (`RunnerScaleSetSessionExpiredException`) and 404
    /// mean the session is already gone (§6.3).
    pub(super) async fn close(&self) -> Result<(), ActionsError> {
        let Some(session) = self.held_session() else { return Ok(()) };
        let path = format!("_apis/runtime/runnerscalesets/{}/sessions/{}", session.scale_set_id, session.id);
        let answer =
            self.admin_call(Endpoint::DeleteSession, Method::DELETE, &path, &[], None, Policy::REPEATABLE).await?;
        match answer.status {
            200..=299 | 400 | 404 => {
                debug!(session_id = %session.id, status = answer.status, "message session closed");
                self.forget_session(&session.id);
                Ok(())
            }
            _ => Err(answer.refusal().into_error()),
        }
    }

    /// A8 on the held session, asked for its statistics (the listener after a quiet
    /// spell): a refresh returns the whole session, counters included (§6.2).
    pub(super) async fn refresh_statistics(&self) -> Result<Statistics, ActionsError> {
        let session = self.held_session().ok_or(ActionsError::SessionGone)?;
        self.refresh_to(&session).await
    }

    /// A8, unless another call already replaced `expired`'s token.
    async fn refresh(&self, expired: &Session) -> Result<(), ActionsError> {
        match self.held_session() {
            Some(current) if current.id == expired.id && current.token == expired.token => {}
            Some(_) => return Ok(()),
            None => return Err(ActionsError::SessionGone),
        }
        self.refresh_to(expired).await.map(|_| ())
    }

    /// A8: the session with a new token replaces `expired`; its statistics are returned.
    async fn refresh_to(&self, expired: &Session) -> Result<Statistics, ActionsError> {
        let path = format!("_apis/runtime/runnerscalesets/{}/sessions/{}", expired.scale_set_id, expired.id);
        let result = async {
            let answer =
                self.admin_call(Endpoint::RefreshSession, Method::PATCH, &path, &[], None, Policy::REPEATABLE).await?;
            match answer.status {
                200..=299 => {
                    let (fresh, statistics) = validate(expired.scale_set_id, &answer.body)?;
                    debug!(session_id = %fresh.id, "message session refreshed");
                    self.set_session(Some(fresh));
                    Ok(statistics)
                }
                404 => {
                    self.forget_session(&expired.id);
                    Err(ActionsError::SessionGone)
                }
                _ => Err(answer.refusal().into_error()),
            }
        }
        .await;
        self.observer.finished(Endpoint::RefreshSession, &result);
        result
    }

    /// A call with the message-queue token; a 401 refreshes the session and repeats
    /// the call once.
    async fn queue_call(
        &self,
        endpoint: Endpoint,
        policy: Policy,
        build: impl Fn(&reqwest::Client, &Session, HeaderValue) -> Result<RequestBuilder, ActionsError>,
    ) -> Result<Answer, ActionsError> {
        let mut refreshed = false;
        loop {
            let session = self.held_session().ok_or(ActionsError::SessionGone)?;
            let authorization = bearer(&session.token)?;
            let answer =
                transport::send(&self.http, &self.settings.retry(), &self.observer, endpoint, policy, |http| {
                    build(http, &session, authorization.clone())
                })
                .await?;
            if answer.status != 401 {
                return Ok(answer);
            }
            if refreshed {
                return Err(ActionsError::Unauthorized);
            }
            debug!(endpoint = endpoint.as_str(), "the message-queue token was refused; refreshing the session");
            self.refresh(&session).await?;
            refreshed = true;
        }
    }

    /// M1.
    pub(super) async fn poll(&self, last_message_id: i64, max_capacity: u32) -> Result<Option<Message>, ActionsError> {
        let timeout = self.settings.poll_timeout;
        // A poll that hung is not repeated inside the call: the caller's watchdog
        // decides (a repeat could hold it for another `poll_timeout`).
        let answer = self
            .queue_call(Endpoint::GetMessage, Policy::ONCE, |http, session, authorization| {
                Ok(http
                    .get(poll_url(&session.queue_url, last_message_id))
                    .timeout(timeout)
                    .header(ACCEPT, "application/json; api-version=6.0-preview")
                    .header(AUTHORIZATION, authorization)
                    .header(USER_AGENT, self.user_agent())
                    .header("X-ScaleSetMaxCapacity", max_capacity.to_string()))
            })
            .await?;
        match answer.status {
            202 => Ok(None),
            200 => {
                let message = wire::parse_message(&answer.body).map_err(ActionsError::InvalidAnswer)?;
                if let Err(reason) = &message.jobs {
                    // The caller logs it (once) when it skips the jobs.
                    debug!(message_id = message.id, reason = %reason, "a message's jobs could not be read");
                }
                Ok(Some(message))
            }
            404 => {
                let refusal = answer.refusal();
                if refusal.is(SCALE_SET_NOT_FOUND) {
                    return Err(ActionsError::ScaleSetNotFound);
                }
                if let Some(held) = self.held_session() {
                    self.forget_session(&held.id);
                }
                Err(ActionsError::SessionGone)
            }
            _ => Err(answer.refusal().into_error()),
        }
    }

    /// M2. A 404 means the message is no longer there, which is what was asked (a
    /// repeat after a lost answer sees it); a gone session shows on the next poll.
    pub(super) async fn delete_message(&self, message_id: i64) -> Result<(), ActionsError> {
        let answer = self
            .queue_call(Endpoint::DeleteMessage, Policy::REPEATABLE, |http, session, authorization| {
                Ok(http
                    .delete(ack_url(&session.queue_url, message_id)?)
                    .header(CONTENT_TYPE, "application/json")
                    .header(AUTHORIZATION, authorization)
                    .header(USER_AGENT, self.user_agent()))
            })
            .await?;
        match answer.status {
            200..=299 | 404 => Ok(()),
            _ => Err(answer.refusal().into_error()),
        }
    }

    /// A10: on the admin URL, with the message-queue token (§8).
    pub(super) async fn acquire(&self, scale_set_id: u64, request_ids: &[i64]) -> Result<Vec<i64>, ActionsError> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Only the base URL is needed (the token is the queue's): a held admin
        // connection serves even when its token is due or expired.
        let held = self.admin.lock().await.as_ref().map(|a| a.base.clone());
        let base = match held {
            Some(base) => base,
            None => self.admin(false).await?.base,
        };
        let url = Self::admin_url(&base, &format!("_apis/runtime/runnerscalesets/{scale_set_id}/acquirejobs"), &[])?;
        let body = serde_json::to_vec(request_ids).map_err(|e| ActionsError::Transport(Box::new(e)))?;
        let answer = self
            .queue_call(Endpoint::AcquireJobs, Policy::REPEATABLE, |http, _, authorization| {
                Ok(http
                    .post(url.clone())
                    .header(AUTHORIZATION, authorization)
                    .header(CONTENT_TYPE, "application/json")
                    .header(USER_AGENT, self.user_agent())
                    .body(body.clone()))
            })
            .await?;
        match answer.status {
            200 => {
                let acquired: List<i64> = super::decode(&answer.body, "a list of acquired jobs")?;
                if acquired.value.len() < request_ids.len() {
                    debug!(
                        asked = request_ids.len(),
                        acquired = acquired.value.len(),
                        "fewer jobs acquired than offered"
                    );
                }
                Ok(acquired.value)
            }
            _ => Err(answer.refusal().into_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_url_is_opaque_its_query_kept() {
        let queue = Url::parse("https://broker.example/scalesets/message?sessionId=abc&x=1").unwrap();
        assert_eq!(poll_url(&queue, 0).as_str(), "https://broker.example/scalesets/message?sessionId=abc&x=1");
        assert_eq!(
            poll_url(&queue, 100_000_171).as_str(),
            "https://broker.example/scalesets/message?sessionId=abc&x=1&lastMessageId=100000171"
        );
        assert_eq!(
            ack_url(&queue, 41).unwrap().as_str(),
            "https://broker.example/scalesets/message/41?sessionId=abc&x=1"
        );
        let slash = Url::parse("http://127.0.0.1:9/tenant/1/queue/").unwrap();
        assert_eq!(ack_url(&slash, 7).unwrap().as_str(), "http://127.0.0.1:9/tenant/1/queue/7");
    }

    #[test]
    fn a_session_needs_an_id_a_queue_a_token_and_statistics() {
        let full = r#"{"sessionId":"4fd0ffb0-d365-4dae-99ff-8dae173984f9","ownerName":"h","messageQueueUrl":"http://127.0.0.1/q","messageQueueAccessToken":"t.t.t","statistics":{"totalAssignedJobs":3}}"#;
        let (session, stats) = validate(7, full.as_bytes()).unwrap();
        assert_eq!(
            (session.scale_set_id, session.id.as_str(), stats.assigned_jobs),
            (7, "4fd0ffb0-d365-4dae-99ff-8dae173984f9", 3)
        );
        assert!(!format!("{session:?}").contains("t.t.t"));
        for (broken, lacks) in [
            (full.replace("4fd0ffb0-d365-4dae-99ff-8dae173984f9", NIL_SESSION), "sessionId"),
            (full.replace("http://127.0.0.1/q", ""), "messageQueueUrl"),
            (full.replace("\"t.t.t\"", "\"\""), "messageQueueAccessToken"),
            (full.replace(r#","statistics":{"totalAssignedJobs":3}"#, ""), "statistics"),
        ] {
            let err = validate(7, broken.as_bytes()).unwrap_err();
            assert!(matches!(&err, ActionsError::InvalidAnswer(m) if m.contains(lacks)), "{lacks}: {err:?}");
        }
        // ARC-legacy's verbatim fixture lacks the id and the statistics.
        let fixture = br#"{"ownerName":"foo","runnerScaleSet":{"id":1,"name":"ScaleSet"},"messageQueueUrl":"http://fake.actions.github.com/123","messageQueueAccessToken":"fake.jwt.here"}"#;
        assert!(validate(1, fixture).is_err());
        assert!(matches!(validate(1, b""), Err(ActionsError::InvalidAnswer(_))));
    }
}
