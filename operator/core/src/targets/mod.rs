//! The pool's effective targets at a moment: how many VMs run warm (`min`), how many
//! wait parked (deallocated, started on demand) and the free share, before the policy
//! sees them. `policy::decide` stays pure and clock-free: the caller computes the
//! targets for `now` here and hands them in as plain numbers.
//!
//! Three sources, one per configuration mode:
//!
//! - fixed: `pool.min`, `pool.parked`, `pool.free_target_percentage` as configured;
//! - [`schedule`]: `pool.schedules`, cron entries in their own time zones that override
//!   some of those fields while they match (the last matching entry wins);
//! - [`learned`]: `pool.learned`, both counts sized from the pool's demand history
//!   (per slot of the week, recent weeks weighing most).
//!
//! Nothing here reads a clock or does I/O; persistence of the learned state lives in
//! the operator crate (`learned/`).

pub mod learned;
pub mod schedule;

pub use learned::{LearnedDemand, LearnedParams, LearnedParamsError, LearnedSnapshot, SnapshotError};
pub use schedule::{Applied, Schedule, ScheduleEntry, ScheduleError};

/// What the pool aims for at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// VMs kept running, busy or not.
    pub min: u32,
    /// VMs kept parked (deallocated) besides `min`, started when demand comes.
    pub parked: u32,
    /// Share of the pool to keep free for the next jobs, 0-99.
    pub free_target_percentage: u8,
}
