//! The VM script's semantics, on tokio's paused clock: what `vm/boot.sh` and
//! `vm/lib.sh` do, checked against a transport that answers as each test says.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::{
    memory::{ScaleSetSettings, SimJob},
    ports::{Github, JitRequest, ScaleSet},
};

type Answers = dyn Fn(&Request) -> Result<Answer, Failure> + Send + Sync;

/// Every request the VMs sent, with its time and the boot's generation, and every event.
#[derive(Default)]
struct Log {
    requests: Mutex<Vec<(Duration, u32, Request)>>,
    events: Mutex<Vec<VmEvent>>,
}

struct Scripted {
    log: Arc<Log>,
    answers: Arc<Answers>,
    start: Instant,
    generation: u32,
}

#[async_trait]
impl VmTransport for Scripted {
    async fn send(&self, request: &Request) -> Result<Answer, Failure> {
        let at = Instant::now().duration_since(self.start);
        self.log.requests.lock().unwrap().push((at, self.generation, request.clone()));
        (self.answers)(request)
    }
}

struct TestVms {
    log: Arc<Log>,
    answers: Arc<Answers>,
    start: Instant,
    fate: VmFate,
}

impl VmEnvironment for TestVms {
    fn connect(&self, boot: &Boot) -> Box<dyn VmTransport> {
        Box::new(Scripted {
            log: self.log.clone(),
            answers: self.answers.clone(),
            start: self.start,
            generation: boot.generation,
        })
    }

    fn fate(&self, _boot: &Boot) -> VmFate {
        self.fate
    }

    fn job_duration(&self, _job: &JobRef) -> Duration {
        Duration::from_secs(120)
    }

    fn observe(&self, _boot: &Boot, event: &VmEvent) {
        self.log.events.lock().unwrap().push(event.clone());
    }
}

const LABELS: [&str; 1] = ["self-hosted"];

struct Sim {
    log: Arc<Log>,
    scale_set: Arc<InMemoryScaleSet>,
    github: Arc<InMemoryGithub>,
    hypervisor: Hypervisor,
}

impl Sim {
    /// One healthy running VM whose calls are answered by `answers`; `registration` is
    /// what a successful registration hands out (a JIT config GitHub issued).
    async fn start(
        answers: impl Fn(&Request, &Registration) -> Result<Answer, Failure> + Send + Sync + 'static,
    ) -> Self {
        Self::with_fate(VmFate::Healthy, answers).await
    }

    async fn with_fate(
        fate: VmFate,
        answers: impl Fn(&Request, &Registration) -> Result<Answer, Failure> + Send + Sync + 'static,
    ) -> Self {
        let github = Arc::new(InMemoryGithub::new("https://github.com/o/r"));
        let labels: Vec<String> = LABELS.iter().map(|l| (*l).to_owned()).collect();
        let jit =
            github.jit_config(&JitRequest { name: "runner000000-a".into(), labels, runner_group: None }).await.unwrap();
        let registration = Registration::Jit { runner_name: "runner000000-a".into(), encoded_jit_config: jit.encoded };
        let answers: Arc<Answers> = Arc::new(move |request: &Request| answers(request, &registration));
        let scale_set = Arc::new(InMemoryScaleSet::with_running(ScaleSetSettings::default(), 1));
        let log = Arc::new(Log::default());
        let env = TestVms { log: log.clone(), answers, start: Instant::now(), fate };
        let settings =
            HypervisorSettings { tick: Duration::from_secs(1), script: ScriptSettings::of_the_scripts(), seed: 1 };
        let hypervisor = Hypervisor::start(scale_set.clone(), github.clone(), settings, Arc::new(env));
        Self { log, scale_set, github, hypervisor }
    }

    fn enqueue_job(&self) -> JobRef {
        let job = JobRef { repository: "o/r".into(), run_id: 1, run_attempt: 1, job_name: "build".into() };
        let labels = LABELS.iter().map(|l| (*l).to_owned()).collect();
        self.github.enqueue(SimJob { job: job.clone(), labels });
        job
    }

