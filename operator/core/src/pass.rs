//! One reconcile pass as values: what it sets the capacity to ([`capacity_to_set`]),
//! what it did ([`Effect`], in its [`PassReport`]), when to look again, or why it
//! failed. The loop that runs passes applies [`crate::retry::ErrorPolicy`] to the error.

use std::{collections::BTreeMap, fmt, time::Duration};

use crate::{
    fleet::Operation,
    model::{InstanceId, InstanceState},
    policy::{Decision, PoolSpec, Target},
    ports::ScaleSetError,
};

/// What one pass saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub pass: u64,
    pub target: Target,
    pub census: BTreeMap<InstanceState, u32>,
    /// What the pass started or held back, in order.
    pub effects: Vec<Effect>,
}

/// Something a pass did to the scale set, or held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The pool's capacity was raised.
    ScaledOut { from: u32, to: u32 },
    /// A batched reimage, delete, park (deallocate) or start of these instances began
    /// (the runners of reimaged or deleted ones were deregistered at GitHub first).
    Started { operation: Operation, instances: Vec<InstanceId> },
    /// The write budget was spent: a scale-out to `to` waits for a later pass.
    ScaleOutDeferred { to: u32 },
    /// The write budget was spent: this operation waits for a later pass.
    OperationDeferred { operation: Operation, instances: Vec<InstanceId> },
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ScaledOut { from, to } => write!(f, "scale out {from} -> {to}"),
            Self::Started { operation, instances } => write!(f, "{} {}", operation.kind().as_str(), IdList(instances)),
            Self::ScaleOutDeferred { to } => write!(f, "scale out to {to} deferred: write budget spent"),
            Self::OperationDeferred { operation, instances } => {
                write!(f, "{} {} deferred: write budget spent", operation.kind().as_str(), IdList(instances))
            }
        }
    }
}

/// `[id,id,...]`, for log fields and the report's lines.
pub struct IdList<'a>(pub &'a [InstanceId]);

impl fmt::Display for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(InstanceId::as_str).collect();
        write!(f, "[{}]", names.join(","))
    }
}

/// The capacity of the pool (foreign instances not counted) a pass sets, if any. With
/// deletes pending it counts the instances about to go, so replacing a broken instance
/// never takes the pool below min; when that would pass max, the replacement waits for
/// the deletes (a later pass).
pub fn capacity_to_set(decision: &Decision, spec: &PoolSpec) -> Option<u32> {
    let pending_deletes = u32::try_from(decision.delete.len()).unwrap_or(u32::MAX);
    decision.capacity.map(|c| c.saturating_add(pending_deletes)).filter(|c| pending_deletes == 0 || *c <= spec.max)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(capacity: Option<u32>, deletes: usize) -> Decision {
        Decision {
            capacity,
            reimage: Vec::new(),
            delete: (0..deletes).map(|i| InstanceId::new(i.to_string())).collect(),
            ..Decision::default()
        }
    }

    #[test]
    fn a_replacement_is_added_before_the_broken_instances_go_unless_that_passes_max() {
        let spec = PoolSpec::new(2, 5, 20);
        assert_eq!(capacity_to_set(&decision(Some(4), 0), &spec), Some(4));
        assert_eq!(capacity_to_set(&decision(Some(4), 1), &spec), Some(5), "the one about to go counted");
        assert_eq!(capacity_to_set(&decision(Some(4), 2), &spec), None, "would pass max: wait for the deletes");
        assert_eq!(capacity_to_set(&decision(None, 2), &spec), None);
    }

    #[test]
    fn effects_read_as_the_demo_prints_them() {
        let ids = vec![InstanceId::new("3"), InstanceId::new("7")];
        assert_eq!(Effect::ScaledOut { from: 2, to: 4 }.to_string(), "scale out 2 -> 4");
        assert_eq!(
            Effect::Started { operation: Operation::Delete, instances: ids.clone() }.to_string(),
            "delete [3,7]"
        );
        assert_eq!(
            Effect::OperationDeferred { operation: Operation::Reimage, instances: ids }.to_string(),
            "reimage [3,7] deferred: write budget spent"
        );
    }
}
