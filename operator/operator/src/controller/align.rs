//! The I/O side of [`super::truth`]: each pass lists GitHub's runners once and
//! carries out the corrections, each instance's in its turn (as hooks do), and
//! removes the busy markers of instances that vanished while busy.

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Controller;
use crate::{
    fleet::{InstanceRecord, OrphanMarker, Phase},
    labels::{Api, CorrectionKind, OperationKind, OperationOutcome},
    ports::{BusyMarker, DeregisterOutcome},
};
use crate::{truth, truth::Correction};

impl Controller {
    /// Removes the markers of instances that vanished while busy. A failed removal
    /// is kept for the next pass.
    pub(super) async fn remove_orphan_markers(&self) {
        let orphans = std::mem::take(&mut self.state().orphan_markers);
        for orphan in orphans {
            match self.ports().busy.remove(&orphan.active.marker).await {
                Ok(()) => {
                    self.metrics().correction(CorrectionKind::OrphanMarkerRemoved);
                    warn!(instance = %orphan.instance, job = %orphan.active.job, "instance vanished while busy; busy marker removed");
                }
                Err(err) => {
                    self.metrics().api_error(Api::BusyRecord, "write");
                    warn!(instance = %orphan.instance, error = %err, "removing the marker of a vanished instance failed; will retry");
                    self.keep_orphan_marker(orphan);
                }
            }
        }
    }

    /// A marker nothing tracks any more; the next pass removes it.
    pub(super) fn keep_orphan_marker(&self, orphan: OrphanMarker) {
        self.state().orphan_markers.push(orphan);
    }

    /// Lists GitHub's runners and repairs what lost hooks left wrong. A GitHub error
    /// is counted and logged, and the pass goes on without this step.
    pub(super) async fn align_with_github(&self) {
        let listed_at = Instant::now();
        let runners = match self.ports().github.list_runners().await {
            Ok(runners) => runners,
            Err(err) => {
                self.metrics().api_error(Api::Github, err.kind());
                warn!(error = %err, "listing GitHub's runners failed; lost hooks are repaired on a later pass");
                // An old listing must not hold a Busy record against the VM's own report.
                self.state().fleet.records_mut().for_each(InstanceRecord::forget_github_listing);
                return;
            }
        };
        {
            let busy_by_id: std::collections::HashMap<u64, bool> = runners.iter().map(|r| (r.id, r.busy)).collect();
            self.state().fleet.records_mut().for_each(|r| r.note_github_listing(&busy_by_id, listed_at));
        }
        let records: Vec<InstanceRecord> = self.state().fleet.records().cloned().collect();
        for correction in truth::corrections(&records, &runners, listed_at) {
            let Some(id) = correction.instance().cloned() else {
                if let Correction::GhostRunner { runner_id, name } = &correction {
                    self.deregister_ghost(*runner_id, name).await;
                }
                continue;
            };
            let _turn = self.turn(&id).await;
            // Re-derive in the instance's turn: a hook may have changed the record since.
            let Some(record) = self.state().fleet.get(&id).cloned() else { continue };
            if truth::for_record(&record, &runners, listed_at).as_ref() != Some(&correction) {
                continue;
            }
            let mut marker = None;
            match (&correction, record.phase()) {
                (Correction::Stopped { runner_id, .. }, phase) => {
                    if let Phase::Busy(active) = phase {
                        if let Err(err) = self.ports().busy.remove(&active.marker).await {
                            self.metrics().api_error(Api::BusyRecord, "write");
                            warn!(instance = %id, error = %err, "removing the busy marker of a stopped VM failed; will retry");
                            continue;
                        }
                    }
                    if let Some(runner_id) = runner_id {
                        if !self.deregister_stopped(&id, *runner_id).await {
                            continue;
                        }
                    }
                }
                (Correction::RunnerGone { .. } | Correction::BusyUnconfirmed { .. }, Phase::Busy(active)) => {
                    if let Err(err) = self.ports().busy.remove(&active.marker).await {
                        self.metrics().api_error(Api::BusyRecord, "write");
                        warn!(instance = %id, error = %err, "removing the busy marker of a finished runner failed; will retry");
                        continue;
                    }
                }
                (Correction::JobStartedLost { runner, .. }, _) => {
                    let job = truth::unknown_job(&self.settings().scope_name, &runner.name);
                    let stored = BusyMarker::new(id.clone(), record.name().to_owned(), job, OffsetDateTime::now_utc());
                    match self.ports().busy.put(&stored).await {
                        Ok(handle) => marker = Some(handle),
                        Err(err) => {
                            self.metrics().api_error(Api::BusyRecord, "write");
                            warn!(instance = %id, error = %err, "storing the busy marker of a lost job-started failed; will retry");
                            continue;
                        }
                    }
                }
                _ => {}
            }
            if let Some(r) = self.state().fleet.get_mut(&id) {
                truth::apply(r, &correction, marker, &self.settings().scope_name, Instant::now());
            }
            self.metrics().correction(correction.kind());
            log_correction(&correction, &record);
        }
    }

