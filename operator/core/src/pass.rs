//! What one reconcile pass returns: its report, when to look again, or why it failed.
//! The loop that runs passes applies [`crate::retry::ErrorPolicy`] to the error.

use std::{collections::BTreeMap, time::Duration};

use crate::{model::InstanceState, policy::Target, ports::ScaleSetError};

/// What one pass saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub pass: u64,
    pub target: Target,
    pub census: BTreeMap<InstanceState, u32>,
    /// Human-readable actions started in this pass ("scale out 2 -> 4", ...).
    pub actions: Vec<String>,
}

/// The pass's answer: when to look again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileAction {
    pub requeue_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("observing the scale set failed")]
    ObserveFailed(#[source] ScaleSetError),
    #[error("scaling out failed")]
    ScaleOutFailed(#[source] ScaleSetError),
}
