//! Truth from GitHub: hooks are hints, GitHub's runner list is the truth about
//! runners. Each reconcile pass compares the fleet's records with the list and
//! derives corrections for hooks that never arrived and for ghost runners.
//! Everything here is pure (no I/O, no clock); the pass does the I/O each
//! correction needs, in the instance's turn. See `docs/scaling-policy.md`.

use std::collections::BTreeMap;

use tokio::time::Instant;

use crate::{
    fleet::{runner_of_vm, runner_vm_name, InstanceRecord, Phase, RunnerRef},
    labels::CorrectionKind,
    model::{InstanceId, InstanceState, JobRef},
    ports::{CloudState, MarkerHandle, Runner, RunnerStatus},
};

/// One repair of the operator's picture, derived from GitHub's runner list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Correction {
    /// Token mode: the runner has shown up at GitHub; remember its id.
    RunnerIdLearned { instance: InstanceId, runner_id: u64 },
    /// The runner registered for this boot is online at GitHub: the instance is idle.
    RunnerOnline { instance: InstanceId, runner_id: u64 },
    /// The runner is no longer listed: the ephemeral runner finished (or was removed)
    /// and its job-completed / runner-exited hooks were lost. The VM may be recycled;
    /// a Busy record's marker is removed first.
    RunnerGone { instance: InstanceId, runner: Option<String> },
    /// The idle runner went offline (its process died): the VM is recycled; the
    /// runner is deregistered first, as always.
    RunnerOffline { instance: InstanceId, runner: String },
    /// GitHub lists the runner busy but no job-started arrived: store a marker for an
    /// unknown job and treat the instance as busy.
    JobStartedLost { instance: InstanceId, runner: RunnerRef },
    /// The instance's runner is registered at GitHub but the operator did not know.
    RunnerAdopted { instance: InstanceId, runner: RunnerRef },
    /// The record says Busy, but GitHub has listed the runner as not busy for a while:
    /// the marker is stale (e.g. a leftover of an earlier boot adopted by a restart).
    /// The marker is removed; the instance is idle again, or recycled if the runner is offline.
    BusyUnconfirmed { instance: InstanceId, runner: String, online: bool },
    /// A busy instance with no runner on record (a restart found none yet): its runner.
    RunnerIdentified { instance: InstanceId, runner: RunnerRef },
    /// A runner named like this scale set's instances whose instance no longer exists,
    /// a runner of an earlier boot of an instance that has a newer one, or an offline
    /// runner named for a parked VM (which holds none).
    GhostRunner { runner_id: u64, name: String },
    /// Someone else stopped (deallocated) the VM mid-life: its runner process and any job
    /// are gone. Its marker is removed and its runner deregistered (`runner_id`, when
    /// GitHub lists it and not busy), then the VM joins the reserve as Parked: it holds no
    /// registration any more and boots afresh when started.
    Stopped { instance: InstanceId, runner_id: Option<u64> },
}

impl Correction {
    /// Label for `vmss_runner_corrections_total{kind=...}`.
    pub fn kind(&self) -> CorrectionKind {
        match self {
            Self::RunnerIdLearned { .. } => CorrectionKind::RunnerIdLearned,
            Self::RunnerOnline { .. } => CorrectionKind::RunnerOnline,
            Self::RunnerGone { .. } => CorrectionKind::RunnerGone,
            Self::RunnerOffline { .. } => CorrectionKind::RunnerOffline,
            Self::JobStartedLost { .. } => CorrectionKind::JobStartedLost,
            Self::RunnerAdopted { .. } => CorrectionKind::RunnerAdopted,
            Self::RunnerIdentified { .. } => CorrectionKind::RunnerIdentified,
            Self::BusyUnconfirmed { .. } => CorrectionKind::BusyUnconfirmed,
            Self::GhostRunner { .. } => CorrectionKind::GhostDeregistered,
            Self::Stopped { .. } => CorrectionKind::StoppedReclaimed,
        }
    }

    pub fn instance(&self) -> Option<&InstanceId> {
        match self {
            Self::RunnerIdLearned { instance, .. }
            | Self::RunnerOnline { instance, .. }
            | Self::RunnerGone { instance, .. }
            | Self::RunnerOffline { instance, .. }
            | Self::JobStartedLost { instance, .. }
            | Self::RunnerAdopted { instance, .. }
            | Self::RunnerIdentified { instance, .. }
            | Self::BusyUnconfirmed { instance, .. }
            | Self::Stopped { instance, .. } => Some(instance),
            Self::GhostRunner { .. } => None,
        }
    }
}

