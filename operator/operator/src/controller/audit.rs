//! The busy record audited against the operator's picture. A queue write whose
//! answer was lost after the queue stored it leaves a marker nobody tracks; a
//! later marker for the same job is the one the record knows. Every
//! [`AUDIT_EVERY`], a pass reads the whole record back (fresh pop receipts, as
//! recovery does), refreshes the handles of the markers it tracks, and removes a
//! marker found untracked on two audits in a row — never on the first sight, since
//! a hook may be between storing a marker and recording it.

use std::{collections::BTreeSet, time::Duration};

use tokio::time::Instant;
use tracing::{info, warn};

use super::Controller;
use crate::labels::{Api, CorrectionKind};

/// How often the busy record is read back in full.
pub const AUDIT_EVERY: Duration = Duration::from_secs(10 * 60);

/// When the last audit ran, and the markers it found untracked.
#[derive(Debug, Default)]
pub struct AuditState {
    last: Option<Instant>,
    suspects: BTreeSet<String>,
}

impl Controller {
    /// Recovery has just read the whole record: the next audit is a period away.
    pub(super) fn note_full_read(&self) {
        self.state().audit.last = Some(Instant::now());
    }

    pub(super) async fn audit_busy_record(&self) {
        {
            if self.state().audit.last.is_some_and(|t| t.elapsed() < AUDIT_EVERY) {
                return;
            }
        }
        let stored = match self.ports().busy.load().await {
            Ok(stored) => stored,
            Err(err) => {
                self.metrics().api_error(Api::BusyRecord, "read");
                warn!(error = %err, "auditing the busy record failed; next pass retries");
                return;
            }
        };
        // Reading hands out new pop receipts: every handle the operator holds is refreshed.
        let mut tracked = BTreeSet::new();
        {
            let mut state = self.state();
            for s in &stored {
                if state.fleet.get_mut(&s.marker.instance).is_some_and(|r| r.refresh_marker(&s.handle)) {
                    tracked.insert(s.handle.message_id.clone());
                }
            }
            for orphan in state.orphan_markers.iter_mut() {
                if let Some(s) = stored.iter().find(|s| s.handle.message_id == orphan.active.marker.message_id) {
                    orphan.active.marker = s.handle.clone();
                    tracked.insert(s.handle.message_id.clone());
                }
            }
        }
        let untracked: Vec<_> = stored.into_iter().filter(|s| !tracked.contains(&s.handle.message_id)).collect();
        let (second_sight, first_sight): (Vec<_>, Vec<_>) = {
            let state = self.state();
            untracked.into_iter().partition(|s| state.audit.suspects.contains(&s.handle.message_id))
        };
        let mut still_suspect: BTreeSet<String> = first_sight.iter().map(|s| s.handle.message_id.clone()).collect();
        for s in second_sight {
            match self.ports().busy.remove(&s.handle).await {
                Ok(()) => {
                    self.metrics().correction(CorrectionKind::UntrackedMarkerRemoved);
                    warn!(instance = %s.marker.instance, job = %s.marker.job, "busy marker nobody tracks (a write whose answer was lost) removed");
                }
                Err(err) => {
                    self.metrics().api_error(Api::BusyRecord, "write");
                    warn!(error = %err, "removing an untracked busy marker failed; next audit retries");
                    still_suspect.insert(s.handle.message_id.clone());
                }
            }
        }
        if !still_suspect.is_empty() {
            info!(
                count = still_suspect.len(),
                "busy markers not tracked; removed on the next audit if still untracked"
            );
        }
        let audit = &mut self.state().audit;
        audit.last = Some(Instant::now());
        audit.suspects = still_suspect;
    }
}
