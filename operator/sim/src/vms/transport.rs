//! How a simulated VM reaches the operator, and what `vm/lib.sh`'s `vmss_post` does
//! with the answer: one [`Request`] is one `curl`; [`post`] is the retry loop around
//! it, with the scripts' one rule for what is worth retrying ([`Failure::is_retried`]).
//!
//! A [`VmTransport`] carries one request and brings back a typed [`Answer`] or a
//! [`Failure`] (no answer, or an HTTP status and the error code of the body). The
//! demo uses [`HttpTransport`]: the real endpoints, from the VM's own loopback
//! address. The fault suite calls the controller directly and injects its faults in
//! its own transport.

use std::{net::IpAddr, net::SocketAddr, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{model::JobRef, SplitMix};

/// One call of a VM to the operator's runner API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `POST /api/v1/registration` (boot.sh).
    Register,
    /// `POST /api/v1/hooks/job-started` (the runner's job-started hook).
    JobStarted(JobRef),
    /// `POST /api/v1/hooks/job-completed`.
    JobCompleted(JobRef),
    /// `POST /api/v1/hooks/runner-exited` (runner-exited.sh, called by boot.sh).
    RunnerExited { exit_code: i32 },
}

impl Request {
    /// The API path of this request.
    pub fn path(&self) -> &'static str {
        match self {
            Self::Register => "/api/v1/registration",
            Self::JobStarted(_) => "/api/v1/hooks/job-started",
            Self::JobCompleted(_) => "/api/v1/hooks/job-completed",
            Self::RunnerExited { .. } => "/api/v1/hooks/runner-exited",
        }
    }

    fn body(&self) -> serde_json::Value {
        match self {
            Self::Register => serde_json::json!({}),
            Self::JobStarted(job) | Self::JobCompleted(job) => serde_json::json!(job),
            Self::RunnerExited { exit_code } => serde_json::json!({ "exit_code": exit_code }),
        }
    }
}

/// This boot's registration, as boot.sh reads it from the answer (`jq -r .mode` ...).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Registration {
    /// No runner on this boot: the VM is kept in reserve and deallocated; ask again
    /// after `retry_after_seconds` until then.
    Park { retry_after_seconds: u64 },
    /// `run.sh --jitconfig <encoded_jit_config>`.
    Jit { runner_name: String, encoded_jit_config: String },
    /// `config.sh --url <url> --token <token> <config_args...>`, then `run.sh`.
    Token { runner_name: String, url: String, token: String, config_args: Vec<String> },
}

impl Registration {
    /// The runner's name; none when told to park.
    pub fn runner_name(&self) -> Option<&str> {
        match self {
            Self::Park { .. } => None,
            Self::Jit { runner_name, .. } | Self::Token { runner_name, .. } => Some(runner_name),
        }
    }
}

impl std::fmt::Debug for Registration {
    // The JIT config and the token are one-time credentials: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self {
            Self::Park { .. } => "park",
            Self::Jit { .. } => "jit",
            Self::Token { .. } => "token",
        };
        f.debug_struct("Registration")
            .field("mode", &mode)
            .field("runner_name", &self.runner_name())
            .finish_non_exhaustive()
    }
}

/// A 2xx answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Registration(Registration),
    /// A hook was taken (applied, or a repeat of one already applied).
    Taken,
}

/// A call that did not end in a 2xx answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer: connection refused or reset, or curl's time limit (`000`).
    NoAnswer,
    /// An HTTP error status, with the `error.code` of the operator's error body.
    Status { status: u16, code: String },
    /// A 2xx answer the script cannot read (boot.sh: "unknown registration mode").
    Unreadable,
}

impl Failure {
    /// `vm/lib.sh`'s rule, kept here once for every simulated VM: retry when there
    /// was no answer, on 403 (the operator has not listed this new VM yet), 429 and
    /// 5xx (recovering, a dependency down); any other status is final, since asking
    /// again cannot help. The status itself is the operator's to decide
    /// (`HookError::status`), never re-derived here.
    pub fn is_retried(&self) -> bool {
        match self {
            Self::NoAnswer => true,
            Self::Status { status, .. } => matches!(status, 403 | 429 | 500..=599),
            Self::Unreadable => false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoAnswer => write!(f, "no answer"),
            Self::Status { status, code } => write!(f, "status {status} ({code})"),
            Self::Unreadable => write!(f, "an answer that cannot be read"),
        }
    }
}

