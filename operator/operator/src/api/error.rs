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

use crate::controller::HookError;

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let cause = error_chain(&self);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, cause = %cause, "request failed");
        } else {
            tracing::warn!(status = status.as_u16(), code, cause = %cause, "request refused");
        }
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: self.public_message() } };
        (status, Json(body)).into_response()
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
