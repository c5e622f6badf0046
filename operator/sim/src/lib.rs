//! The simulated world the operator runs in for the demo and the fault suite: a scale
//! set, GitHub, the busy record, the secret store ([`memory`]) and runner VMs ([`vms`]),
//! all on tokio's clock. It implements `operator-core`'s ports, so the real controller
//! cannot tell it from Azure and GitHub except by speed.
//!
//! The HTTP fakes under `tests/` (fake-azure, fake-github) are deliberately separate:
//! they check the real clients against the official API descriptions and must not share
//! code with what they test.

pub mod memory;
pub mod vms;

// The core's modules under their own names, as the world speaks in them.
use operator_core::{model, ports};
