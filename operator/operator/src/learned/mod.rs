//! The learned demand model (`pool.learned`, `operator_core::targets::learned`) in the
//! running operator: loaded from its blob at start — or, when the blob does not exist
//! yet, seeded from `seed_trace` or begun empty — fed one demand sample per pass, asked
//! for the targets, and saved every `save_period` and once more on shutdown.
//!
//! **Storage**: one block blob, `operator-state/learned-demand.json` in the storage
//! account of the busy-record queue, JSON of [`LearnedSnapshot`]. The scaler's identity
//! needs Storage Blob Data Contributor on that container.
//!
//! **Two writers** (two operators on one pool by mistake, or a restart overlapping its
//! predecessor) never silently overwrite each other: every write is conditional on the
//! ETag last read or written (`If-Match`, or `If-None-Match: *` for the first). When the
//! service answers 412 (or 409 for a blob created meanwhile), the other writer's peaks
//! are read and merged in — per slot and week the larger, which loses nothing — and the
//! write is tried again, logged as a warning and counted ([`LearnedState::merges`]).
//!
//! **Failures**: a save that fails for a transient reason (the service unreachable, a
//! 5xx after the SDK's bounded retries) is logged with its whole chain and tried again
//! next period; the model stays in memory. A stored state that cannot be read (not
//! JSON, another format, another slot length) or a writer that keeps conflicting ends
//! [`LearnedState::run`] with the error: the state is not overwritten, and the process
//! exits non-zero with the blob's URL (never its SAS) in the message.
//!
//! # Wiring
//!
//! ```text
//! let (learned, origin) = LearnedState::open(&config.pool.learned?, credential).await?;
//! tracker.spawn(learned.clone().run(stop.clone()));   // supervised
//! // each pass:
//! learned.observe(now, assigned_jobs);
//! let targets = learned.targets_at(now, config.pool.base_targets(), config.pool.max);
//! ```

pub mod seed;
mod store;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use azure_core::{credentials::TokenCredential, http::Url};
use operator_core::targets::{
    learned::SNAPSHOT_FORMAT, LearnedDemand, LearnedParams, LearnedSnapshot, SnapshotError, Targets,
};
use operator_sim::workload::{Workload, WorkloadError};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use store::{Expect, StateBlob, Stored, WriteRefused};

use crate::{config::LearnedConfig, queue::SdkError, report::Chain};

/// How often a conflicting write is merged and tried again before giving up.
const MERGES: u32 = 3;

type UrlParseError = <Url as std::str::FromStr>::Err;

/// Why the learned state could not be loaded, seeded or saved. Every URL is shown
/// without its query, so no SAS reaches a message.
#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    #[error("the learned-state URL {url} is not a URL")]
    InvalidUrl {
        url: String,
        #[source]
        source: UrlParseError,
    },
    #[error("creating the blob client for {url} failed")]
    ClientFailed {
        url: String,
        #[source]
        source: SdkError,
    },
    #[error("the learned-state URL {url} names no container")]
    NoContainer { url: String },
    #[error("reading the learned state from {url} failed")]
    ReadFailed {
        url: String,
        #[source]
        source: SdkError,
    },
    #[error("the learned state in {url} is not a snapshot (left as it is; fix or delete the blob)")]
    Corrupt {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the learned state in {url} cannot be used (left as it is)")]
    Unusable {
        url: String,
        #[source]
        source: SnapshotError,
    },
    #[error("encoding the learned state failed")]
    EncodeFailed(#[source] serde_json::Error),
    #[error("writing the learned state to {url} failed")]
    WriteFailed {
        url: String,
        #[source]
        source: SdkError,
    },
    #[error("another writer changed the learned state in {url} {attempts} times in a row while it was merged; is a second operator running on this pool?")]
    KeptConflicting { url: String, attempts: u32 },
    #[error("the storage service's reply for {url} has no ETag")]
    NoEtag { url: String },
    #[error("reading the seed trace {} failed", path.display())]
    SeedFailed {
        path: PathBuf,
        #[source]
        source: WorkloadError,
    },
}

impl LearnedError {
    /// Does waiting not help? Then [`LearnedState::run`] ends with it instead of trying
    /// again next period.
    pub fn is_lasting(&self) -> bool {
        matches!(
            self,
            Self::Corrupt { .. } | Self::Unusable { .. } | Self::KeptConflicting { .. } | Self::EncodeFailed(_)
        )
    }
}

/// Where the model at start came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The blob, holding this many (slot, week) peaks.
    Loaded { peaks: usize },
    /// No blob yet: the seed trace, as this many demand samples.
    Seeded { samples: usize },
    /// No blob and no seed trace.
    Empty,
}

