use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
};

use async_trait::async_trait;
use base64::Engine as _;
use time::OffsetDateTime;

use super::actions::{job_info, ScaleSetWorld};
use crate::{
    model::JobRef,
    ports::{
        DeregisterOutcome, Github, GithubError, JitConfig, JitRequest, JobMessage, RegistrationToken, Runner,
        RunnerStatus,
    },
};

/// A job waiting at the simulated GitHub for a runner with all of its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimJob {
    pub job: JobRef,
    pub labels: Vec<String>,
}

/// GitHub's runner bookkeeping in memory: runners register (JIT or token), come
/// online, are assigned queued jobs whose labels they carry, and — being
/// ephemeral — disappear once their job is done. Removing a busy runner is refused,
/// as GitHub does. The runner scale set API (`actions.rs`) works on the same runners
/// and jobs.
pub struct InMemoryGithub {
    url: String,
    inner: Mutex<Inner>,
    /// Wakes long polls of the scale set's message queue.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
pub(super) struct Inner {
    next_runner: u64,
    next_secret: u64,
    pub(super) runners: BTreeMap<u64, SimRunner>,
    pub(super) pending_jit: HashMap<String, u64>,
    tokens: Vec<String>,
    pub(super) queue: VecDeque<SimJob>,
    pub(super) actions: ScaleSetWorld,
    /// Every assignment ever made, to check that each job ran exactly once.
    assignments: Vec<(JobRef, String)>,
    /// When each queued job was queued, and how long each assigned one waited.
    queued_at: HashMap<JobRef, tokio::time::Instant>,
    waits: Vec<std::time::Duration>,
    completed: Vec<JobRef>,
}

#[derive(Clone, Debug)]
pub(super) struct SimRunner {
    pub(super) name: String,
    labels: Vec<String>,
    pub(super) online: bool,
    pub(super) job: Option<JobRef>,
    /// The runner scale set it was made for, if any.
    pub(super) scale_set: Option<u64>,
}

impl InMemoryGithub {
    pub fn new(registration_url: impl Into<String>) -> Self {
        Self { url: registration_url.into(), inner: Mutex::new(Inner::default()), changed: Default::default() }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("github state poisoned")
    }

    /// Resolves after the next [`Self::wake`] (created before it, it is not missed).
    pub(super) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub(super) fn wake(&self) {
        self.changed.notify_waiters();
    }

    /// Queue a job, as a workflow run does.
    pub fn enqueue(&self, job: SimJob) {
        let mut inner = self.lock();
        if inner.actions.takes(&job) {
            inner.actions.push(JobMessage::Assigned { job: job_info(&job) });
        }
        inner.queued_at.insert(job.job.clone(), tokio::time::Instant::now());
        inner.queue.push_back(job);
        drop(inner);
        self.wake();
    }

    /// How long each job assigned so far waited in the queue for a runner, in order.
    pub fn job_waits(&self) -> Vec<std::time::Duration> {
        self.lock().waits.clone()
    }

    /// A JIT runner named `name` with `labels`, registered and offline until its config
    /// is used; `Err` when the name is taken.
    pub(super) fn create_jit_runner(
        &self,
        name: &str,
        labels: Vec<String>,
        scale_set: Option<u64>,
    ) -> Result<JitConfig, ()> {
        let mut inner = self.lock();
        if inner.runners.values().any(|r| r.name == name) {
            return Err(());
        }
        inner.next_runner += 1;
        inner.next_secret += 1;
        let runner_id = inner.next_runner;
        // Same outer shape as GitHub's: base64 of a JSON map of file name to content.
        let files = serde_json::json!({
            ".runner": base64::engine::general_purpose::STANDARD.encode(format!("{{\"agentId\":{runner_id},\"agentName\":\"{name}\"}}")),
            ".credentials": base64::engine::general_purpose::STANDARD.encode(format!("sim-credential-{}", inner.next_secret)),
        });
        let encoded = base64::engine::general_purpose::STANDARD.encode(files.to_string());
        inner
            .runners
            .insert(runner_id, SimRunner { name: name.to_owned(), labels, online: false, job: None, scale_set });
        inner.pending_jit.insert(encoded.clone(), runner_id);
        Ok(JitConfig { runner_id, encoded })
    }

