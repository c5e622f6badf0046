//! The scale set's write budget. Azure allows each scale set about 4 update calls a
//! minute sustained with a burst of 12 (capacity changes, deletes and reimages all
//! count). Spending from this bucket before every write keeps the operator under
//! that limit instead of finding it through 429s. Hand-written rather than
//! `governor` because it must run on tokio's clock, which tests pause and advance.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct WriteBudget {
    burst: u32,
    refill_every: Duration,
    tokens: u32,
    last_refill: Instant,
}

impl WriteBudget {
    /// Azure's documented per-scale-set limit, 4 per minute with a burst of 12, refilled
    /// a little slower (every 16 s, not 15): our bucket and Azure's tick on different
    /// clocks, and the margin lets Azure's stay ahead, so a busy pool meets no 429s.
    pub fn azure_vmss() -> Self {
        Self::new(12, Duration::from_secs(16))
    }

    pub fn new(burst: u32, refill_every: Duration) -> Self {
        Self { burst, refill_every, tokens: burst, last_refill: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_refill);
        let earned = u32::try_from(elapsed.as_nanos() / self.refill_every.as_nanos().max(1)).unwrap_or(u32::MAX);
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last_refill += self.refill_every * earned;
            if self.tokens == self.burst {
                self.last_refill = now;
            }
        }
    }

    /// Take one write if available.
    pub fn try_spend(&mut self) -> bool {
        self.refill(Instant::now());
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }

    /// Azure answered 429: spend everything and allow the next write only after `retry_after`.
    /// Our bucket and Azure's run on different clocks; when they disagree, Azure's wins.
    pub fn throttled(&mut self, retry_after: Duration) {
        let next = Instant::now() + retry_after;
        self.tokens = 0;
        // The next token is earned `refill_every` after `last_refill`.
        self.last_refill = next.checked_sub(self.refill_every).unwrap_or_else(Instant::now);
    }

    /// Writes available now.
    pub fn available(&mut self) -> u32 {
        self.refill(Instant::now());
        self.tokens
    }

    /// How long until the next write is allowed (zero if one is available).
    pub fn wait_time(&mut self) -> Duration {
        let now = Instant::now();
        self.refill(now);
        if self.tokens > 0 {
            Duration::ZERO
        } else {
            (self.last_refill + self.refill_every).saturating_duration_since(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_of_twelve_then_four_a_minute() {
        let mut budget = WriteBudget::azure_vmss();
        assert_eq!((0..20).filter(|_| budget.try_spend()).count(), 12);
        assert_eq!(budget.wait_time(), Duration::from_secs(16));
        tokio::time::advance(Duration::from_secs(64)).await;
        assert_eq!((0..20).filter(|_| budget.try_spend()).count(), 4, "never more than Azure's 4 a minute");
    }

    #[tokio::test(start_paused = true)]
    async fn never_holds_more_than_the_burst() {
        let mut budget = WriteBudget::azure_vmss();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(budget.available(), 12);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_empties_the_bucket_until_retry_after() {
        let mut budget = WriteBudget::azure_vmss();
        budget.throttled(Duration::from_secs(40));
        assert!(!budget.try_spend());
        assert_eq!(budget.wait_time(), Duration::from_secs(40));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(budget.try_spend());
        assert!(!budget.try_spend(), "one write per refill after the pause");
    }

    #[tokio::test(start_paused = true)]
    async fn partial_intervals_are_not_lost() {
        let mut budget = WriteBudget::new(1, Duration::from_secs(15));
        assert!(budget.try_spend());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!budget.try_spend());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(budget.try_spend(), "15 s in total earned one write");
    }
}
