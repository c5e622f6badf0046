//! One place decides where the tests' Azurite comes from, and says so on stderr. The
//! queue service (the busy record, [`Azurite::start`]) and the blob service (the learned
//! state, [`Azurite::start_blob`]) come from the same three places:
//!
//! 1. `AZURITE_QUEUE_URL` (`AZURITE_BLOB_URL`) set: that service (e.g.
//!    `http://127.0.0.1:10001/devstoreaccount1`, blob on port 10000).
//! 2. A Docker daemon answers and has the image `AZURITE_IMAGE` (default: the official
//!    `mcr.microsoft.com/azure-storage/azurite` at the version `package-lock.json` pins;
//!    `scripts/azurite-image.sh` builds a local one without any registry): a container
//!    started through testcontainers, its port published on 127.0.0.1 only.
//! 3. Otherwise `azurite-queue` (`azurite-blob`, the same npm package) from the
//!    repository's `node_modules` on a free loopback port.
//!
//! `AZURITE_MODE=container` or `=process` insists on one of the last two (a missing
//! daemon or image then fails the test instead of falling back).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use testcontainers::{
    core::{ContainerPort, WaitFor},
    runners::SyncRunner,
    GenericImage, ImageExt,
};

use crate::{account_sas_for, free_port, workspace_root, DEV_ACCOUNT, DEV_KEY};

/// The official image at the Azurite version `package-lock.json` pins.
pub const DEFAULT_IMAGE: &str = "mcr.microsoft.com/azure-storage/azurite:3.37.0";

/// An Azure Storage service Azurite emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Queue,
    Blob,
}

impl Service {
    /// Azurite's default port for the service, which the container listens on.
    fn port(self) -> u16 {
        match self {
            Self::Queue => 10001,
            Self::Blob => 10000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Blob => "blob",
        }
    }

    /// The variable naming an external service.
    fn env(self) -> &'static str {
        match self {
            Self::Queue => "AZURITE_QUEUE_URL",
            Self::Blob => "AZURITE_BLOB_URL",
        }
    }

    /// The service letter of an account SAS (`ss=`).
    fn sas_service(self) -> &'static str {
        match self {
            Self::Queue => "q",
            Self::Blob => "b",
        }
    }
}

/// Where this run's Azurite came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AzuriteSource {
    External,
    Container { image: String },
    Process,
}

/// A running Azurite service (stopped on drop), or an external one.
pub struct Azurite {
    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub endpoint: String,
    pub source: AzuriteSource,
    service: Service,
    running: Running,
}

enum Running {
    External,
    /// The container lives on its own thread: testcontainers' blocking API runs its own
    /// tokio runtime, which must not be entered from a test's runtime.
    Container {
        stop: mpsc::Sender<()>,
        owner: Option<JoinHandle<()>>,
    },
    Process(Child),
}

impl Azurite {
    /// The queue service.
    pub fn start() -> Self {
        Self::start_service(Service::Queue)
    }

    /// The blob service.
    pub fn start_blob() -> Self {
        Self::start_service(Service::Blob)
    }

    pub fn start_service(service: Service) -> Self {
        let azurite = Self::choose(service);
        eprintln!("azurite: {} {} at {}", service.name(), azurite.describe(), azurite.endpoint);
        azurite
    }