/// How long a Busy record may disagree with GitHub's "not busy" before the record
/// yields. GitHub shows a runner busy for its whole job; the grace covers a listing
/// taken just before the job was assigned.
pub const BUSY_UNCONFIRMED_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// Length of the instance-specific tail of a Uniform scale set's computer names
/// (`<prefix><6 base-36 chars>`).
const COMPUTER_ID_LEN: usize = 6;

/// The corrections for `records`, given GitHub's `runners` as listed at `listed_at`.
/// A record changed after `listed_at` is left for the next pass: the list may not
/// show what that change did at GitHub (a JIT runner created by a registration).
pub fn corrections(records: &[InstanceRecord], runners: &[Runner], listed_at: Instant) -> Vec<Correction> {
    let mut out: Vec<Correction> = records.iter().filter_map(|r| for_record(r, runners, listed_at)).collect();
    out.extend(ghosts(records, runners));
    out
}

/// The correction of one record, if it needs one.
pub fn for_record(record: &InstanceRecord, runners: &[Runner], listed_at: Instant) -> Option<Correction> {
    if record.is_foreign()
        || record.touched() > listed_at
        || record.operation().is_some()
        || record.state().is_in_operation()
    {
        return None;
    }
    let instance = record.id().clone();
    if record.state() == InstanceState::Deallocated {
        // Stopped by someone else with a runner on record. While it deallocates, wait;
        // once it is down, its runner process is gone for good (see `InstanceRecord::state`).
        if record.cloud() != CloudState::Deallocated {
            return None;
        }
        let listed = record.runner().and_then(|known| match known.id {
            Some(id) => runners.iter().find(|r| r.id == id),
            None => runners.iter().find(|r| r.name == known.name),
        });
        // GitHub still shows it running a job (it notices a lost runner late): next pass.
        if listed.is_some_and(|r| r.busy) {
            return None;
        }
        return Some(Correction::Stopped { instance, runner_id: listed.map(|r| r.id) });
    }
    let Some(known) = record.runner() else {
        // A parked VM runs no runner: one named for it is a leftover (`ghosts`), never
        // adopted.
        if record.state().is_parked() {
            return None;
        }
        // No runner on record: a restart found none, or a hook came first. Look for
        // one named for this VM, the busy one first, then an online one.
        let found = runner_of_vm(runners, record.name());
        let live = found.filter(|r| r.busy || r.status == RunnerStatus::Online);
        let as_ref = |r: &Runner| RunnerRef { name: r.name.clone(), id: Some(r.id) };
        return match (record.phase(), live) {
            (Phase::Unregistered, Some(r)) if r.busy => {
                Some(Correction::JobStartedLost { instance, runner: as_ref(r) })
            }
            (Phase::Unregistered, Some(r)) => Some(Correction::RunnerAdopted { instance, runner: as_ref(r) }),
            (Phase::Busy(_) | Phase::Completed(_), Some(r)) => {
                Some(Correction::RunnerIdentified { instance, runner: as_ref(r) })
            }
            // Busy with no runner of this VM listed at all: its job is over.
            (Phase::Busy(_) | Phase::Completed(_), None) if found.is_none() => {
                Some(Correction::RunnerGone { instance, runner: None })
            }
            _ => None,
        };
    };
    let listed = match known.id {
        Some(id) => runners.iter().find(|r| r.id == id),
        None => runners.iter().find(|r| r.name == known.name),
    };
    let Some(listed) = listed else {
        // Without an id the runner may simply not have registered yet (token mode).
        let was_seen = known.id.is_some();
        return match record.phase() {
            Phase::Registered | Phase::Online | Phase::Busy(_) | Phase::Completed(_) if was_seen => {
                Some(Correction::RunnerGone { instance, runner: Some(known.name.clone()) })
            }
            _ => None,
        };
    };
    let runner = RunnerRef { name: listed.name.clone(), id: Some(listed.id) };
    let online = listed.status == RunnerStatus::Online;
    match record.phase() {
        Phase::Unregistered | Phase::Registered | Phase::Online if listed.busy => {
            Some(Correction::JobStartedLost { instance, runner })
        }
        Phase::Unregistered => Some(Correction::RunnerAdopted { instance, runner }),
        Phase::Registered if online => Some(Correction::RunnerOnline { instance, runner_id: listed.id }),
        Phase::Online if !online => Some(Correction::RunnerOffline { instance, runner: listed.name.clone() }),
        Phase::Busy(_)
            if !listed.busy && listed_at.saturating_duration_since(record.touched()) >= BUSY_UNCONFIRMED_AFTER =>
        {
            Some(Correction::BusyUnconfirmed { instance, runner: listed.name.clone(), online })
        }
        _ if known.id.is_none() => Some(Correction::RunnerIdLearned { instance, runner_id: listed.id }),
        _ => None,
    }
}

