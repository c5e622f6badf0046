//! The operator's view of the outside world, as traits. Real clients (Azure ARM,
//! GitHub REST, Key Vault, Storage Queue) and the in-memory implementations in
//! the simulated world (`operator-sim`) both implement them, so everything above runs unchanged on either.

mod actions;
mod busy;
mod github;
mod scale_set;
mod secrets;

use std::sync::Arc;

pub use actions::{
    ActionsError, JobInfo, JobMessage, Message, RemoveOutcome, ScaleSetApi, ScaleSetInfo, ScaleSetRunner, ScaleSetSpec,
    Statistics,
};
pub use busy::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, StoredMarker};
pub use github::{
    DeregisterOutcome, Github, GithubError, JitConfig, JitRequest, RegistrationToken, Runner, RunnerStatus,
};
pub use scale_set::{CloudFault, CloudInstance, CloudState, ScaleSet, ScaleSetError};
pub use secrets::{SecretError, SecretStore, SecretValue};

/// Every port the operator needs, bundled.
#[derive(Clone)]
pub struct Ports {
    pub scale_set: Arc<dyn ScaleSet>,
    pub github: Arc<dyn Github>,
    pub busy: Arc<dyn BusyRecord>,
    pub secrets: Arc<dyn SecretStore>,
}
