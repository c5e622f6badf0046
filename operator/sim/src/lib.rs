//! The one simulated world the operator runs in, for the demo and the fault suite: a
//! scale set, GitHub (runners and jobs), the busy record and the secret store
//! ([`memory`]), and runner VMs that behave as the `vm/` scripts do ([`vms`]), all on
//! tokio's clock (a paused clock replays a run exactly). It implements
//! `operator-core`'s ports, so the real controller cannot tell it from Azure and
//! GitHub except by speed.
//!
//! # Layout
//!
//! - [`memory`]: the in-process models — the only ones — of the scale set, GitHub,
//!   the busy record and the secret store.
//! - [`vms`]: the hypervisor, one `VmScript` per boot with `vm/boot.sh`'s semantics,
//!   and the transport its calls take (HTTP, or whatever a simulation supplies).
//! - [`workload`]: CI job traces to replay (`operator simulate`): the JSONL format and
//!   the bitcoin-core-ci-stats array.
//!
//! The HTTP fakes under `tests/` (fake-azure, fake-github) are deliberately separate
//! models: they check the real Azure and GitHub clients against the official API
//! descriptions, and a fake that shared code with the operator's side could not catch
//! a misunderstanding both sides share. Nothing here is used by them, nor they by it.

pub mod memory;
mod split_mix;
pub mod vms;
pub mod workload;

pub use split_mix::SplitMix;

// The core's modules under their own names, as the world speaks in them.
use operator_core::{model, ports};
