//! GitHub's runner scale set API in memory, on the same runners and jobs as the rest of
//! [`InMemoryGithub`]: a queued job whose labels the scale set carries is assigned to it
//! (`JobAssigned`), a runner of the set taking it is `JobStarted`, its end
//! `JobCompleted`; every message carries the statistics of the moment it is delivered. One
//! session at a time (a second is a conflict until the first expires: no poll for
//! [`ScaleSetFaults::session_expiry`]), long polls of 50 s on tokio's clock, messages
//! redelivered until acknowledged, and the faults the fault suite plays: lost and
//! duplicated acknowledgements, statistics that lag a message behind, an evicted
//! session, the scale set deleted, assignments withdrawn and made again.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;

use super::github::{InMemoryGithub, Inner, SimJob};
use crate::ports::{
    ActionsError, JitConfig, JobInfo, JobMessage, Message, RemoveOutcome, ScaleSetApi, ScaleSetInfo, ScaleSetRunner,
    ScaleSetSpec, Statistics,
};

/// How long GitHub holds a poll that finds nothing.
pub const LONG_POLL: Duration = Duration::from_secs(50);
/// At most this many job messages in one message (GitHub: 50).
const BATCH: usize = 50;

/// Fault knobs of the simulated scale set API.
#[derive(Clone, Debug)]
pub struct ScaleSetFaults {
    /// A session not polled for this long expires, clearing a conflict (GitHub does not
    /// document its value; the simulation assumes 2 min).
    pub session_expiry: Duration,
    /// Acknowledgements to answer but not carry out (the message comes again).
    pub lose_acks: u32,
    /// Messages to deliver twice (the same id again after its acknowledgement).
    pub duplicate: u32,
    /// Messages that carry the statistics of the message before (lagging counters).
    pub stale_statistics: u32,
    /// Messages whose body cannot be decoded (its jobs are lost; its statistics hold).
    pub undecodable: u32,
}

impl Default for ScaleSetFaults {
    fn default() -> Self {
        Self {
            session_expiry: Duration::from_secs(120),
            lose_acks: 0,
            duplicate: 0,
            stale_statistics: 0,
            undecodable: 0,
        }
    }
}

/// The scale set side of [`Inner`].
#[derive(Debug, Default)]
pub(super) struct ScaleSetWorld {
    next_set: u64,
    set: Option<SimScaleSet>,
    groups: BTreeMap<String, u64>,
    session: Option<Session>,
    next_message: i64,
    /// Job messages not yet put into a message.
    pending: Vec<JobMessage>,
    /// Delivered or deliverable, not acknowledged.
    unacked: BTreeMap<i64, Message>,
    /// Messages that keep the (lagging) statistics they were made with; every other
    /// message carries the counters of the moment it is delivered, as GitHub's do.
    lagging: std::collections::BTreeSet<i64>,
    /// Duplicates to deliver again after their acknowledgement.
    again: Vec<Message>,
    last_statistics: Statistics,
    pub(super) faults: ScaleSetFaults,
    pub(super) max_capacity: Option<u32>,
    pub(super) sessions_opened: u64,
    pub(super) conflicts: u64,
    pub(super) calls: u64,
}

#[derive(Clone, Debug)]
struct SimScaleSet {
    info: ScaleSetInfo,
}

#[derive(Clone, Debug)]
struct Session {
    polled_at: Instant,
    evicted: bool,
}

impl ScaleSetWorld {
    fn set_id(&self) -> Option<u64> {
        self.set.as_ref().map(|s| s.info.id)
    }

    /// The labels a runner of the set carries: its name and the extra labels.
    pub(super) fn labels(&self) -> Option<Vec<String>> {
        self.set.as_ref().map(|s| s.info.labels.clone())
    }

    /// Does the scale set take this job? (Its labels are all the set's.)
    pub(super) fn takes(&self, job: &SimJob) -> bool {
        self.set.as_ref().is_some_and(|s| job.labels.iter().all(|l| s.info.labels.contains(l)))
    }

    pub(super) fn push(&mut self, message: JobMessage) {
        if self.set.is_some() {
            self.pending.push(message);
        }
    }
}

