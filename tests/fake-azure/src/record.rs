//! Records every request and response a fake serves, as [`contract::Exchange`]s.

use std::sync::{Arc, Mutex};

use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use contract::Exchange;

/// Bodies larger than this are refused; no Azure call the operator makes comes near it.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The exchanges one fake has served, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Vec<Exchange>>>);

impl Recorder {
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, exchange: Exchange) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(exchange);
    }
}

fn json_of(bytes: &[u8]) -> Option<serde_json::Value> {
    if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(bytes).ok()
    }
}

/// Middleware: buffers both bodies and records the exchange once the response is complete.
/// A request whose handler never answers (an injected hang) is never recorded.
pub(crate) async fn record(State(recorder): State<Recorder>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let request_body = json_of(&bytes);
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response body too large").into_response();
    };
    recorder.push(Exchange {
        method,
        path,
        request_body,
        status: parts.status.as_u16(),
        response_body: json_of(&bytes),
    });
    Response::from_parts(parts, Body::from(bytes))
}
