//! One logical request: sent, retried briefly, read whole.
//!
//! The retries follow SS (PROTOCOL.md §2.6) only as far as they do not fight the
//! caller: the listener loop owns the backoff for long outages, so a call retries at
//! most `max_retries` times (1 s, 2 s by default) on transport errors and 5xx other
//! than 501, waits out a 429/503 whose `Retry-After` is short, and otherwise returns
//! the answer for the caller to map (a long `Retry-After` becomes
//! `Throttled { retry_after }`). R3 also retries 401/403 (§3.4): a fresh registration
//! token is not always accepted at once.
//!
//! A request whose transport failed after it may have reached the server is retried
//! only when repeating it is harmless (`Policy::repeatable`): a second session create
//! after a lost answer would meet its own first session as a 409.
//!
//! No URL query, token or body reaches an error: transport errors carry the method,
//! scheme, host and path only ([`RequestFailed`]).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{header::HeaderMap, RequestBuilder, Url};
use tracing::{debug, warn};

use super::{errors::Refusal, CallEvent, Endpoint, Observer};
use crate::ports::ActionsError;

/// How one endpoint may be retried.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// A transport failure after sending may be retried (the request is idempotent).
    /// Connection failures are always retried: nothing reached the server.
    pub repeatable: bool,
    /// Extra retries on 401/403 (R3 only).
    pub unauthorized_retries: u32,
}

impl Policy {
    pub const REPEATABLE: Self = Self { repeatable: true, unauthorized_retries: 0 };
    pub const ONCE: Self = Self { repeatable: false, unauthorized_retries: 0 };
}

/// The retry knobs (part of the client's settings).
#[derive(Clone, Copy, Debug)]
pub struct RetrySettings {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_retry_after: Duration,
}

/// A whole answer.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn refusal(&self) -> Refusal {
        Refusal::read(self.status, &self.headers, &self.body)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request that did not complete; the URL without its query.
#[derive(Debug, thiserror::Error)]
#[error("{endpoint} request {method} {target} failed")]
pub struct RequestFailed {
    endpoint: &'static str,
    method: String,
    target: String,
    #[source]
    source: reqwest::Error,
}

/// `scheme://host[:port]/path`: what a log may show of a URL.
pub fn target(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Sends `build()` until an answer is final. `build` is called once per attempt
/// (a `RequestBuilder` is consumed by sending).
pub async fn send(
    http: &reqwest::Client,
    retry: &RetrySettings,
    observer: &Observer,
    endpoint: Endpoint,
    policy: Policy,
    build: impl Fn(&reqwest::Client) -> Result<RequestBuilder, ActionsError>,
) -> Result<Answer, ActionsError> {
    let mut backoff = ExponentialBuilder::new()
        .with_min_delay(retry.base_delay)
        .with_factor(2.0)
        .with_max_delay(retry.base_delay.saturating_mul(8))
        .with_max_times(usize::MAX)
        .with_jitter()
        .build();
    let mut retries = 0;
    let mut unauthorized = 0;
    loop {
        let request = build(http)?.build().map_err(|e| failed(endpoint, None, e))?;
        let what = (request.method().to_string(), target(request.url()));
        observer.notify(CallEvent::RequestSent(endpoint));
        let outcome = match http.execute(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                response
                    .bytes()
                    .await
                    .map(|body| Answer { status, headers, body: body.to_vec() })
                    .map_err(|e| (e, true))
            }
            Err(e) => {
                let sent = !e.is_connect();
                Err((e, sent))
            }
        };
        let wait = match outcome {
            Err((e, sent)) => {
                let failure = failed(endpoint, Some(&what), e);
                if (sent && !policy.repeatable) || retries >= retry.max_retries {
                    return Err(failure);
                }
                retries += 1;
                warn!(endpoint = endpoint.as_str(), error = %crate::report::Chain(&failure), "scale set API request failed; retrying");
                backoff.next().unwrap_or(retry.base_delay)
            }
            Ok(answer) => match answer.status {
                429 | 503 => {
                    let after = answer.refusal().retry_after;
                    match after {
                        Some(d) if d > retry.max_retry_after => return Ok(answer),
                        _ if retries >= retry.max_retries => return Ok(answer),
                        Some(d) => {
                            retries += 1;
                            debug!(
                                endpoint = endpoint.as_str(),
                                status = answer.status,
                                wait_ms = d.as_millis() as u64,
                                "throttled; waiting as asked"
                            );
                            d
                        }
                        None => {
                            retries += 1;
                            backoff.next().unwrap_or(retry.base_delay)
                        }
                    }
                }
                500..=599 if answer.status != 501 && retries < retry.max_retries => {
                    retries += 1;
                    let refusal = answer.refusal();
                    warn!(
                        endpoint = endpoint.as_str(),
                        status = answer.status,
                        activity_id = refusal.activity_id.as_deref().unwrap_or(""),
                        "scale set API server error; retrying"
                    );
                    backoff.next().unwrap_or(retry.base_delay)
                }
                401 | 403 if unauthorized < policy.unauthorized_retries => {
                    unauthorized += 1;
                    debug!(
                        endpoint = endpoint.as_str(),
                        status = answer.status,
                        attempt = unauthorized,
                        "refused; retrying"
                    );
                    backoff.next().unwrap_or(retry.base_delay)
                }
                _ => return Ok(answer),
            },
        };
        tokio::time::sleep(wait).await;
    }
}

fn failed(endpoint: Endpoint, what: Option<&(String, String)>, e: reqwest::Error) -> ActionsError {
    let (method, target) = what.cloned().unwrap_or_default();
    ActionsError::Transport(Box::new(RequestFailed {
        endpoint: endpoint.as_str(),
        method,
        target,
        source: e.without_url(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_never_shows_the_query_or_credentials() {
        let url = Url::parse("https://u:p@broker.example/scalesets/message?sessionId=s&token=secret#f").unwrap();
        assert_eq!(target(&url), "https://broker.example/scalesets/message");
    }
}
