//! The scale set's call budget, bucket by bucket as Microsoft's "Compute throttling
//! limits" page assigns the calls (docs/simulate.md has the table and the source):
//!
//! | call | Azure's policy | per-resource bucket |
//! |---|---|---|
//! | capacity change (`PATCH {vmss}`) | scale set Update | 12, 4 more a minute |
//! | batched delete | scale set Delete | 12, 4 more a minute |
//! | batched reimage | scale set Update (Reimage): subscription policies only | none here |
//! | batched deallocate (`POST {vmss}/deallocate`) | scale set Delete (Deallocate) | the deletes' 12, 4 more a minute |
//! | batched start (`POST {vmss}/start`) | scale set Update (Start): subscription policies only | none here |
//! | reading the scale set and its instances | Low Cost Get / VMs Get | 36, 12 more a minute |
//!
//! Spending before every call keeps the operator under those limits instead of finding
//! them through 429s. Each bucket refills on a one-minute grid, the page's worked
//! example: all of a minute's tokens at once, starting when the budget does.
//!
//! Why that never runs ahead of Azure, whichever way Azure refills (a minute's tokens at
//! its own minute marks, or one at a time): every 60-second interval between two of our
//! refills contains Azure's refill of the same tokens, both buckets spend the same calls
//! and stop at the same cap, so if ours holds no more than Azure's once, it never does
//! after. It holds at the start when Azure's bucket is full; when it is not (someone else
//! wrote to the scale set), Azure answers 429, and [`ScaleSetBudget::throttled`] empties
//! ours and restarts its grid at the `Retry-After`, where it holds again.
//! Hand-written rather than `governor` because it must run on tokio's clock, which tests
//! pause and advance.

use std::time::Duration;

use tokio::time::Instant;

/// What a call spends from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    SetCapacity,
    Delete,
    Reimage,
    /// A batched deallocate: the page lists Deallocate under the scale set's Delete
    /// policy, with no footnote, so it spends the same bucket as a batched delete.
    Deallocate,
    /// A batched start: listed under the scale set's Update policy with the footnote
    /// "only subscription level policies are applicable", as the reimage.
    Start,
    /// One observation of the scale set: its capacity and its instance list.
    Read,
}

#[derive(Debug, Clone)]
struct Bucket {
    burst: u32,
    per_period: u32,
    period: Duration,
    tokens: u32,
    /// The next point of the refill grid.
    next_refill: Instant,
}

impl Bucket {
    fn new(burst: u32, per_period: u32, period: Duration, now: Instant) -> Self {
        Self { burst, per_period, period, tokens: burst, next_refill: now + period }
    }

    fn refill(&mut self, now: Instant) {
        if now < self.next_refill {
            return;
        }
        let periods = now.saturating_duration_since(self.next_refill).as_nanos() / self.period.as_nanos().max(1) + 1;
        let periods = u32::try_from(periods).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(self.per_period.saturating_mul(periods)).min(self.burst);
        self.next_refill += self.period * periods;
    }
}

/// The budget of one scale set: a bucket per Azure policy the operator's calls spend.
#[derive(Debug, Clone)]
pub struct ScaleSetBudget {
    update: Bucket,
    delete: Bucket,
    read: Bucket,
}

impl ScaleSetBudget {
    /// Azure's documented per-scale-set limits.
    pub fn azure_vmss() -> Self {
        Self::with_minute(Duration::from_secs(60))
    }

    /// The same limits with `minute` in place of sixty seconds (the demo runs ten times
    /// faster than Azure).
    pub fn with_minute(minute: Duration) -> Self {
        let now = Instant::now();
        Self {
            update: Bucket::new(12, 4, minute, now),
            delete: Bucket::new(12, 4, minute, now),
            read: Bucket::new(36, 12, minute, now),
        }
    }

    fn bucket(&mut self, call: Call) -> Option<&mut Bucket> {
        match call {
            Call::SetCapacity => Some(&mut self.update),
            Call::Delete | Call::Deallocate => Some(&mut self.delete),
            Call::Read => Some(&mut self.read),
            // Only subscription-wide policies apply to a batched reimage or start (500 a
            // minute): one scale set's operator cannot reach them.
            Call::Reimage | Call::Start => None,
        }
    }

    /// Take one call of `call`'s kind if its bucket has one.
    pub fn try_spend(&mut self, call: Call) -> bool {
        let now = Instant::now();
        let Some(bucket) = self.bucket(call) else { return true };
        bucket.refill(now);
        if bucket.tokens > 0 {
            bucket.tokens -= 1;
            true
        } else {
            false
        }
    }