/// The model and its blob. Cheap to clone; clones share one model.
#[derive(Clone)]
pub struct LearnedState {
    model: Arc<Mutex<LearnedDemand>>,
    blob: Arc<StateBlob>,
    /// What the next write may overwrite.
    expect: Arc<Mutex<Expect>>,
    /// Observed since the last save.
    dirty: Arc<AtomicBool>,
    /// One save at a time (the periodic one and a caller's).
    saving: Arc<tokio::sync::Mutex<()>>,
    merges: Arc<AtomicU64>,
    save_period: Duration,
}

impl std::fmt::Debug for LearnedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearnedState").field("url", &self.shown_url()).field("save_period", &self.save_period).finish()
    }
}

impl LearnedState {
    /// Loads the model from `config.state_url`; a missing blob is seeded from
    /// `config.seed_trace` if given, else the model starts empty (nothing is written
    /// until the first save). `credential`: the managed identity, or `None` when the URL
    /// carries a SAS (`queue::carries_sas`), as against Azurite.
    pub async fn open(
        config: &LearnedConfig,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<(Self, Origin), LearnedError> {
        let blob = StateBlob::new(&config.state_url, credential)?;
        let params = config.params();
        let (model, expect, origin) = match blob.read().await? {
            Some(stored) => {
                let model = decode(params, &stored.bytes, blob.shown_url())?;
                let origin = Origin::Loaded { peaks: model.len() };
                (model, Expect::Unchanged(stored.etag), origin)
            }
            None => {
                let mut model = LearnedDemand::new(params);
                let origin = match &config.seed_trace {
                    Some(path) => {
                        let workload = Workload::load(path)
                            .map_err(|source| LearnedError::SeedFailed { path: path.clone(), source })?;
                        let samples = seed::demand_samples(&workload);
                        let origin = Origin::Seeded { samples: samples.len() };
                        model.seed(samples);
                        origin
                    }
                    None => Origin::Empty,
                };
                (model, Expect::Absent, origin)
            }
        };
        info!(url = blob.shown_url(), ?origin, "learned demand state opened");
        let state = Self {
            model: Arc::new(Mutex::new(model)),
            blob: Arc::new(blob),
            expect: Arc::new(Mutex::new(expect)),
            dirty: Arc::new(AtomicBool::new(matches!(origin, Origin::Seeded { .. }))),
            saving: Arc::new(tokio::sync::Mutex::new(())),
            merges: Arc::new(AtomicU64::new(0)),
            save_period: config.save_period.get(),
        };
        Ok((state, origin))
    }

    /// One demand sample: the jobs assigned to the pool, waiting or running, at `now`.
    pub fn observe(&self, now: OffsetDateTime, demand: u32) {
        self.lock().observe(now, demand);
        self.dirty.store(true, Ordering::Release);
    }

    /// The learned targets at `now`, never below `base`'s `min` and `parked`, within `max`.
    pub fn targets_at(&self, now: OffsetDateTime, base: Targets, max: u32) -> Targets {
        self.lock().targets_at(now, base, max)
    }

    /// A copy of the model as it is now.
    pub fn model(&self) -> LearnedDemand {
        self.lock().clone()
    }

    /// The blob's URL without its query.
    pub fn shown_url(&self) -> &str {
        self.blob.shown_url()
    }

    /// How often a write met another writer's change and merged it.
    pub fn merges(&self) -> u64 {
        self.merges.load(Ordering::Relaxed)
    }

    /// Writes the model if it changed since the last save, merging another writer's
    /// state in when the blob changed underneath (module docs).
    pub async fn save(&self) -> Result<(), LearnedError> {
        let _one = self.saving.lock().await;
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.write_merging().await;
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    /// The periodic saver, a supervised task: saves every `save_period` and once more
    /// when `stop` is cancelled, then returns that save's result. Ends early only with
    /// a lasting error ([`LearnedError::is_lasting`]); transient ones are logged.
    pub async fn run(self, stop: CancellationToken) -> Result<(), LearnedError> {
        let start = tokio::time::Instant::now() + self.save_period;
        let mut ticker = tokio::time::interval_at(start, self.save_period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return self.save().await,
                _ = ticker.tick() => match self.save().await {
                    Ok(()) => {}
                    Err(e) if e.is_lasting() => return Err(e),
                    Err(e) => warn!(error = %Chain(&e), "saving the learned state failed; trying again next period"),
                },
            }
        }
    }

    async fn write_merging(&self) -> Result<(), LearnedError> {
        let url = self.blob.shown_url();
        for _ in 0..MERGES {
            let bytes = serde_json::to_vec(&self.lock().to_snapshot()).map_err(LearnedError::EncodeFailed)?;
            let expect = self.expected().clone();
            match self.blob.write(bytes, &expect).await {
                Ok(etag) => {
                    *self.expected() = Expect::Unchanged(etag);
                    return Ok(());
                }
                Err(WriteRefused::Failed(e)) => return Err(e),
                Err(WriteRefused::Conflict) => {
                    self.merges.fetch_add(1, Ordering::Relaxed);
                    warn!(url, "another writer changed the learned state since it was read; merging its peaks in");
                    let next = match self.blob.read().await? {
                        Some(stored) => {
                            let theirs = decode(self.lock().params().clone(), &stored.bytes, url)?;
                            self.lock().merge(&theirs);
                            Expect::Unchanged(stored.etag)
                        }
                        None => Expect::Absent,
                    };
                    *self.expected() = next;
                }
            }
        }
        Err(LearnedError::KeptConflicting { url: url.to_owned(), attempts: MERGES })
    }

    // Neither lock is held across an await. The model is plain data that no method
    // leaves half-changed, so a poisoned lock's value is still sound.
    fn lock(&self) -> MutexGuard<'_, LearnedDemand> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expected(&self) -> MutexGuard<'_, Expect> {
        self.expect.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stored snapshot as a model. The format is read first, so that a newer format is
/// named as such rather than as malformed JSON.
fn decode(params: LearnedParams, bytes: &[u8], url: &str) -> Result<LearnedDemand, LearnedError> {
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    let corrupt = |source| LearnedError::Corrupt { url: url.to_owned(), source };
    let unusable = |source| LearnedError::Unusable { url: url.to_owned(), source };
    let Format { format } = serde_json::from_slice(bytes).map_err(corrupt)?;
    if format != SNAPSHOT_FORMAT {
        return Err(unusable(SnapshotError::UnknownFormat { found: format }));
    }
    let snapshot: LearnedSnapshot = serde_json::from_slice(bytes).map_err(corrupt)?;
    LearnedDemand::from_snapshot(params, snapshot).map_err(unusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_format_is_named_not_reported_as_malformed() {
        let err = decode(LearnedParams::default(), br#"{"format": 3, "weeks": {}}"#, "https://a/b/c").unwrap_err();
        assert_eq!(
            Chain(&err).to_string(),
            "the learned state in https://a/b/c cannot be used (left as it is): snapshot format 3 is not the format 2 this operator reads: delete the blob to learn anew (or seed it again from a trace)"
        );
        assert!(err.is_lasting());
        // Format 1 held peaks of demand, which this model would misread as bursts.
        let old = br#"{"format": 1, "slot_seconds": 3600, "slots": []}"#;
        let err = decode(LearnedParams::default(), old, "https://a/b/c").unwrap_err();
        assert!(Chain(&err).to_string().contains("snapshot format 1 is not the format 2"), "{}", Chain(&err));
    }

    #[test]
    fn garbage_is_corrupt() {
        let err = decode(LearnedParams::default(), b"<html>", "https://a/b/c").unwrap_err();
        assert!(matches!(err, LearnedError::Corrupt { .. }), "{err:?}");
    }
}