    /// `run.sh --jitconfig`: the runner created for this config comes online.
    pub fn start_with_jit(&self, encoded: &str) -> Option<u64> {
        let mut inner = self.lock();
        let id = inner.pending_jit.remove(encoded)?;
        inner.runners.get_mut(&id)?.online = true;
        Some(id)
    }

    /// `config.sh --token ... --ephemeral` then `run.sh`.
    pub fn register_with_token(&self, token: &str, name: &str, labels: &[String]) -> Option<u64> {
        let mut inner = self.lock();
        if !inner.tokens.iter().any(|t| t == token) || inner.runners.values().any(|r| r.name == name) {
            return None;
        }
        inner.next_runner += 1;
        let id = inner.next_runner;
        inner.runners.insert(
            id,
            SimRunner { name: name.into(), labels: labels.to_vec(), online: true, job: None, scale_set: None },
        );
        Some(id)
    }

    /// The runner asks for work: it gets the first queued job whose labels it has.
    pub fn poll_job(&self, runner_id: u64) -> Option<JobRef> {
        let mut inner = self.lock();
        let runner = inner.runners.get(&runner_id)?;
        if !runner.online || runner.job.is_some() {
            return None;
        }
        let labels = runner.labels.clone();
        let name = runner.name.clone();
        let pos = inner.queue.iter().position(|j| j.labels.iter().all(|l| labels.contains(l)))?;
        let queued = inner.queue.remove(pos).expect("position is in range");
        let job = queued.job.clone();
        let runner = inner.runners.get_mut(&runner_id).expect("looked up above");
        runner.job = Some(job.clone());
        if runner.scale_set.is_some() {
            let message = JobMessage::Started { job: job_info(&queued), runner_id, runner_name: name.clone() };
            inner.actions.push(message);
        }
        inner.assignments.push((job.clone(), name));
        if let Some(at) = inner.queued_at.remove(&job) {
            inner.waits.push(at.elapsed());
        }
        drop(inner);
        self.wake();
        Some(job)
    }

    /// The job finished; an ephemeral runner then removes itself.
    pub fn finish_job(&self, runner_id: u64) {
        let mut inner = self.lock();
        if let Some(runner) = inner.runners.remove(&runner_id) {
            if let Some(job) = runner.job {
                if runner.scale_set.is_some() {
                    let queued = SimJob { job: job.clone(), labels: runner.labels.clone() };
                    inner.actions.push(JobMessage::Completed {
                        job: job_info(&queued),
                        runner_id,
                        runner_name: runner.name.clone(),
                        result: "succeeded".into(),
                    });
                }
                inner.completed.push(job);
            }
        }
        drop(inner);
        self.wake();
    }

    /// A runner process died without finishing: GitHub shows it offline.
    pub fn runner_offline(&self, runner_id: u64) {
        if let Some(r) = self.lock().runners.get_mut(&runner_id) {
            r.online = false;
        }
    }

    /// Every runner as GitHub lists it, without going through the port.
    pub fn runners(&self) -> Vec<Runner> {
        self.lock().runners.iter().map(|(id, r)| Self::runner_view(*id, r)).collect()
    }

    /// Is a runner with this id registered (what the runner learns when its listener is refused)?
    pub fn knows_runner(&self, runner_id: u64) -> bool {
        self.lock().runners.contains_key(&runner_id)
    }

    /// Runners running a job right now, by name.
    pub fn runner_jobs(&self) -> Vec<(String, JobRef)> {
        self.lock().runners.values().filter_map(|r| r.job.clone().map(|j| (r.name.clone(), j))).collect()
    }

    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn assignments(&self) -> Vec<(JobRef, String)> {
        self.lock().assignments.clone()
    }

