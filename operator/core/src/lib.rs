//! The operator's decisions, as pure values. Nothing here does I/O: no socket, no HTTP,
//! no Azure SDK (a test fails if such a crate becomes a dependency). The shipped binary
//! (`operator`) awaits the ports these decisions name; the simulated world
//! (`operator-sim`) implements the same ports, so both run exactly this code.
//!
//! # Layout
//!
//! - [`model`]: identifiers and the instance states every other module speaks in.
//! - [`fleet`]: the operator's record of each instance (phase, runner, busy job), changed
//!   only through named methods; the hook state machine
//!   ([`fleet::transition::transition`]: record + hook -> transition or refusal); the pool
//!   view handed to the policy; the runner naming convention.
//! - [`policy`]: `decide(spec, observed pool) -> Decision`, the scaling rule, and
//!   `registration_answer` (register or park a booting VM) (docs/scaling-policy.md).
//! - [`targets`]: the pool's targets at a moment (running floor, parked reserve, free
//!   share): fixed, from `pool.schedules`, or from the learned demand model.
//! - [`truth`]: the corrections that GitHub's runner list implies for each record.
//! - [`budget`]: Azure's VMSS write budget (token bucket).
//! - [`demand`]: the runner scale set's job messages as hooks on records, and the
//!   listener's retry delays.
//! - [`retry`]: the reconcile loop's error policy.
//! - [`pass`]: the capacity a pass sets, the effects it reports, its requeue answer and
//!   its error.
//! - [`labels`]: the closed vocabularies of metrics and logs (hook kinds, APIs,
//!   operations, outcomes, corrections).
//! - [`ports`]: the traits of the outside world (scale set, GitHub, busy record, secrets).
//!
//! ARCHITECTURE.md at the repository root draws how a hook and a pass flow through these.

pub mod budget;
pub mod demand;
pub mod fleet;
pub mod labels;
pub mod model;
pub mod pass;
pub mod policy;
pub mod ports;
pub mod retry;
pub mod targets;
pub mod truth;
