//! The request guard, the outermost layer of both routers: it refuses what no handler should
//! see (a request target over `max_uri_bytes`, headers over `max_header_bytes`, a body over
//! `max_body_bytes` or slower than `request_timeout`), bounds the answer by the same
//! deadline, and writes the one log line of every refused request.
//!
//! A handler still running at the deadline is not cancelled: it runs in a task of its own
//! and finishes in the background (a hook half done — a marker stored, its record not yet
//! changed — would be worse than a late one), while the caller gets 503 `timed_out` and
//! retries, as it does on any 503.
//!
//! The log line: [`ApiError`] hands its [`Refusal`] over on the response; the guard, which
//! knows the caller's address, counts it in `vmss_runner_http_refusals_total{status,code}`
//! and writes it at most once per source and code per interval ([`PerSourceLog`]), so a
//! flood from one address costs a counter increment per request, not a line.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::time::Instant;

use super::{
    error::{ApiError, Refusal},
    server::{HttpLimits, PerSourceLog},
};
use crate::metrics::RefusalLabels;

/// What the guard needs; shared by every request of a router.
#[derive(Clone, Debug)]
pub struct Guard {
    pub limits: HttpLimits,
    pub log: Arc<PerSourceLog>,
    pub refusals: Family<RefusalLabels, Counter>,
}

pub async fn guard(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let response = match admit(&guard.limits, req, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    if let Some(refusal) = response.extensions().get::<Refusal>() {
        guard.refusals.get_or_create(&RefusalLabels { status: refusal.status, code: refusal.code }).inc();
        let admitted = match source {
            Some(ip) => guard.log.admit(ip, refusal.code),
            None => Some(0),
        };
        if let Some(left_out) = admitted {
            refusal.log(source, left_out);
        }
    }
    response
}

async fn admit(limits: &HttpLimits, req: Request, next: Next) -> Result<Response, ApiError> {
    let deadline = Instant::now() + limits.request_timeout;
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri_bytes {
        return Err(ApiError::UriTooLong { limit: limits.max_uri_bytes });
    }
    // As they arrive on the wire: "name: value\r\n".
    let header_bytes: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if header_bytes + target > limits.max_header_bytes {
        return Err(ApiError::HeadersTooLarge { limit: limits.max_header_bytes });
    }
    let (parts, body) = req.into_parts();
    let limit = limits.max_body_bytes;
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await;
    let bytes = match collected {
        Err(_) => return Err(ApiError::BodyTimedOut(limits.request_timeout)),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::BodyTooLarge { limit })
        }
        Ok(Err(err)) => return Err(ApiError::BodyReadFailed(axum::Error::new(err))),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    // The request's span goes along, so the handler's lines stay inside it.
    let handler = tokio::spawn(tracing::Instrument::instrument(next.run(req), tracing::Span::current()));
    match tokio::time::timeout_at(deadline, handler).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(join)) => Err(ApiError::HandlerFailed(join)),
        Err(_) => Err(ApiError::TimedOut(limits.request_timeout)),
    }
}
