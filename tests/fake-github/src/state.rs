//! GitHub's runner bookkeeping, without HTTP: scopes, runners, jobs, tokens.
//! Pure state so it is unit-tested on its own; the server only translates.

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::Engine as _;
use time::OffsetDateTime;

/// Where runners are registered: one repository (`owner/name`) or one organization.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Repo(String),
    Org(String),
}

impl Scope {
    pub fn repo(owner_repo: &str) -> Self {
        Self::Repo(owner_repo.to_owned())
    }

    pub fn org(org: &str) -> Self {
        Self::Org(org.to_owned())
    }

    /// The account that owns the scope (the repository owner or the organization).
    pub fn owner(&self) -> &str {
        match self {
            Self::Repo(r) => r.split('/').next().unwrap_or_default(),
            Self::Org(o) => o,
        }
    }
}

/// Labels GitHub applies itself when a runner is configured.
const READ_ONLY_LABELS: &[&str] = &["self-hosted", "linux", "windows", "macos", "x64", "arm64", "arm"];

/// A runner as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRunner {
    pub id: u64,
    pub scope: Scope,
    pub name: String,
    pub labels: Vec<String>,
    pub runner_group_id: u64,
    pub ephemeral: bool,
    pub online: bool,
    /// The job it runs right now.
    pub job: Option<u64>,
    /// Whether the runner process ever connected (JIT runners start unconnected).
    pub connected: bool,
    /// The runner scale set it was created for (`generatejitconfig` of the Actions
    /// service); such a runner takes only that set's jobs, never the REST queue's.
    pub scale_set_id: Option<u64>,
}

impl FakeRunner {
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    pub fn label_is_read_only(label: &str) -> bool {
        READ_ONLY_LABELS.iter().any(|l| l.eq_ignore_ascii_case(label))
    }
}

/// A queued or running job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeJob {
    pub id: u64,
    pub scope: Scope,
    pub labels: Vec<String>,
    pub runner: Option<u64>,
    pub done: bool,
}

/// A runner group of an organization (repositories have only the default group, id 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerGroup {
    pub id: u64,
    pub name: String,
    pub default: bool,
}

/// Why a state change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    NameTaken,
    Busy { name: String },
    InvalidLabels,
}

#[derive(Default)]
pub struct RunnerState {
    next_id: u64,
    pub runners: BTreeMap<u64, FakeRunner>,
    pub jobs: BTreeMap<u64, FakeJob>,
    queues: HashMap<Scope, VecDeque<u64>>,
    groups: HashMap<String, Vec<RunnerGroup>>,
    pending_jit: HashMap<String, u64>,
    registration_tokens: HashMap<String, (Scope, OffsetDateTime)>,
    remove_tokens: HashMap<String, (Scope, OffsetDateTime)>,
}

impl RunnerState {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The organization's runner groups; "Default" (id 1) always exists.
    pub fn groups(&mut self, org: &str) -> &mut Vec<RunnerGroup> {
        self.groups
            .entry(org.to_owned())
            .or_insert_with(|| vec![RunnerGroup { id: 1, name: "Default".into(), default: true }])
    }

    pub fn add_group(&mut self, org: &str, name: &str) -> u64 {
        let id = 1 + self.groups(org).iter().map(|g| g.id).max().unwrap_or(1);
        self.groups(org).push(RunnerGroup { id, name: name.into(), default: false });
        id
    }

    fn group_exists(&mut self, scope: &Scope, id: u64) -> bool {
        match scope {
            Scope::Repo(_) => id == 1,
            Scope::Org(org) => self.groups(org).iter().any(|g| g.id == id),
        }
    }

    /// Runners of one scope, by id.
    pub fn runners_of(&self, scope: &Scope) -> Vec<FakeRunner> {
        self.runners.values().filter(|r| &r.scope == scope).cloned().collect()
    }

    pub fn runner(&self, scope: &Scope, id: u64) -> Option<&FakeRunner> {
        self.runners.get(&id).filter(|r| &r.scope == scope)
    }