/// Runners to deregister, never busy ones: runners named `<X>-<6 lowercase hex>`
/// where X has this scale set's computer-name shape but is no current instance, and
/// runners of an earlier boot of an instance whose record names a newer runner.
/// Runners of any other naming (other pools, people's own runners) are never touched.
fn ghosts(records: &[InstanceRecord], runners: &[Runner]) -> Vec<Correction> {
    let Some(first) = records.first() else { return Vec::new() };
    let len = first.name().len();
    let Some(prefix) = first.name().get(..len.saturating_sub(COMPUTER_ID_LEN)).filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    if records.iter().any(|r| r.name().len() != len || !r.name().starts_with(prefix)) {
        return Vec::new(); // no single shape to recognise
    }
    let current: BTreeMap<&str, &InstanceRecord> = records.iter().map(|r| (r.name(), r)).collect();
    runners
        .iter()
        .filter(|r| !r.busy)
        .filter(|r| {
            runner_vm_name(&r.name).is_some_and(|vm| {
                if vm.len() != len || !vm.starts_with(prefix) {
                    return false;
                }
                match current.get(vm) {
                    None => true,
                    // A leftover of an earlier boot: the record names this boot's runner, or
                    // the VM is parked, which holds none (an online runner of a parking VM
                    // may be a registration newer than this listing's snapshot: left).
                    Some(record) => {
                        record.runner().is_some_and(|now| now.name != r.name)
                            || (record.runner().is_none()
                                && record.state().is_parked()
                                && r.status != RunnerStatus::Online)
                    }
                }
            })
        })
        .map(|r| Correction::GhostRunner { runner_id: r.id, name: r.name.clone() })
        .collect()
}

/// The job recorded for a busy runner whose job-started hook was lost: its identity
/// is unknown, so run id and attempt are 0 (see `docs/busy-record.md`).
pub fn unknown_job(scope_name: &str, runner: &str) -> JobRef {
    JobRef {
        repository: scope_name.to_owned(),
        run_id: 0,
        run_attempt: 0,
        job_name: format!("unknown (job-started hook lost; runner {runner})"),
    }
}

/// Is this a stand-in job: the one of [`unknown_job`], or one taken from the runner scale
/// set's `JobStarted` message (`crate::demand::message_job`)? Both have run attempt 0,
/// which no hook carries (the API refuses it), so a hook for the real job replaces a
/// stand-in, and a job-completed hook matches one.
pub fn is_stand_in_job(job: &JobRef) -> bool {
    job.run_attempt == 0
}

