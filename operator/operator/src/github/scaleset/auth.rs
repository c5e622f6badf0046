//! The admin connection (PROTOCOL.md §3): a registration token from GitHub's REST API
//! (R2, through [`GithubClient`], which also does the App installation token, R1),
//! exchanged at `POST {api}/actions/runner-registration` (R3) for the Actions
//! service's base URL and an admin JWT.
//!
//! Like SS, the token is refreshed lazily, before the admin call that finds
//! `now + margin > exp` (`exp` read from the JWT without verifying it: only the
//! service can, and it will say 401). A failed refresh keeps the old token, which is
//! used while it has not actually expired; after that the failure is the caller's.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD_INDIFFERENT, Engine};
use reqwest::{
    header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT},
    Url,
};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{debug, warn};

use super::{
    transport::{self, Policy},
    wire::{self, AdminConnection, RegistrationRequest},
    Endpoint, ScaleSetClient,
};
use crate::{
    github::GithubClient,
    ports::{ActionsError, Github, GithubError, SecretValue},
    report::Chain,
};

/// The Actions service base URL and the admin token for it.
#[derive(Clone)]
pub struct AdminToken {
    /// Ends with `/`, so paths join below it.
    pub base: Url,
    pub token: SecretValue,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("base", &transport::target(&self.base))
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AdminToken {
    /// SS's rule (§3.5): refresh when `now + margin > exp`.
    pub fn due(&self, now: OffsetDateTime, margin: std::time::Duration) -> bool {
        now + margin > self.expires_at
    }
}

/// `exp` of a JWT, read without verifying the signature.
pub fn jwt_expiry(token: &str) -> Option<OffsetDateTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD_INDIFFERENT.decode(payload).ok()?).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// R2's failures in the port's terms; the operation is named in the message.
fn registration_failed(e: GithubError) -> ActionsError {
    match e {
        GithubError::RateLimited { retry_after } => ActionsError::Throttled { retry_after },
        GithubError::Unauthorized => ActionsError::Unauthorized,
        GithubError::Transport(source) => ActionsError::Transport(source),
        GithubError::Server { status, message } => ActionsError::Server {
            status,
            type_name: String::new(),
            message: format!("the registration token request failed: {message}"),
        },
        GithubError::NameTaken { .. } => {
            ActionsError::InvalidAnswer("a registration token (GitHub answered about a runner name)".into())
        }
    }
}

impl ScaleSetClient {
    /// The admin connection, fetched or refreshed when due or when `force`d (the
    /// service refused the current token).
    pub(super) async fn admin(&self, force: bool) -> Result<AdminToken, ActionsError> {
        let mut held = self.admin.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(current) = held.as_ref() {
            if !force && !current.due(now, self.settings.admin_token_margin) {
                return Ok(current.clone());
            }
        }
        match self.connect().await {
            Ok(fresh) => {
                debug!(base = %transport::target(&fresh.base), expires_at = %fresh.expires_at, "admin token issued");
                *held = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match held.as_ref() {
                Some(old) if !force && old.expires_at > now => {
                    warn!(error = %Chain(&e), "refreshing the admin token failed; using the current one until it expires");
                    Ok(old.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// R2 then R3.
    async fn connect(&self) -> Result<AdminToken, ActionsError> {
        self.observer.notify(super::CallEvent::RequestSent(Endpoint::RegistrationToken));
        let registration = self.github.registration_token().await.map_err(registration_failed);
        self.observer.finished(Endpoint::RegistrationToken, &registration);
        let registration = registration?;
        let answer = self.runner_registration(&registration.token).await;
        self.observer.finished(Endpoint::AdminConnection, &answer);
        answer
    }

    async fn runner_registration(&self, token: &str) -> Result<AdminToken, ActionsError> {
        let github: &GithubClient = &self.github;
        let config_url = github.registration_url();
        let body = serde_json::to_vec(&RegistrationRequest {
            url: config_url.trim_end_matches('/'),
            runner_event: "register",
        })
        .map_err(|e| ActionsError::Transport(Box::new(e)))?;
        let mut authorization = HeaderValue::from_str(&format!("RemoteAuth {token}"))
            .map_err(|_| ActionsError::InvalidAnswer("a registration token usable in a header".into()))?;
        authorization.set_sensitive(true);
        let url = format!("{}/actions/runner-registration", github.api_url());
        let policy = Policy { repeatable: true, unauthorized_retries: self.settings.registration_unauthorized_retries };
        let answer = transport::send(
            &self.http,
            &self.settings.retry(),
            &self.observer,
            Endpoint::AdminConnection,
            policy,
            |http| {
                Ok(http
                    .post(&url)
                    .header(AUTHORIZATION, authorization.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(USER_AGENT, self.user_agent())
                    .body(body.clone()))
            },
        )
        .await?;
        if !answer.is_success() {
            return Err(answer.refusal().into_error());
        }
        let connection: AdminConnection = wire::decode(&answer.body)
            .map_err(|e| ActionsError::InvalidAnswer(format!("a readable admin connection ({e})")))?;
        if connection.url.is_empty() || connection.token.is_empty() {
            return Err(ActionsError::InvalidAnswer("the url and token of the admin connection".into()));
        }
        let mut base = Url::parse(&connection.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| ActionsError::InvalidAnswer("an http(s) Actions service URL".into()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let expires_at = jwt_expiry(&connection.token)
            .ok_or_else(|| ActionsError::InvalidAnswer("an admin token that is a JWT with exp".into()))?;
        Ok(AdminToken { base, token: SecretValue::new(connection.token), expires_at })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn jwt(claims: &str) -> String {
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn exp_is_read_from_the_unverified_payload() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1767225600,"iss":"x"}"#)).map(|t| t.unix_timestamp()),
            Some(1_767_225_600)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":1767225600.5}"#)).map(|t| t.unix_timestamp()), Some(1_767_225_600));
        assert_eq!(jwt_expiry(&jwt(r#"{"iss":"x"}"#)), None, "no exp");
        assert_eq!(jwt_expiry("fake.jwt.here"), None);
        assert_eq!(jwt_expiry("not-a-jwt"), None);
    }

    #[test]
    fn the_token_is_due_sixty_seconds_before_it_expires() {
        let now = OffsetDateTime::now_utc();
        let token = |exp| AdminToken {
            base: Url::parse("http://127.0.0.1/tenant/1/").unwrap(),
            token: SecretValue::new("t"),
            expires_at: exp,
        };
        let margin = Duration::from_secs(60);
        assert!(!token(now + Duration::from_secs(61)).due(now, margin));
        assert!(token(now + Duration::from_secs(59)).due(now, margin));
        assert!(!format!("{:?}", token(now)).contains("\"t\""));
    }
}
