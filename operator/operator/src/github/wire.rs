//! GitHub REST's JSON as the runner API and the auth chain read it, and the two URL
//! helpers (the `Link` header, the web URL of an API root).

use reqwest::{header::HeaderMap, header::LINK, Url};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::ports::{GithubError, Runner, RunnerStatus};

#[derive(Deserialize)]
pub(super) struct WireRunner {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) status: String,
    pub(super) busy: bool,
}

impl From<WireRunner> for Runner {
    fn from(r: WireRunner) -> Self {
        Runner {
            id: r.id,
            name: r.name,
            status: if r.status.eq_ignore_ascii_case("online") { RunnerStatus::Online } else { RunnerStatus::Offline },
            busy: r.busy,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireRunnerPage {
    pub(super) runners: Vec<WireRunner>,
}

#[derive(Deserialize)]
pub(super) struct WireGroup {
    pub(super) id: u64,
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(super) struct WireGroupPage {
    pub(super) runner_groups: Vec<WireGroup>,
}

#[derive(Deserialize)]
pub(super) struct WireToken {
    pub(super) token: String,
    pub(super) expires_at: String,
}

#[derive(Deserialize)]
pub(super) struct WireJit {
    pub(super) runner: WireRunner,
    pub(super) encoded_jit_config: String,
}

pub(super) fn parse_time(s: &str) -> Result<OffsetDateTime, GithubError> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| GithubError::Server { status: 201, message: format!("unparseable expires_at: {e}") })
}

/// `Link: <url>; rel="next", ...` → the next page's URL.
pub(super) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.split(';').any(|p| p.trim() == "rel=\"next\"").then(|| url.trim().trim_matches(['<', '>']).to_owned())
    })
}

/// The web URL runners register against, from the API root.
pub fn web_url(api_url: &str) -> String {
    let trimmed = api_url.trim_end_matches('/');
    let Ok(mut url) = Url::parse(trimmed) else { return trimmed.to_owned() };
    let host = url.host_str().unwrap_or_default().to_owned();
    if host == "api.github.com" {
        return "https://github.com".to_owned();
    }
    if let Some(rest) = host.strip_prefix("api.").filter(|h| h.ends_with(".ghe.com")) {
        // GitHub Enterprise Cloud with data residency: api.SUBDOMAIN.ghe.com.
        let _ = url.set_host(Some(rest));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(path.strip_suffix("/api/v3").unwrap_or(&path));
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn web_urls_for_github_ghes_and_data_residency() {
        assert_eq!(web_url("https://api.github.com"), "https://github.com");
        assert_eq!(web_url("https://api.github.com/"), "https://github.com");
        assert_eq!(web_url("https://ghe.example.com/api/v3"), "https://ghe.example.com");
        assert_eq!(web_url("https://ghe.example.com/api/v3/"), "https://ghe.example.com");
        assert_eq!(web_url("https://api.octocorp.ghe.com"), "https://octocorp.ghe.com");
        assert_eq!(web_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn next_link_is_read_from_githubs_link_header() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(
                "<https://api.github.com/r?per_page=2&page=1>; rel=\"prev\", <https://api.github.com/r?per_page=2&page=3>; rel=\"next\", <https://api.github.com/r?per_page=2&page=5>; rel=\"last\"",
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://api.github.com/r?per_page=2&page=3"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
