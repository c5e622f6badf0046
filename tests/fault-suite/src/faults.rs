//! The ports one operator incarnation sees: the shared fakes behind a fault
//! injector. Calls fail at the scenario's rates (429 / 500 / timeout for the cloud,
//! rate limit / 502 / timeout for GitHub, failed writes for the busy record); a
//! timed-out write may still have happened, as in the real cloud. Once the
//! incarnation is dead, nothing it calls reaches the world any more.
//!
//! The scale-set wrapper also checks invariant 1 at the moment a delete or reimage
//! reaches the cloud: no VM may be touched while its runner runs a job.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use operator::{
    model::InstanceId,
    ports::{
        BusyMarker, BusyRecord, BusyRecordError, CloudFault, CloudInstance, DeregisterOutcome, Github, GithubError,
        JitConfig, JitRequest, MarkerHandle, RegistrationToken, Runner, ScaleSet, ScaleSetError, StoredMarker,
    },
};

use crate::world::World;

/// How long a call hangs before the client gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn dead() -> Box<dyn std::error::Error + Send + Sync> {
    "the operator process is dead".into()
}

/// One incarnation's view of the scale set.
pub struct FaultyScaleSet {
    pub world: Arc<World>,
    pub alive: Arc<AtomicBool>,
}

enum Injected {
    Throttled(Duration),
    Server,
    /// The call hangs, then fails; `applied` says whether the cloud did it anyway.
    Timeout {
        applied: bool,
    },
}

impl FaultyScaleSet {
    fn check_alive(&self) -> Result<(), CloudFault> {
        if self.alive.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(CloudFault::Transport(dead()))
        }
    }

    fn draw(&self, write: bool) -> Option<Injected> {
        let w = &self.world;
        if !w.roll(w.scenario.faults.cloud, "cloud") {
            return None;
        }
        Some(match w.pick(0..=2) {
            0 => Injected::Throttled(Duration::from_secs(w.pick(5..=30))),
            1 => Injected::Server,
            _ => Injected::Timeout { applied: write && w.pick(0..=1) == 1 },
        })
    }

    /// Fail a call as injected; a timeout waits first (and maybe lets the write happen).
    async fn fail(&self, injected: Injected, write: impl FnOnce()) -> CloudFault {
        match injected {
            Injected::Throttled(after) => CloudFault::Throttled { retry_after: Some(after) },
            Injected::Server => CloudFault::Server { status: 500, message: "injected".into() },
            Injected::Timeout { applied } => {
                if applied {
                    write();
                }
                tokio::time::sleep(CALL_TIMEOUT).await;
                CloudFault::Transport("injected timeout".into())
            }
        }
    }

    /// Invariant 1, checked where it matters: when the VM call reaches the cloud.
    fn check_not_busy(&self, verb: &str, ids: &[InstanceId]) {
        let listed = self.world.scale_set.names();
        for id in ids {
            let Some(name) = listed.get(id) else { continue };
            if let Some(job) = self.world.vm_running_job(name) {
                self.world.violation(format!(
                    "invariant 1: {verb} of instance {id} ({name}) while its runner runs {job} at {:?}",
                    self.world.elapsed()
                ));
            }
        }
    }

    /// Start the write in the cloud, detached: it finishes even if the caller stops waiting.
    fn spawn_write(&self, verb: &'static str, ids: Vec<InstanceId>) {
        self.check_not_busy(verb, &ids);
        let set = self.world.scale_set.clone();
        tokio::spawn(async move {
            let _ = match verb {
                "delete" => set.delete_instances(&ids).await,
                _ => set.reimage_instances(&ids).await,
            };
        });
    }
}

#[async_trait]
impl ScaleSet for FaultyScaleSet {
    async fn capacity(&self) -> Result<u32, ScaleSetError> {
        self.check_alive().map_err(ScaleSetError::ReadFailed)?;
        if let Some(injected) = self.draw(false) {
            return Err(ScaleSetError::ReadFailed(self.fail(injected, || {}).await));
        }
        self.world.scale_set.capacity().await
    }

    async fn list_instances(&self) -> Result<Vec<CloudInstance>, ScaleSetError> {
        self.check_alive().map_err(ScaleSetError::ReadFailed)?;
        if let Some(injected) = self.draw(false) {
            return Err(ScaleSetError::ReadFailed(self.fail(injected, || {}).await));
        }
        self.world.scale_set.list_instances().await
    }

    async fn set_capacity(&self, capacity: u32) -> Result<(), ScaleSetError> {
        let err = |source| ScaleSetError::SetCapacityFailed { capacity, source };
        self.check_alive().map_err(err)?;
        if capacity > self.world.scenario.max {
            self.world.violation(format!("invariant 2: capacity {capacity} asked, max is {}", self.world.scenario.max));
        }
        if let Some(injected) = self.draw(true) {
            let set = self.world.scale_set.clone();
            let fault = self
                .fail(injected, move || {
                    tokio::spawn(async move { set.set_capacity(capacity).await });
                })
                .await;
            return Err(err(fault));
        }
        self.world.scale_set.set_capacity(capacity).await
    }

