//! `pool.learned`: warm and parked counts sized from the pool's own demand history.
//!
//! **What is learned: bursts.** Demand — the jobs assigned to the pool, waiting or
//! running — is observed every reconcile pass. Jobs already assigned are served by the
//! scale-out itself; what warm and parked VMs are for is the jobs that arrive faster than
//! VMs boot. So each sample becomes a *burst*: how far demand rose within
//! [`LearnedParams::burst_window`] (demand now minus the lowest demand sampled in the
//! window before it; a first sample, with nothing before it, is no burst). A workflow run
//! fanning out into twelve jobs is a burst of twelve whether the pool was empty or forty
//! jobs busy.
//!
//! **The model.** The week (from Monday 00:00 UTC) is cut into slots of
//! [`LearnedParams::slot`] (42 four-hour slots by default: bursts come at any hour, so
//! a slot must be long enough to have seen one in most weeks). Each slot keeps the
//! *largest burst* it saw in each calendar week, for the newest
//! [`LearnedParams::history_weeks`] weeks. The targets for a slot come from the weighted
//! distribution of its weekly peaks, a week's weight halving every
//! [`LearnedParams::half_life`] of age:
//!
//! - warm (`min`) = the [`LearnedParams::warm_quantile`]: bursts reached in that share
//!   of weeks start at once on running VMs (default 0: a running VM costs about fifteen
//!   times its parked OS disk, and a start is well under a boot);
//! - warm + parked = the [`LearnedParams::reserve_quantile`] (default 1: the largest
//!   burst of the weeks kept, the weights then only matter below it): the rest of a
//!   burst waits a start, not a boot.
//!
//! Within [`LearnedParams::lead`] of the next slot the larger of both slots' targets
//! applies, so VMs are running or parked when the slot begins rather than after.
//! The configured `min` and `parked` stay floors, and everything is clamped to `max`.
//! The defaults were chosen on the bitcoin trace's history before its last 14 days
//! (docs/scaling-policy.md, "The learned mode").
//!
//! Pure and deterministic: no clock (every observation and question carries its time),
//! no I/O (the operator crate stores [`LearnedSnapshot`] in a blob).

use std::{collections::VecDeque, time::Duration};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Targets;

/// The snapshot format this code reads and writes. Format 1 (before 2026-12-02) held
/// peaks of demand, not of bursts: not read, the blob is deleted to learn anew.
pub const SNAPSHOT_FORMAT: u32 = 2;

const DAY_SECS: u64 = 24 * 3600;
const WEEK_SECS: i64 = 7 * 24 * 3600;
/// 1970-01-05 00:00 UTC, the first Monday after the Unix epoch (a Thursday): weeks are
/// counted from it, so week boundaries fall on Monday 00:00 UTC.
const FIRST_MONDAY: i64 = 4 * 24 * 3600;

/// The model's tuning. Every field is a `pool.learned` setting.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedParams {
    /// Length of a slot of the week: whole minutes, dividing a day.
    pub slot: Duration,
    /// A week's peak weighs half as much for every `half_life` of age.
    pub half_life: Duration,
    /// Weeks of peaks kept per slot (the newest).
    pub history_weeks: u32,
    /// Warm VMs (`min`) cover this quantile of a slot's weekly peaks.
    pub warm_quantile: f64,
    /// Warm plus parked VMs cover this quantile.
    pub reserve_quantile: f64,
    /// How long before a slot begins its targets already apply.
    pub lead: Duration,
    /// A burst is the rise of demand within this window: about a boot, the time a
    /// reserve taken by one burst needs to be whole again.
    pub burst_window: Duration,
}

impl Default for LearnedParams {
    fn default() -> Self {
        Self {
            slot: Duration::from_secs(4 * 3600),
            half_life: Duration::from_secs(4 * 7 * DAY_SECS),
            history_weeks: 12,
            warm_quantile: 0.0,
            reserve_quantile: 1.0,
            lead: Duration::from_secs(15 * 60),
            burst_window: Duration::from_secs(90),
        }
    }
}