    fn name_taken(&self, scope: &Scope, name: &str) -> bool {
        self.runners.values().any(|r| &r.scope == scope && r.name == name)
    }

    /// `generate-jitconfig`: the runner exists (offline) until its config is used.
    pub fn create_jit(
        &mut self,
        scope: &Scope,
        name: &str,
        labels: &[String],
        group: u64,
    ) -> Result<(FakeRunner, String), Refusal> {
        if labels.is_empty() || labels.len() > 100 {
            return Err(Refusal::InvalidLabels);
        }
        if !self.group_exists(scope, group) {
            return Err(Refusal::NotFound);
        }
        if self.name_taken(scope, name) {
            return Err(Refusal::NameTaken);
        }
        let id = self.next();
        let runner = FakeRunner {
            id,
            scope: scope.clone(),
            name: name.into(),
            labels: labels.to_vec(),
            runner_group_id: group,
            ephemeral: true,
            online: false,
            job: None,
            connected: false,
            scale_set_id: None,
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let files = serde_json::json!({
            ".runner": b64.encode(serde_json::json!({"agentId": id, "agentName": name, "poolId": group, "ephemeral": true}).to_string()),
            ".credentials": b64.encode(format!("fake-runner-credential-{id}-{}", self.next())),
        });
        let encoded = b64.encode(files.to_string());
        self.pending_jit.insert(encoded.clone(), id);
        self.runners.insert(id, runner.clone());
        Ok((runner, encoded))
    }

    /// `run.sh --jitconfig`: the config works once; the runner comes online.
    pub fn start_jit(&mut self, encoded: &str) -> Option<u64> {
        let id = self.pending_jit.remove(encoded)?;
        let runner = self.runners.get_mut(&id)?;
        runner.online = true;
        runner.connected = true;
        Some(id)
    }

    /// A JIT runner of a runner scale set: registered and offline until `encode`'s config
    /// is used (`start_jit`). `encode` builds the config from the new runner's id.
    pub(crate) fn create_scale_set_runner(
        &mut self,
        scope: &Scope,
        name: &str,
        labels: &[String],
        group: u64,
        scale_set_id: u64,
        encode: impl FnOnce(u64, &mut Self) -> String,
    ) -> Result<(FakeRunner, String), Refusal> {
        if self.name_taken(scope, name) {
            return Err(Refusal::NameTaken);
        }
        let id = self.next();
        let runner = FakeRunner {
            id,
            scope: scope.clone(),
            name: name.into(),
            labels: labels.to_vec(),
            runner_group_id: group,
            ephemeral: true,
            online: false,
            job: None,
            connected: false,
            scale_set_id: Some(scale_set_id),
        };
        let encoded = encode(id, self);
        self.pending_jit.insert(encoded.clone(), id);
        self.runners.insert(id, runner.clone());
        Ok((runner, encoded))
    }

    /// A fresh number from the same sequence as runner and job ids (secrets in JIT configs).
    pub(crate) fn serial(&mut self) -> u64 {
        self.next()
    }

    /// The runner connects without its config (a test that only knows the runner's id).
    pub(crate) fn connect(&mut self, runner_id: u64) -> bool {
        let Some(runner) = self.runners.get_mut(&runner_id) else { return false };
        runner.online = true;
        runner.connected = true;
        self.pending_jit.retain(|_, id| *id != runner_id);
        true
    }

    /// The scope of an unexpired registration token (`RemoteAuth` of the Actions service).
    pub(crate) fn registration_token_scope(&self, token: &str, now: OffsetDateTime) -> Option<Scope> {
        match self.registration_tokens.get(token) {
            Some((scope, expires)) if *expires > now => Some(scope.clone()),
            _ => None,
        }
    }

    /// A job the Actions service routes to a runner scale set: recorded like any job (so
    /// the REST runner list shows its runner busy) but kept out of the REST queue.
    pub(crate) fn add_unqueued_job(&mut self, scope: &Scope, labels: &[String]) -> u64 {
        let id = self.next();
        self.jobs.insert(id, FakeJob { id, scope: scope.clone(), labels: labels.to_vec(), runner: None, done: false });
        id
    }

    /// `runner_id` takes `job_id` (an unqueued job); `false` if either is not free.
    pub(crate) fn claim(&mut self, runner_id: u64, job_id: u64) -> bool {
        let free_runner = self.runners.get(&runner_id).is_some_and(|r| r.online && !r.busy());
        let free_job = self.jobs.get(&job_id).is_some_and(|j| j.runner.is_none() && !j.done);
        if !(free_runner && free_job) {
            return false;
        }
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.runner = Some(runner_id);
        }
        if let Some(runner) = self.runners.get_mut(&runner_id) {
            runner.job = Some(job_id);
        }
        true
    }

