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
        }
    }
}

/// How loudly a failed request is logged. ERROR is for faults of the operator or its
/// dependencies; a refusal the caller is expected to meet in normal operation (retry
/// shortly, asked twice, being recycled) is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loudness {
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
            Self::Hook(HookError::UnknownInstance { .. } | HookError::JobMismatch { .. }) | Self::BadBody(_) => {
                Loudness::Warn
            }
            Self::Hook(
                HookError::RegistrationFailed(_) | HookError::BusyRecordFailed(_) | HookError::CloudUnavailable(_),
            ) => Loudness::Error,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let cause = Chain(&self);
        let status_code = status.as_u16();
        match self.loudness() {
            Loudness::Debug => tracing::debug!(status = status_code, code, cause = %cause, "request refused"),
            Loudness::Info => tracing::info!(status = status_code, code, cause = %cause, "request refused"),
            Loudness::Warn => tracing::warn!(status = status_code, code, cause = %cause, "request refused"),
            Loudness::Error => tracing::error!(status = status_code, code, cause = %cause, "request failed"),
        }
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: self.public_message() } };
        (status, Json(body)).into_response()
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
