//! The API once over a real socket: source-address identity, and a shutdown that
//! lets an in-flight hook finish.

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use common::{fast_scale_set, job_json, settings};
use operator::{
    controller::Controller,
    ports::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, Ports, StoredMarker},
    run::{run, RunSettings},
};
use operator_sim::memory::{InMemoryBusyRecord, InMemoryGithub, InMemorySecretStore};
use tokio_util::sync::CancellationToken;

/// A busy record whose writes take a while, like a slow queue.
struct SlowBusyRecord {
    inner: InMemoryBusyRecord,
    delay: Duration,
}

#[async_trait]
impl BusyRecord for SlowBusyRecord {
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError> {
        tokio::time::sleep(self.delay).await;
        self.inner.put(marker).await
    }
    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError> {
        self.inner.remove(handle).await
    }
    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError> {
        self.inner.load().await
    }
}

async fn serve(
    busy: Arc<dyn BusyRecord>,
) -> (SocketAddr, Vec<std::net::IpAddr>, CancellationToken, tokio::task::JoinHandle<()>) {
    let scale_set = fast_scale_set(2, 5);
    let ips = scale_set.running_boots().into_iter().map(|b| b.ip).collect();
    let ports = Ports {
        scale_set,
        github: Arc::new(InMemoryGithub::new("https://github.com/o/r")),
        busy,
        secrets: Arc::new(InMemorySecretStore::default()),
    };
    let controller = Controller::new(settings(1, 4, 25), ports);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let settings = RunSettings {
        http: operator::api::HttpLimits::default(),
        debounce: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        listener: None,
        learned: None,
    };
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        let controller = controller.clone();
        async move { run(controller, listener, settings, shutdown).await.unwrap() }
    });
    while !controller.is_recovered() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (addr, ips, shutdown, task)
}

fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip).build().unwrap()
}

#[tokio::test]
async fn a_vm_is_recognised_by_its_source_address_over_a_real_socket() {
    let (addr, ips, shutdown, task) = serve(Arc::new(InMemoryBusyRecord::default())).await;
    let url = format!("http://{addr}/api/v1/registration");
    let ok = client_from(ips[1]).post(&url).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert!(body["runner_name"].as_str().unwrap().starts_with("vmsstest000001-"), "{body}");

    let stranger =
        client_from("127.0.0.1".parse().unwrap()).post(&url).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(stranger.status(), 403);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_hook_finish() {
    let busy = Arc::new(SlowBusyRecord { inner: InMemoryBusyRecord::default(), delay: Duration::from_millis(600) });
    let (addr, ips, shutdown, task) = serve(busy.clone()).await;
    let vm = client_from(ips[0]);
    vm.post(format!("http://{addr}/api/v1/registration")).json(&serde_json::json!({})).send().await.unwrap();
    let hook = tokio::spawn({
        let url = format!("http://{addr}/api/v1/hooks/job-started");
        async move {
            vm.post(url).header("content-type", "application/json").body(job_json(9)).send().await.map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await; // the hook is waiting for its marker write
    shutdown.cancel();
    assert_eq!(hook.await.unwrap().expect("answered, not cut off"), 200);
    assert_eq!(busy.inner.markers().len(), 1, "the marker was written");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run returns within the grace time").unwrap();
}