    fn mint(&mut self, prefix: &str) -> String {
        let n = self.next();
        // Upper-case letters and digits, 29 characters, as GitHub's runner tokens look.
        format!("{prefix}{n:0>27}").to_uppercase()
    }

    pub fn registration_token(&mut self, scope: &Scope, now: OffsetDateTime) -> (String, OffsetDateTime) {
        let token = self.mint("AR");
        let expires = now + time::Duration::hours(1);
        self.registration_tokens.insert(token.clone(), (scope.clone(), expires));
        (token, expires)
    }

    pub fn remove_token(&mut self, scope: &Scope, now: OffsetDateTime) -> (String, OffsetDateTime) {
        let token = self.mint("RM");
        let expires = now + time::Duration::hours(1);
        self.remove_tokens.insert(token.clone(), (scope.clone(), expires));
        (token, expires)
    }

    /// `config.sh --url <scope> --token <token>` then `run.sh`.
    pub fn register_with_token(
        &mut self,
        scope: &Scope,
        token: &str,
        name: &str,
        labels: &[String],
        ephemeral: bool,
        now: OffsetDateTime,
    ) -> Result<u64, Refusal> {
        match self.registration_tokens.get(token) {
            Some((s, expires)) if s == scope && *expires > now => {}
            _ => return Err(Refusal::NotFound),
        }
        if self.name_taken(scope, name) {
            return Err(Refusal::NameTaken);
        }
        let id = self.next();
        let mut all_labels = vec!["self-hosted".to_owned()];
        all_labels.extend(labels.iter().filter(|l| !l.eq_ignore_ascii_case("self-hosted")).cloned());
        self.runners.insert(
            id,
            FakeRunner {
                id,
                scope: scope.clone(),
                name: name.into(),
                labels: all_labels,
                runner_group_id: 1,
                ephemeral,
                online: true,
                job: None,
                connected: true,
                scale_set_id: None,
            },
        );
        Ok(id)
    }

    /// `config.sh remove --token <remove token>`.
    pub fn remove_with_token(&mut self, token: &str, runner_id: u64, now: OffsetDateTime) -> Result<(), Refusal> {
        let scope = match self.remove_tokens.get(token) {
            Some((s, expires)) if *expires > now => s.clone(),
            _ => return Err(Refusal::NotFound),
        };
        self.delete(&scope, runner_id)
    }

    pub fn enqueue(&mut self, scope: &Scope, labels: &[String]) -> u64 {
        let id = self.next();
        self.jobs.insert(id, FakeJob { id, scope: scope.clone(), labels: labels.to_vec(), runner: None, done: false });
        self.queues.entry(scope.clone()).or_default().push_back(id);
        id
    }

    pub fn queued(&self, scope: &Scope) -> usize {
        self.queues.get(scope).map_or(0, VecDeque::len)
    }