/// A tuning value the model cannot work with; [`LearnedParamsError::field`] names it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LearnedParamsError {
    #[error("slot ({0:?}) must be whole minutes, at least 1 minute, and divide a day")]
    Slot(Duration),
    #[error("half_life must be more than zero")]
    HalfLife,
    #[error("history_weeks ({0}) must be between 1 and 520")]
    HistoryWeeks(u32),
    #[error("warm_quantile ({warm}) and reserve_quantile ({reserve}) must be within 0-1, warm not above reserve")]
    Quantiles { warm: f64, reserve: f64 },
    #[error("lead ({0:?}) must be less than a day")]
    Lead(Duration),
    #[error("burst_window ({0:?}) must be between 30 seconds and an hour")]
    BurstWindow(Duration),
}

impl LearnedParamsError {
    /// The `pool.learned` field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Slot(_) => "slot",
            Self::HalfLife => "half_life",
            Self::HistoryWeeks(_) => "history_weeks",
            Self::Quantiles { .. } => "warm_quantile",
            Self::Lead(_) => "lead",
            Self::BurstWindow(_) => "burst_window",
        }
    }
}

impl LearnedParams {
    /// Every problem with these values, in field order.
    pub fn problems(&self) -> Vec<LearnedParamsError> {
        let mut out = Vec::new();
        let slot = self.slot.as_secs();
        if self.slot.subsec_nanos() != 0 || slot < 60 || !slot.is_multiple_of(60) || !DAY_SECS.is_multiple_of(slot) {
            out.push(LearnedParamsError::Slot(self.slot));
        }
        if self.half_life.is_zero() {
            out.push(LearnedParamsError::HalfLife);
        }
        if !(1..=520).contains(&self.history_weeks) {
            out.push(LearnedParamsError::HistoryWeeks(self.history_weeks));
        }
        let (warm, reserve) = (self.warm_quantile, self.reserve_quantile);
        if !((0.0..=1.0).contains(&warm) && (0.0..=1.0).contains(&reserve) && warm <= reserve) {
            out.push(LearnedParamsError::Quantiles { warm, reserve });
        }
        if self.lead.as_secs() >= DAY_SECS {
            out.push(LearnedParamsError::Lead(self.lead));
        }
        if !(30..=3600).contains(&self.burst_window.as_secs()) {
            out.push(LearnedParamsError::BurstWindow(self.burst_window));
        }
        out
    }

    fn slot_secs(&self) -> i64 {
        self.slot.as_secs() as i64
    }

    fn slots_per_week(&self) -> usize {
        (WEEK_SECS / self.slot_secs()) as usize
    }
}

/// The model's state as stored: the format, the slot length it was learned with, and
/// each slot's weekly peaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedSnapshot {
    /// [`SNAPSHOT_FORMAT`] when written by this code.
    pub format: u32,
    /// The slot length in seconds.
    pub slot_seconds: u64,
    /// One list per slot of the week, from Monday 00:00 UTC: `[week, largest burst]`
    /// pairs, oldest first, `week` counted from Monday 1970-01-05.
    pub slots: Vec<Vec<(i64, u32)>>,
}

/// Why a snapshot cannot become a model. Never answered by starting empty: the caller
/// decides (the operator fails loudly, naming the blob).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot format {found} is not the format {SNAPSHOT_FORMAT} this operator reads: delete the blob to learn anew (or seed it again from a trace)")]
    UnknownFormat { found: u32 },
    #[error("the snapshot was learned with {stored}-second slots, the configuration says {configured}: delete the blob (or set pool.learned.slot back) to learn anew")]
    SlotChanged { stored: u64, configured: u64 },
    #[error("the snapshot has {found} slots, a week of {configured}-second slots has {expected}")]
    SlotCount { found: usize, expected: usize, configured: u64 },
}