    pub fn completed(&self) -> Vec<JobRef> {
        self.lock().completed.clone()
    }

    fn runner_view(id: u64, r: &SimRunner) -> Runner {
        Runner {
            id,
            name: r.name.clone(),
            status: if r.online { RunnerStatus::Online } else { RunnerStatus::Offline },
            busy: r.job.is_some(),
        }
    }
}

#[async_trait]
impl Github for InMemoryGithub {
    async fn jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        self.create_jit_runner(&request.name, request.labels.clone(), None)
            .map_err(|()| GithubError::NameTaken { name: request.name.clone() })
    }

    async fn registration_token(&self) -> Result<RegistrationToken, GithubError> {
        let mut inner = self.lock();
        inner.next_secret += 1;
        let token = format!("SIMTOKEN{:012}", inner.next_secret);
        inner.tokens.push(token.clone());
        Ok(RegistrationToken { token, expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1) })
    }

    async fn list_runners(&self) -> Result<Vec<Runner>, GithubError> {
        Ok(self.lock().runners.iter().map(|(id, r)| Self::runner_view(*id, r)).collect())
    }

    async fn get_runner(&self, id: u64) -> Result<Option<Runner>, GithubError> {
        Ok(self.lock().runners.get(&id).map(|r| Self::runner_view(id, r)))
    }

    async fn deregister_runner(&self, id: u64) -> Result<DeregisterOutcome, GithubError> {
        let mut inner = self.lock();
        match inner.runners.get(&id) {
            None => Ok(DeregisterOutcome::AlreadyGone),
            Some(r) if r.job.is_some() => Ok(DeregisterOutcome::Busy),
            Some(_) => {
                inner.runners.remove(&id);
                inner.pending_jit.retain(|_, rid| *rid != id);
                Ok(DeregisterOutcome::Removed)
            }
        }
    }

    fn registration_url(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u64) -> JobRef {
        JobRef { repository: "o/r".into(), run_id: n, run_attempt: 1, job_name: "build".into() }
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn jit_runner_takes_a_matching_job_and_vanishes_after_it() {
        let gh = InMemoryGithub::new("https://github.com/o/r");
        gh.enqueue(SimJob { job: job(1), labels: labels(&["gpu"]) });
        gh.enqueue(SimJob { job: job(2), labels: labels(&["linux"]) });
        let jit = gh
            .jit_config(&JitRequest { name: "vm0-a".into(), labels: labels(&["linux"]), runner_group: None })
            .await
            .unwrap();
        let id = gh.start_with_jit(&jit.encoded).unwrap();
        assert_eq!(gh.start_with_jit(&jit.encoded), None, "a JIT config works once");
        assert_eq!(gh.poll_job(id), Some(job(2)), "label match, not queue order");
        assert_eq!(gh.deregister_runner(id).await.unwrap(), DeregisterOutcome::Busy);
        gh.finish_job(id);
        assert_eq!(gh.get_runner(id).await.unwrap(), None);
        assert_eq!(gh.deregister_runner(id).await.unwrap(), DeregisterOutcome::AlreadyGone);
    }

    #[tokio::test]
    async fn runner_names_are_unique() {
        let gh = InMemoryGithub::new("https://github.com/o/r");
        let req = JitRequest { name: "vm0-a".into(), labels: labels(&["x"]), runner_group: None };
        gh.jit_config(&req).await.unwrap();
        assert!(matches!(gh.jit_config(&req).await, Err(GithubError::NameTaken { .. })));
    }

    #[tokio::test]
    async fn token_registration_needs_an_issued_token() {
        let gh = InMemoryGithub::new("https://github.com/o/r");
        assert_eq!(gh.register_with_token("forged", "vm1", &labels(&["x"])), None);
        let token = gh.registration_token().await.unwrap();
        assert!(gh.register_with_token(&token.token, "vm1", &labels(&["x"])).is_some());
    }
}