    /// An idle online runner asks for work: it gets the oldest queued job of its
    /// scope whose labels it all carries (case-insensitive, as GitHub matches).
    pub fn poll(&mut self, runner_id: u64) -> Option<u64> {
        let runner = self.runners.get(&runner_id)?;
        if !runner.online || runner.busy() || runner.scale_set_id.is_some() {
            return None;
        }
        let has = |label: &String| runner.labels.iter().any(|l| l.eq_ignore_ascii_case(label));
        let queue = self.queues.get_mut(&runner.scope)?;
        let jobs = &self.jobs;
        let pos = queue.iter().position(|j| jobs.get(j).is_some_and(|job| job.labels.iter().all(has)))?;
        let job_id = queue.remove(pos)?;
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.runner = Some(runner_id);
        }
        if let Some(r) = self.runners.get_mut(&runner_id) {
            r.job = Some(job_id);
        }
        Some(job_id)
    }

    /// Give every idle online runner a job if one matches; returns (job, runner) pairs.
    pub fn dispatch(&mut self) -> Vec<(u64, u64)> {
        let ids: Vec<u64> = self.runners.keys().copied().collect();
        ids.into_iter().filter_map(|r| self.poll(r).map(|j| (j, r))).collect()
    }

    /// The runner's job finished; an ephemeral runner is then removed by GitHub.
    pub fn finish(&mut self, runner_id: u64) -> Option<u64> {
        let runner = self.runners.get_mut(&runner_id)?;
        let job_id = runner.job.take()?;
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.done = true;
        }
        if runner.ephemeral {
            self.runners.remove(&runner_id);
        }
        Some(job_id)
    }

    pub fn set_online(&mut self, runner_id: u64, online: bool) {
        if let Some(r) = self.runners.get_mut(&runner_id) {
            r.online = online;
        }
    }

    /// `DELETE .../runners/{id}`: refused while the runner runs a job.
    pub fn delete(&mut self, scope: &Scope, runner_id: u64) -> Result<(), Refusal> {
        let runner = self.runner(scope, runner_id).ok_or(Refusal::NotFound)?;
        if runner.busy() {
            return Err(Refusal::Busy { name: runner.name.clone() });
        }
        self.runners.remove(&runner_id);
        self.pending_jit.retain(|_, id| *id != runner_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn a_runner_takes_only_jobs_whose_labels_it_all_carries() {
        let mut s = RunnerState::default();
        let scope = Scope::repo("o/r");
        let gpu = s.enqueue(&scope, &labels(&["self-hosted", "gpu"]));
        let linux = s.enqueue(&scope, &labels(&["self-hosted", "Linux"]));
        let (runner, jit) = s.create_jit(&scope, "vm-1", &labels(&["self-hosted", "linux"]), 1).unwrap();
        assert_eq!(s.poll(runner.id), None, "a runner that never started takes nothing");
        assert_eq!(s.start_jit(&jit), Some(runner.id));
        assert_eq!(s.poll(runner.id), Some(linux), "label match (case-insensitive), not queue order");
        assert_eq!(s.poll(runner.id), None, "a busy runner takes no second job");
        assert_eq!(s.queued(&scope), 1);
        assert!(!s.jobs[&gpu].done);
    }

    #[test]
    fn jobs_of_another_scope_are_not_assigned() {
        let mut s = RunnerState::default();
        s.enqueue(&Scope::org("other"), &labels(&["x"]));
        let (runner, jit) = s.create_jit(&Scope::org("mine"), "vm-1", &labels(&["x"]), 1).unwrap();
        s.start_jit(&jit);
        assert_eq!(s.poll(runner.id), None);
    }

    #[test]
    fn an_ephemeral_runner_disappears_after_its_job_and_a_persistent_one_stays() {
        let mut s = RunnerState::default();
        let scope = Scope::org("o");
        let (token, _) = s.registration_token(&scope, now());
        let eph = s.register_with_token(&scope, &token, "eph", &labels(&["x"]), true, now()).unwrap();
        let keep = s.register_with_token(&scope, &token, "keep", &labels(&["x"]), false, now()).unwrap();
        s.enqueue(&scope, &labels(&["x"]));
        s.enqueue(&scope, &labels(&["x"]));
        assert_eq!(s.dispatch().len(), 2);
        assert!(s.finish(eph).is_some());
        assert!(s.finish(keep).is_some());
        assert!(!s.runners.contains_key(&eph));
        assert!(!s.runners[&keep].busy());
    }

    #[test]
    fn deleting_a_busy_runner_is_refused_until_its_job_is_done() {
        let mut s = RunnerState::default();
        let scope = Scope::repo("o/r");
        let (runner, jit) = s.create_jit(&scope, "vm-1", &labels(&["x"]), 1).unwrap();
        s.start_jit(&jit);
        s.enqueue(&scope, &labels(&["x"]));
        s.poll(runner.id).unwrap();
        assert_eq!(s.delete(&scope, runner.id), Err(Refusal::Busy { name: "vm-1".into() }));
        s.set_online(runner.id, false);
        assert!(matches!(s.delete(&scope, runner.id), Err(Refusal::Busy { .. })), "offline but busy is still busy");
        s.finish(runner.id);
        assert_eq!(s.delete(&scope, runner.id), Err(Refusal::NotFound), "gone with its ephemeral job");
    }

    #[test]
    fn an_idle_runner_is_deleted_and_its_unused_jit_config_dies_with_it() {
        let mut s = RunnerState::default();
        let scope = Scope::repo("o/r");
        let (runner, jit) = s.create_jit(&scope, "vm-1", &labels(&["x"]), 1).unwrap();
        assert_eq!(s.delete(&Scope::repo("o/other"), runner.id), Err(Refusal::NotFound), "scopes are separate");
        assert_eq!(s.delete(&scope, runner.id), Ok(()));
        assert_eq!(s.start_jit(&jit), None);
    }

    #[test]
    fn jit_configs_are_one_shot_and_names_unique_per_scope() {
        let mut s = RunnerState::default();
        let scope = Scope::repo("o/r");
        let (_, jit) = s.create_jit(&scope, "vm-1", &labels(&["x"]), 1).unwrap();
        assert!(s.start_jit(&jit).is_some());
        assert_eq!(s.start_jit(&jit), None);
        assert_eq!(s.create_jit(&scope, "vm-1", &labels(&["x"]), 1).unwrap_err(), Refusal::NameTaken);
        assert!(s.create_jit(&Scope::repo("o/r2"), "vm-1", &labels(&["x"]), 1).is_ok());
        assert_eq!(s.create_jit(&scope, "vm-2", &[], 1).unwrap_err(), Refusal::InvalidLabels);
        assert_eq!(s.create_jit(&scope, "vm-2", &labels(&["x"]), 7).unwrap_err(), Refusal::NotFound);
    }

    #[test]
    fn org_runner_groups_resolve_and_a_runner_lands_in_its_group() {
        let mut s = RunnerState::default();
        let org = Scope::org("o");
        let id = s.add_group("o", "vmss");
        assert_eq!(id, 2);
        let (runner, _) = s.create_jit(&org, "vm-1", &labels(&["x"]), id).unwrap();
        assert_eq!(runner.runner_group_id, 2);
    }

    #[test]
    fn token_registration_needs_an_unexpired_token_of_the_same_scope() {
        let mut s = RunnerState::default();
        let scope = Scope::repo("o/r");
        let (token, expires) = s.registration_token(&scope, now());
        assert_eq!(token.len(), 29);
        let l = labels(&["x"]);
        assert!(s.register_with_token(&Scope::repo("o/x"), &token, "a", &l, true, now()).is_err());
        assert!(s.register_with_token(&scope, "forged", "a", &l, true, now()).is_err());
        assert!(s.register_with_token(&scope, &token, "a", &l, true, expires).is_err());
        let id = s.register_with_token(&scope, &token, "a", &l, true, now()).unwrap();
        assert_eq!(s.runners[&id].labels, labels(&["self-hosted", "x"]));
        let (remove, _) = s.remove_token(&scope, now());
        assert_eq!(s.remove_with_token(&remove, id, now()), Ok(()));
    }
}
