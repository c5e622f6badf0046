//! The ports one operator incarnation sees: the shared fakes behind a fault
//! injector. Calls fail at the scenario's rates (429 / 500 / timeout for the cloud,
//! rate limit / 502 / timeout for GitHub, failed writes for the busy record); a
//! timed-out write may still have happened, as in the real cloud. Once the
//! incarnation is dead, nothing it calls reaches the world any more.
//!
//! The scale-set wrapper also checks invariant 1 at the moment a delete or reimage
//! reaches the cloud: no VM may be touched while its runner runs a job.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use operator::{
    model::InstanceId,
    ports::{
        ActionsError, BusyMarker, BusyRecord, BusyRecordError, CloudFault, CloudInstance, CloudState,
        DeregisterOutcome, Github, GithubError, JitConfig, JitRequest, MarkerHandle, Message, RegistrationToken,
        RemoveOutcome, Runner, ScaleSet, ScaleSetApi, ScaleSetError, ScaleSetInfo, ScaleSetRunner, ScaleSetSpec,
        Statistics, StoredMarker,
    },
};
use operator_sim::memory::ScaleSetFaults;

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
        if verb == "start" {
            self.arm_starts(&ids);
        } else {
            self.check_not_busy(verb, &ids);
        }
        let set = self.world.scale_set.clone();
        tokio::spawn(async move {
            let _ = match verb {
                "delete" => set.delete_instances(&ids).await,
                "deallocate" => set.deallocate_instances(&ids).await,
                "start" => set.start_instances(&ids).await,
                _ => set.reimage_instances(&ids).await,
            };
        });
    }

    /// The parking faults of a start about to reach the cloud: each deallocated instance's
    /// start may end `Failed` (an allocation failure) or come late.
    fn arm_starts(&self, ids: &[InstanceId]) {
        let w = &self.world;
        let f = &w.scenario.faults;
        let deallocated: BTreeSet<InstanceId> = w
            .scale_set
            .snapshot()
            .into_iter()
            .filter(|(_, _, state)| *state == CloudState::Deallocated)
            .map(|(id, ..)| id)
            .collect();
        for id in ids.iter().filter(|id| deallocated.contains(*id)) {
            if w.roll_park(f.start_fails, "start_failed") {
                tracing::warn!(instance = %id, "this start will fail (allocation failure)");
                w.scale_set.next_start_of(id, true, Duration::ZERO);
                w.record().parking.failed_starts += 1;
            } else if w.roll_park(f.start_late, "start_late") {
                let late_by = Duration::from_secs(w.pick_park(30..=crate::scenario::START_LATE_MAX.as_secs()));
                tracing::warn!(instance = %id, ?late_by, "this start will come late");
                w.scale_set.next_start_of(id, false, late_by);
                let at = w.elapsed();
                w.record().parking.late_starts.push((at, late_by));
            }
        }
    }

    /// The process dies while its deallocate or start runs: the cloud carries it out, the
    /// answer is lost.
    fn dies_mid_park(&self, verb: &'static str, ids: &[InstanceId]) -> bool {
        let w = &self.world;
        if !w.roll_park(w.scenario.faults.kill_mid_park, "kill_mid_park") {
            return false;
        }
        tracing::warn!(operation = verb, "the operator dies while its call runs");
        let set = w.scale_set.clone();
        let ids = ids.to_vec();
        tokio::spawn(async move {
            let _ = match verb {
                "deallocate" => set.deallocate_instances(&ids).await,
                _ => set.start_instances(&ids).await,
            };
        });
        w.record().parking.kills_mid_park += 1;
        self.alive.store(false, Ordering::SeqCst);
        w.kill_now.notify_one();
        true
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

    // A deallocation stops the VM, so invariant 1 holds for it as for a delete.
    async fn deallocate_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let err = |source| ScaleSetError::DeallocateFailed { ids: ids.to_vec(), source };
        self.check_alive().map_err(err)?;
        if let Some(injected) = self.draw(true) {
            let fault = self.fail(injected, || self.spawn_write("deallocate", ids.to_vec())).await;
            return Err(err(fault));
        }
        self.check_not_busy("deallocate", ids);
        if self.dies_mid_park("deallocate", ids) {
            return Err(err(CloudFault::Transport(dead())));
        }
        self.world.scale_set.deallocate_instances(ids).await
    }

    async fn start_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        let err = |source| ScaleSetError::StartFailed { ids: ids.to_vec(), source };
        self.check_alive().map_err(err)?;
        if let Some(injected) = self.draw(true) {
            let fault = self.fail(injected, || self.spawn_write("start", ids.to_vec())).await;
            return Err(err(fault));
        }
        self.arm_starts(ids);
        if self.dies_mid_park("start", ids) {
            return Err(err(CloudFault::Transport(dead())));
        }
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
        let made = self.world.github.jit_config(request).await;
        if made.is_ok() {
            crate::vms::note_credential(|| format!("a JIT runner {}", request.name));
        }
        made
    }

    async fn registration_token(&self) -> Result<RegistrationToken, GithubError> {
        self.gate().await?;
        let made = self.world.github.registration_token().await;
        if made.is_ok() {
            crate::vms::note_credential(|| "a registration token".to_owned());
        }
        made
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

/// One incarnation's view of GitHub's runner scale set API: the listener's calls and
/// the scale set's JIT configs and runner removals. Calls fail at the scenario's rate
/// (throttled, 503 or a timeout); the message faults — a lost or duplicated
/// acknowledgement (the in-memory GitHub's own knobs), a message held back, statistics
/// of the message before, an evicted session, assignments withdrawn and made again —
/// are drawn per call. What they cost the demand signal is written down as `held`
/// windows for invariant 3.
pub struct FaultyScaleSetApi {
    pub world: Arc<World>,
    pub alive: Arc<AtomicBool>,
    pub stream: Mutex<MessageStream>,
}

/// What this incarnation's listener has been delivered.
#[derive(Debug, Default)]
pub struct MessageStream {
    /// The real statistics of the last message (or session) delivered.
    last_statistics: Option<Statistics>,
    /// Since when the statistics delivered have been stale (until the next message).
    stale_since: Option<Duration>,
    /// The highest message id delivered from the current scale set.
    high_water: i64,
}

impl FaultyScaleSetApi {
    pub fn new(world: Arc<World>, alive: Arc<AtomicBool>) -> Self {
        Self { world, alive, stream: Mutex::new(MessageStream::default()) }
    }

    fn stream(&self) -> std::sync::MutexGuard<'_, MessageStream> {
        self.stream.lock().expect("message stream poisoned")
    }

    async fn gate(&self) -> Result<(), ActionsError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(ActionsError::Transport(dead()));
        }
        let w = &self.world;
        if !w.roll_late(w.scenario.faults.scale_set_api, "scale_set_api") {
            return Ok(());
        }
        Err(match w.pick(0..=2) {
            0 => ActionsError::Throttled { retry_after: Some(Duration::from_secs(w.pick(1..=60))) },
            1 => ActionsError::Server { status: 503, type_name: String::new(), message: "injected".into() },
            _ => {
                tokio::time::sleep(CALL_TIMEOUT).await;
                ActionsError::Transport("injected timeout".into())
            }
        })
    }

    /// The answer reaches a live process only.
    fn answer<T>(&self, result: Result<T, ActionsError>) -> Result<T, ActionsError> {
        if self.alive.load(Ordering::SeqCst) {
            result
        } else {
            Err(ActionsError::Transport(dead()))
        }
    }

    /// The message faults on the way to the listener.
    async fn deliver(&self, mut message: Message) -> Message {
        let w = &self.world;
        let now = w.elapsed();
        let fresh = {
            let mut stream = self.stream();
            if message.id <= stream.high_water {
                w.record().scale_set.redelivered += 1;
                return message; // the listener skips it, whatever it carries
            }
            stream.high_water = message.id;
            let replayed = {
                let mut record = w.record();
                let s = &mut record.scale_set;
                let replayed = message.id <= s.high_water;
                if replayed {
                    s.replayed += 1;
                    s.redelivered += 1;
                }
                s.high_water = s.high_water.max(message.id);
                replayed
            };
            if replayed {
                // An earlier process applied it; GitHub gives it the statistics of now.
                tracing::debug!(message_id = message.id, "a message an earlier process applied, delivered again");
            }
            let previous = stream.last_statistics.replace(message.statistics);
            match previous {
                Some(previous) if w.roll_late(w.scenario.faults.stale_statistics, "stale_statistics") => {
                    message.statistics = previous;
                    stream.stale_since.get_or_insert(now);
                    None
                }
                _ => stream.stale_since.take(),
            }
        };
        if let Some(since) = fresh {
            w.record().scale_set.held.push((since, now));
        }
        if w.roll_late(w.scenario.faults.message_delay, "message_delay") {
            let delay = Duration::from_secs(w.pick(5..=60));
            w.record().scale_set.held.push((now, now + delay));
            tokio::time::sleep(delay).await;
        }
        message
    }

    /// Statistics of the moment arrived (a session opened or refreshed): a stale window ends.
    fn fresh_statistics(&self, statistics: Statistics) {
        let stale = {
            let mut stream = self.stream();
            stream.last_statistics = Some(statistics);
            stream.stale_since.take()
        };
        if let Some(since) = stale {
            let now = self.world.elapsed();
            self.world.record().scale_set.held.push((since, now));
        }
    }

    /// A stale window still open when the process dies ends with it (its successor
    /// opens a session with fresh statistics; until then the listener is blind).
    pub fn close_windows(&self) {
        if let Some(since) = self.stream().stale_since.take() {
            let now = self.world.elapsed();
            self.world.record().scale_set.held.push((since, now));
        }
    }

    fn set_knobs(&self, knobs: ScaleSetFaults) {
        self.world.github.set_scale_set_faults(knobs);
    }
}

