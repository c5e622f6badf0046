//! Statistics (PROTOCOL.md §7.4), computed from the job and runner state whenever a session,
//! a message or a scale set is answered: never stored, so never stale.

use super::{jobs::JobPhase, Statistics};
use crate::server::Inner;

/// The set's statistics now (§7.4).
pub(crate) fn statistics(inner: &Inner, set_id: u64) -> Statistics {
    let mut s = Statistics::default();
    for j in inner.broker.jobs.all.values().filter(|j| j.info.scale_set_id == Some(set_id)) {
        match j.info.phase {
            JobPhase::Available => s.total_available_jobs += 1,
            JobPhase::Assigned => {
                s.total_assigned_jobs += 1;
                if j.info.acquired {
                    s.total_acquired_jobs += 1;
                }
            }
            JobPhase::Running => {
                s.total_assigned_jobs += 1;
                s.total_running_jobs += 1;
            }
            JobPhase::Queued | JobPhase::Completed => {}
        }
    }
    for r in inner.runners.runners.values().filter(|r| r.scale_set_id == Some(set_id)) {
        s.total_registered_runners += 1;
        if r.busy() {
            s.total_busy_runners += 1;
        } else if r.online {
            s.total_idle_runners += 1;
        }
    }
    s
}
