//! Credentials: PATs, GitHub App JWTs (RS256) and installation tokens.

use std::collections::{HashMap, HashSet};

use aws_lc_rs::{
    encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der},
    rsa::{KeyPair, KeySize},
    signature::KeyPair as _,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

/// An RSA key pair for a test GitHub App, made fresh for each test (no key is committed).
#[derive(Clone)]
pub struct AppKey {
    /// PKCS#8 PEM, what the operator reads from the secret store.
    pub private_pem: String,
    /// SubjectPublicKeyInfo PEM, what GitHub keeps.
    pub public_pem: String,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(<redacted>)")
    }
}

impl AppKey {
    pub fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let private: Pkcs8V1Der<'static> = pair.as_der().expect("PKCS#8 encoding");
        let public: PublicKeyX509Der<'static> = pair.public_key().as_der().expect("SPKI encoding");
        Self { private_pem: pem("PRIVATE KEY", private.as_ref()), public_pem: pem("PUBLIC KEY", public.as_ref()) }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A GitHub App known to the fake.
pub struct App {
    pub public_pem: String,
    /// installation id → account login (user or organization).
    pub installations: HashMap<u64, String>,
}

/// Who a request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    Pat(String),
    Installation(u64),
    App(u64),
}

impl Principal {
    /// The rate-limit bucket this principal spends (never the secret itself).
    pub fn bucket(&self) -> String {
        match self {
            Self::Pat(p) => format!("pat:{:x}", fxhash(p)),
            Self::Installation(i) => format!("installation:{i}"),
            Self::App(a) => format!("app:{a}"),
        }
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

#[derive(Default)]
pub struct Credentials {
    pub pats: HashSet<String>,
    pub apps: HashMap<u64, App>,
    /// token → (installation id, expiry)
    pub installation_tokens: HashMap<String, (u64, OffsetDateTime)>,
    pub seen_jti: HashSet<String>,
    pub issued_installation_tokens: u64,
    pub accepted_jwts: u64,
}

#[derive(Deserialize)]
struct Claims {
    iss: serde_json::Value,
    iat: i64,
    exp: i64,
    jti: Option<String>,
}

/// Why a JWT was refused (the fake answers 401 with this message).
pub type JwtRefusal = &'static str;

impl Credentials {
    /// A PAT or an installation token from `Authorization: Bearer|token <value>`.
    pub fn token(&self, value: &str, now: OffsetDateTime) -> Option<Principal> {
        if self.pats.contains(value) {
            return Some(Principal::Pat(value.to_owned()));
        }
        match self.installation_tokens.get(value) {
            Some((id, expires)) if *expires > now => Some(Principal::Installation(*id)),
            _ => None,
        }
    }

    /// Verify an App JWT as GitHub does, and more strictly: RS256 signature with the
    /// App's public key, `iss` = app id, `iat`/`exp` present with `exp - iat` ≤ 10
    /// minutes and `exp` in the future, and a `jti` never seen before (replays refused).
    pub fn verify_jwt(&mut self, token: &str, now: OffsetDateTime) -> Result<u64, JwtRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "A JSON web token could not be decoded")?;
        if header.alg != Algorithm::RS256 {
            return Err("A JSON web token could not be decoded");
        }
        let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| "A JSON web token could not be decoded")?;
        let app_id = match &unverified.iss {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or("'Issuer' claim ('iss') must be an Integer")?;
        let app = self.apps.get(&app_id).ok_or("Integration not found")?;
        let key = DecodingKey::from_rsa_pem(app.public_pem.as_bytes()).map_err(|_| "Integration not found")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "iss"]);
        validation.validate_exp = false; // checked below against the fake's clock
        let claims: Claims =
            jsonwebtoken::decode(token, &key, &validation).map_err(|_| "A JSON web token could not be decoded")?.claims;
        let now = now.unix_timestamp();
        if claims.exp <= now {
            return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires");
        }
        if claims.iat > now + 60 {
            return Err(
                "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            );
        }
        if claims.exp - claims.iat > 600 || claims.exp > now + 600 {
            return Err("'Expiration time' claim ('exp') is too far in the future");
        }
        let jti = claims.jti.ok_or("the fake requires a 'jti' claim to detect replays")?;
        if !self.seen_jti.insert(jti) {
            return Err("this JSON web token was already used (replayed 'jti')");
        }
        self.accepted_jwts += 1;
        Ok(app_id)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    fn creds(key: &AppKey) -> Credentials {
        let mut c = Credentials::default();
        c.apps.insert(7, App { public_pem: key.public_pem.clone(), installations: HashMap::new() });
        c
    }

    fn jwt(key: &AppKey, claims: serde_json::Value) -> String {
        let k = EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &k).unwrap()
    }

    #[test]
    fn a_well_formed_jwt_is_accepted_once() {
        let key = AppKey::generate();
        let mut c = creds(&key);
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let token = jwt(&key, serde_json::json!({"iss": "7", "iat": t - 60, "exp": t + 540, "jti": "a"}));
        assert_eq!(c.verify_jwt(&token, now), Ok(7));
        assert!(c.verify_jwt(&token, now).is_err(), "replay");
    }

    #[test]
    fn bad_jwts_are_refused() {
        let key = AppKey::generate();
        let other = AppKey::generate();
        let mut c = creds(&key);
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let cases = [
            jwt(&other, serde_json::json!({"iss": 7, "iat": t - 60, "exp": t + 540, "jti": "1"})),
            jwt(&key, serde_json::json!({"iss": 8, "iat": t - 60, "exp": t + 540, "jti": "2"})),
            jwt(&key, serde_json::json!({"iss": 7, "iat": t - 60, "exp": t + 700, "jti": "3"})),
            jwt(&key, serde_json::json!({"iss": 7, "iat": t - 700, "exp": t - 1, "jti": "4"})),
            jwt(&key, serde_json::json!({"iss": 7, "iat": t - 60, "exp": t + 540})),
            "not-a-jwt".to_owned(),
        ];
        for (i, token) in cases.iter().enumerate() {
            assert!(c.verify_jwt(token, now).is_err(), "case {i} accepted");
        }
    }
}