/// The in-memory GitHub's scale-set knobs when no fault is armed.
pub fn base_knobs() -> ScaleSetFaults {
    ScaleSetFaults { session_expiry: crate::scenario::SESSION_EXPIRY, ..ScaleSetFaults::default() }
}

#[async_trait]
impl ScaleSetApi for FaultyScaleSetApi {
    async fn runner_group_id(&self, name: Option<&str>) -> Result<u64, ActionsError> {
        self.gate().await?;
        self.answer(self.world.github.runner_group_id(name).await)
    }

    async fn find_scale_set(&self, runner_group_id: u64, name: &str) -> Result<Option<ScaleSetInfo>, ActionsError> {
        self.gate().await?;
        self.answer(self.world.github.find_scale_set(runner_group_id, name).await)
    }

    async fn get_scale_set(&self, id: u64) -> Result<Option<ScaleSetInfo>, ActionsError> {
        self.gate().await?;
        self.answer(self.world.github.get_scale_set(id).await)
    }

    async fn create_scale_set(&self, spec: &ScaleSetSpec) -> Result<ScaleSetInfo, ActionsError> {
        self.gate().await?;
        let created = self.world.github.create_scale_set(spec).await;
        if created.is_ok() {
            // Message ids start again with a new scale set.
            self.stream().high_water = 0;
            self.world.record().scale_set.high_water = 0;
        }
        self.answer(created)
    }

