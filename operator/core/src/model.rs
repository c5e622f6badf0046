//! The vocabulary shared by the policy, the ports and the API.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A scale-set instance id as Azure spells it (`"0"`, `"17"`, ...).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl InstanceId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Numeric order where possible, so "2" sorts before "10" in logs and tables.
    pub fn sort_key(&self) -> (u64, &str) {
        (self.0.parse().unwrap_or(u64::MAX), &self.0)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one job run, as the job hooks see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    /// `owner/name` of the repository whose workflow runs the job (`GITHUB_REPOSITORY`).
    #[schema(example = "octo-org/octo-repo")]
    pub repository: String,
    /// Workflow run id (`GITHUB_RUN_ID`).
    #[schema(example = 1234567890)]
    pub run_id: u64,
    /// Attempt of the run (`GITHUB_RUN_ATTEMPT`), starting at 1.
    #[schema(example = 1)]
    pub run_attempt: u32,
    /// Job id within the workflow (`GITHUB_JOB`).
    #[schema(example = "build")]
    pub job_name: String,
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}/{}", self.repository, self.run_id, self.run_attempt, self.job_name)
    }
}

/// Where an instance is in its life, derived from the cloud, GitHub and the hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Azure is creating the VM (or it is listed in capacity but not yet visible).
    Provisioning,
    /// The VM runs; its runner has not asked for a registration yet.
    AwaitingRegistration,
    /// Registered and waiting for a job.
    Idle,
    /// Running a job (job-started seen, no job-completed yet).
    Busy,
    /// Job completed; waiting for the runner process to exit before touching the VM.
    Retiring,
    /// The runner has exited: the VM may be reimaged or deleted.
    Recyclable,
    /// Being reimaged by the operator.
    Reimaging,
    /// Being deleted.
    Deleting,
    /// Azure reports a failed provisioning state.
    Failed,
    /// Azure reports the VM deallocating or deallocated although it had a runner on this
    /// boot: someone else stopped it. It holds a slot of the capacity but can take no job:
    /// neither free nor busy, never registered, recycled or corrected; deleted only when
    /// the pool is above `max` (see `fleet/record.rs`).
    Deallocated,
    /// Told to park at its registration (it holds no registration and no secret), or
    /// being deallocated: it is going into the reserve. Not free; counts as parked.
    Parking,
    /// Deallocated without a runner: a ready VM in the reserve, billing only its disk,
    /// started on demand before new VMs are created.
    Parked,
    /// The operator is starting it from the reserve: free (it boots and asks for its
    /// registration as any VM does).
    Starting,
}

impl InstanceState {
    pub const ALL: [InstanceState; 13] = [
        Self::Provisioning,
        Self::AwaitingRegistration,
        Self::Idle,
        Self::Busy,
        Self::Retiring,
        Self::Recyclable,
        Self::Reimaging,
        Self::Deleting,
        Self::Failed,
        Self::Deallocated,
        Self::Parking,
        Self::Parked,
        Self::Starting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::AwaitingRegistration => "awaiting_registration",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Retiring => "retiring",
            Self::Recyclable => "recyclable",
            Self::Reimaging => "reimaging",
            Self::Deleting => "deleting",
            Self::Failed => "failed",
            Self::Deallocated => "deallocated",
            Self::Parking => "parking",
            Self::Parked => "parked",
            Self::Starting => "starting",
        }
    }

    /// Free: can take the next job now or soon without any action from the operator.
    pub fn is_free(self) -> bool {
        matches!(self, Self::Provisioning | Self::AwaitingRegistration | Self::Idle | Self::Reimaging | Self::Starting)
    }

    /// In the reserve or going there: told to park, deallocating, or parked.
    pub fn is_parked(self) -> bool {
        matches!(self, Self::Parking | Self::Parked)
    }

    /// An operation on the VM is already under way; nothing else may be started on it.
    pub fn is_in_operation(self) -> bool {
        matches!(self, Self::Reimaging | Self::Deleting | Self::Starting)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
