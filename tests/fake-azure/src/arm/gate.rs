//! What every request passes first: the bearer token, injected faults, the write bucket,
//! and the one error shape Resource Manager answers with.

use super::*;
use std::{collections::HashMap, time::Duration};

use axum::{
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;
use tokio::time::Instant;

use crate::{fault::Fault, identity::TokenProblem};

// ---- responses -------------------------------------------------------------------------

pub(super) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

pub(super) fn unauthorized(problem: TokenProblem) -> Response {
    let (code, message, error) = match problem {
        TokenProblem::Missing => {
            ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", None)
        }
        TokenProblem::Unknown => ("InvalidAuthenticationToken", "The access token is invalid.", Some("invalid_token")),
        TokenProblem::Expired => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
            Some("invalid_token"),
        ),
        TokenProblem::WrongAudience => (
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource.",
            Some("invalid_token"),
        ),
    };
    let mut response = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = match error {
        Some(error) => format!(
            r#"Bearer authorization_uri="https://login.microsoftonline.com/common", error="{error}", error_description="{message}""#
        ),
        None => r#"Bearer authorization_uri="https://login.microsoftonline.com/common""#.to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

pub(super) fn throttled(retry_after: Duration) -> Response {
    let mut response = arm_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type.",
    );
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

/// Auth, injected faults and api-version, in the order ARM applies them.
pub(super) async fn gate(
    state: &ArmState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    op: ArmOp,
    api_version: &str,
) -> Result<(), Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.identity.check(authorization, state.base()).map_err(unauthorized)?;
    if let Some(fault) = state.faults.take(op) {
        match fault {
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Throttle { retry_after } => return Err(throttled(retry_after)),
            Fault::ServerError => {
                return Err(arm_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An internal execution error occurred. Please retry later.",
                ))
            }
            Fault::NotFound => {
                return Err(arm_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "The entity was not found in this Azure location.",
                ))
            }
            Fault::Conflict => {
                return Err(arm_error(
                    StatusCode::CONFLICT,
                    "OperationNotAllowed",
                    "Operation is not allowed since another operation is in progress on the scale set.",
                ))
            }
            Fault::ExpiredToken => return Err(unauthorized(TokenProblem::Expired)),
            Fault::Forbidden => {
                return Err(arm_error(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailed",
                    "The client does not have authorization to perform action \
                     'Microsoft.Compute/locations/operations/read' over the scope or the scope is invalid.",
                ))
            }
        }
    }
    match query.get("api-version") {
        None => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if v != api_version => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            &format!("The fake serves api-version '{api_version}' for this call, not '{v}'."),
        )),
        Some(_) => Ok(()),
    }
}

/// Headers every answer about one scale set carries.
pub(super) fn with_rate_headers(mut response: Response, remaining: Option<u32>) -> Response {
    let headers = response.headers_mut();
    if let Some(remaining) = remaining {
        if let Ok(v) = HeaderValue::from_str(&format!("{WRITE_POLICY};{remaining}")) {
            headers.insert("x-ms-ratelimit-remaining-resource", v);
        }
    }
    headers.insert("x-ms-ratelimit-remaining-subscription-reads", HeaderValue::from_static("11999"));
    response
}

pub(super) type SetPath = Path<(String, String, String)>;

/// Find the scale set named in the path, settled to now.
pub(super) fn find<'a>(
    state: &ArmState,
    inner: &'a mut Inner,
    (sub, rg, name): &(String, String, String),
) -> Result<&'a mut FakeScaleSet, Response> {
    let settings = &state.settings;
    if !sub.eq_ignore_ascii_case(&settings.subscription_id) {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{sub}' could not be found."),
        ));
    }
    if !rg.eq_ignore_ascii_case(&settings.resource_group) {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            &format!("Resource group '{rg}' could not be found."),
        ));
    }
    let set = inner.sets.get_mut(&name.to_lowercase()).ok_or_else(|| {
        arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource group '{rg}' was not found."),
        )
    })?;
    set.settle(settings, Instant::now());
    Ok(set)
}