/// A job message's fields for a simulated job. The sim runs on tokio's clock, which has
/// no calendar: timestamps are left out (the operator then skips the wait histograms).
pub(super) fn job_info(job: &SimJob) -> JobInfo {
    let j = &job.job;
    JobInfo {
        job_id: format!("{}-{}-{}", j.run_id, j.run_attempt, j.job_name),
        request_id: 0,
        repository: j.repository.clone(),
        workflow_run_id: j.run_id,
        job_display_name: j.job_name.clone(),
        queue_time: None,
        scale_set_assign_time: None,
        runner_assign_time: None,
        finish_time: None,
    }
}

impl Inner {
    /// Counters of the scale set now: queued jobs it takes count as assigned (at most
    /// the capacity the listener last reported, as GitHub assigns no more than that),
    /// plus the jobs its runners run.
    fn statistics(&self) -> Statistics {
        let world = &self.actions;
        let Some(set) = world.set_id() else { return Statistics::default() };
        let set_runners: Vec<_> = self.runners.values().filter(|r| r.scale_set == Some(set)).collect();
        let running = set_runners.iter().filter(|r| r.job.is_some()).count() as u32;
        let queued = self.queue.iter().filter(|j| world.takes(j)).count() as u32;
        let cap = world.max_capacity.unwrap_or(u32::MAX).saturating_sub(running);
        let registered = set_runners.len() as u32;
        Statistics {
            available_jobs: 0,
            acquired_jobs: 0,
            assigned_jobs: queued.min(cap) + running,
            running_jobs: running,
            registered_runners: registered,
            busy_runners: running,
            idle_runners: set_runners.iter().filter(|r| r.online && r.job.is_none()).count() as u32,
        }
    }

    /// Put pending job messages into messages.
    fn flush(&mut self) {
        if self.actions.pending.is_empty() {
            return;
        }
        let fresh = self.statistics();
        let world = &mut self.actions;
        let lagging = world.faults.stale_statistics > 0;
        let statistics = if lagging {
            world.faults.stale_statistics -= 1;
            world.last_statistics
        } else {
            fresh
        };
        world.last_statistics = fresh;
        let pending = std::mem::take(&mut world.pending);
        for chunk in pending.chunks(BATCH) {
            world.next_message += 1;
            let id = world.next_message;
            if lagging {
                world.lagging.insert(id);
            }
            let jobs = if world.faults.undecodable > 0 {
                world.faults.undecodable -= 1;
                Err("the body is not a JSON array (simulated)".to_owned())
            } else {
                Ok(chunk.to_vec())
            };
            world.unacked.insert(id, Message { id, statistics, jobs });
        }
    }

    fn session_alive(&self, now: Instant) -> bool {
        let world = &self.actions;
        world.session.as_ref().is_some_and(|s| now.duration_since(s.polled_at) < world.faults.session_expiry)
    }
}

impl InMemoryGithub {
    /// Register a runner group (organization scope) the operator may name.
    pub fn add_runner_group(&self, name: &str) {
        let mut inner = self.lock();
        let id = 2 + inner.actions.groups.len() as u64;
        inner.actions.groups.entry(name.to_owned()).or_insert(id);
    }

    /// GitHub deletes the scale set (dormant, or by hand): its session and messages go.
    pub fn delete_scale_set(&self) {
        let mut inner = self.lock();
        let world = &mut inner.actions;
        world.set = None;
        world.session = None;
        world.pending.clear();
        world.unacked.clear();
        world.lagging.clear();
        world.again.clear();
        drop(inner);
        self.wake();
    }

    /// The broker drops the session: the next poll fails and a new one must be opened.
    pub fn evict_session(&self) {
        if let Some(s) = self.lock().actions.session.as_mut() {
            s.evicted = true;
        }
        self.wake();
    }

    /// Withdraw the assignment of queued jobs of the scale set and make it again, as
    /// GitHub does for a job no runner took in time (`JobCompleted{canceled}` then
    /// `JobAssigned`). Returns how many.
    pub fn reassign_queued(&self) -> usize {
        let mut inner = self.lock();
        let jobs: Vec<SimJob> = inner.queue.iter().filter(|j| inner.actions.takes(j)).cloned().collect();
        for job in &jobs {
            let info = job_info(job);
            inner.actions.push(JobMessage::Completed {
                job: info.clone(),
                runner_id: 0,
                runner_name: String::new(),
                result: "canceled".into(),
            });
            inner.actions.push(JobMessage::Assigned { job: info });
        }
        drop(inner);
        self.wake();
        jobs.len()
    }

