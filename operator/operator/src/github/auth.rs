//! The GitHub credential: a PAT, or a GitHub App key that mints installation tokens.
//! Nothing here prints a secret: every type holding one has a redacting `Debug`.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use time::OffsetDateTime;

use crate::ports::SecretValue;

/// What the secret store holds, parsed.
#[derive(Clone)]
pub enum Credential {
    Pat(SecretValue),
    App { app_id: u64, installation_id: u64, key: EncodingKey },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pat(_) => f.write_str("Pat(<redacted>)"),
            Self::App { app_id, installation_id, .. } => f
                .debug_struct("App")
                .field("app_id", app_id)
                .field("installation_id", installation_id)
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

/// Why a secret could not be used as a credential (never carries the secret).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret is not an RSA private key in PEM form")]
    InvalidAppKey(#[source] jsonwebtoken::errors::Error),
}

impl Credential {
    pub fn parse(secret: &SecretValue, app: Option<(u64, u64)>) -> Result<Self, CredentialError> {
        let value = secret.expose().trim();
        if value.is_empty() {
            return Err(CredentialError::Empty);
        }
        match app {
            None => Ok(Self::Pat(SecretValue::new(value))),
            Some((app_id, installation_id)) => {
                let key = EncodingKey::from_rsa_pem(value.as_bytes()).map_err(CredentialError::InvalidAppKey)?;
                Ok(Self::App { app_id, installation_id, key })
            }
        }
    }
}

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
    jti: String,
}

/// GitHub's App JWT: RS256, `iat` 60 s in the past (clock drift), `exp` 9 minutes
/// ahead (GitHub allows at most 10), `iss` the App id and a fresh `jti` each time.
pub fn app_jwt(
    app_id: u64,
    key: &EncodingKey,
    now: OffsetDateTime,
) -> Result<SecretValue, jsonwebtoken::errors::Error> {
    let now = now.unix_timestamp();
    let claims =
        Claims { iat: now - 60, exp: now + 9 * 60, iss: app_id.to_string(), jti: uuid::Uuid::new_v4().to_string() };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key).map(SecretValue::new)
}

/// How long before its `expires_at` an installation token is replaced.
pub const INSTALLATION_TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// An installation token and when to stop using it.
#[derive(Clone)]
pub struct InstallationToken {
    pub token: SecretValue,
    pub refresh_at: OffsetDateTime,
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationToken").field("token", &"<redacted>").field("refresh_at", &self.refresh_at).finish()
    }
}

impl InstallationToken {
    pub fn new(token: SecretValue, expires_at: OffsetDateTime) -> Self {
        Self { token, refresh_at: expires_at - INSTALLATION_TOKEN_MARGIN }
    }

    pub fn usable(&self, now: OffsetDateTime) -> bool {
        now < self.refresh_at
    }
}

/// The credential as last read, and when.
pub struct CredentialRead {
    pub credential: Credential,
    pub read_at: Instant,
}

impl CredentialRead {
    pub fn due(&self, period: Duration) -> bool {
        self.read_at.elapsed() >= period
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let pat = Credential::parse(&SecretValue::new("ghp_supersecret"), None).unwrap();
        assert!(!format!("{pat:?}").contains("supersecret"));
        let token = InstallationToken::new(SecretValue::new("ghs_supersecret"), OffsetDateTime::now_utc());
        assert!(!format!("{token:?}").contains("supersecret"));
    }

    #[test]
    fn an_app_secret_must_be_a_pem_key() {
        assert!(matches!(
            Credential::parse(&SecretValue::new("ghp_not_a_key"), Some((1, 2))),
            Err(CredentialError::InvalidAppKey(_))
        ));
        assert!(matches!(Credential::parse(&SecretValue::new("  \n"), None), Err(CredentialError::Empty)));
    }

    #[test]
    fn an_installation_token_is_replaced_five_minutes_before_it_expires() {
        let now = OffsetDateTime::now_utc();
        let token = InstallationToken::new(SecretValue::new("t"), now + time::Duration::minutes(6));
        assert!(token.usable(now));
        assert!(!token.usable(now + time::Duration::minutes(1) + time::Duration::seconds(1)));
    }
}