/// The learned demand of one pool.
#[derive(Clone, Debug)]
pub struct LearnedDemand {
    params: LearnedParams,
    /// Per slot of the week: `(week, largest burst)`, sorted by week, at most `history_weeks`.
    slots: Vec<Vec<(i64, u32)>>,
    /// The samples of the last burst window, to measure the next sample's burst. Not
    /// stored: after a restart the first sample is no burst.
    recent: BurstMeter,
}

/// Two models are equal when they learned the same: the open burst window is not part of it.
impl PartialEq for LearnedDemand {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params && self.slots == other.slots
    }
}

/// Demand samples of the last [`LearnedParams::burst_window`], oldest first.
#[derive(Clone, Debug, Default)]
struct BurstMeter {
    samples: VecDeque<(i64, u32)>,
}

impl BurstMeter {
    /// The burst at `at` (unix seconds): `demand` minus the lowest demand sampled within
    /// `window` before it; 0 with no sample there. A sample older than the newest (a clock
    /// set back) starts the window afresh.
    fn burst(&mut self, at: i64, demand: u32, window: i64) -> u32 {
        if self.samples.back().is_some_and(|&(t, _)| t > at) {
            self.samples.clear();
        }
        while self.samples.front().is_some_and(|&(t, _)| t < at - window) {
            self.samples.pop_front();
        }
        let lowest = self.samples.iter().map(|&(_, d)| d).min().unwrap_or(demand);
        self.samples.push_back((at, demand));
        demand.saturating_sub(lowest)
    }
}

impl LearnedDemand {
    /// An empty model. `params` must have no [`LearnedParams::problems`] (configuration
    /// validation checks them); a bad one is replaced by the default, never a panic.
    pub fn new(params: LearnedParams) -> Self {
        let params = if params.problems().is_empty() { params } else { LearnedParams::default() };
        let slots = vec![Vec::new(); params.slots_per_week()];
        Self { params, slots, recent: BurstMeter::default() }
    }

    pub fn params(&self) -> &LearnedParams {
        &self.params
    }

    /// How many (slot, week) peaks the model holds.
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One demand sample: jobs assigned to the pool (waiting or running) at `at`; the
    /// burst it shows is learned. No burst counts too: a slot's peak for the week is then
    /// known to be low.
    pub fn observe(&mut self, at: OffsetDateTime, demand: u32) {
        let window = self.params.burst_window.as_secs() as i64;
        let burst = self.recent.burst(at.unix_timestamp(), demand, window);
        self.record_burst(at, burst);
    }

    /// A burst of `burst` jobs at `at`, as [`Self::observe`] measures it.
    fn record_burst(&mut self, at: OffsetDateTime, burst: u32) {
        let (week, slot) = self.position(at);
        self.record(slot, week, burst);
    }

    /// Many samples at once, e.g. from a trace of past jobs; the same as observing each.
    pub fn seed(&mut self, samples: impl IntoIterator<Item = (OffsetDateTime, u32)>) {
        for (at, demand) in samples {
            self.observe(at, demand);
        }
    }

    /// Folds `other` in: for each slot and week the larger peak. Commutative and
    /// idempotent, so two writers' models combine without either losing a peak.
    pub fn merge(&mut self, other: &LearnedDemand) {
        if other.params.slot != self.params.slot {
            return;
        }
        for (slot, peaks) in other.slots.iter().enumerate() {
            for &(week, peak) in peaks {
                self.record(slot, week, peak);
            }
        }
    }

    /// The targets at `at` for a pool of at most `max`: the learned warm and parked
    /// counts, never below `base.min` and `base.parked`, `min + parked <= max`; the
    /// free share is `base`'s.
    pub fn targets_at(&self, at: OffsetDateTime, base: Targets, max: u32) -> Targets {
        let lead = time::Duration::try_from(self.params.lead).unwrap_or(time::Duration::ZERO);
        let ahead = at.checked_add(lead).unwrap_or(at);
        let (warm_now, reserve_now) = self.slot_targets(at);
        let (warm_ahead, reserve_ahead) = self.slot_targets(ahead);
        let warm = warm_now.max(warm_ahead);
        let reserve = reserve_now.max(reserve_ahead).max(warm);
        let min = warm.max(base.min).min(max);
        let parked = reserve.saturating_sub(min).max(base.parked).min(max - min);
        Targets { min, parked, free_target_percentage: base.free_target_percentage }
    }