    async fn open_session(&self, scale_set_id: u64, owner: &str) -> Result<Statistics, ActionsError> {
        self.gate().await?;
        let opened = self.world.github.open_session(scale_set_id, owner).await;
        match &opened {
            Ok(statistics) => self.fresh_statistics(*statistics),
            Err(ActionsError::SessionConflict) => self.world.record().scale_set.conflicts += 1,
            Err(_) => {}
        }
        self.answer(opened)
    }

    async fn refresh_session(&self) -> Result<Statistics, ActionsError> {
        self.gate().await?;
        let refreshed = self.world.github.refresh_session().await;
        if let Ok(statistics) = &refreshed {
            self.fresh_statistics(*statistics);
        }
        self.answer(refreshed)
    }

    async fn close_session(&self) -> Result<(), ActionsError> {
        self.gate().await?;
        self.answer(self.world.github.close_session().await)
    }

    async fn next_message(&self, last_message_id: i64, max_capacity: u32) -> Result<Option<Message>, ActionsError> {
        self.gate().await?;
        let w = &self.world;
        if w.roll_late(w.scenario.faults.session_evicted, "session_evicted") {
            w.github.evict_session();
        }
        if w.roll_late(w.scenario.faults.jobs_reassigned, "jobs_reassigned") {
            w.github.reassign_queued();
        }
        if max_capacity > w.scenario.max {
            w.violation(format!("invariant 2: GitHub told max capacity {max_capacity}, max is {}", w.scenario.max));
        }
        let polled = w.github.next_message(last_message_id, max_capacity).await;
        let polled = match polled {
            Ok(Some(message)) => Ok(Some(self.deliver(message).await)),
            other => other,
        };
        self.answer(polled)
    }

    async fn acknowledge(&self, message_id: i64) -> Result<(), ActionsError> {
        self.gate().await?;
        let w = &self.world;
        let armed = if w.roll_late(w.scenario.faults.ack_lost, "ack_lost") {
            Some(ScaleSetFaults { lose_acks: 1, ..base_knobs() })
        } else if w.roll_late(w.scenario.faults.message_duplicate, "message_duplicate") {
            Some(ScaleSetFaults { duplicate: 1, ..base_knobs() })
        } else {
            None
        };
        let armed = armed.is_some_and(|knobs| {
            self.set_knobs(knobs);
            true
        });
        let acked = w.github.acknowledge(message_id).await;
        if armed {
            self.set_knobs(base_knobs());
        }
        self.answer(acked)
    }

