//! Non-success answers of the scale set API, read and mapped to [`ActionsError`]
//! (PROTOCOL.md §2.5, §10).
//!
//! The service is .NET: its error bodies are `{"typeName","message"}` with an
//! assembly-qualified type name (`GitHub.Actions.Runtime.WebApi.XException,
//! GitHub.Actions.Runtime.WebApi`), so exceptions are recognised by substring, never by
//! equality. A `text/plain` body is the message itself. The `ActivityId` response
//! header, which GitHub support asks for, is kept in the error's message so it
//! reaches the log with the chain.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use time::{format_description::well_known::Rfc2822, OffsetDateTime};

use super::wire::{self, ErrorBody};
use crate::ports::ActionsError;

/// Exception names (the part that matters of `typeName`).
pub const SESSION_CONFLICT: &str = "RunnerScaleSetSessionConflictException";
pub const SCALE_SET_NOT_FOUND: &str = "RunnerScaleSetNotFoundException";
pub const AGENT_EXISTS: &str = "AgentExistsException";
pub const JOB_STILL_RUNNING: &str = "JobStillRunningException";

/// At most this much of a plain-text error body is kept.
const MAX_MESSAGE: usize = 300;

/// A refused or failed request, as the service described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// `typeName` up to its first comma (the assembly name is noise); empty if none.
    pub type_name: String,
    pub message: String,
    pub activity_id: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    pub fn read(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).map(str::to_owned);
        let plain = header(CONTENT_TYPE.as_str()).is_some_and(|t| t.to_ascii_lowercase().contains("text/plain"));
        let body = wire::strip_bom(body);
        let (type_name, message) = if body.iter().all(u8::is_ascii_whitespace) {
            (String::new(), "unknown error".to_owned())
        } else if plain {
            (String::new(), truncate(String::from_utf8_lossy(body).trim()))
        } else {
            match wire::decode::<ErrorBody>(body) {
                Ok(ErrorBody { type_name, message }) => (
                    type_name.unwrap_or_default().split(',').next().unwrap_or_default().trim().to_owned(),
                    truncate(message.as_deref().unwrap_or_default().trim()),
                ),
                Err(_) => (String::new(), format!("an unreadable error body of {} bytes", body.len())),
            }
        };
        Self {
            status,
            type_name,
            message,
            activity_id: header("activityid").filter(|v| !v.is_empty()),
            retry_after: header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(&v, OffsetDateTime::now_utc())),
        }
    }

    /// Whether the service named this exception.
    pub fn is(&self, exception: &str) -> bool {
        self.type_name.contains(exception)
    }

    /// The mapping every endpoint shares; endpoints with their own meaning of a
    /// status (a 404 on A2, a 400 on A15, …) decide before calling this.
    pub fn into_error(self) -> ActionsError {
        match self.status {
            404 if self.is(SCALE_SET_NOT_FOUND) => ActionsError::ScaleSetNotFound,
            409 if self.is(SESSION_CONFLICT) => ActionsError::SessionConflict,
            401 | 403 => ActionsError::Unauthorized,
            429 | 503 => ActionsError::Throttled { retry_after: self.retry_after },
            _ => self.server(),
        }
    }

    /// The catch-all variant, with the activity id appended for support requests.
    pub fn server(self) -> ActionsError {
        let message = match &self.activity_id {
            Some(id) => format!("{} (ActivityId {id})", self.message),
            None => self.message,
        };
        ActionsError::Server { status: self.status, type_name: self.type_name, message }
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `Retry-After` as seconds or an HTTP date (§2.6); a date in the past is zero.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use time::macros::datetime;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn assembly_qualified_type_names_are_matched_by_their_short_name() {
        // ARC#4285's 409 body.
        let body = br#"{"typeName":"GitHub.Actions.Runtime.WebApi.RunnerScaleSetSessionConflictException, GitHub.Actions.Runtime.WebApi","message":"The actions runner scaleset dev already has an active session."}"#;
        let r = Refusal::read(409, &headers(&[("ActivityId", "a-1")]), body);
        assert_eq!(r.type_name, "GitHub.Actions.Runtime.WebApi.RunnerScaleSetSessionConflictException");
        assert!(r.is(SESSION_CONFLICT));
        assert!(matches!(r.into_error(), ActionsError::SessionConflict));
        let gone =
            Refusal::read(404, &HeaderMap::new(), br#"{"typeName":"RunnerScaleSetNotFoundException","message":"x"}"#);
        assert!(matches!(gone.into_error(), ActionsError::ScaleSetNotFound));
    }

    #[test]
    fn the_verbatim_fixtures_map_to_server_errors_with_their_activity_id() {
        let body = br#"{"typeName": "CSharpExceptionNameHere","message": "could not do something"}"#;
        let err = Refusal::read(400, &headers(&[("activityid", "7e1")]), body).into_error();
        let ActionsError::Server { status, type_name, message } = err else { panic!("{err:?}") };
        assert_eq!((status, type_name.as_str()), (400, "CSharpExceptionNameHere"));
        assert_eq!(message, "could not do something (ActivityId 7e1)");
        let r = Refusal::read(
            400,
            &HeaderMap::new(),
            br#"{"typeName":"JobStillRunningException","message":"still running"}"#,
        );
        assert!(r.is(JOB_STILL_RUNNING));
    }

    #[test]
    fn plain_text_empty_and_unreadable_bodies() {
        let plain =
            Refusal::read(401, &headers(&[("content-type", "text/plain; charset=utf-8")]), b"Session expired\n");
        assert_eq!(plain.message, "Session expired");
        assert!(matches!(plain.into_error(), ActionsError::Unauthorized));
        assert_eq!(Refusal::read(404, &HeaderMap::new(), b"").message, "unknown error");
        let html = Refusal::read(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(html.message, "an unreadable error body of 24 bytes");
        let long = "x".repeat(1000);
        let r = Refusal::read(500, &headers(&[("content-type", "text/plain")]), long.as_bytes());
        assert_eq!(r.message.chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn throttling_carries_retry_after_in_seconds_or_as_a_date() {
        let r = Refusal::read(429, &headers(&[("retry-after", "7")]), b"");
        assert!(
            matches!(r.into_error(), ActionsError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(7))
        );
        let r = Refusal::read(503, &HeaderMap::new(), b"");
        assert!(matches!(r.into_error(), ActionsError::Throttled { retry_after: None }));
        let now = datetime!(1994-11-06 08:49:30 UTC);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