    /// The runner of a VM someone else stopped, removed before the VM joins the reserve.
    /// False when it must wait for a later pass.
    async fn deregister_stopped(&self, id: &crate::model::InstanceId, runner_id: u64) -> bool {
        match self.ports().github.deregister_runner(runner_id).await {
            Ok(DeregisterOutcome::Removed | DeregisterOutcome::AlreadyGone) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::Ok);
                true
            }
            Ok(DeregisterOutcome::Busy) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::RefusedBusy);
                info!(instance = %id, runner_id, "the stopped VM's runner is still busy at GitHub; left for a later pass");
                false
            }
            Err(err) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::Failed);
                self.metrics().api_error(Api::Github, err.kind());
                warn!(instance = %id, runner_id, error = %err, "deregistering a stopped VM's runner failed; will retry");
                false
            }
        }
    }

    async fn deregister_ghost(&self, runner_id: u64, name: &str) {
        match self.ports().github.deregister_runner(runner_id).await {
            Ok(DeregisterOutcome::Removed | DeregisterOutcome::AlreadyGone) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::Ok);
                self.metrics().correction(CorrectionKind::GhostDeregistered);
                warn!(runner = %name, runner_id, "ghost runner (its instance no longer exists) deregistered");
            }
            Ok(DeregisterOutcome::Busy) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::RefusedBusy);
                info!(runner = %name, runner_id, "ghost runner is busy at GitHub; left for a later pass");
            }
            Err(err) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::Failed);
                self.metrics().api_error(Api::Github, err.kind());
                warn!(runner = %name, runner_id, error = %err, "deregistering a ghost runner failed; will retry");
            }
        }
    }
}

fn log_correction(correction: &Correction, before: &InstanceRecord) {
    let instance = before.id().as_str();
    match correction {
        Correction::RunnerIdLearned { runner_id, .. } => {
            info!(instance, runner_id, "runner seen at GitHub; id recorded");
        }
        Correction::RunnerOnline { runner_id, .. } => {
            info!(instance, runner_id, "runner online at GitHub; instance idle");
        }
        Correction::RunnerOffline { runner, .. } => {
            warn!(instance, runner = %runner, "idle runner went offline at GitHub; instance will be recycled");
        }
        Correction::BusyUnconfirmed { runner, online, .. } => {
            let job = before.busy_job().map(|a| a.job.to_string()).unwrap_or_default();
            warn!(instance, runner = %runner, job, online, "busy record not confirmed by GitHub for 2 minutes; marker removed");
        }
        Correction::RunnerIdentified { runner, .. } => {
            info!(instance, runner = %runner.name, "runner of a busy instance identified at GitHub");
        }
        Correction::RunnerGone { runner, .. } => match before.busy_job() {
            Some(active) => warn!(
                instance, runner = runner.as_deref().unwrap_or("none listed"), job = %active.job,
                "runner gone at GitHub while busy (job-completed and runner-exited lost); busy marker removed"
            ),
            None => {
                warn!(
                    instance,
                    runner = runner.as_deref().unwrap_or("none listed"),
                    "runner gone at GitHub (runner-exited lost); instance may be recycled"
                )
            }
        },
        Correction::JobStartedLost { runner, .. } => {
            warn!(instance, runner = %runner.name, "runner busy at GitHub without job-started; busy marker stored");
        }
        Correction::RunnerAdopted { runner, .. } => {
            warn!(instance, runner = %runner.name, "runner registered at GitHub unknown to the operator; adopted");
        }
        Correction::GhostRunner { .. } => {}
        Correction::Stopped { runner_id, .. } => {
            let job = before.busy_job().map(|a| a.job.to_string()).unwrap_or_default();
            warn!(
                instance,
                ?runner_id,
                job,
                "VM stopped by someone else with a runner; its marker and runner are gone, it joins the reserve"
            );
        }
    }
}