/// The scripts' backoff (`vmss_backoff`): 1, 2, 4 ... units, capped, plus up to
/// nine tenths of a unit of jitter so a pool booting at once does not call in
/// lockstep. The jitter is drawn from a seed, so a simulation replays exactly.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// One second in the scripts.
    pub unit: Duration,
    /// `BACKOFF_MAX`, 30 s in the scripts.
    pub max: Duration,
    pub jitter: SplitMix,
}

impl Backoff {
    /// The pause after attempt number `attempt` (1-based).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let mut delay = self.unit;
        for _ in 1..attempt {
            if delay >= self.max {
                break;
            }
            delay *= 2;
        }
        delay.min(self.max) + self.unit * (self.jitter.below(10) as u32) / 10
    }
}

/// How long [`post`] keeps trying: `vmss_post`'s ATTEMPTS and DEADLINE.
#[derive(Clone, Debug)]
pub struct Retry {
    /// Give up after this many attempts (`None`: no limit).
    pub attempts: Option<u32>,
    /// Give up once this long has passed since the first attempt (`None`: no limit).
    pub within: Option<Duration>,
    pub backoff: Backoff,
}

/// How one run of `vmss_post` ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// 2xx.
    Answered(Answer),
    /// A final refusal: retrying cannot help (returns 2).
    Refused(Failure),
    /// Out of attempts or time (returns 1); the last failure, if any attempt was made.
    GaveUp(Option<Failure>),
}

/// `vmss_post`: send `request` until it is answered, refused for good, or `retry`
/// runs out, backing off between attempts.
pub async fn post<T: VmTransport + ?Sized>(transport: &T, request: &Request, mut retry: Retry) -> Posted {
    let deadline = retry.within.map(|within| Instant::now() + within);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let failure = match transport.send(request).await {
            Ok(answer) => return Posted::Answered(answer),
            Err(failure) if !failure.is_retried() => {
                tracing::warn!(path = request.path(), %failure, "not retrying");
                return Posted::Refused(failure);
            }
            Err(failure) => failure,
        };
        tracing::debug!(path = request.path(), %failure, attempt, "will retry");
        let out_of_attempts = retry.attempts.is_some_and(|n| attempt >= n);
        if out_of_attempts || deadline.is_some_and(|d| Instant::now() >= d) {
            return Posted::GaveUp(Some(failure));
        }
        tokio::time::sleep(retry.backoff.delay(attempt)).await;
    }
}

/// How a VM's calls reach the operator.
#[async_trait]
pub trait VmTransport: Send + Sync {
    /// One request and its answer (one `curl`).
    async fn send(&self, request: &Request) -> Result<Answer, Failure>;

    /// One run of a hook script (`vmss_job_hook`, `runner-exited.sh`): [`post`] with
    /// the script's retry limits. A transport that models what happens to whole hooks
    /// between the runner and the operator (lost, repeated, delayed: the fault suite's)
    /// overrides this, still calling [`post`] for each delivery.
    async fn hook(&self, request: &Request, retry: Retry) -> Posted {
        post(self, request, retry).await
    }
}

/// The real runner API over HTTP, from the VM's own address (the operator recognises
/// a VM by its source address), with curl's time limits.
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
}

impl HttpTransport {
    /// A client bound to `from` calling the operator at `operator`.
    pub fn new(operator: SocketAddr, from: IpAddr) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .local_address(from)
            .connect_timeout(Duration::from_secs(5)) // curl --connect-timeout 5
            .timeout(Duration::from_secs(20)) // curl --max-time 20
            .build()?;
        Ok(Self { client, base: format!("http://{operator}") })
    }
}

#[async_trait]
impl VmTransport for HttpTransport {
    async fn send(&self, request: &Request) -> Result<Answer, Failure> {
        let url = format!("{}{}", self.base, request.path());
        let response = self.client.post(url).json(&request.body()).send().await.map_err(|_| Failure::NoAnswer)?;
        let status = response.status();
        if status.is_success() {
            return match request {
                Request::Register => response.json().await.map(Answer::Registration).map_err(|_| Failure::Unreadable),
                _ => Ok(Answer::Taken),
            };
        }
        // `{"error": {"code": ...}}`, the API's one error shape (what `vmss_describe` shows).
        let code = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|body| body["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(Failure::Status { status: status.as_u16(), code })
    }
}