    async fn delete_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let err = |source| ScaleSetError::DeleteFailed { ids: ids.to_vec(), source };
        self.check_alive().map_err(err)?;
        if let Some(injected) = self.draw(true) {
            let fault = self.fail(injected, || self.spawn_write("delete", ids.to_vec())).await;
            return Err(err(fault));
        }
        self.check_not_busy("delete", ids);
        self.world.scale_set.delete_instances(ids).await
    }

    async fn reimage_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let err = |source| ScaleSetError::ReimageFailed { ids: ids.to_vec(), source };
        self.check_alive().map_err(err)?;
        if let Some(injected) = self.draw(true) {
            let fault = self.fail(injected, || self.spawn_write("reimage", ids.to_vec())).await;
            return Err(err(fault));
        }
        self.check_not_busy("reimage", ids);
        self.world.scale_set.reimage_instances(ids).await
    }

    // Pass-throughs with no injected faults yet: the operator neither deallocates nor starts
    // (issue 16 adds parking and its faults). A deallocation stops the VM, so invariant 1
    // holds for it as for a delete.
    async fn deallocate_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        self.check_alive().map_err(|source| ScaleSetError::DeallocateFailed { ids: ids.to_vec(), source })?;
        self.check_not_busy("deallocate", ids);
        self.world.scale_set.deallocate_instances(ids).await
    }

    async fn start_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        self.check_alive().map_err(|source| ScaleSetError::StartFailed { ids: ids.to_vec(), source })?;
        self.world.scale_set.start_instances(ids).await
    }

    fn rate_limits(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// One incarnation's view of GitHub.
pub struct FaultyGithub {
    pub world: Arc<World>,
    pub alive: Arc<AtomicBool>,
}

impl FaultyGithub {
    async fn gate(&self) -> Result<(), GithubError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(GithubError::Transport(dead()));
        }
        let w = &self.world;
        if !w.roll(w.scenario.faults.github, "github") {
            return Ok(());
        }
        Err(match w.pick(0..=2) {
            0 => GithubError::RateLimited { retry_after: Some(Duration::from_secs(w.pick(1..=60))) },
            1 => GithubError::Server { status: 502, message: "injected".into() },
            _ => {
                tokio::time::sleep(CALL_TIMEOUT).await;
                GithubError::Transport("injected timeout".into())
            }
        })
    }
}

#[async_trait]
impl Github for FaultyGithub {
    async fn jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        self.gate().await?;
        self.world.github.jit_config(request).await
    }

    async fn registration_token(&self) -> Result<RegistrationToken, GithubError> {
        self.gate().await?;
        self.world.github.registration_token().await
    }

    async fn list_runners(&self) -> Result<Vec<Runner>, GithubError> {
        self.gate().await?;
        self.world.github.list_runners().await
    }

    async fn get_runner(&self, id: u64) -> Result<Option<Runner>, GithubError> {
        self.gate().await?;
        self.world.github.get_runner(id).await
    }

    async fn deregister_runner(&self, id: u64) -> Result<DeregisterOutcome, GithubError> {
        self.gate().await?;
        let outcome = self.world.github.deregister_runner(id).await?;
        // The nastiest moment to die: the runner is gone at GitHub, the VM untouched.
        let w = &self.world;
        if outcome == DeregisterOutcome::Removed
            && w.roll(w.scenario.faults.kill_after_deregister, "kill_after_deregister")
        {
            self.alive.store(false, Ordering::SeqCst);
            w.kill_now.notify_one();
            return Err(GithubError::Transport(dead()));
        }
        Ok(outcome)
    }

    fn registration_url(&self) -> String {
        self.world.github.registration_url()
    }
}

/// One incarnation's view of the busy record: writes fail at the scenario's rate.
pub struct FaultyBusyRecord {
    pub world: Arc<World>,
    pub alive: Arc<AtomicBool>,
}

impl FaultyBusyRecord {
    fn gate(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(dead());
        }
        let w = &self.world;
        if w.roll(w.scenario.faults.busy_record, "busy_record") {
            return Err("injected 503 from the queue service".into());
        }
        Ok(())
    }
}

#[async_trait]
impl BusyRecord for FaultyBusyRecord {
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError> {
        let failed = |source| BusyRecordError::WriteFailed { instance: marker.instance.clone(), source };
        self.gate().map_err(failed)?;
        let handle = self.world.busy.put(marker).await?;
        let w = &self.world;
        if w.roll_late(w.scenario.faults.busy_put_lost, "busy_put_lost") {
            // Stored, but the answer never arrives: a marker nobody tracks.
            tokio::time::sleep(CALL_TIMEOUT).await;
            return Err(failed("injected timeout after the queue stored the message".into()));
        }
        Ok(handle)
    }

    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError> {
        self.gate()
            .map_err(|source| BusyRecordError::RemoveFailed { message_id: handle.message_id.clone(), source })?;
        self.world.busy.remove(handle).await
    }

    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError> {
        self.gate().map_err(BusyRecordError::LoadFailed)?;
        self.world.busy.load().await
    }
}