    async fn acquire_jobs(&self, scale_set_id: u64, request_ids: &[i64]) -> Result<Vec<i64>, ActionsError> {
        self.gate().await?;
        self.answer(self.world.github.acquire_jobs(scale_set_id, request_ids).await)
    }

    async fn generate_jit_config(&self, scale_set_id: u64, runner_name: &str) -> Result<JitConfig, ActionsError> {
        self.gate().await?;
        let made = self.world.github.generate_jit_config(scale_set_id, runner_name).await;
        if made.is_ok() {
            crate::vms::note_credential(|| format!("a scale-set JIT runner {runner_name}"));
        }
        self.answer(made)
    }

    async fn runner_by_name(&self, name: &str) -> Result<Option<ScaleSetRunner>, ActionsError> {
        self.gate().await?;
        self.answer(self.world.github.runner_by_name(name).await)
    }

    async fn remove_runner(&self, runner_id: u64) -> Result<RemoveOutcome, ActionsError> {
        self.gate().await?;
        let outcome = self.world.github.remove_runner(runner_id).await?;
        // As for the REST port: die between GitHub's removal and the VM call.
        let w = &self.world;
        if outcome == RemoveOutcome::Removed && w.roll(w.scenario.faults.kill_after_deregister, "kill_after_deregister")
        {
            self.alive.store(false, Ordering::SeqCst);
            w.kill_now.notify_one();
            return Err(ActionsError::Transport(dead()));
        }
        self.answer(Ok(outcome))
    }
}

/// Someone else at the scale set (the portal, a script of the team's), at the scenario's
/// per-second rates while faults are on: starts a deallocated instance, deletes one, or
/// deallocates a running instance whose runner is online and idle (GitHub then shows that
/// runner offline: its VM is off). The operator is told nothing. A drawn action with
/// nothing to act on does nothing (and is not counted as a fault).
pub fn someone_else(world: &World) {
    let f = &world.scenario.faults;
    let start = world.chance_park(f.outside_start);
    let delete = world.chance_park(f.outside_delete);
    let deallocate = world.chance_park(f.outside_deallocate);
    if !(start || delete || deallocate) {
        return;
    }
    let deallocated = || -> Vec<InstanceId> {
        world
            .scale_set
            .snapshot()
            .into_iter()
            .filter(|(_, _, state)| *state == CloudState::Deallocated)
            .map(|(id, ..)| id)
            .collect()
    };
    let pick = |n: usize| world.pick_park(0..=n as u64 - 1) as usize;
    let note = |kind: &'static str| {
        let at = world.elapsed();
        world.record().faults.push((at, kind));
    };
    if start {
        let candidates = deallocated();
        if !candidates.is_empty() {
            let id = &candidates[pick(candidates.len())];
            tracing::warn!(instance = %id, "someone else starts a deallocated instance");
            world.scale_set.start_by_hand(id);
            note("outside_start");
            world.record().parking.outside_starts += 1;
        }
    }
    if delete {
        let candidates = deallocated();
        if !candidates.is_empty() {
            let id = &candidates[pick(candidates.len())];
            tracing::warn!(instance = %id, "someone else deletes a deallocated instance");
            world.scale_set.delete_by_hand(id);
            note("outside_delete");
            world.record().parking.outside_deletes += 1;
        }
    }
    if deallocate {
        let runners = world.github.runners();
        let boot_runners = world.record().boot_runners.clone();
        let idle: Vec<(InstanceId, crate::world::BootKey, u64)> = world
            .scale_set
            .snapshot()
            .into_iter()
            .filter(|(_, _, state)| *state == CloudState::Running)
            .filter_map(|(id, generation, _)| {
                let key = world.boot_key(&id, generation);
                let runner = *boot_runners.get(&key)?;
                runners
                    .iter()
                    .any(|r| r.id == runner && r.status == operator::ports::RunnerStatus::Online && !r.busy)
                    .then_some((id, key, runner))
            })
            .collect();
        if !idle.is_empty() {
            let (id, key, runner) = idle[pick(idle.len())].clone();
            tracing::warn!(instance = %id, runner, "someone else deallocates a running instance with an idle runner");
            world.github.runner_offline(runner);
            world.scale_set.deallocate_by_hand(&id);
            note("outside_deallocate");
            let mut record = world.record();
            record.parking.outside_deallocations += 1;
            record.parking.deallocated_by_hand.insert(key);
        }
    }
}
