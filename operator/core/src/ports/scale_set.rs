//! The runner scale set (Azure VMSS, Uniform orchestration).

use std::{net::IpAddr, time::Duration};

use async_trait::async_trait;

use crate::model::InstanceId;

/// One scale-set instance as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudInstance {
    pub id: InstanceId,
    /// The VM's computer name; runner names start with it.
    pub name: String,
    /// Primary private IP: how the operator recognises the VM calling its API.
    pub private_ip: Option<IpAddr>,
    pub state: CloudState,
    /// When the instance last finished provisioning (created or reimaged), if the cloud
    /// says: after a restart the registration timeout counts from there, not from the
    /// restart.
    pub ready_since: Option<time::OffsetDateTime>,
    /// The instance carries a protection policy (from scale-in or from scale-set
    /// actions): someone asked for it to be left alone, so the operator never acts on it.
    pub protected: bool,
    /// The instance runs the scale set's current model (`latestModelApplied`). After a
    /// model change (a new image, new boot data) a reimage would restore the instance's
    /// old model, so a finished instance that is not current is deleted and replaced.
    pub latest_model: bool,
}

/// Provisioning/power state reduced to what the operator acts on.
///
/// The power states come from the instance view (`PowerState/<state>`; Microsoft Learn,
/// "States and billing status of Azure Virtual Machines"): `starting`, `running`,
/// `stopping`, `stopped`, `deallocating`, `deallocated`. Only the deallocation has states
/// of its own here: the instance view shows a start of a deallocated VM as provisioning
/// `Updating` with `PowerState/starting`, exactly as it shows a reimage, so a start reads
/// as [`CloudState::Reimaging`] and the operator tells its own starts from the operation it
/// began (as it does its reimages). A VM stopped but still allocated (`PowerState/stopped`
/// after provisioning succeeded) is billed and runs nothing: [`CloudState::Failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudState {
    Creating,
    Running,
    Reimaging,
    Deleting,
    Failed,
    /// `PowerState/deallocating`: shutting down and releasing its hardware; disk, name and
    /// NIC stay.
    Deallocating,
    /// `PowerState/deallocated` (shown as *Stopped (deallocated)*): the VM holds its OS disk,
    /// its name, its NIC and its private address, bills the disk but no compute, still
    /// counts in `sku.capacity`, and runs nothing until it is started.
    Deallocated,
}

/// Why a scale-set call failed, as a label-friendly kind.
#[derive(Debug, thiserror::Error)]
pub enum CloudFault {
    #[error("throttled by Azure (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("the resource was not found")]
    NotFound,
    #[error("conflict with an operation in progress: {0}")]
    Conflict(String),
    #[error("Azure answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("the request did not complete")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A field the operator relies on is absent from Azure's answer (e.g. `sku.capacity`):
    /// never read as a default, which could tell the policy the pool is empty.
    #[error("Azure's answer lacks {0}")]
    MissingField(&'static str),
    /// A number in Azure's answer does not fit the operator's type.
    #[error("Azure's answer has {field} = {value}, out of range")]
    OutOfRange { field: &'static str, value: u64 },
    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("the operation ended {status}: {detail}")]
    OperationFailed { status: String, detail: String },
    /// A long-running operation was still running when the client stopped following it.
    #[error("the operation did not finish within {0:?}")]
    OperationTimedOut(Duration),
    /// Azure handed back a link (next page, operation status) to another host; it is not
    /// followed, so the bearer token goes nowhere else.
    #[error("Azure returned a link to another host ({host})")]
    ForeignLink { host: String },
    /// A paged listing did not end within the client's page limit.
    #[error("the listing did not end after {pages} pages")]
    EndlessListing { pages: u32 },
}

impl CloudFault {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "throttled",
            Self::NotFound => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Server { .. } => "server",
            Self::Transport(_) => "transport",
            Self::MissingField(_) | Self::OutOfRange { .. } => "invalid_answer",
            Self::OperationFailed { .. } => "operation_failed",
            Self::OperationTimedOut(_) => "operation_timeout",
            Self::ForeignLink { .. } => "foreign_link",
            Self::EndlessListing { .. } => "endless_listing",
        }
    }
}

/// Scale-set operations, named for what failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleSetError {
    #[error("reading the scale set failed")]
    ReadFailed(#[source] CloudFault),
    #[error("setting the scale set's capacity to {capacity} failed")]
    SetCapacityFailed {
        capacity: u32,
        #[source]
        source: CloudFault,
    },
    #[error("deleting instances {ids:?} failed")]
    DeleteFailed {
        ids: Vec<InstanceId>,
        #[source]
        source: CloudFault,
    },
    #[error("reimaging instances {ids:?} failed")]
    ReimageFailed {
        ids: Vec<InstanceId>,
        #[source]
        source: CloudFault,
    },
    #[error("deallocating instances {ids:?} failed")]
    DeallocateFailed {
        ids: Vec<InstanceId>,
        #[source]
        source: CloudFault,
    },
    #[error("starting instances {ids:?} failed")]
    StartFailed {
        ids: Vec<InstanceId>,
        #[source]
        source: CloudFault,
    },
}

impl ScaleSetError {
    pub fn fault(&self) -> &CloudFault {
        match self {
            Self::ReadFailed(source)
            | Self::SetCapacityFailed { source, .. }
            | Self::DeleteFailed { source, .. }
            | Self::ReimageFailed { source, .. }
            | Self::DeallocateFailed { source, .. }
            | Self::StartFailed { source, .. } => source,
        }
    }
}

/// The scale set. Every write counts against Azure's per-scale-set limits, so delete,
/// reimage, deallocate and start take many instance ids in one call.
#[async_trait]
pub trait ScaleSet: Send + Sync {
    /// `sku.capacity`.
    async fn capacity(&self) -> Result<u32, ScaleSetError>;
    /// Every instance with its state and private IP.
    async fn list_instances(&self) -> Result<Vec<CloudInstance>, ScaleSetError>;
    /// Grow (or shrink) to `capacity` instances.
    async fn set_capacity(&self, capacity: u32) -> Result<(), ScaleSetError>;
    /// Delete the named instances (capacity drops by as many); returns when done.
    async fn delete_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError>;
    /// Reimage the named instances to a fresh OS disk; returns when done.
    async fn reimage_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError>;
    /// Deallocate the named instances (shut down, compute released; disk, name and address
    /// kept; capacity unchanged); returns when they are deallocated.
    async fn deallocate_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError>;
    /// Start the named (deallocated) instances; returns when they run again. The VM boots
    /// from the disk it kept, so its boot scripts run as after a restart, not a reimage.
    async fn start_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError>;

    /// Calls left per Azure throttling policy, as last reported (for metrics).
    fn rate_limits(&self) -> std::collections::BTreeMap<String, u64> {
        std::collections::BTreeMap::new()
    }
}
