//! `operator sandbox`: the real server and reconcile loop (the same [`crate::run::run`])
//! against the simulated world's in-memory scale set, GitHub and secret store, for trying a
//! configuration, benchmarking and rehearsing failures. No VMs are simulated: instances
//! boot in the in-memory scale set, and whatever calls the API from their addresses plays
//! the runners. The busy record is the configured queue when its URL carries a SAS
//! (Azurite), or in memory.
//!
//! `serve` never uses any of this: it connects the real clients (`connect.rs`).

use std::{sync::Arc, time::Duration};

use operator_sim::memory::{
    InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetSettings,
};

use crate::{
    config::Config,
    ports::{BusyRecord, Ports},
    queue::{carries_sas, QueueBusyRecord, QueueError},
};

/// Where the sandbox keeps its busy record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxQueue {
    /// `queue.url`, which must carry a SAS: the sandbox has no Azure identity.
    Configured,
    InMemory,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox has no Azure identity: give queue.url with a SAS (Azurite), or --in-memory-queue")]
    QueueNeedsSas,
    #[error("the busy-record queue cannot be used")]
    QueueFailed(#[source] QueueError),
}

/// The in-memory world the sandbox runs against; the scale set is kept to rehearse its
/// deletion.
pub struct Sandbox {
    pub ports: Ports,
    pub scale_set: Arc<InMemoryScaleSet>,
    /// The in-memory GitHub, which also serves the runner scale set API.
    pub github: Arc<InMemoryGithub>,
}

impl Sandbox {
    /// A scale set with `pool.min` booted instances (named after the pool), GitHub at the
    /// configured scope, the configured credential secret, and the chosen busy record.
    pub fn new(config: &Config, queue: SandboxQueue) -> Result<Self, SandboxError> {
        let pool = config.azure.vmss_name();
        let scale_set = Arc::new(InMemoryScaleSet::with_running(
            ScaleSetSettings { name_prefix: format!("{pool}-"), ..ScaleSetSettings::default() },
            config.pool.min,
        ));
        let busy: Arc<dyn BusyRecord> = match queue {
            SandboxQueue::InMemory => Arc::new(InMemoryBusyRecord::default()),
            SandboxQueue::Configured if carries_sas(&config.queue.url) => {
                Arc::new(QueueBusyRecord::new(&config.queue.url, None).map_err(SandboxError::QueueFailed)?)
            }
            SandboxQueue::Configured => return Err(SandboxError::QueueNeedsSas),
        };
        let github = Arc::new(InMemoryGithub::new(config.github.scope.runner_url("https://github.com")));
        if let Some(group) = &config.github.runner_group {
            github.add_runner_group(group);
        }
        let ports = Ports {
            scale_set: scale_set.clone(),
            github: github.clone(),
            busy,
            secrets: Arc::new(InMemorySecretStore::with(&config.github.credential.secret_name, "sandbox")),
        };
        Ok(Self { ports, scale_set, github })
    }

    /// After `delay`, delete the simulated scale set: it answers 404 for itself from then
    /// on, and the operator must stop with that cause (the fatal path, rehearsed).
    pub fn delete_scale_set_after(&self, delay: Duration) {
        let scale_set = self.scale_set.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            tracing::warn!(after = ?delay, "sandbox: the simulated scale set is deleted now (--delete-scale-set-after)");
            scale_set.delete_scale_set();
        });
    }
}
