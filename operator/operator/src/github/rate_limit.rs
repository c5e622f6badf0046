//! GitHub's rate-limit signals, read from response headers, and what to do about them.
//! Pure: the client feeds it headers and the clock.
//!
//! GitHub documents (REST "Rate limits", "Exceeding the rate limit"): a spent primary
//! limit answers 403 or 429 with `x-ratelimit-remaining: 0`, and no request should be
//! made before `x-ratelimit-reset` (UTC epoch seconds); a secondary limit answers 403
//! or 429 with a message saying so, and then `retry-after` (seconds) wins if present,
//! otherwise the reset time if remaining is 0, otherwise at least one minute.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// What a response said about the caller's quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub remaining: Option<u64>,
    /// UTC epoch seconds at which the window resets.
    pub reset: Option<i64>,
    pub retry_after: Option<Duration>,
}

impl RateLimitInfo {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let number =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            remaining: number("x-ratelimit-remaining").and_then(|n| u64::try_from(n).ok()),
            reset: number("x-ratelimit-reset"),
            retry_after: number("retry-after").and_then(|n| u64::try_from(n).ok()).map(Duration::from_secs),
        }
    }

    /// Time until the window resets, when the quota is spent (one second of margin,
    /// since `reset` has one-second resolution).
    pub fn exhausted_for(&self, now_epoch: i64) -> Option<Duration> {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) if reset >= now_epoch => Some(Duration::from_secs((reset - now_epoch) as u64 + 1)),
            _ => None,
        }
    }
}

/// Without `retry-after` or a reset time, GitHub says to wait at least a minute.
pub const SECONDARY_DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// For a 403 or 429 answer: is it a rate limit, and how long must the caller wait?
/// `None` means it is an ordinary refusal (a 403 for missing permissions).
pub fn throttle_wait(status: u16, info: &RateLimitInfo, message: &str, now_epoch: i64) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(after) = info.retry_after {
        return Some(after);
    }
    if let Some(wait) = info.exhausted_for(now_epoch) {
        return Some(wait);
    }
    if status == 429 || message.to_ascii_lowercase().contains("rate limit") {
        return Some(SECONDARY_DEFAULT_WAIT);
    }
    None
}

/// Wait when the wait is short, give up with it otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    Wait(Duration),
    GiveUp(Duration),
}

pub fn decide(wait: Duration, max_wait: Duration, waits_so_far: u32, max_waits: u32) -> Throttle {
    if wait <= max_wait && waits_so_far < max_waits {
        Throttle::Wait(wait)
    } else {
        Throttle::GiveUp(wait)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_wins_over_the_reset_time() {
        let info = RateLimitInfo::from_headers(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1100"),
            ("retry-after", "7"),
        ]));
        assert_eq!(throttle_wait(403, &info, "", 1000), Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_spent_primary_limit_waits_until_the_reset() {
        let info =
            RateLimitInfo::from_headers(&headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1010")]));
        assert_eq!(throttle_wait(429, &info, "API rate limit exceeded", 1000), Some(Duration::from_secs(11)));
        assert_eq!(info.exhausted_for(1000), Some(Duration::from_secs(11)));
    }

    #[test]
    fn a_secondary_limit_without_headers_waits_a_minute() {
        let info = RateLimitInfo::from_headers(&headers(&[("x-ratelimit-remaining", "4000")]));
        let msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
        assert_eq!(throttle_wait(403, &info, msg, 1000), Some(SECONDARY_DEFAULT_WAIT));
    }

    #[test]
    fn a_plain_forbidden_is_not_a_rate_limit() {
        let info = RateLimitInfo::from_headers(&headers(&[("x-ratelimit-remaining", "4000")]));
        assert_eq!(throttle_wait(403, &info, "Resource not accessible by integration", 1000), None);
        assert_eq!(throttle_wait(500, &info, "rate limit", 1000), None);
    }

    #[test]
    fn short_waits_are_taken_long_ones_returned() {
        let max = Duration::from_secs(10);
        assert_eq!(decide(Duration::from_secs(3), max, 0, 3), Throttle::Wait(Duration::from_secs(3)));
        assert_eq!(decide(Duration::from_secs(30), max, 0, 3), Throttle::GiveUp(Duration::from_secs(30)));
        assert_eq!(decide(Duration::from_secs(3), max, 3, 3), Throttle::GiveUp(Duration::from_secs(3)));
    }

    #[test]
    fn garbage_headers_are_ignored() {
        let info = RateLimitInfo::from_headers(&headers(&[("x-ratelimit-remaining", "lots"), ("retry-after", "-3")]));
        assert_eq!(info, RateLimitInfo::default());
    }
}
