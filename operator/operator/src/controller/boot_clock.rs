//! How long a VM takes from the operator's call to its runner taking work, per path
//! (`vmss_runner_boot_duration_seconds{path}`), so a deployment learns its own numbers
//! instead of trusting the simulator's assumptions. A boot's clock starts when capacity
//! is raised (for the instances that appear after it), a reimage is started or a parked
//! VM is started, and stops
//! at the first pass or hook that sees its runner online or busy; the reading is as
//! precise as that (a hook triggers a pass within the debounce).

use std::collections::HashMap;

use tokio::time::Instant;

use crate::model::{InstanceId, InstanceState};

/// The way an instance came to boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootPath {
    Created,
    Reimaged,
    /// Started from the reserve (deallocated).
    Started,
}

impl BootPath {
    pub const ALL: [BootPath; 3] = [Self::Created, Self::Reimaged, Self::Started];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Reimaged => "reimaged",
            Self::Started => "started",
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct BootClock {
    /// When the last capacity raise was sent: the origin of instances it brings.
    scale_out_at: Option<Instant>,
    running: HashMap<InstanceId, (BootPath, Instant)>,
}

impl BootClock {
    pub(super) fn scaled_out(&mut self, now: Instant) {
        self.scale_out_at = Some(now);
    }

    /// A new instance appeared in the listing: it was created by the last scale-out
    /// (or, with none seen by this process, it is not timed: its origin is unknown).
    pub(super) fn appeared(&mut self, id: &InstanceId) {
        if let Some(at) = self.scale_out_at {
            self.running.entry(id.clone()).or_insert((BootPath::Created, at));
        }
    }

    /// The operator's call that boots `id` on `path` (a reimage or a start) began now.
    pub(super) fn call_started(&mut self, id: &InstanceId, path: BootPath, now: Instant) {
        self.running.insert(id.clone(), (path, now));
    }

    /// A boot told to park runs no runner: its clock stops without a reading (an
    /// instance created or reimaged for the reserve is timed when it is started).
    pub(super) fn parked(&mut self, id: &InstanceId) {
        self.running.remove(id);
    }

    /// Boots whose runner is online or busy now: their durations, and their clocks
    /// stopped. Clocks of instances that vanished are dropped.
    pub(super) fn finished(
        &mut self,
        now: Instant,
        state_of: impl Fn(&InstanceId) -> Option<InstanceState>,
    ) -> Vec<(BootPath, std::time::Duration)> {
        let mut done = Vec::new();
        self.running.retain(|id, (path, started)| match state_of(id) {
            None | Some(InstanceState::Deleting | InstanceState::Failed) => false,
            Some(InstanceState::Idle | InstanceState::Busy | InstanceState::Retiring | InstanceState::Recyclable) => {
                done.push((*path, now.saturating_duration_since(*started)));
                false
            }
            Some(_) => true,
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_boot_is_timed_from_the_call_to_its_runner_online_per_path() {
        let mut clock = BootClock::default();
        let (a, b, c) = (InstanceId::new("1"), InstanceId::new("2"), InstanceId::new("3"));
        clock.appeared(&a);
        assert!(clock.running.is_empty(), "no scale-out seen: origin unknown, not timed");
        let t0 = Instant::now();
        clock.scaled_out(t0);
        tokio::time::advance(Duration::from_secs(20)).await;
        clock.appeared(&a);
        clock.call_started(&b, BootPath::Reimaged, Instant::now());
        clock.appeared(&c);
        let d = InstanceId::new("4");
        clock.call_started(&d, BootPath::Started, Instant::now());
        tokio::time::advance(Duration::from_secs(70)).await;
        let states = |id: &InstanceId| match id.as_str() {
            "1" => Some(InstanceState::Idle),
            "2" => Some(InstanceState::AwaitingRegistration),
            "4" => Some(InstanceState::Idle),
            _ => None,
        };
        let mut done = clock.finished(Instant::now(), states);
        done.sort_by_key(|(path, _)| path.as_str());
        assert_eq!(
            done,
            vec![(BootPath::Created, Duration::from_secs(90)), (BootPath::Started, Duration::from_secs(70))]
        );
        assert_eq!(clock.running.len(), 1, "the reimage still runs; the vanished instance is dropped");
        tokio::time::advance(Duration::from_secs(5)).await;
        let busy = |_: &InstanceId| Some(InstanceState::Busy);
        assert_eq!(clock.finished(Instant::now(), busy), vec![(BootPath::Reimaged, Duration::from_secs(75))]);
    }
}