    pub fn to_snapshot(&self) -> LearnedSnapshot {
        LearnedSnapshot { format: SNAPSHOT_FORMAT, slot_seconds: self.params.slot.as_secs(), slots: self.slots.clone() }
    }

    /// A model from a stored snapshot, learned with the same slot length. Peaks beyond
    /// `history_weeks` (the setting was lowered) are dropped, oldest first.
    pub fn from_snapshot(params: LearnedParams, snapshot: LearnedSnapshot) -> Result<Self, SnapshotError> {
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::UnknownFormat { found: snapshot.format });
        }
        let mut model = Self::new(params);
        let configured = model.params.slot.as_secs();
        if snapshot.slot_seconds != configured {
            return Err(SnapshotError::SlotChanged { stored: snapshot.slot_seconds, configured });
        }
        let expected = model.params.slots_per_week();
        if snapshot.slots.len() != expected {
            return Err(SnapshotError::SlotCount { found: snapshot.slots.len(), expected, configured });
        }
        for (slot, peaks) in snapshot.slots.into_iter().enumerate() {
            for (week, peak) in peaks {
                model.record(slot, week, peak);
            }
        }
        Ok(model)
    }

    /// The week (from Monday 1970-01-05) and the slot of the week of `at`.
    fn position(&self, at: OffsetDateTime) -> (i64, usize) {
        let since = at.unix_timestamp() - FIRST_MONDAY;
        let week = since.div_euclid(WEEK_SECS);
        let slot = (since.rem_euclid(WEEK_SECS) / self.params.slot_secs()) as usize;
        (week, slot)
    }

    fn record(&mut self, slot: usize, week: i64, demand: u32) {
        let Some(peaks) = self.slots.get_mut(slot) else { return };
        match peaks.binary_search_by_key(&week, |&(w, _)| w) {
            Ok(i) => peaks[i].1 = peaks[i].1.max(demand),
            Err(i) => {
                peaks.insert(i, (week, demand));
                let keep = self.params.history_weeks as usize;
                if peaks.len() > keep {
                    peaks.drain(..peaks.len() - keep);
                }
            }
        }
    }

    /// `(warm, reserve)` of the slot of `at`: the two quantiles of its weekly peaks,
    /// each week weighted by its age relative to `at`'s week.
    fn slot_targets(&self, at: OffsetDateTime) -> (u32, u32) {
        let (week, slot) = self.position(at);
        let peaks = &self.slots[slot];
        if peaks.is_empty() {
            return (0, 0);
        }
        let half_life_weeks = self.params.half_life.as_secs_f64() / WEEK_SECS as f64;
        let mut weighted: Vec<(u32, f64)> = peaks
            .iter()
            .map(|&(w, peak)| {
                // A week after `at` (a question about the past) weighs as the newest.
                let age = (week - w).max(0) as f64;
                (peak, 0.5f64.powf(age / half_life_weeks))
            })
            .collect();
        weighted.sort_by_key(|&(peak, _)| peak);
        let total: f64 = weighted.iter().map(|&(_, weight)| weight).sum();
        let quantile = |q: f64| {
            // The smallest count covering q of the weeks' weight: the smallest peak whose
            // cumulative weight reaches q of the total (a hair less, so that q = 1 is the
            // largest peak despite rounding); none for q = 0, which asks to cover no week.
            if q <= 0.0 {
                return 0;
            }
            let target = q * total * (1.0 - 1e-12);
            let mut cumulative = 0.0;
            for &(peak, weight) in &weighted {
                cumulative += weight;
                if cumulative >= target {
                    return peak;
                }
            }
            weighted.last().map_or(0, |&(peak, _)| peak)
        };
        (quantile(self.params.warm_quantile), quantile(self.params.reserve_quantile))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    const BASE: Targets = Targets { min: 0, parked: 0, free_target_percentage: 20 };
    /// Monday 5 January 2026, 00:00 UTC.
    const MONDAY: OffsetDateTime = datetime!(2026-01-05 00:00 UTC);

    fn week(n: i64) -> time::Duration {
        time::Duration::weeks(n)
    }

    /// Hour-long slots and the given quantiles, the rest default: the tests below do not
    /// depend on the defaults' slot or quantiles.
    fn hourly(warm_quantile: f64, reserve_quantile: f64) -> LearnedParams {
        LearnedParams { slot: Duration::from_secs(3600), warm_quantile, reserve_quantile, ..LearnedParams::default() }
    }

    /// Tuesdays 10:00-11:00 UTC see `peak` jobs, arriving at 10:00 (a burst of `peak`);
    /// every other 30-s sample sees none.
    fn tuesday_mornings(model: &mut LearnedDemand, weeks: impl IntoIterator<Item = (i64, u32)>) {
        for (n, peak) in weeks {
            let start = MONDAY + week(n);
            for step in 0..(7 * 24 * 120) {
                let at = start + time::Duration::seconds(30 * step);
                let busy = at.weekday() == time::Weekday::Tuesday && at.hour() == 10;
                model.observe(at, if busy { peak } else { 0 });
            }
        }
    }

    #[test]
    fn a_weekly_burst_is_learned_for_its_slot_and_nowhere_else() {
        let mut model = LearnedDemand::new(hourly(0.25, 0.9));
        tuesday_mornings(&mut model, (0..4).map(|n| (n, 8)));
        let next_tuesday = MONDAY + week(4) + time::Duration::hours(24 + 10) + time::Duration::minutes(20);
        assert_eq!(model.targets_at(next_tuesday, BASE, 40), Targets { min: 8, parked: 0, ..BASE });
        let tuesday_night = next_tuesday + time::Duration::hours(12);
        assert_eq!(model.targets_at(tuesday_night, BASE, 40), BASE);
        assert_eq!(model.len(), 4 * 168, "a peak per slot and week, zeros included");
    }

    #[test]
    fn the_defaults_keep_nothing_warm_and_park_the_largest_burst() {
        let mut model = LearnedDemand::new(LearnedParams::default());
        tuesday_mornings(&mut model, [(0, 3), (1, 8), (2, 5)]);
        let next_tuesday = MONDAY + week(3) + time::Duration::hours(24 + 10);
        assert_eq!(model.targets_at(next_tuesday, BASE, 40), Targets { min: 0, parked: 8, ..BASE });
    }

    #[test]
    fn a_burst_is_the_rise_within_the_window_not_the_level() {
        let mut model = LearnedDemand::new(hourly(0.0, 1.0));
        let start = MONDAY + time::Duration::hours(10);
        let at = |step: i64| start + time::Duration::seconds(30 * step);
        // 40 jobs busy from the first sample on (no burst: nothing before it), for an hour.
        for step in 0..120 {
            model.observe(at(step), 40);
        }
        // A workflow run fans out: 52 within 30 s, then 55 a minute later.
        model.observe(at(120), 52);
        model.observe(at(121), 53);
        model.observe(at(122), 55);
        // A slow climb the hour after: one more job every 3 minutes, never a burst above 1.
        for step in 0..120 {
            model.observe(at(240 + step), 55 + (step / 6) as u32);
        }
        let t = |hour: i64| model.targets_at(MONDAY + week(1) + time::Duration::hours(hour), BASE, 60);
        assert_eq!(t(10).parked, 0, "a busy level is no burst");
        assert_eq!(t(11).parked, 15, "55 - 40 within two minutes");
        assert_eq!(t(12).parked, 1, "the climb");
        assert_eq!(t(11).min, 0);
    }

    #[test]
    fn a_clock_set_back_starts_the_window_afresh() {
        let mut meter = BurstMeter::default();
        assert_eq!(meter.burst(1_000, 5, 120), 0, "the first sample");
        assert_eq!(meter.burst(1_030, 9, 120), 4);
        assert_eq!(meter.burst(1_060, 2, 120), 0, "a fall is no burst");
        assert_eq!(meter.burst(1_090, 6, 120), 4, "from the lowest in the window");
        assert_eq!(meter.burst(1_300, 8, 120), 0, "all but itself older than the window");
        assert_eq!(meter.burst(900, 20, 120), 0, "earlier than the newest: afresh");
    }

    #[test]
    fn the_slot_ahead_applies_within_the_lead() {
        let mut model = LearnedDemand::new(hourly(0.25, 0.9));
        tuesday_mornings(&mut model, [(0, 6)]);
        let tuesday = MONDAY + week(1) + time::Duration::hours(24);
        assert_eq!(model.targets_at(tuesday + time::Duration::minutes(9 * 60 + 44), BASE, 40).min, 0, "09:44");
        assert_eq!(model.targets_at(tuesday + time::Duration::minutes(9 * 60 + 45), BASE, 40).min, 6, "09:45");
        assert_eq!(model.targets_at(tuesday + time::Duration::minutes(10 * 60 + 59), BASE, 40).min, 6, "10:59");
        assert_eq!(model.targets_at(tuesday + time::Duration::minutes(11 * 60), BASE, 40).min, 0, "11:00");
    }

    #[test]
    fn warm_covers_the_usual_peak_and_parked_the_rest_of_a_high_one() {
        // Twelve weeks: peaks 2 in most weeks, 10 in two of them.
        let peaks = [2, 2, 10, 2, 2, 2, 2, 10, 2, 2, 2, 2];
        let params = LearnedParams { half_life: Duration::from_secs(520 * 7 * DAY_SECS), ..hourly(0.25, 0.9) };
        let mut model = LearnedDemand::new(params);
        tuesday_mornings(&mut model, peaks.iter().enumerate().map(|(n, &p)| (n as i64, p)));
        let at = MONDAY + week(11) + time::Duration::hours(24 + 10);
        assert_eq!(model.targets_at(at, BASE, 40), Targets { min: 2, parked: 8, ..BASE });
    }

    #[test]
    fn recent_weeks_outweigh_old_ones() {
        // Eight weeks of 10, then four of 2: with a one-week half-life the recent 2 wins.
        let params = LearnedParams { half_life: Duration::from_secs(7 * DAY_SECS), ..hourly(0.5, 0.5) };
        let mut model = LearnedDemand::new(params);
        tuesday_mornings(&mut model, (0..12).map(|n| (n, if n < 8 { 10 } else { 2 })));
        let at = MONDAY + week(11) + time::Duration::hours(24 + 10);
        assert_eq!(model.targets_at(at, BASE, 40).min, 2);
    }

    #[test]
    fn configured_floors_and_max_bound_the_learned_counts() {
        let mut model = LearnedDemand::new(hourly(0.25, 0.9));
        tuesday_mornings(&mut model, [(0, 30)]);
        let at = MONDAY + week(1) + time::Duration::hours(24 + 10);
        assert_eq!(model.targets_at(at, BASE, 12), Targets { min: 12, parked: 0, ..BASE });
        let floors = Targets { min: 1, parked: 3, free_target_percentage: 10 };
        let night = at + time::Duration::hours(8);
        assert_eq!(model.targets_at(night, floors, 12), floors, "nothing learned: the floors");
    }

    #[test]
    fn history_keeps_the_newest_weeks_only() {
        let params = LearnedParams { history_weeks: 2, ..hourly(0.25, 0.9) };
        let mut model = LearnedDemand::new(params);
        tuesday_mornings(&mut model, [(0, 9), (1, 1), (2, 1)]);
        let at = MONDAY + week(2) + time::Duration::hours(24 + 10);
        assert_eq!(model.targets_at(at, BASE, 40), Targets { min: 1, parked: 0, ..BASE }, "week 0's 9 is gone");
        assert_eq!(model.len(), 2 * 168);
    }

    #[test]
    fn an_unknown_snapshot_format_or_slot_length_is_an_error_not_a_reset() {
        let model = LearnedDemand::new(hourly(0.0, 1.0));
        let mut snapshot = model.to_snapshot();
        snapshot.format = 1;
        assert_eq!(
            LearnedDemand::from_snapshot(hourly(0.0, 1.0), snapshot).unwrap_err(),
            SnapshotError::UnknownFormat { found: 1 },
            "format 1 held peaks of demand, not of bursts"
        );
        let half_hours = LearnedParams { slot: Duration::from_secs(1800), ..LearnedParams::default() };
        assert_eq!(
            LearnedDemand::from_snapshot(half_hours, model.to_snapshot()).unwrap_err(),
            SnapshotError::SlotChanged { stored: 3600, configured: 1800 }
        );
        let mut short = model.to_snapshot();
        short.slots.pop();
        assert!(matches!(
            LearnedDemand::from_snapshot(hourly(0.0, 1.0), short),
            Err(SnapshotError::SlotCount { found: 167, expected: 168, .. })
        ));
    }

    #[test]
    fn weeks_begin_on_monday_at_midnight_utc() {
        let model = LearnedDemand::new(hourly(0.0, 1.0));
        assert_eq!(model.position(datetime!(1970-01-05 00:00 UTC)), (0, 0));
        assert_eq!(model.position(datetime!(1970-01-04 23:59:59 UTC)), (-1, 167));
        assert_eq!(model.position(datetime!(2026-01-05 00:00 UTC)).1, 0, "a Monday");
        assert_eq!(model.position(datetime!(2026-01-06 10:30 UTC)).1, 24 + 10);
        assert_eq!(model.position(datetime!(2026-01-06 10:30 +02:00)).1, 24 + 8, "slots are UTC");
    }

    #[test]
    fn bad_parameters_are_named() {
        let params = LearnedParams {
            slot: Duration::from_secs(7 * 60),
            half_life: Duration::ZERO,
            history_weeks: 0,
            warm_quantile: 0.9,
            reserve_quantile: 0.5,
            lead: Duration::from_secs(DAY_SECS),
            burst_window: Duration::from_secs(10),
        };
        let fields: Vec<_> = params.problems().iter().map(LearnedParamsError::field).collect();
        assert_eq!(fields, ["slot", "half_life", "history_weeks", "warm_quantile", "lead", "burst_window"]);
        assert!(LearnedParams::default().problems().is_empty());
    }

    fn samples() -> impl Strategy<Value = Vec<(i64, u32)>> {
        // Up to 300 samples over 20 weeks, demand up to 50.
        prop::collection::vec((0i64..20 * WEEK_SECS, 0u32..50), 0..300)
    }

    fn params() -> impl Strategy<Value = LearnedParams> {
        (
            prop::sample::select(vec![15 * 60u64, 3600, 4 * 3600]),
            1u32..30,
            0.0f64..=1.0,
            0.0f64..=1.0,
            0u64..3600,
            30u64..=600,
        )
            .prop_map(|(slot, history_weeks, a, b, lead, window)| LearnedParams {
                slot: Duration::from_secs(slot),
                half_life: Duration::from_secs(2 * 7 * DAY_SECS),
                history_weeks,
                warm_quantile: a.min(b),
                reserve_quantile: a.max(b),
                lead: Duration::from_secs(lead),
                burst_window: Duration::from_secs(window),
            })
    }

    /// A model that observed demand `samples` (seconds after MONDAY, in any order).
    fn model_of(params: &LearnedParams, samples: &[(i64, u32)]) -> LearnedDemand {
        let mut model = LearnedDemand::new(params.clone());
        model.seed(samples.iter().map(|&(s, d)| (MONDAY + time::Duration::seconds(s), d)));
        model
    }

    /// A model that recorded the bursts `samples` directly.
    fn model_of_bursts(params: &LearnedParams, samples: &[(i64, u32)]) -> LearnedDemand {
        let mut model = LearnedDemand::new(params.clone());
        for &(s, burst) in samples {
            model.record_burst(MONDAY + time::Duration::seconds(s), burst);
        }
        model
    }

    proptest! {
        #[test]
        fn a_snapshot_round_trips_through_json_to_the_same_targets(
            params in params(), samples in samples(), at in 0i64..22 * WEEK_SECS
        ) {
            let model = model_of(&params, &samples);
            let json = serde_json::to_string(&model.to_snapshot()).unwrap();
            let back = LearnedDemand::from_snapshot(params, serde_json::from_str(&json).unwrap()).unwrap();
            prop_assert_eq!(&back, &model);
            let at = MONDAY + time::Duration::seconds(at);
            prop_assert_eq!(back.targets_at(at, BASE, 60), model.targets_at(at, BASE, 60));
        }

        #[test]
        fn targets_stay_within_the_floors_and_max(
            params in params(), samples in samples(), at in 0i64..22 * WEEK_SECS,
            max in 0u32..40, min in 0u32..40, parked in 0u32..40
        ) {
            let min = min.min(max);
            let parked = parked.min(max - min);
            let base = Targets { min, parked, free_target_percentage: 30 };
            let t = model_of(&params, &samples).targets_at(MONDAY + time::Duration::seconds(at), base, max);
            prop_assert!(t.min + t.parked <= max, "{t:?} above max {max}");
            prop_assert!(t.min >= base.min && t.parked >= base.parked.min(max - t.min), "{t:?} below {base:?}");
            prop_assert_eq!(t.free_target_percentage, 30);
        }

        #[test]
        fn larger_bursts_never_mean_fewer_warm_or_ready_vms(
            params in params(), samples in samples(), extra in prop::collection::vec(0u32..20, 300),
            at in 0i64..22 * WEEK_SECS
        ) {
            let more: Vec<_> = samples.iter().zip(&extra).map(|(&(s, d), &e)| (s, d + e)).collect();
            let at = MONDAY + time::Duration::seconds(at);
            let low = model_of_bursts(&params, &samples).targets_at(at, BASE, 60);
            let high = model_of_bursts(&params, &more).targets_at(at, BASE, 60);
            prop_assert!(high.min >= low.min, "{low:?} -> {high:?}");
            prop_assert!(high.min + high.parked >= low.min + low.parked, "{low:?} -> {high:?}");
        }

        #[test]
        fn merging_is_order_free_and_keeps_every_peak(
            params in params(), a in samples(), b in samples()
        ) {
            let (ma, mb) = (model_of_bursts(&params, &a), model_of_bursts(&params, &b));
            let mut ab = ma.clone();
            ab.merge(&mb);
            let mut ba = mb.clone();
            ba.merge(&ma);
            prop_assert_eq!(&ab, &ba);
            let mut again = ab.clone();
            again.merge(&mb);
            prop_assert_eq!(&again, &ab, "idempotent");
            // Merging equals learning both sample sets, when no history is trimmed away.
            if params.history_weeks >= 21 {
                let both: Vec<_> = a.iter().chain(&b).copied().collect();
                prop_assert_eq!(&ab, &model_of_bursts(&params, &both));
            }
        }

        #[test]
        fn a_burst_is_demand_less_the_lowest_in_the_window_before_it(
            steps in prop::collection::vec((1i64..200, 0u32..60), 1..200), window in 30i64..600
        ) {
            let mut meter = BurstMeter::default();
            let mut seen: Vec<(i64, u32)> = Vec::new();
            let mut at = 0;
            for (gap, demand) in steps {
                at += gap;
                let lowest = seen.iter().filter(|&&(t, _)| t >= at - window).map(|&(_, d)| d).min();
                let burst = meter.burst(at, demand, window);
                prop_assert_eq!(burst, lowest.map_or(0, |low| demand.saturating_sub(low)));
                prop_assert!(burst <= demand);
                seen.push((at, demand));
            }
        }
    }
}