    pub fn set_scale_set_faults(&self, faults: ScaleSetFaults) {
        self.lock().actions.faults = faults;
    }

    /// The scale set's counters now (what the next message would carry).
    pub fn scale_set_statistics(&self) -> Statistics {
        self.lock().statistics()
    }

    /// The capacity the listener last reported (`X-ScaleSetMaxCapacity`).
    pub fn reported_max_capacity(&self) -> Option<u32> {
        self.lock().actions.max_capacity
    }

    /// Sessions opened and conflicts answered so far.
    pub fn session_counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.actions.sessions_opened, inner.actions.conflicts)
    }

    /// Calls to the scale set API so far.
    pub fn scale_set_calls(&self) -> u64 {
        self.lock().actions.calls
    }

    pub fn scale_set_id(&self) -> Option<u64> {
        self.lock().actions.set_id()
    }

    fn count_call(&self) {
        self.lock().actions.calls += 1;
    }
}

#[async_trait]
impl ScaleSetApi for InMemoryGithub {
    async fn runner_group_id(&self, name: Option<&str>) -> Result<u64, ActionsError> {
        self.count_call();
        match name {
            None => Ok(1),
            Some(name) => self.lock().actions.groups.get(name).copied().ok_or_else(|| ActionsError::Server {
                status: 404,
                type_name: "RunnerGroupNotFound".into(),
                message: format!("no runner group found with name {name}"),
            }),
        }
    }

    async fn find_scale_set(&self, runner_group_id: u64, name: &str) -> Result<Option<ScaleSetInfo>, ActionsError> {
        self.count_call();
        let inner = self.lock();
        Ok(inner
            .actions
            .set
            .as_ref()
            .filter(|s| s.info.runner_group_id == runner_group_id && s.info.name == name)
            .map(|s| s.info.clone()))
    }

    async fn get_scale_set(&self, id: u64) -> Result<Option<ScaleSetInfo>, ActionsError> {
        self.count_call();
        Ok(self.lock().actions.set.as_ref().filter(|s| s.info.id == id).map(|s| s.info.clone()))
    }

    async fn create_scale_set(&self, spec: &ScaleSetSpec) -> Result<ScaleSetInfo, ActionsError> {
        self.count_call();
        let mut inner = self.lock();
        if inner.actions.set.as_ref().is_some_and(|s| s.info.name == spec.name) {
            return Err(ActionsError::Server {
                status: 400,
                type_name: String::new(),
                message: "The runner scale set already exists in runner group.".into(),
            });
        }
        inner.actions.next_set += 1;
        let mut labels = vec![spec.name.clone()];
        labels.extend(spec.extra_labels.iter().filter(|l| **l != spec.name).cloned());
        let info = ScaleSetInfo {
            id: inner.actions.next_set,
            name: spec.name.clone(),
            runner_group_id: spec.runner_group_id,
            labels,
        };
        inner.actions.set = Some(SimScaleSet { info: info.clone() });
        inner.actions.next_message = 0;
        // Jobs already waiting are assigned to the new set at once.
        let waiting: Vec<JobMessage> = inner
            .queue
            .iter()
            .filter(|j| inner.actions.takes(j))
            .map(|j| JobMessage::Assigned { job: job_info(j) })
            .collect();
        inner.actions.pending.extend(waiting);
        Ok(info)
    }

    async fn open_session(&self, scale_set_id: u64, _owner: &str) -> Result<Statistics, ActionsError> {
        self.count_call();
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.actions.set_id() != Some(scale_set_id) {
            return Err(ActionsError::ScaleSetNotFound);
        }
        if inner.session_alive(now) && !inner.actions.session.as_ref().is_some_and(|s| s.evicted) {
            inner.actions.conflicts += 1;
            return Err(ActionsError::SessionConflict);
        }
        inner.actions.session = Some(Session { polled_at: now, evicted: false });
        inner.actions.sessions_opened += 1;
        Ok(inner.statistics())
    }