/// Apply an instance correction to its record. `marker` is the handle of the marker
/// stored for [`Correction::JobStartedLost`]; a correction that needs one and has none
/// changes nothing (the executor stores the marker first, or skips the correction).
/// Ghosts change no record.
pub fn apply(
    record: &mut InstanceRecord,
    correction: &Correction,
    marker: Option<MarkerHandle>,
    scope_name: &str,
    now: Instant,
) {
    match correction {
        Correction::RunnerIdLearned { runner_id, .. } => record.learn_runner_id(*runner_id, now),
        Correction::RunnerOnline { runner_id, .. } => {
            record.learn_runner_id(*runner_id, now);
            record.enter(Phase::Online, now);
        }
        Correction::RunnerGone { .. } | Correction::RunnerOffline { .. } => record.enter(Phase::Exited, now),
        Correction::BusyUnconfirmed { online, .. } => {
            record.enter(if *online { Phase::Online } else { Phase::Exited }, now);
        }
        Correction::RunnerIdentified { runner, .. } => record.know_runner(runner.clone(), now),
        Correction::JobStartedLost { runner, .. } => {
            if let Some(marker) = marker {
                record.know_runner(runner.clone(), now);
                record.start_job(unknown_job(scope_name, &runner.name), marker, now);
            }
        }
        Correction::RunnerAdopted { runner, .. } => {
            record.know_runner(runner.clone(), now);
            record.enter(Phase::Online, now);
        }
        Correction::GhostRunner { .. } => {}
        Correction::Stopped { .. } => record.reclaim_stopped(now),
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use super::*;
    use crate::{
        fleet::{ActiveJob, Operation},
        ports::{CloudInstance, CloudState},
    };

    const SCOPE: &str = "o/r";

    fn record(id: u32, t0: Instant) -> InstanceRecord {
        let cloud = CloudInstance {
            id: InstanceId::new(id.to_string()),
            name: format!("vmsstest{id:06}"),
            private_ip: Some(IpAddr::from([127, 0, 0, 10])),
            state: CloudState::Running,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        InstanceRecord::new(&cloud, t0)
    }

    fn runner(id: u64, name: &str, busy: bool) -> Runner {
        Runner { id, name: name.into(), status: RunnerStatus::Online, busy }
    }

    fn marker(n: u32) -> MarkerHandle {
        MarkerHandle { message_id: format!("m{n}"), pop_receipt: "p".into() }
    }

    fn with_runner(mut r: InstanceRecord, name: &str, id: Option<u64>, phase: Phase) -> InstanceRecord {
        // As of the record's last change, so the listing rules see it unchanged.
        let at = r.touched();
        r.know_runner(RunnerRef { name: name.into(), id }, at);
        r.enter(phase, at);
        r
    }

    fn busy(job_run: u64) -> Phase {
        let job = JobRef { repository: "o/r".into(), run_id: job_run, run_attempt: 1, job_name: "build".into() };
        Phase::Busy(ActiveJob { job, marker: marker(9) })
    }

    /// Carries out corrections as the pass does (markers stored, ghosts deregistered).
    fn carry_out(records: &mut [InstanceRecord], runners: &mut Vec<Runner>, corrections: &[Correction], now: Instant) {
        for c in corrections {
            match c {
                Correction::GhostRunner { runner_id, .. } => runners.retain(|r| r.id != *runner_id),
                c => {
                    let r = records.iter_mut().find(|r| Some(r.id()) == c.instance()).unwrap();
                    apply(r, c, Some(marker(1)), SCOPE, now);
                }
            }
        }
    }

    fn settles(mut records: Vec<InstanceRecord>, mut runners: Vec<Runner>, t0: Instant) -> Vec<Correction> {
        let first = corrections(&records, &runners, t0);
        let t1 = t0 + Duration::from_secs(1);
        carry_out(&mut records, &mut runners, &first, t1);
        let second = corrections(&records, &runners, t1 + Duration::from_secs(1));
        assert_eq!(second, vec![], "a corrected state needs no second correction (after {first:?})");
        first
    }

    #[test]
    fn a_vanished_runner_of_a_busy_instance_makes_it_recyclable() {
        let t0 = Instant::now();
        let records = vec![with_runner(record(1, t0), "vmsstest000001-abc123", Some(7), busy(5))];
        let got = settles(records.clone(), vec![], t0);
        assert_eq!(
            got,
            vec![Correction::RunnerGone {
                instance: InstanceId::new("1"),
                runner: Some("vmsstest000001-abc123".into())
            }]
        );
        for phase in [Phase::Registered, Phase::Completed(unknown_job(SCOPE, "x"))] {
            let r = with_runner(record(1, t0), "vmsstest000001-abc123", Some(7), phase);
            assert_eq!(corrections(&[r], &[], t0).len(), 1);
        }
    }

    #[test]
    fn a_token_mode_runner_not_yet_seen_is_not_gone_and_its_id_is_learned_once_seen() {
        let t0 = Instant::now();
        let r = with_runner(record(1, t0), "vmsstest000001-abc123", None, Phase::Registered);
        assert_eq!(corrections(std::slice::from_ref(&r), &[], t0), vec![]);
        let got = settles(vec![r], vec![runner(7, "vmsstest000001-abc123", false)], t0);
        assert_eq!(got, vec![Correction::RunnerOnline { instance: InstanceId::new("1"), runner_id: 7 }]);
        let busy_record = with_runner(record(1, t0), "vmsstest000001-abc123", None, busy(5));
        let got = settles(vec![busy_record], vec![runner(7, "vmsstest000001-abc123", true)], t0);
        assert_eq!(got, vec![Correction::RunnerIdLearned { instance: InstanceId::new("1"), runner_id: 7 }]);
    }

    #[test]
    fn a_registered_runner_is_idle_only_once_github_shows_it_online() {
        let t0 = Instant::now();
        let r = with_runner(record(1, t0), "vmsstest000001-abc123", Some(7), Phase::Registered);
        assert_eq!(r.state(), crate::model::InstanceState::AwaitingRegistration);
        let mut offline = runner(7, "vmsstest000001-abc123", false);
        offline.status = RunnerStatus::Offline;
        assert_eq!(corrections(std::slice::from_ref(&r), &[offline], t0), vec![], "a JIT runner not started yet");
        let mut records = vec![r];
        let mut runners = vec![runner(7, "vmsstest000001-abc123", false)];
        let got = corrections(&records, &runners, t0);
        assert_eq!(got, vec![Correction::RunnerOnline { instance: InstanceId::new("1"), runner_id: 7 }]);
        carry_out(&mut records, &mut runners, &got, t0 + Duration::from_secs(1));
        assert_eq!(records[0].state(), crate::model::InstanceState::Idle);
    }

    #[test]
    fn an_idle_runner_that_went_offline_makes_its_instance_recyclable() {
        let t0 = Instant::now();
        let r = with_runner(record(1, t0), "vmsstest000001-abc123", Some(7), Phase::Online);
        let mut offline = runner(7, "vmsstest000001-abc123", false);
        offline.status = RunnerStatus::Offline;
        let got = settles(vec![r], vec![offline.clone()], t0);
        let gone = Correction::RunnerOffline { instance: InstanceId::new("1"), runner: "vmsstest000001-abc123".into() };
        assert_eq!(got, vec![gone]);
        offline.busy = true;
        let r = with_runner(record(1, t0), "vmsstest000001-abc123", Some(7), busy(5));
        assert_eq!(corrections(&[r], &[offline], t0), vec![], "busy at GitHub: GitHub decides when the job is over");
    }

    #[test]
    fn a_busy_instance_without_a_runner_on_record_finds_it_or_lets_the_job_go() {
        let t0 = Instant::now();
        let r = busy_without_runner(t0);
        let got = settles(vec![r.clone()], vec![runner(7, "vmsstest000001-abc123", true)], t0);
        let runner_ref = RunnerRef { name: "vmsstest000001-abc123".into(), id: Some(7) };
        assert_eq!(got, vec![Correction::RunnerIdentified { instance: InstanceId::new("1"), runner: runner_ref }]);
        let got = settles(vec![r], vec![runner(8, "vmsstest000002-abc123", true)], t0);
        assert_eq!(got, vec![Correction::RunnerGone { instance: InstanceId::new("1"), runner: None }]);
    }

    #[test]
    fn a_busy_record_github_does_not_confirm_yields_after_the_grace() {
        let t0 = Instant::now();
        let r = with_runner(record(1, t0), "vmsstest000001-abc123", Some(7), busy(5));
        let idle = runner(7, "vmsstest000001-abc123", false);
        assert_eq!(corrections(std::slice::from_ref(&r), std::slice::from_ref(&idle), t0), vec![], "within the grace");
        let later = t0 + BUSY_UNCONFIRMED_AFTER;
        let got = settles(vec![r.clone()], vec![idle.clone()], later);
        let want = Correction::BusyUnconfirmed {
            instance: InstanceId::new("1"),
            runner: "vmsstest000001-abc123".into(),
            online: true,
        };
        assert_eq!(got, vec![want]);
        let mut offline = idle;
        offline.status = RunnerStatus::Offline;
        let mut records = vec![r];
        let mut runners = vec![offline];
        let got = corrections(&records, &runners, later);
        carry_out(&mut records, &mut runners, &got, later);
        assert_eq!(*records[0].phase(), Phase::Exited, "an offline runner's instance is recycled");
    }

    fn busy_without_runner(t0: Instant) -> InstanceRecord {
        let mut r = record(1, t0);
        let at = r.touched();
        r.enter(busy(5), at);
        r
    }

    #[test]
    fn a_busy_runner_at_github_on_a_registered_instance_means_job_started_was_lost() {
        let t0 = Instant::now();
        let r = with_runner(record(1, t0), "vmsstest000001-abc123", None, Phase::Registered);
        let got = settles(vec![r], vec![runner(7, "vmsstest000001-abc123", true)], t0);
        let runner = RunnerRef { name: "vmsstest000001-abc123".into(), id: Some(7) };
        assert_eq!(got, vec![Correction::JobStartedLost { instance: InstanceId::new("1"), runner }]);
    }

    #[test]
    fn an_unknown_online_runner_of_an_unregistered_instance_is_adopted() {
        let t0 = Instant::now();
        let got = settles(vec![record(1, t0)], vec![runner(7, "vmsstest000001-abc123", false)], t0);
        let adopted = RunnerRef { name: "vmsstest000001-abc123".into(), id: Some(7) };
        assert_eq!(got, vec![Correction::RunnerAdopted { instance: InstanceId::new("1"), runner: adopted }]);

        let got = settles(vec![record(1, t0)], vec![runner(7, "vmsstest000001-abc123", true)], t0);
        assert!(matches!(got[..], [Correction::JobStartedLost { .. }]), "{got:?}");

        let mut offline = runner(7, "vmsstest000001-abc123", false);
        offline.status = RunnerStatus::Offline;
        assert_eq!(corrections(&[record(1, t0)], &[offline], t0), vec![], "a JIT runner not started yet");
    }

    #[test]
    fn ghosts_of_deleted_instances_are_deregistered_but_never_other_runners() {
        let t0 = Instant::now();
        let records = vec![
            with_runner(record(1, t0), "vmsstest000001-abc123", Some(1), Phase::Online),
            with_runner(record(2, t0), "vmsstest000002-abc123", Some(2), Phase::Online),
        ];
        let runners = vec![
            runner(1, "vmsstest000001-abc123", false),
            runner(2, "vmsstest000002-abc123", false),
            runner(3, "vmsstest00000a-0f9e8d", false), // ghost
            runner(4, "vmsstest00000b-0f9e8d", true),  // ghost, but busy: GitHub would refuse
            runner(5, "otherpool000003-abc123", false),
            runner(6, "vmsstest00000c-ABC123", false),  // not our suffix
            runner(7, "vmsstest0000003-abc123", false), // longer name
            runner(8, "laptop-of-alice", false),
            runner(9, "vmsstest000003", false),
        ];
        let got = settles(records, runners, t0);
        assert_eq!(got, vec![Correction::GhostRunner { runner_id: 3, name: "vmsstest00000a-0f9e8d".into() }]);
        assert_eq!(ghosts(&[], &[runner(3, "vmsstest00000a-0f9e8d", false)]), vec![], "no fleet, no shape");
    }

    #[test]
    fn a_leftover_runner_of_an_earlier_boot_is_deregistered_unless_busy() {
        let t0 = Instant::now();
        let records = vec![with_runner(record(1, t0), "vmsstest000001-222222", None, Phase::Registered)];
        let old = runner(3, "vmsstest000001-111111", false);
        let got = corrections(&records, std::slice::from_ref(&old), t0);
        assert_eq!(got, vec![Correction::GhostRunner { runner_id: 3, name: "vmsstest000001-111111".into() }]);
        let busy_old = Runner { busy: true, ..old };
        assert_eq!(corrections(&records, &[busy_old], t0), vec![]);
        let unregistered = vec![record(1, t0)];
        let mut offline = runner(3, "vmsstest000001-111111", false);
        offline.status = RunnerStatus::Offline;
        assert_eq!(corrections(&unregistered, &[offline], t0), vec![], "no runner on record: nothing to compare with");
    }

    #[test]
    fn records_changed_after_the_listing_or_under_an_operation_are_left_alone() {
        let t0 = Instant::now();
        let mut r = with_runner(record(1, t0 + Duration::from_secs(1)), "vmsstest000001-abc123", Some(7), busy(5));
        assert_eq!(corrections(std::slice::from_ref(&r), &[], t0), vec![], "registered after the listing");
        r.begin_operation(Operation::Reimage, t0);
        assert_eq!(corrections(&[r], &[], t0), vec![]);
    }

    #[test]
    fn a_vm_stopped_by_someone_else_is_reclaimed_into_the_reserve_once_it_is_down() {
        let t0 = Instant::now();
        let cloud = |state| CloudInstance {
            id: InstanceId::new("1"),
            name: "vmsstest000001".into(),
            private_ip: Some(IpAddr::from([127, 0, 0, 10])),
            state,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        let stopped = |id| vec![Correction::Stopped { instance: InstanceId::new("1"), runner_id: id }];
        for phase in [busy(5), Phase::Online, Phase::Registered] {
            let going = with_runner(
                InstanceRecord::new(&cloud(CloudState::Deallocating), t0),
                "vmsstest000001-abc123",
                Some(7),
                phase.clone(),
            );
            assert_eq!(going.state(), InstanceState::Deallocated);
            assert_eq!(corrections(&[going], &[], t0), vec![], "still deallocating: wait");
            let r = with_runner(
                InstanceRecord::new(&cloud(CloudState::Deallocated), t0),
                "vmsstest000001-abc123",
                Some(7),
                phase,
            );
            let offline = Runner { status: RunnerStatus::Offline, ..runner(7, "vmsstest000001-abc123", false) };
            assert_eq!(corrections(std::slice::from_ref(&r), &[], t0), stopped(None), "runner already gone");
            assert_eq!(corrections(std::slice::from_ref(&r), &[offline], t0), stopped(Some(7)), "deregister it");
            let busy_listed = runner(7, "vmsstest000001-abc123", true);
            assert_eq!(corrections(std::slice::from_ref(&r), &[busy_listed], t0), vec![], "GitHub not caught up yet");
            let mut reclaimed = r.clone();
            apply(&mut reclaimed, &stopped(Some(7))[0], None, "o/r", t0);
            assert_eq!((reclaimed.state(), reclaimed.runner()), (InstanceState::Parked, None));
        }
    }

    #[test]
    fn an_offline_runner_named_for_a_parked_vm_is_a_ghost_but_an_online_one_is_left() {
        let t0 = Instant::now();
        let parked = CloudInstance {
            id: InstanceId::new("1"),
            name: "vmsstest000001".into(),
            private_ip: Some(IpAddr::from([127, 0, 0, 10])),
            state: CloudState::Deallocated,
            ready_since: None,
            protected: false,
            latest_model: true,
        };
        let r = InstanceRecord::new(&parked, t0);
        assert_eq!(r.state(), InstanceState::Parked);
        let offline = Runner { status: RunnerStatus::Offline, ..runner(9, "vmsstest000001-abc123", false) };
        assert_eq!(
            corrections(std::slice::from_ref(&r), std::slice::from_ref(&offline), t0),
            vec![Correction::GhostRunner { runner_id: 9, name: "vmsstest000001-abc123".into() }]
        );
        let online = runner(9, "vmsstest000001-abc123", false);
        assert_eq!(
            corrections(&[r], &[online], t0),
            vec![],
            "not adopted, and not removed: it may be newer than the snapshot"
        );
    }

    #[test]
    fn a_consistent_fleet_needs_no_correction() {
        let t0 = Instant::now();
        let records = vec![
            with_runner(record(1, t0), "vmsstest000001-abc123", Some(1), Phase::Online),
            with_runner(record(2, t0), "vmsstest000002-abc123", Some(2), busy(3)),
            record(3, t0),
            with_runner(record(4, t0), "vmsstest000004-abc123", Some(4), Phase::Exited),
        ];
        let runners = vec![runner(1, "vmsstest000001-abc123", false), runner(2, "vmsstest000002-abc123", true)];
        assert_eq!(corrections(&records, &runners, t0), vec![]);
    }

    #[test]
    fn the_stand_in_job_is_recognisable() {
        let job = unknown_job("octo-org/octo-repo", "vm-abc123");
        assert!(is_stand_in_job(&job));
        assert_eq!(job.job_name, "unknown (job-started hook lost; runner vm-abc123)");
        assert!(is_stand_in_job(&JobRef { run_id: 1, ..job.clone() }), "a message's job is a stand-in too");
        assert!(!is_stand_in_job(&JobRef { run_attempt: 1, ..job }));
    }
}
