//! The API's one error shape. Every 4xx/5xx body is
//! `{"error": {"code": "...", "message": "..."}}`; the cause chain is logged once,
//! here, inside the request's span, and never sent to the caller.

use axum::{
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{controller::HookError, report::Chain};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("request body rejected")]
    BadBody(#[from] JsonRejection),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the request body does not match the schema")]
    InvalidBody(#[source] serde_json::Error),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("repository {repository:?} is outside the pool's scope ({scope})")]
    OutOfScope { repository: String, scope: String },
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request target is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request body did not arrive within {0:?}")]
    BodyTimedOut(std::time::Duration),
    #[error("reading the request body failed")]
    BodyReadFailed(#[source] axum::Error),
    #[error("the request was not answered within {0:?}; it goes on in the background, retry shortly")]
    TimedOut(std::time::Duration),
    #[error("the request handler failed")]
    HandlerFailed(#[source] tokio::task::JoinError),
}

/// Error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_instance`, `already_registered`, `invalid_body`.
    #[schema(example = "unknown_instance")]
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Hook(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, e.kind())
            }
            Self::BadBody(rejection) => {
                let code = match rejection {
                    JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
                    JsonRejection::JsonSyntaxError(_) => "malformed_json",
                    JsonRejection::JsonDataError(_) => "invalid_body",
                    JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        "body_too_large"
                    }
                    _ => "bad_request",
                };
                (rejection.status(), code)
            }
            Self::NotAnObject | Self::InvalidBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            Self::InvalidField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::OutOfScope { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "out_of_scope"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::HeadersTooLarge { .. } => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"),
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::BodyTimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::BodyReadFailed(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::TimedOut(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed_out"),
            Self::HandlerFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The message sent to the caller: what they can act on, without internals.
    fn public_message(&self) -> String {
        match self {
            Self::Hook(HookError::RegistrationFailed(_)) => "GitHub did not issue a registration; retry later".into(),
            Self::Hook(HookError::BusyRecordFailed(_)) => "the busy record is unavailable; retry later".into(),
            Self::Hook(HookError::CloudUnavailable(_)) => "the scale set could not be read; retry later".into(),
            Self::Hook(e) => e.to_string(),
            Self::BadBody(rejection) => rejection.body_text(),
            Self::InvalidBody(e) => format!("the request body does not match the schema: {e}"),
            Self::HandlerFailed(_) => "the operator failed to answer".into(),
            e => e.to_string(),
        }
    }
}

/// How loudly a failed request is logged. ERROR is for faults of the operator or its
/// dependencies; a refusal the caller is expected to meet in normal operation (retry
/// shortly, asked twice, being recycled) is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loudness {
    /// Expected while a VM waits (a reimage not yet confirmed): the VM asks again.
    Debug,
    /// Expected traffic: recovering, a repeated registration, a hook for a VM being recycled.
    Info,
    /// A refusal worth a look: an unknown caller, a job that does not match, a malformed body.
    Warn,
    /// The operator or a dependency failed.
    Error,
}

impl ApiError {
    fn loudness(&self) -> Loudness {
        match self {
            Self::Hook(HookError::NotReadyYet { .. }) => Loudness::Debug,
            Self::Hook(HookError::Recovering | HookError::AlreadyRegistered { .. } | HookError::WrongState { .. }) => {
                Loudness::Info
            }
            Self::Hook(
                HookError::UnknownInstance { .. }
                | HookError::JobMismatch { .. }
                | HookError::RunnerBusyAtGithub { .. },
            )
            | Self::BadBody(_)
            | Self::NotAnObject
            | Self::InvalidBody(_)
            | Self::InvalidField { .. }
            | Self::OutOfScope { .. }
            | Self::NotFound
            | Self::MethodNotAllowed
            | Self::UriTooLong { .. }
            | Self::HeadersTooLarge { .. }
            | Self::BodyTooLarge { .. }
            | Self::BodyTimedOut(_)
            | Self::BodyReadFailed(_) => Loudness::Warn,
            Self::Hook(
                HookError::RegistrationFailed(_) | HookError::BusyRecordFailed(_) | HookError::CloudUnavailable(_),
            )
            | Self::TimedOut(_)
            | Self::HandlerFailed(_) => Loudness::Error,
        }
    }
}

/// What a refused request's one log line says, handed by [`ApiError`] to the request guard
/// (`api/guard.rs`) on the response: the guard knows the caller's address, counts the
/// refusal and writes the line, at most once per source and code per interval.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub loudness: Loudness,
    /// The whole cause chain, redacted ([`Chain`]).
    pub cause: String,
}

impl Refusal {
    /// Writes the line, in the current (request) span.
    pub fn log(&self, source: Option<std::net::IpAddr>, left_out: u64) {
        let (status, code, cause) = (self.status, self.code, self.cause.as_str());
        let source = source.map(|ip| ip.to_string());
        let source = source.as_deref().unwrap_or("-");
        match self.loudness {
            Loudness::Debug => tracing::debug!(status, code, source, left_out, cause, "request refused"),
            Loudness::Info => tracing::info!(status, code, source, left_out, cause, "request refused"),
            Loudness::Warn => tracing::warn!(status, code, source, left_out, cause, "request refused"),
            Loudness::Error => tracing::error!(status, code, source, left_out, cause, "request failed"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let refusal =
            Refusal { status: status.as_u16(), code, loudness: self.loudness(), cause: Chain(&self).to_string() };
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: self.public_message() } };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(refusal);
        response
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{InstanceId, InstanceState};

    #[test]
    fn expected_refusals_are_not_logged_as_errors() {
        let instance = InstanceId::new("3");
        let not_ready =
            ApiError::Hook(HookError::NotReadyYet { instance: instance.clone(), state: InstanceState::Reimaging });
        assert_eq!(not_ready.loudness(), Loudness::Debug);
        assert_eq!(ApiError::Hook(HookError::Recovering).loudness(), Loudness::Info);
        assert_eq!(ApiError::Hook(HookError::AlreadyRegistered { instance }).loudness(), Loudness::Info);
        let stranger = ApiError::Hook(HookError::UnknownInstance { ip: Ipv4Addr::LOCALHOST.into() });
        assert_eq!(stranger.loudness(), Loudness::Warn);
    }

    #[test]
    fn dependency_failures_are_errors_and_answer_5xx() {
        let busy =
            ApiError::Hook(HookError::BusyRecordFailed(crate::ports::BusyRecordError::LoadFailed("queue down".into())));
        assert_eq!(busy.loudness(), Loudness::Error);
        assert!(busy.status_and_code().0.is_server_error());
    }
}