    async fn refresh_session(&self) -> Result<Statistics, ActionsError> {
        self.count_call();
        let mut inner = self.lock();
        if inner.actions.set.is_none() {
            return Err(ActionsError::ScaleSetNotFound);
        }
        match inner.actions.session.as_mut() {
            Some(s) if !s.evicted => s.polled_at = Instant::now(),
            _ => return Err(ActionsError::SessionGone),
        }
        Ok(inner.statistics())
    }

    async fn close_session(&self) -> Result<(), ActionsError> {
        self.count_call();
        self.lock().actions.session = None;
        Ok(())
    }

    async fn next_message(&self, last_message_id: i64, max_capacity: u32) -> Result<Option<Message>, ActionsError> {
        self.count_call();
        let deadline = Instant::now() + LONG_POLL;
        loop {
            let woken = {
                let mut inner = self.lock();
                let world = &mut inner.actions;
                if world.set.is_none() {
                    return Err(ActionsError::ScaleSetNotFound);
                }
                match world.session.as_mut() {
                    None => return Err(ActionsError::SessionGone),
                    Some(s) if s.evicted => {
                        world.session = None;
                        return Err(ActionsError::SessionGone);
                    }
                    Some(s) => s.polled_at = Instant::now(),
                }
                world.max_capacity = Some(max_capacity);
                inner.flush();
                let world = &mut inner.actions;
                let next = match world.again.pop() {
                    Some(again) => Some(again),
                    None => world.unacked.range(last_message_id + 1..).next().map(|(_, m)| m.clone()),
                };
                if let Some(mut message) = next {
                    if !inner.actions.lagging.contains(&message.id) {
                        message.statistics = inner.statistics();
                    }
                    return Ok(Some(message));
                }
                self.woken()
            };
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                biased;
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    async fn acknowledge(&self, message_id: i64) -> Result<(), ActionsError> {
        self.count_call();
        let mut inner = self.lock();
        let world = &mut inner.actions;
        if world.faults.lose_acks > 0 {
            world.faults.lose_acks -= 1;
            return Ok(());
        }
        world.lagging.remove(&message_id);
        if let Some(message) = world.unacked.remove(&message_id) {
            if world.faults.duplicate > 0 {
                world.faults.duplicate -= 1;
                world.again.push(message);
            }
        }
        Ok(())
    }

    async fn acquire_jobs(&self, _scale_set_id: u64, request_ids: &[i64]) -> Result<Vec<i64>, ActionsError> {
        // The simulated GitHub assigns directly, as github.com does: nothing is offered.
        self.count_call();
        Ok(request_ids.to_vec())
    }

    async fn generate_jit_config(&self, scale_set_id: u64, runner_name: &str) -> Result<JitConfig, ActionsError> {
        self.count_call();
        let labels = {
            let inner = self.lock();
            if inner.actions.set_id() != Some(scale_set_id) {
                return Err(ActionsError::ScaleSetNotFound);
            }
            inner.actions.labels().unwrap_or_default()
        };
        self.create_jit_runner(runner_name, labels, Some(scale_set_id))
            .map_err(|_| ActionsError::RunnerExists { name: runner_name.to_owned() })
    }

    async fn runner_by_name(&self, name: &str) -> Result<Option<ScaleSetRunner>, ActionsError> {
        self.count_call();
        let inner = self.lock();
        Ok(inner.runners.iter().find(|(_, r)| r.name == name).map(|(id, r)| ScaleSetRunner {
            id: *id,
            name: r.name.clone(),
            scale_set_id: r.scale_set.unwrap_or(0),
        }))
    }

    async fn remove_runner(&self, runner_id: u64) -> Result<RemoveOutcome, ActionsError> {
        self.count_call();
        let mut inner = self.lock();
        match inner.runners.get(&runner_id) {
            Some(r) if r.job.is_some() => Ok(RemoveOutcome::Busy),
            _ => {
                inner.runners.remove(&runner_id);
                inner.pending_jit.retain(|_, rid| *rid != runner_id);
                Ok(RemoveOutcome::Removed)
            }
        }
    }
}
