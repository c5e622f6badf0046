//! Rendering an error for a log line or a message: the error and every `source()` below
//! it, joined by ": " ("reconcile failed: reading the scale set failed: Azure answered
//! 500: ..."). A failure is logged with its whole chain, so the cause that can be acted
//! on (throttled, 403, a DNS failure) is never cut off after the first level.
//!
//! **Secrets never reach a log line.** [`redact`] is the one redaction: every [`Chain`] is
//! rendered through it, and so is every log line the process writes (`telemetry.rs` wraps
//! the writer), so an error whose text quotes a request URL with a SAS, a bearer token, a
//! GitHub token or a JIT config loses the secret whichever way it is logged.

use std::{error::Error, fmt};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "REDACTED";

/// Parameter and field names whose value is a secret, as `name=value` (query strings,
/// SAS) or `"name":"value"` (JSON bodies quoted in an error). Compared without case.
const SECRET_KEYS: &[&str] = &[
    "sig",
    "signature",
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
    "code",
    "jitconfig",
    "encoded_jit_config",
    "private_key",
];

/// Prefixes of GitHub's tokens (PATs, App installation, OAuth, refresh, user-to-server).
const TOKEN_PREFIXES: &[&str] = &["github_pat_", "ghp_", "gho_", "ghs_", "ghu_", "ghr_"];

/// `text` with every secret it may quote replaced by [`REDACTED`]: the values of
/// [`SECRET_KEYS`] in query strings and JSON, `Bearer`/`Basic` credentials, GitHub
/// tokens, JWTs and a `--jitconfig` argument.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for key in SECRET_KEYS {
        out = redact_after(&out, &format!("{key}="), true);
        out = redact_after(&out, &format!("\"{key}\":\""), false);
        out = redact_after(&out, &format!("\"{key}\": \""), false);
    }
    for scheme in ["bearer ", "basic ", "--jitconfig "] {
        out = redact_after(&out, scheme, false);
    }
    for prefix in TOKEN_PREFIXES {
        out = redact_word(&out, prefix, 8);
    }
    redact_word(&out, "eyJ", 20)
}

/// Replaces the value after each (case-insensitive) `marker`, up to a delimiter. With
/// `word_start`, the marker must not continue a longer name (`xsig=` is not `sig=`).
fn redact_after(text: &str, marker: &str, word_start: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(marker) {
        let at = search + found;
        let value = at + marker.len();
        search = value;
        let continues_name = word_start
            && lower[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if continues_name {
            continue;
        }
        let end = text[value..]
            .find(|c: char| {
                matches!(c, '&' | '"' | '\'' | ')' | '(' | ',' | ';' | '<' | '>' | '\\') || c.is_whitespace()
            })
            .map_or(text.len(), |n| value + n);
        if end == value || text[value..end] == *REDACTED {
            continue;
        }
        out.push_str(&text[from..value]);
        out.push_str(REDACTED);
        from = end;
        search = end;
    }
    out.push_str(&text[from..]);
    out
}

/// Replaces each word that starts with `prefix` and has at least `min_rest` more
/// token characters (letters, digits, `_`, `-`, `.`).
fn redact_word(text: &str, prefix: &str, min_rest: usize) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find(prefix) {
        let at = search + found;
        let rest = at + prefix.len();
        let end = text[rest..].find(|c: char| !is_token(c)).map_or(text.len(), |n| rest + n);
        search = rest;
        let starts_word = !text[..at].chars().next_back().is_some_and(is_token);
        if !starts_word || end - rest < min_rest {
            continue;
        }
        out.push_str(&text[from..at]);
        out.push_str(REDACTED);
        from = end;
        search = end;
    }
    out.push_str(&text[from..]);
    out
}

/// `err` and its sources, "a: b: c", [redacted](redact). Use as a log field:
/// `error = %Chain(&err)`.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        f.write_str(&redact(&text))
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// [`Chain`] as an owned string.
pub fn chain(err: &dyn Error) -> String {
    Chain(err).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reconcile failed")]
        Pass(#[source] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("reading the scale set failed")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_source_is_rendered_after_the_error() {
        let err = Outer::Pass(Middle(std::io::Error::other("Azure answered 500")));
        assert_eq!(chain(&err), "reconcile failed: reading the scale set failed: Azure answered 500");
        assert_eq!(format!("{:?}", Chain(&err)), chain(&err));
    }

    #[test]
    fn a_chain_loses_every_secret_it_quotes() {
        let transport = std::io::Error::other(
            "error sending request for url (https://acct.queue.core.windows.net/q?sv=2023&sig=c2VjcmV0%3D&se=2)",
        );
        let err = Outer::Pass(Middle(transport));
        let text = chain(&err);
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("sig=REDACTED&se=2"), "{text}");
    }

    #[test]
    fn tokens_jit_configs_and_credentials_are_redacted() {
        let cases = [
            ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: Bearer REDACTED"),
            ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 refused", "token REDACTED refused"),
            ("github_pat_11AAAAAAA0abcdefghijkl_xyz", "REDACTED"),
            (
                r#"{"encoded_jit_config":"eyJ0eXBlIjoiSklUIn0=","runner":"r1"}"#,
                r#"{"encoded_jit_config":"REDACTED","runner":"r1"}"#,
            ),
            (r#"{"token": "AABBCCDD", "expires_at": "x"}"#, r#"{"token": "REDACTED", "expires_at": "x"}"#),
            ("run.sh --jitconfig ZXlKMGVYQmxJam9pU2tsVUluMD0=", "run.sh --jitconfig REDACTED"),
            ("https://h/p?code=123&state=x", "https://h/p?code=REDACTED&state=x"),
            ("SIG=AbC", "SIG=REDACTED"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn text_without_secrets_is_left_as_it_is() {
        for text in [
            "reading the scale set failed: Azure answered 500",
            "xsig=not-a-signature status=503 sig=",
            "ghp_ alone, and the word eyJ",
            "job-completed for octo-org/octo-repo run 7/1 job build",
        ] {
            assert_eq!(redact(text), text);
        }
        assert_eq!(redact("sig=REDACTED"), "sig=REDACTED", "idempotent");
    }

    #[test]
    fn an_error_without_sources_is_just_its_message() {
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
