//! Shared set-up for the operator's integration tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod arm_world;
pub mod on_fakes;
pub mod scale_set;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response},
    Router,
};
use http_body_util::BodyExt;
use operator::{
    api::{app, AppState},
    controller::{Controller, Settings},
    model::JobRef,
    policy::PoolSpec,
    ports::{BusyRecord, Ports},
    readiness::Progress,
};
use operator_sim::memory::{
    InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetSettings,
};
use tower::ServiceExt;

pub struct Harness {
    pub controller: Controller,
    pub scale_set: Arc<InMemoryScaleSet>,
    pub github: Arc<InMemoryGithub>,
    pub busy: Arc<dyn BusyRecord>,
    pub memory_busy: Option<Arc<InMemoryBusyRecord>>,
    pub router: Router,
}

pub fn settings(min: u32, max: u32, pct: u8) -> Settings {
    // A long period: these tests drive passes themselves.
    Settings {
        period: Duration::from_secs(3600),
        ..Settings::new("vmss-test", "octo-org/octo-repo", PoolSpec::new(min, max, pct))
    }
}

pub fn fast_scale_set(running: u32, ip_block: u8) -> Arc<InMemoryScaleSet> {
    Arc::new(InMemoryScaleSet::with_running(
        ScaleSetSettings {
            name_prefix: "vmsstest".into(),
            boot_delay: Duration::from_millis(200),
            reimage_delay: Duration::from_millis(50),
            delete_delay: Duration::from_millis(50),
            ip_block,
            ..ScaleSetSettings::default()
        },
        running,
    ))
}

impl Harness {
    /// A recovered controller over `running` booted instances with an in-memory busy record.
    pub async fn new(running: u32, settings: Settings) -> Self {
        let busy = Arc::new(InMemoryBusyRecord::default());
        let mut h = Self::with_parts(
            fast_scale_set(running, 1),
            Arc::new(InMemoryGithub::new("https://github.com/o/r")),
            busy.clone(),
            settings,
        )
        .await;
        h.memory_busy = Some(busy);
        h
    }

    pub async fn with_parts(
        scale_set: Arc<InMemoryScaleSet>,
        github: Arc<InMemoryGithub>,
        busy: Arc<dyn BusyRecord>,
        settings: Settings,
    ) -> Self {
        let ports = Ports {
            scale_set: scale_set.clone(),
            github: github.clone(),
            busy: busy.clone(),
            secrets: Arc::new(InMemorySecretStore::with("github-pat", "x")),
        };
        let controller = Controller::new(settings, ports);
        controller.recover().await.expect("recovery succeeds");
        let router = app(AppState::new(controller.clone(), Progress::new(Duration::from_secs(30))), 16 * 1024);
        Self { controller, scale_set, github, busy, memory_busy: None, router }
    }

    /// The address of instance `n` (as the in-memory scale set assigns them).
    pub fn ip_of(&self, id: &str) -> SocketAddr {
        let boot =
            self.scale_set.running_boots().into_iter().find(|b| b.id.as_str() == id).expect("instance is running");
        SocketAddr::new(boot.ip, 40000)
    }

    pub async fn call(&self, from: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
        self.call_with(from, path, "application/json", body.to_owned()).await
    }

    pub async fn call_with(
        &self,
        from: SocketAddr,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (u16, serde_json::Value) {
        let mut req = Request::post(path).header("content-type", content_type).body(Body::from(body)).unwrap();
        req.extensions_mut().insert(ConnectInfo(from));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        split(resp).await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut req = Request::get(path).body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

async fn split(resp: Response<Body>) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub fn job(run_id: u64) -> JobRef {
    JobRef { repository: "octo-org/octo-repo".into(), run_id, run_attempt: 1, job_name: "build".into() }
}

pub fn job_json(run_id: u64) -> String {
    serde_json::to_string(&job(run_id)).unwrap()
}

/// Let the (paused) clock run in `step`s until `done` holds, at most `limit` of virtual
/// time; whether it did.
pub async fn until_within(limit: Duration, step: Duration, done: impl Fn() -> bool) -> bool {
    let mut waited = Duration::ZERO;
    while !done() {
        if waited >= limit {
            return false;
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    true
}

/// The value of the sample `series` (name and labels, as rendered) in a `/metrics` text.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every exchange in `exchanges` conforms to the official description of `api`, and
/// there is at least one.
pub fn assert_conform(api: contract::Api, exchanges: &[contract::Exchange]) {
    assert!(!exchanges.is_empty(), "no {api:?} exchanges were recorded");
    let problems = contract::Contract::load(api).check_all(exchanges);
    assert!(problems.is_empty(), "{api:?} exchanges break the contract:\n{}", problems.join("\n"));
}
