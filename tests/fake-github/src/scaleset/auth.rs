//! The scale-set step of the REST auth chain (R3) and the two bearer tokens of the Actions
//! service (PROTOCOL.md §3.4, §3.5, §6).
//!
//! Both tokens are JWTs because clients read `exp` from them unverified (SS panics on a
//! token without `exp`, and fails on an `alg` it does not know). The fake signs them HS256
//! with a fixed key but recognises them by its own table, so it can expire one server-side
//! while its `exp` still lies in the future, as a revoked token would look.

use std::{collections::HashMap, time::Duration};

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::{error, http::Reply};
use crate::{runner_api::scope_of, server::Inner};

const SIGNING_KEY: &[u8] = b"fake-github actions service";
const REST_DOCS: &str = "https://docs.github.com/rest";

struct AdminToken {
    tenant: usize,
    expires: Instant,
}

struct QueueToken {
    set_id: u64,
    session_id: Uuid,
    expires: Instant,
}

#[derive(Default)]
pub(crate) struct Tokens {
    admin: HashMap<String, AdminToken>,
    queue: HashMap<String, QueueToken>,
    issued: u64,
}

/// Why a bearer token was refused.
pub(crate) enum Refused {
    Missing,
    Unknown,
    Expired,
}

impl Tokens {
    fn mint(&mut self, subject: &str, ttl: Duration) -> String {
        self.issued += 1;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = json!({
            "iss": "fake-github", "aud": "actions-service", "sub": subject,
            "iat": now, "nbf": now, "exp": now.saturating_add(ttl), "jti": self.issued.to_string(),
        });
        // HS256 over a JSON value cannot fail; an empty token would be refused as unknown.
        EncodingKey::from_secret(SIGNING_KEY)
            .and_then(|key| jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key))
            .unwrap_or_default()
    }

    pub fn issue_admin(&mut self, tenant: usize, ttl: Duration, now: Instant) -> String {
        let token = self.mint(&format!("tenant:{tenant}"), ttl);
        self.admin.insert(token.clone(), AdminToken { tenant, expires: now + ttl });
        token
    }

    pub fn issue_queue(&mut self, set_id: u64, session_id: Uuid, ttl: Duration, now: Instant) -> String {
        let token = self.mint(&format!("session:{session_id}"), ttl);
        self.queue.insert(token.clone(), QueueToken { set_id, session_id, expires: now + ttl });
        token
    }

    /// An admin token of `tenant` that has not expired.
    pub fn check_admin(&self, presented: Option<&str>, tenant: usize, now: Instant) -> Result<(), Refused> {
        let token = self.admin.get(presented.ok_or(Refused::Missing)?).ok_or(Refused::Unknown)?;
        if token.tenant != tenant {
            return Err(Refused::Unknown);
        }
        if token.expires <= now {
            return Err(Refused::Expired);
        }
        Ok(())
    }

    /// The (set, session) of a message-queue token that has not expired.
    pub fn check_queue(&self, presented: Option<&str>, now: Instant) -> Result<(u64, Uuid), Refused> {
        let token = self.queue.get(presented.ok_or(Refused::Missing)?).ok_or(Refused::Unknown)?;
        if token.expires <= now {
            return Err(Refused::Expired);
        }
        Ok((token.set_id, token.session_id))
    }

    pub fn expire_admin(&mut self, now: Instant) {
        self.admin.values_mut().for_each(|t| t.expires = t.expires.min(now));
    }

    /// Expires every message-queue token of one set; returns how many were live.
    pub fn expire_queue(&mut self, set_id: u64, now: Instant) -> usize {
        let live = self.queue.values_mut().filter(|t| t.set_id == set_id && t.expires > now);
        live.map(|t| t.expires = now).count()
    }

    /// What a presented token is (expired or not), for the record of request headers.
    pub fn kind(&self, token: &str) -> Option<&'static str> {
        if self.admin.contains_key(token) {
            Some("admin token")
        } else if self.queue.contains_key(token) {
            Some("message-queue token")
        } else {
            None
        }
    }

    /// When the set's newest live message-queue token expires.
    pub fn queue_expiry(&self, set_id: u64) -> Option<Instant> {
        self.queue.values().filter(|t| t.set_id == set_id).map(|t| t.expires).max()
    }
}

pub(crate) fn refusal(refused: Refused) -> Reply {
    match refused {
        Refused::Missing => error::unauthorized("No bearer token was presented."),
        Refused::Unknown => error::unauthorized("The bearer token is not valid for this resource."),
        Refused::Expired => error::unauthorized("The bearer token has expired."),
    }
}

/// `Authorization: Bearer <token>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

fn rest_error(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({"message": message, "documentation_url": REST_DOCS}))
}

/// R3 `POST {api}/actions/runner-registration`: `RemoteAuth <registration token>` and the
/// config URL of the token's scope → the tenant's base URL and an admin JWT (201).
pub(crate) fn runner_registration(
    inner: &mut Inner,
    headers: &HeaderMap,
    body: Option<&Value>,
    base_url: &str,
    now: Instant,
) -> Reply {
    if !inner.broker.registration_faults.is_empty() {
        let status = inner.broker.registration_faults.remove(0);
        return rest_error(status, "Bad credentials");
    }
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("RemoteAuth "))
        .map(str::trim);
    let Some(scope) = presented.and_then(|t| inner.runners.registration_token_scope(t, OffsetDateTime::now_utc()))
    else {
        return rest_error(401, "Bad credentials");
    };
    let Some(url) = body.and_then(|b| b.get("url")).and_then(Value::as_str) else {
        return rest_error(422, "Invalid request.\n\n\"url\" is required.");
    };
    if scope_of(url, base_url).as_ref() != Some(&scope) {
        return rest_error(404, "Not Found");
    }
    let tenant = inner.broker.tenant_of(&scope);
    let ttl = inner.broker.config.admin_token_ttl;
    let token = inner.broker.tokens.issue_admin(tenant, ttl, now);
    Reply::json(
        201,
        json!({"url": format!("{base_url}/tenant/{tenant}/"), "token_schema": "OAuthAccessToken", "token": token}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_jwts_with_exp_and_expire_server_side() {
        let mut t = Tokens::default();
        let now = Instant::now();
        let admin = t.issue_admin(1, Duration::from_secs(60), now);
        let header = jsonwebtoken::decode_header(&admin).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(&admin).unwrap();
        assert!(claims["exp"].as_i64().unwrap() > OffsetDateTime::now_utc().unix_timestamp());
        assert!(t.check_admin(Some(&admin), 1, now).is_ok());
        assert!(matches!(t.check_admin(Some(&admin), 2, now), Err(Refused::Unknown)), "another tenant's");
        assert!(matches!(t.check_admin(Some(&admin), 1, now + Duration::from_secs(60)), Err(Refused::Expired)));
        t.expire_admin(now);
        assert!(matches!(t.check_admin(Some(&admin), 1, now), Err(Refused::Expired)));

        let session = Uuid::new_v4();
        let queue = t.issue_queue(7, session, Duration::from_secs(60), now);
        assert_ne!(queue, admin);
        assert!(matches!(t.check_queue(Some(&queue), now), Ok((7, s)) if s == session));
        assert!(matches!(t.check_admin(Some(&queue), 1, now), Err(Refused::Unknown)), "not an admin token");
        assert_eq!(t.expire_queue(7, now), 1);
        assert!(matches!(t.check_queue(Some(&queue), now), Err(Refused::Expired)));
    }
}
