//! The durable record of busy runners (an Azure Storage Queue in production).
//! Message format and recovery are documented in `docs/busy-record.md`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{InstanceId, JobRef};

/// Format version written into every marker.
pub const MARKER_VERSION: u32 = 1;

/// "This instance is running this job", written before job-started is acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusyMarker {
    pub v: u32,
    /// Scale-set instance id.
    pub instance: InstanceId,
    /// The VM's computer name, for people reading the queue.
    pub vm_name: String,
    pub job: JobRef,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl BusyMarker {
    pub fn new(instance: InstanceId, vm_name: String, job: JobRef, started_at: OffsetDateTime) -> Self {
        Self { v: MARKER_VERSION, instance, vm_name, job, started_at }
    }
}

/// Enough to remove one stored marker (queue message id and pop receipt).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MarkerHandle {
    pub message_id: String,
    pub pop_receipt: String,
}

/// A marker read back from the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMarker {
    pub handle: MarkerHandle,
    pub marker: BusyMarker,
}

#[derive(Debug, thiserror::Error)]
pub enum BusyRecordError {
    #[error("writing the busy marker for instance {instance} failed")]
    WriteFailed {
        instance: InstanceId,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("removing busy marker {message_id} failed")]
    RemoveFailed {
        message_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading the busy record failed")]
    LoadFailed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait BusyRecord: Send + Sync {
    /// Durably store `marker`; returns only once it is stored.
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError>;
    /// Remove a marker. Removing one that is already gone succeeds (hooks repeat).
    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError>;
    /// Every stored marker, with fresh handles. Used once at start-up to recover.
    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError>;
}
