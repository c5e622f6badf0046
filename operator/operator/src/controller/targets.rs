//! The pool's effective targets at the moment of a pass or a registration: fixed
//! counts, a schedule's, or the learned mode's (`operator_core::targets`). `policy::decide`
//! stays pure: it gets them as plain numbers in its `PoolSpec`. The wall clock is the
//! system's in `serve`, the trace's in `simulate`, so the same schedule and the same
//! learned model run in both.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::{
    policy::PoolSpec,
    targets::{LearnedDemand, Schedule, Targets},
};

/// Where the targets come from.
#[derive(Clone)]
pub enum Sizing {
    /// `pool.min`, `pool.parked`, `pool.free_target_percentage` as configured.
    Fixed,
    /// `pool.schedules`.
    Scheduled(Schedule),
    /// `pool.learned`: a model in memory (the simulator, the sandbox) or the one the
    /// served operator keeps in its blob (`crate::learned::LearnedState`).
    Learned(Arc<dyn LearnedModel>),
}

impl std::fmt::Debug for Sizing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed => f.write_str("Fixed"),
            Self::Scheduled(schedule) => f.debug_tuple("Scheduled").field(schedule).finish(),
            Self::Learned(_) => f.write_str("Learned"),
        }
    }
}

/// The learned mode as the controller uses it: a demand sample each pass, the targets
/// when asked.
pub trait LearnedModel: Send + Sync {
    fn observe(&self, now: OffsetDateTime, demand: u32);
    fn targets_at(&self, now: OffsetDateTime, base: Targets, max: u32) -> Targets;
}

impl LearnedModel for Mutex<LearnedDemand> {
    fn observe(&self, now: OffsetDateTime, demand: u32) {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).observe(now, demand);
    }

    fn targets_at(&self, now: OffsetDateTime, base: Targets, max: u32) -> Targets {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).targets_at(now, base, max)
    }
}

impl LearnedModel for crate::learned::LearnedState {
    fn observe(&self, now: OffsetDateTime, demand: u32) {
        crate::learned::LearnedState::observe(self, now, demand);
    }

    fn targets_at(&self, now: OffsetDateTime, base: Targets, max: u32) -> Targets {
        crate::learned::LearnedState::targets_at(self, now, base, max)
    }
}

impl Sizing {
    /// The source `pool` configures. A learned mode starts with an empty model in memory
    /// here; `serve` replaces it with the one loaded from its blob (`connect`).
    pub fn from_config(pool: &crate::config::PoolConfig) -> Self {
        if let Some(learned) = &pool.learned {
            let model: Arc<dyn LearnedModel> = Arc::new(Mutex::new(LearnedDemand::new(learned.params())));
            return Self::Learned(model);
        }
        match pool.schedule() {
            Ok(schedule) if !schedule.is_empty() => Self::Scheduled(schedule),
            // A validated configuration always parses; an empty list is the fixed counts.
            _ => Self::Fixed,
        }
    }
}

/// What "now" is on the wall.
#[derive(Clone, Copy, Debug)]
pub enum WallClock {
    System,
    /// Simulated time: `at` was the wall time when tokio's (paused) clock read `origin`.
    Simulated {
        origin: Instant,
        at: OffsetDateTime,
    },
}

impl WallClock {
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Self::System => OffsetDateTime::now_utc(),
            Self::Simulated { origin, at } => *at + Instant::now().saturating_duration_since(*origin),
        }
    }
}

/// The base targets, their source and the clock.
#[derive(Clone, Debug)]
pub struct Targeting {
    pub sizing: Sizing,
    pub clock: WallClock,
}

impl Default for Targeting {
    fn default() -> Self {
        Self { sizing: Sizing::Fixed, clock: WallClock::System }
    }
}

/// The targets in force and the schedule entry that set them, if any.
pub use crate::targets::Applied as InForce;

impl Targeting {
    /// The targets at `now` for the pool `spec` describes (its `min`, `parked` and free
    /// share are the configured base values).
    pub fn at(&self, spec: &PoolSpec, now: OffsetDateTime) -> InForce {
        let base = Targets { min: spec.min, parked: spec.parked, free_target_percentage: spec.free_target_percentage };
        match &self.sizing {
            Sizing::Fixed => InForce { targets: base, entry: None },
            Sizing::Scheduled(schedule) => schedule.targets_at(base, now),
            Sizing::Learned(model) => InForce { targets: model.targets_at(now, base, spec.max), entry: None },
        }
    }

    /// `spec` with the targets in force at `now`.
    pub fn apply(&self, spec: &PoolSpec, now: OffsetDateTime) -> (PoolSpec, InForce) {
        let in_force = self.at(spec, now);
        let t = in_force.targets;
        let effective =
            PoolSpec { min: t.min, parked: t.parked, free_target_percentage: t.free_target_percentage, ..spec.clone() };
        (effective, in_force)
    }

    /// One demand sample for the learned mode (jobs assigned or running), each pass.
    pub fn observe(&self, now: OffsetDateTime, demand: u32) {
        if let Sizing::Learned(model) = &self.sizing {
            model.observe(now, demand);
        }
    }

    /// How long until the targets may next change, when they follow the clock: the next
    /// whole minute (schedules match by the minute; learned slots start on them).
    pub fn until_next_change(&self, now: OffsetDateTime) -> Option<std::time::Duration> {
        if matches!(self.sizing, Sizing::Fixed) {
            return None;
        }
        let into_minute = std::time::Duration::new(u64::from(now.second()), now.nanosecond());
        Some(std::time::Duration::from_secs(60).saturating_sub(into_minute))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::targets::ScheduleEntry;

    #[test]
    fn a_schedule_sets_the_targets_while_it_matches_and_the_base_holds_otherwise() {
        let schedule = Schedule::new(vec![ScheduleEntry {
            cron: "* 9-17 * * mon-fri".into(),
            timezone: "Europe/Berlin".into(),
            min: Some(2),
            parked: Some(6),
            free_target_percentage: None,
        }])
        .expect("valid");
        let targeting = Targeting { sizing: Sizing::Scheduled(schedule), clock: WallClock::System };
        let spec = PoolSpec { parked: 1, ..PoolSpec::new(0, 20, 10) };
        // Tuesday 1 December 2026: Berlin is UTC+1.
        let (at_nine, in_force) = targeting.apply(&spec, datetime!(2026-12-01 08:00 UTC));
        assert_eq!((at_nine.min, at_nine.parked, at_nine.free_target_percentage), (2, 6, 10));
        assert_eq!(in_force.entry, Some(0));
        let (before, in_force) = targeting.apply(&spec, datetime!(2026-12-01 07:59:59 UTC));
        assert_eq!((before.min, before.parked, in_force.entry), (0, 1, None), "08:59:59 in Berlin");
        assert_eq!(
            targeting.until_next_change(datetime!(2026-12-01 07:59:59.250 UTC)),
            Some(std::time::Duration::from_millis(750))
        );
        assert_eq!(Targeting::default().until_next_change(datetime!(2026-12-01 07:59:59 UTC)), None);
    }
}
