//! Fault injection shared by the fakes: "the next N calls (of one operation) fail like this".

use std::{sync::Mutex, time::Duration};

/// How an injected call misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    Throttle { retry_after: Duration },
    /// `500 Internal Server Error`.
    ServerError,
    /// The request is accepted and never answered: the client's timeout must fire.
    Hang,
    /// The request is answered normally, after this delay.
    Slow(Duration),
    /// `404 Not Found`, as for an instance that vanished.
    NotFound,
    /// `409 Conflict`, as for an operation that collides with one in progress.
    Conflict,
    /// `401 Unauthorized`, as for an expired access token.
    ExpiredToken,
    /// `403 Forbidden` (`AuthorizationFailed`), as for a role that may not read the
    /// resource: the scaler's role, scoped to the scale set, reading an operation status
    /// under `Microsoft.Compute/locations/operations`.
    Forbidden,
}

struct Rule<Op> {
    op: Option<Op>,
    fault: Fault,
    remaining: u32,
}

/// Pending faults, consumed in the order they were injected.
pub(crate) struct Faults<Op>(Mutex<Vec<Rule<Op>>>);

impl<Op> Default for Faults<Op> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<Op: Copy + PartialEq> Faults<Op> {
    /// The next `times` calls of `op` (of any operation when `None`) fail with `fault`.
    pub(crate) fn push(&self, op: Option<Op>, fault: Fault, times: u32) {
        if times > 0 {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(Rule { op, fault, remaining: times });
        }
    }

    /// The fault for this call of `op`, if one is pending.
    pub(crate) fn take(&self, op: Op) -> Option<Fault> {
        let mut rules = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let index = rules.iter().position(|r| r.op.is_none_or(|o| o == op))?;
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            rules.remove(index);
        }
        Some(fault)
    }

    pub(crate) fn pending(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|r| r.remaining as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_to_their_operation_in_order_and_run_out() {
        let faults = Faults::<u8>::default();
        faults.push(Some(1), Fault::ServerError, 2);
        faults.push(None, Fault::Conflict, 1);
        assert_eq!(faults.take(2), Some(Fault::Conflict));
        assert_eq!(faults.take(1), Some(Fault::ServerError));
        assert_eq!(faults.take(1), Some(Fault::ServerError));
        assert_eq!(faults.take(1), None);
        assert_eq!(faults.pending(), 0);
    }
}
