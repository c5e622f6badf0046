//! One request to Resource Manager: the URL, the bearer token, 429 retries after
//! `Retry-After`, rate-limit headers, error bodies, and paging of listings.

use super::*;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{header, Method, StatusCode, Url};
use serde::{de::DeserializeOwned, Serialize};

use crate::ports::CloudFault;

pub(super) fn parse_retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

pub(super) fn transport(err: impl std::error::Error + Send + Sync + 'static) -> CloudFault {
    CloudFault::Transport(Box::new(err))
}

/// The `Date` header of an answer: Azure's clock when it accepted the call.
pub(super) fn azure_date(headers: &header::HeaderMap) -> Option<time::OffsetDateTime> {
    let text = headers.get(header::DATE)?.to_str().ok()?;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text, &format).ok().map(time::PrimitiveDateTime::assume_utc)
}

impl ArmScaleSet {
    pub(super) fn url(&self, suffix: &str, api_version: &str, extra: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{suffix}", self.vmss_id));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", api_version);
            for (k, v) in extra {
                query.append_pair(k, v);
            }
        }
        url
    }

    /// A link Azure handed back (nextLink, operation status) is followed only on the same
    /// origin, so the bearer token never goes anywhere else.
    pub(super) fn same_origin(&self, link: &str) -> Result<Url, CloudFault> {
        let url = Url::parse(link).map_err(transport)?;
        if url.origin() == self.base.origin() {
            Ok(url)
        } else {
            Err(CloudFault::ForeignLink { host: url.host_str().unwrap_or_default().to_owned() })
        }
    }

    pub(super) async fn token(&self) -> Result<String, CloudFault> {
        let token = self.credential.get_token(&[self.scope.as_str()], None).await.map_err(transport)?;
        Ok(token.token.secret().to_owned())
    }

    pub(super) fn remember_rate_limits(&self, headers: &header::HeaderMap) {
        let Some(value) = headers.get("x-ms-ratelimit-remaining-resource").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let mut limits = self.rate_limits.lock().unwrap_or_else(|e| e.into_inner());
        for entry in value.split(',') {
            if let Some((policy, remaining)) = entry.trim().rsplit_once(';') {
                if let Ok(remaining) = remaining.trim().parse() {
                    limits.insert(policy.trim().to_owned(), remaining);
                }
            }
        }
    }

    /// Send one call: bearer token, 429 + `Retry-After` retried (bounded), one retry with a new
    /// token after a 401; any other non-2xx answer becomes a [`CloudFault`].
    pub(super) async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<reqwest::Response, CloudFault> {
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(self.timings.max_retry_after)
            .with_jitter()
            .build();
        let mut throttled = 0;
        let mut refused_token: Option<String> = None;
        loop {
            let token = self.token().await?;
            let mut request = self.http.request(method.clone(), url.clone()).bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(transport)?;
            self.remember_rate_limits(response.headers());
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = parse_retry_after(response.headers());
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after.or_else(|| backoff.next()).unwrap_or(self.timings.max_retry_after);
                if throttled >= self.timings.throttle_retries || wait > self.timings.max_retry_after {
                    return Err(CloudFault::Throttled { retry_after });
                }
                throttled += 1;
                tracing::warn!(%method, path = url.path(), wait_ms = wait.as_millis() as u64, attempt = throttled, "Azure throttled the call; retrying after Retry-After");
                tokio::time::sleep(wait).await;
                continue;
            }
            let message = Self::error_message(response).await;
            if status == StatusCode::UNAUTHORIZED && refused_token.is_none() {
                // The token may have expired between the SDK's check and Azure's: ask again once.
                refused_token = Some(token.clone());
                let fresh = self.token().await?;
                if Some(&fresh) != refused_token.as_ref() {
                    tracing::info!(%method, path = url.path(), "Azure refused the access token; retrying with a new one");
                    continue;
                }
            }
            return Err(match status {
                StatusCode::NOT_FOUND => CloudFault::NotFound,
                StatusCode::CONFLICT => CloudFault::Conflict(message),
                _ => CloudFault::Server { status: status.as_u16(), message },
            });
        }
    }

    pub(super) async fn error_message(response: reqwest::Response) -> String {
        let status = response.status();
        match response.json::<CloudError>().await {
            Ok(CloudError { error: Some(detail) }) => detail.describe(),
            _ => status.canonical_reason().unwrap_or("error").to_owned(),
        }
    }

    pub(super) async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, CloudFault> {
        let response = self.send::<()>(Method::GET, url, None).await?;
        response.json().await.map_err(transport)
    }

    /// Every item of a paged listing, following `nextLink`.
    pub(super) async fn list_all<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, CloudFault> {
        let mut items = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.get_json(url).await?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(items),
            }
        }
        Err(CloudFault::EndlessListing { pages: MAX_PAGES })
    }

    pub(super) async fn get_scale_set(&self) -> Result<VirtualMachineScaleSet, CloudFault> {
        self.get_json(self.url("", COMPUTE_API_VERSION, &[])).await
    }

    /// Every instance of the scale set (without the NIC join).
    pub(super) async fn list_vms(&self) -> Result<Vec<ScaleSetVm>, CloudFault> {
        self.list_all(self.url("/virtualMachines", COMPUTE_API_VERSION, &[("$expand", "instanceView")])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_header_is_azures_clock() {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::DATE, "Tue, 01 Dec 2026 08:32:10 GMT".parse().unwrap());
        let want = time::OffsetDateTime::parse("2026-12-01T08:32:10Z", &time::format_description::well_known::Rfc3339);
        assert_eq!(azure_date(&headers), Some(want.unwrap()));
        assert_eq!(azure_date(&header::HeaderMap::new()), None);
    }
}