    /// Azure answered `call` with 429: its bucket is empty until `retry_after`, which is
    /// also where Azure's refill grid lies. When the two buckets disagree, Azure's wins.
    pub fn throttled(&mut self, call: Call, retry_after: Duration) {
        let now = Instant::now();
        if let Some(bucket) = self.bucket(call) {
            bucket.tokens = 0;
            bucket.next_refill = now + retry_after;
        }
    }

    /// Calls of `call`'s kind available now.
    pub fn available(&mut self, call: Call) -> u32 {
        let now = Instant::now();
        match self.bucket(call) {
            Some(bucket) => {
                bucket.refill(now);
                bucket.tokens
            }
            None => u32::MAX,
        }
    }

    /// How long until a call of `call`'s kind is allowed (zero if one is available).
    pub fn wait_time(&mut self, call: Call) -> Duration {
        let now = Instant::now();
        match self.bucket(call) {
            Some(bucket) => {
                bucket.refill(now);
                if bucket.tokens > 0 {
                    Duration::ZERO
                } else {
                    bucket.next_refill.saturating_duration_since(now)
                }
            }
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(budget: &mut ScaleSetBudget, call: Call, tries: usize) -> usize {
        (0..tries).filter(|_| budget.try_spend(call)).count()
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_changes_allow_a_burst_of_twelve_then_four_each_minute() {
        let mut budget = ScaleSetBudget::azure_vmss();
        assert_eq!(spend(&mut budget, Call::SetCapacity, 20), 12);
        assert_eq!(budget.wait_time(Call::SetCapacity), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(spend(&mut budget, Call::SetCapacity, 20), 0, "nothing before the minute is full");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(spend(&mut budget, Call::SetCapacity, 20), 4, "never more than Azure's 4 a minute");
    }

    #[tokio::test(start_paused = true)]
    async fn deletes_have_their_own_bucket_and_reimages_none() {
        let mut budget = ScaleSetBudget::azure_vmss();
        assert_eq!(spend(&mut budget, Call::SetCapacity, 12), 12);
        assert_eq!(spend(&mut budget, Call::Delete, 20), 12, "capacity changes spent nothing of the deletes'");
        assert_eq!(spend(&mut budget, Call::Reimage, 100), 100, "a reimage spends only subscription-wide limits");
        assert_eq!(spend(&mut budget, Call::Read, 50), 36);
    }

    #[tokio::test(start_paused = true)]
    async fn deallocates_share_the_deletes_bucket_and_starts_spend_none() {
        let mut budget = ScaleSetBudget::azure_vmss();
        assert_eq!(spend(&mut budget, Call::Deallocate, 8), 8);
        assert_eq!(spend(&mut budget, Call::Delete, 20), 4, "the scale set's Delete policy counts both");
        assert!(!budget.try_spend(Call::Deallocate));
        assert_eq!(budget.wait_time(Call::Deallocate), Duration::from_secs(60));
        assert!(budget.try_spend(Call::SetCapacity), "the Update bucket is untouched");
        assert_eq!(spend(&mut budget, Call::Start, 100), 100, "a start spends only subscription-wide limits");
        assert_eq!(budget.available(Call::Start), u32::MAX);
        budget.throttled(Call::Deallocate, Duration::from_secs(30));
        assert_eq!(budget.wait_time(Call::Delete), Duration::from_secs(30), "one bucket, one grid");
    }

    #[tokio::test(start_paused = true)]
    async fn never_holds_more_than_the_burst() {
        let mut budget = ScaleSetBudget::azure_vmss();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(budget.available(Call::SetCapacity), 12);
        assert_eq!(budget.available(Call::Read), 36);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_empties_the_bucket_and_moves_its_grid_to_azures() {
        let mut budget = ScaleSetBudget::azure_vmss();
        budget.throttled(Call::Delete, Duration::from_secs(40));
        assert!(!budget.try_spend(Call::Delete));
        assert!(budget.try_spend(Call::SetCapacity), "another policy's bucket is untouched");
        assert_eq!(budget.wait_time(Call::Delete), Duration::from_secs(40));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(spend(&mut budget, Call::Delete, 10), 4, "Azure's refill at its grid point");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!budget.try_spend(Call::Delete), "the next one a whole minute later");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(budget.try_spend(Call::Delete));
    }

    #[tokio::test(start_paused = true)]
    async fn missed_minutes_are_not_lost_up_to_the_burst() {
        let mut budget = ScaleSetBudget::with_minute(Duration::from_secs(6));
        assert_eq!(spend(&mut budget, Call::SetCapacity, 12), 12);
        tokio::time::advance(Duration::from_secs(13)).await;
        assert_eq!(spend(&mut budget, Call::SetCapacity, 20), 8, "two whole minutes of the scaled clock");
    }
}