    /// When each request matching `which` was sent (by boot generation 0).
    fn times(&self, which: impl Fn(&Request) -> bool) -> Vec<Duration> {
        let requests = self.log.requests.lock().unwrap();
        requests.iter().filter(|(_, generation, r)| *generation == 0 && which(r)).map(|(at, _, _)| *at).collect()
    }

    fn events(&self) -> Vec<VmEvent> {
        self.log.events.lock().unwrap().clone()
    }
}

fn status(status: u16, code: &str) -> Failure {
    Failure::Status { status, code: code.into() }
}

fn is_register(r: &Request) -> bool {
    *r == Request::Register
}

fn is_job_started(r: &Request) -> bool {
    matches!(r, Request::JobStarted(_))
}

fn is_job_completed(r: &Request) -> bool {
    matches!(r, Request::JobCompleted(_))
}

fn is_runner_exited(r: &Request) -> bool {
    matches!(r, Request::RunnerExited { .. })
}

/// Answers every call as a healthy operator would.
fn healthy(request: &Request, registration: &Registration) -> Result<Answer, Failure> {
    Ok(match request {
        Request::Register => Answer::Registration(registration.clone()),
        _ => Answer::Taken,
    })
}

#[tokio::test(start_paused = true)]
async fn registration_backs_off_and_stops_at_the_registration_timeout() {
    let sim = Sim::start(|_, _| Err(status(503, "recovering"))).await;
    let timeout = ScriptSettings::of_the_scripts().registration_timeout;
    tokio::time::sleep(3 * timeout).await;

    let asked = sim.times(is_register);
    let gaps: Vec<Duration> = asked.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let base = Duration::from_secs(1 << i.min(5)).min(Duration::from_secs(30));
        assert!(*gap >= base && *gap < base + Duration::from_secs(1), "gap {i} is {gap:?}, want {base:?} + jitter");
    }
    let (first, last) = (asked[0], *asked.last().unwrap());
    assert!(last - first >= timeout, "it asked for the whole timeout: {asked:?}");
    assert!(asked[asked.len() - 2] - first < timeout, "and gave up after the first try past it: {asked:?}");
    assert!(sim.events().is_empty(), "no registration, no runner");
    sim.hypervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_registration_is_not_asked_again() {
    let sim = Sim::start(|_, _| Err(status(409, "already_registered"))).await;
    tokio::time::sleep(Duration::from_secs(900)).await;
    assert_eq!(sim.times(is_register).len(), 1);
    assert!(sim.times(is_runner_exited).is_empty(), "boot.sh exits without a runner to report");
    sim.hypervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_is_given_up_after_its_retries_and_the_job_goes_on() {
    let sim = Sim::start(|request, registration| match request {
        Request::JobStarted(_) => Err(Failure::NoAnswer),
        other => healthy(other, registration),
    })
    .await;
    let job = sim.enqueue_job();
    tokio::time::sleep(Duration::from_secs(600)).await;

    let started = sim.times(is_job_started);
    assert_eq!(started.len(), 5, "HOOK_ATTEMPTS tries: {started:?}");
    assert!(*started.last().unwrap() - started[0] < Duration::from_secs(20), "about 15 s in all: {started:?}");
    assert_eq!(sim.times(is_job_completed).len(), 1, "the job went on and completed");
    assert!(sim.events().contains(&VmEvent::JobFinished(job)));
    sim.hypervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_answered_409_is_not_retried() {
    let sim = Sim::start(|request, registration| match request {
        Request::JobStarted(_) => Err(status(409, "wrong_state")),
        other => healthy(other, registration),
    })
    .await;
    sim.enqueue_job();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(sim.times(is_job_started).len(), 1);
    assert_eq!(sim.times(is_job_completed).len(), 1);
    sim.hypervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn runner_exited_is_repeated_every_minute_until_the_vm_is_recycled() {
    let sim = Sim::start(healthy).await;
    sim.enqueue_job();
    tokio::time::sleep(Duration::from_secs(600)).await;

    let exited = sim.times(is_runner_exited);
    assert!(exited.len() >= 5, "{exited:?}");
    assert!(exited.windows(2).all(|w| w[1] - w[0] == Duration::from_secs(60)), "{exited:?}");
    let first_exit = exited[0];
    assert!(first_exit >= sim.times(is_job_completed)[0], "after the job");

    let id = sim.scale_set.running_boots().remove(0).id;
    sim.scale_set.reimage_instances(&[id]).await.unwrap();
    let recycled = exited.len();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(sim.times(is_runner_exited).len() <= recycled + 1, "the old boot stopped with its reimage");
    let stopped_at = *sim.times(is_runner_exited).last().unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(*sim.times(is_runner_exited).last().unwrap(), stopped_at, "nothing more from the old boot");
    assert_eq!(sim.hypervisor.stats.boots.load(Ordering::SeqCst), 2, "the reimage started a new boot");
    sim.hypervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_vm_whose_cloud_init_never_runs_never_calls() {
    let sim = Sim::with_fate(VmFate::NeverRunsCloudInit, healthy).await;
    tokio::time::sleep(Duration::from_secs(900)).await;
    assert!(sim.log.requests.lock().unwrap().is_empty());
    sim.hypervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_runner_that_never_comes_online_takes_no_job_and_reports_nothing() {
    let sim = Sim::with_fate(VmFate::RunnerNeverOnline, healthy).await;
    sim.enqueue_job();
    tokio::time::sleep(Duration::from_secs(900)).await;
    assert_eq!(sim.times(|_| true).len(), 1, "only the registration");
    assert_eq!(sim.events(), [VmEvent::Registered { runner_name: "runner000000-a".into() }]);
    assert_eq!(sim.github.queued(), 1);
    sim.hypervisor.stop().await;
}

#[test]
fn only_no_answer_403_429_and_5xx_are_retried() {
    let retried: Vec<u16> =
        [400, 403, 404, 409, 422, 429, 500, 502, 503].into_iter().filter(|s| status(*s, "").is_retried()).collect();
    assert_eq!(retried, [403, 429, 500, 502, 503]);
    assert!(Failure::NoAnswer.is_retried());
    assert!(!Failure::Unreadable.is_retried());
}

#[test]
fn the_script_settings_are_vm_lib_sh_s_defaults() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../vm/lib.sh")).unwrap();
    let default = |name: &str| -> u64 {
        let needle = format!("{name}=\"${{{name}:-");
        let at = lib.find(&needle).unwrap_or_else(|| panic!("{name} has a default in vm/lib.sh")) + needle.len();
        lib[at..].split('}').next().unwrap().parse().unwrap()
    };
    let s = ScriptSettings::of_the_scripts();
    let secs = |d: Duration| d.as_secs();
    assert_eq!(default("REGISTRATION_TIMEOUT"), secs(s.registration_timeout));
    assert_eq!(default("RUNNER_EXITED_TIMEOUT"), secs(s.runner_exited_timeout));
    assert_eq!(default("RUNNER_EXITED_REPEAT"), secs(s.runner_exited_repeat));
    assert_eq!(default("HOOK_ATTEMPTS"), u64::from(s.hook_attempts));
    assert_eq!(default("BACKOFF_MAX"), secs(s.backoff_max));
}

#[test]
fn a_registration_s_debug_form_holds_no_credential() {
    let jit = Registration::Jit { runner_name: "vm-a".into(), encoded_jit_config: "SECRET-JIT".into() };
    let token = Registration::Token {
        runner_name: "vm-b".into(),
        url: "https://github.com/o/r".into(),
        token: "SECRET-TOKEN".into(),
        config_args: vec![],
    };
    for (registration, name) in [(jit, "vm-a"), (token, "vm-b")] {
        let shown = format!("{registration:?}");
        assert!(shown.contains(name) && !shown.contains("SECRET"), "{shown}");
    }
}
