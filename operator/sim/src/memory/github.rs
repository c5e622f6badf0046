use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
};

use async_trait::async_trait;
use base64::Engine as _;
use time::OffsetDateTime;

use crate::{
    model::JobRef,
    ports::{DeregisterOutcome, Github, GithubError, JitConfig, JitRequest, RegistrationToken, Runner, RunnerStatus},
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
/// as GitHub does.
pub struct InMemoryGithub {
    url: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_runner: u64,
    next_secret: u64,
    runners: BTreeMap<u64, SimRunner>,
    pending_jit: HashMap<String, u64>,
    tokens: Vec<String>,
    queue: VecDeque<SimJob>,
    /// Every assignment ever made, to check that each job ran exactly once.
    assignments: Vec<(JobRef, String)>,
    completed: Vec<JobRef>,
}

#[derive(Clone, Debug)]
struct SimRunner {
    name: String,
    labels: Vec<String>,
    online: bool,
    job: Option<JobRef>,
}

impl InMemoryGithub {
    pub fn new(registration_url: impl Into<String>) -> Self {
        Self { url: registration_url.into(), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("github state poisoned")
    }

    /// Queue a job, as a workflow run does.
    pub fn enqueue(&self, job: SimJob) {
        self.lock().queue.push_back(job);
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
        inner.runners.insert(id, SimRunner { name: name.into(), labels: labels.to_vec(), online: true, job: None });
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
        let job = inner.queue.remove(pos).expect("position is in range").job;
        inner.runners.get_mut(&runner_id).expect("looked up above").job = Some(job.clone());
        inner.assignments.push((job.clone(), name));
        Some(job)
    }

    /// The job finished; an ephemeral runner then removes itself.
    pub fn finish_job(&self, runner_id: u64) {
        let mut inner = self.lock();
        if let Some(runner) = inner.runners.remove(&runner_id) {
            if let Some(job) = runner.job {
                inner.completed.push(job);
            }
        }
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
        let mut inner = self.lock();
        if inner.runners.values().any(|r| r.name == request.name) {
            return Err(GithubError::NameTaken { name: request.name.clone() });
        }
        inner.next_runner += 1;
        inner.next_secret += 1;
        let runner_id = inner.next_runner;
        // Same outer shape as GitHub's: base64 of a JSON map of file name to content.
        let files = serde_json::json!({
            ".runner": base64::engine::general_purpose::STANDARD.encode(format!("{{\"agentId\":{runner_id},\"agentName\":\"{}\"}}", request.name)),
            ".credentials": base64::engine::general_purpose::STANDARD.encode(format!("sim-credential-{}", inner.next_secret)),
        });
        let encoded = base64::engine::general_purpose::STANDARD.encode(files.to_string());
        inner.runners.insert(
            runner_id,
            SimRunner { name: request.name.clone(), labels: request.labels.clone(), online: false, job: None },
        );
        inner.pending_jit.insert(encoded.clone(), runner_id);
        Ok(JitConfig { runner_id, encoded })
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