    fn choose(service: Service) -> Self {
        if let Ok(endpoint) = std::env::var(service.env()) {
            let endpoint = endpoint.trim_end_matches('/').to_owned();
            return Self { endpoint, source: AzuriteSource::External, service, running: Running::External };
        }
        let image = std::env::var("AZURITE_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
        match std::env::var("AZURITE_MODE").as_deref() {
            Ok("container") => {
                Self::container(service, &image).unwrap_or_else(|why| panic!("AZURITE_MODE=container: {why}"))
            }
            Ok("process") => Self::process(service),
            Ok(other) if other != "auto" => panic!("AZURITE_MODE={other}: use container, process or auto"),
            _ => Self::container(service, &image).unwrap_or_else(|why| {
                eprintln!("azurite: no container ({why}); starting the Node process");
                Self::process(service)
            }),
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            AzuriteSource::External => format!("external service ({})", self.service.env()),
            AzuriteSource::Container { image } => format!("container {image} started through testcontainers"),
            AzuriteSource::Process => format!("node_modules/.bin/azurite-{} process", self.service.name()),
        }
    }

    /// A container of `image`, if a daemon answers and has it.
    fn container(service: Service, image: &str) -> Result<Self, String> {
        let name = service.name();
        let port = service.port();
        let socket = docker_socket();
        docker_has_image(&socket, image)?;
        let (image_name, tag) = image.rsplit_once(':').ok_or_else(|| format!("{image} names no tag"))?;
        let request = GenericImage::new(image_name, tag)
            .with_exposed_port(ContainerPort::Tcp(port))
            .with_wait_for(WaitFor::message_on_stdout("successfully listens"))
            .with_cmd([
                format!("azurite-{name}"),
                "--inMemoryPersistence".to_owned(),
                "--skipApiVersionCheck".to_owned(),
                "--disableTelemetry".to_owned(),
                format!("--{name}Host"),
                "0.0.0.0".to_owned(),
                format!("--{name}Port"),
                port.to_string(),
            ])
            .with_startup_timeout(Duration::from_secs(60))
            // Published on loopback only, never on the host's other addresses.
            .with_host_config_modifier(move |host| {
                host.publish_all_ports = Some(false);
                host.port_bindings = Some(
                    [(
                        format!("{port}/tcp"),
                        Some(vec![testcontainers::bollard::models::PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(String::new()),
                        }]),
                    )]
                    .into(),
                );
            });
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let owner = std::thread::spawn(move || {
            let started = request.start().map_err(|e| e.to_string()).and_then(|container| {
                let port = container.get_host_port_ipv4(port).map_err(|e| e.to_string())?;
                Ok((container, port))
            });
            match started {
                Ok((container, port)) => {
                    let _ = ready_tx.send(Ok(port));
                    let _ = stopped.recv(); // until the Azurite is dropped
                    drop(container); // stops and removes it
                }
                Err(why) => {
                    let _ = ready_tx.send(Err(why));
                }
            }
        });
        let port = ready_rx.recv().map_err(|_| "the container thread died".to_owned())??;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}/{DEV_ACCOUNT}"),
            source: AzuriteSource::Container { image: image.to_owned() },
            service,
            running: Running::Container { stop, owner: Some(owner) },
        })
    }

    fn process(service: Service) -> Self {
        let name = service.name();
        let bin = workspace_root().join(format!("node_modules/.bin/azurite-{name}"));
        assert!(
            bin.exists(),
            "{} is missing: run `npm ci` at the repository root (the README test command does), or set {}",
            bin.display(),
            service.env()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent"])
            .args([format!("--{name}Host"), "127.0.0.1".to_owned(), format!("--{name}Port"), port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("azurite-{name} starts: {e}"));
        let azurite = Self {
            endpoint: format!("http://127.0.0.1:{port}/{DEV_ACCOUNT}"),
            source: AzuriteSource::Process,
            service,
            running: Running::Process(child),
        };
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(30));
        azurite
    }

    /// URL of queue `name`, with an account SAS valid for a day.
    pub fn queue_url(&self, name: &str) -> String {
        assert_eq!(self.service, Service::Queue, "queue_url of a {} service", self.service.name());
        format!("{}/{name}?{}", self.endpoint, self.sas())
    }

    /// URL of blob `blob` in container `container`, with an account SAS valid for a day.
    pub fn blob_url(&self, container: &str, blob: &str) -> String {
        assert_eq!(self.service, Service::Blob, "blob_url of a {} service", self.service.name());
        format!("{}/{container}/{blob}?{}", self.endpoint, self.sas())
    }

    fn sas(&self) -> String {
        account_sas_for(DEV_ACCOUNT, DEV_KEY, self.service.sas_service())
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        match &mut self.running {
            Running::External => {}
            Running::Container { stop, owner } => {
                let _ = stop.send(());
                if let Some(owner) = owner.take() {
                    let _ = owner.join();
                }
            }
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The daemon's socket: `DOCKER_HOST` when it names one, else the default.
fn docker_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => host.trim_start_matches("unix://").to_owned(),
        _ => "/var/run/docker.sock".to_owned(),
    }
}

/// Does the daemon at `socket` answer, and does it have `image`? A plain HTTP request
/// over the socket: no registry is asked, so a missing image never turns into a pull.
fn docker_has_image(socket: &str, image: &str) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("no Docker daemon at {socket}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET /images/{image}/json HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    match status {
        "200" => Ok(()),
        "404" => Err(format!("the daemon has no image {image} (build one: bash scripts/azurite-image.sh)")),
        other => Err(format!("the daemon answered {other} for image {image}")),
    }
}

fn wait_for_port(addr: SocketAddr, limit: Duration) {
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(started.elapsed() < limit, "Azurite did not listen on {addr} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
