//! In-memory implementations of the ports: a simulated scale set, GitHub, secret
//! store and busy record — the only in-process models of them. They back the unit
//! tests, the demo, the fault suite and `operator sandbox`; they keep real state
//! and timings (boot, reimage and delete take time on tokio's clock), so the operator
//! above cannot tell them apart from the cloud except by speed. (The HTTP fakes under
//! `tests/` model the same services again, on purpose: see the crate docs.)

mod actions;
mod busy;
mod github;
mod scale_set;
mod secrets;

pub use actions::{ScaleSetFaults, LONG_POLL};
pub use busy::InMemoryBusyRecord;
pub use github::{InMemoryGithub, SimJob};
pub use scale_set::{Boot, InMemoryScaleSet, ScaleSetSettings, WriteCounts};
pub use secrets::InMemorySecretStore;
