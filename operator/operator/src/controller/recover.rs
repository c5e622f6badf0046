//! Start-up: rebuild the picture from the three inventories before any hook is
//! accepted — the scale set's instances, the busy record and GitHub's runners.
//! Procedure documented in `docs/busy-record.md`.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use tokio::time::Instant;
use tracing::{info, instrument, warn};

use super::Controller;
use crate::{
    fleet::{runner_of_vm, Phase, RunnerRef},
    model::InstanceId,
    ports::{BusyRecordError, GithubError, RunnerStatus, ScaleSetError, StoredMarker},
};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("listing the scale set failed")]
    ScaleSet(#[source] ScaleSetError),
    #[error("loading the busy record failed")]
    BusyRecord(#[source] BusyRecordError),
    #[error("listing GitHub runners failed")]
    Github(#[source] GithubError),
}

/// What recovery found, for the log and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub instances: usize,
    pub busy: usize,
    pub registered: usize,
    /// Markers removed: duplicates, or for instances that no longer exist.
    pub stale_markers_removed: usize,
}

impl Controller {
    /// Rebuild state; hooks are accepted once this has succeeded.
    #[instrument(skip_all, fields(pool = %self.settings().pool))]
    pub async fn recover(&self) -> Result<RecoveryReport, RecoveryError> {
        self.refresh_cloud().await.map_err(RecoveryError::ScaleSet)?;
        let markers = self.ports().busy.load().await.map_err(RecoveryError::BusyRecord)?;
        let runners = self.ports().github.list_runners().await.map_err(RecoveryError::Github)?;
        let now = Instant::now();

        // The newest marker per instance wins; older or orphaned ones are stale.
        let mut newest: BTreeMap<InstanceId, StoredMarker> = BTreeMap::new();
        let mut stale = Vec::new();
        {
            let fleet = &self.state().fleet;
            for stored in markers {
                if fleet.get(&stored.marker.instance).is_none() {
                    stale.push(stored);
                    continue;
                }
                match newest.remove(&stored.marker.instance) {
                    Some(kept) if kept.marker.started_at >= stored.marker.started_at => {
                        stale.push(stored);
                        newest.insert(kept.marker.instance.clone(), kept);
                    }
                    Some(older) => {
                        stale.push(older);
                        newest.insert(stored.marker.instance.clone(), stored);
                    }
                    None => {
                        newest.insert(stored.marker.instance.clone(), stored);
                    }
                }
            }
        }
        for stored in &stale {
            warn!(instance = %stored.marker.instance, job = %stored.marker.job, "removing stale busy marker");
            self.ports().busy.remove(&stored.handle).await.map_err(RecoveryError::BusyRecord)?;
        }

        let mut report = RecoveryReport { stale_markers_removed: stale.len(), ..RecoveryReport::default() };
        {
            let fleet = &mut self.state().fleet;
            let ids: Vec<InstanceId> = fleet.records().map(|r| r.id().clone()).collect();
            for id in ids {
                let Some(record) = fleet.get_mut(&id) else { continue };
                // The naming rule lives in `fleet::naming`: `<computer name>-<suffix>`.
                if let Some(runner) = runner_of_vm(&runners, record.name()) {
                    record.know_runner(RunnerRef { name: runner.name.clone(), id: Some(runner.id) }, now);
                    let online = runner.busy || runner.status == RunnerStatus::Online;
                    record.enter(if online { Phase::Online } else { Phase::Registered }, now);
                    report.registered += 1;
                }
                if let Some(stored) = newest.remove(&id) {
                    record.start_job(stored.marker.job, stored.handle, now);
                    report.busy += 1;
                }
            }
            report.instances = fleet.len();
        }
        self.note_full_read();
        self.shared.recovered.store(true, Ordering::Release);
        info!(
            instances = report.instances,
            busy = report.busy,
            registered = report.registered,
            stale_markers = report.stale_markers_removed,
            "state recovered"
        );
        Ok(report)
    }
}
