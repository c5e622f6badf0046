//! "VMs" for the script end-to-end test: for every running boot of the fake scale set,
//! a network namespace with the instance's address runs the repository's real
//! `vm/boot.sh` (which runs the real hooks and `runner-exited.sh`), with only the GitHub
//! runner (`run.sh`, `config.sh`) replaced by the test doubles in `tests/support/runner-double/`.
//! A reimage or delete kills the namespace's processes and removes it; the next boot
//! gets a fresh namespace and a fresh disk (directory), as a reimaged VM does.

pub mod netns;

use std::{
    collections::{HashMap, HashSet},
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use fake_azure::{FakeAzure, InstancePhase};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use netns::{Bridge, Netns};

/// The unprivileged user the runner runs as. A real VM has a dedicated `runner` user
/// (install-runner.sh creates it); the test must not add users to the machine, so it
/// uses `nobody`, which exists everywhere and is just as unprivileged.
pub const RUNNER_USER: &str = "nobody";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// What every VM boot is told: where the operator and the fake GitHub are.
#[derive(Clone)]
pub struct VmSettings {
    pub operator: SocketAddr,
    pub fake_github_url: String,
    pub job_seconds: u32,
    pub work_dir: PathBuf,
}

/// One boot: its namespace, the `boot.sh` process and its "disk".
struct Boot {
    netns: Netns,
    child: Child,
    disk: PathBuf,
}

impl Boot {
    fn busy(&self) -> bool {
        self.disk.join("actions-runner/in-job").exists()
    }
}

pub struct Vms {
    pub busy_vm_touched: Arc<AtomicU32>,
    pub boots: Arc<AtomicU32>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl Vms {
    /// Watch scale set `vmss` and run one VM per running boot until `stop`.
    pub fn start(azure: Arc<FakeAzure>, vmss: &str, bridge: Arc<Bridge>, settings: VmSettings) -> Self {
        let busy_vm_touched = Arc::new(AtomicU32::new(0));
        let boots = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let vmss = vmss.to_owned();
        let task = tokio::spawn({
            let (busy_vm_touched, boots, stop) = (busy_vm_touched.clone(), boots.clone(), stop.clone());
            async move {
                let mut running: HashMap<(String, u32), Boot> = HashMap::new();
                let result = loop {
                    tokio::select! {
                        _ = stop.cancelled() => break Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                    let live: Vec<_> =
                        azure.arm.instances(&vmss).into_iter().filter(|i| i.phase == InstancePhase::Running).collect();
                    let keys: HashSet<(String, u32)> = live.iter().map(|i| (i.id.clone(), i.generation)).collect();
                    // Namespaces and processes are set up with blocking `ip` calls of a few ms.
                    let step = tokio::task::block_in_place(|| {
                        running.retain(|key, boot| {
                            if keys.contains(key) {
                                return true;
                            }
                            if boot.busy() {
                                busy_vm_touched.fetch_add(1, Ordering::SeqCst);
                            }
                            let _ = boot.child.kill();
                            let _ = boot.child.wait();
                            false
                        });
                        for inst in &live {
                            let key = (inst.id.clone(), inst.generation);
                            if running.contains_key(&key) {
                                continue;
                            }
                            let IpAddr::V4(addr) = inst.ip else { return Err("IPv6 instance".to_owned()) };
                            let disk = settings.work_dir.join(format!("vm-{}-gen{}", inst.id, inst.generation));
                            let boot = boot(&bridge, addr, &disk, &settings)?;
                            boots.fetch_add(1, Ordering::SeqCst);
                            running.insert(key, boot);
                        }
                        Ok(())
                    });
                    if let Err(e) = step {
                        break Err(e);
                    }
                };
                tokio::task::block_in_place(|| {
                    for (_, mut boot) in running.drain() {
                        drop(boot.netns);
                        let _ = boot.child.kill();
                        let _ = boot.child.wait();
                    }
                });
                result
            }
        });
        Self { busy_vm_touched, boots, stop, task }
    }

    pub async fn stop(self) -> Result<(), String> {
        self.stop.cancel();
        self.task.await.map_err(|e| e.to_string())?
    }
}

/// Prepare a fresh "disk" and start `vm/boot.sh` as root inside a new namespace.
fn boot(bridge: &Bridge, addr: std::net::Ipv4Addr, disk: &Path, settings: &VmSettings) -> Result<Boot, String> {
    let repo = repo_root();
    let runner_dir = disk.join("actions-runner");
    let io = |e: std::io::Error| format!("{}: {e}", disk.display());
    fs::create_dir_all(&runner_dir).map_err(io)?;
    // What cloud-init's runner.env holds, with this VM's paths and short test timeouts.
    let config = disk.join("runner.env");
    fs::write(
        &config,
        format!(
            "SCALER_API_URL=http://{}\nRUNNER_DIR={}\nRUNNER_USER={RUNNER_USER}\nREGISTRATION_TIMEOUT=60\n\
             RUNNER_EXITED_TIMEOUT=60\nHOOK_ATTEMPTS=5\nBACKOFF_MAX=2\nHOOK_LOG_TO_JOURNAL=no\n",
            settings.operator,
            runner_dir.display()
        ),
    )
    .map_err(io)?;
    // The runner stand-ins, and what they need to know about the fake GitHub.
    let doubles = repo.join("tests/support/runner-double");
    for script in ["run.sh", "config.sh"] {
        fs::copy(doubles.join(script), runner_dir.join(script)).map_err(io)?;
    }
    fs::write(
        runner_dir.join(".double.env"),
        format!("FAKE_GITHUB_URL={}\nJOB_SECONDS={}\n", settings.fake_github_url, settings.job_seconds),
    )
    .map_err(io)?;
    for dir in [disk, runner_dir.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    let chown = Command::new("chown").args(["-R", RUNNER_USER]).arg(&runner_dir).status().map_err(io)?;
    if !chown.success() {
        return Err(format!("chown {RUNNER_USER} {}", runner_dir.display()));
    }

    let netns = bridge.add_vm(addr)?;
    let log = fs::File::create(disk.join("boot.log")).map_err(io)?;
    let child = Command::new("ip")
        .args(["netns", "exec", &netns.name, "env", "-i"])
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("VMSS_RUNNER_CONFIG={}", config.display()))
        .arg("bash")
        .arg(repo.join("vm/boot.sh"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log)
        .spawn()
        .map_err(io)?;
    Ok(Boot { netns, child, disk: disk.to_owned() })
}

/// What the VMs left on their disks after the run.
pub struct Outcome {
    /// `(job id, result)` for every job any run.sh ran.
    pub jobs: Vec<(u64, String)>,
    /// Every line the hooks printed into job logs.
    pub job_log: Vec<String>,
    /// Every boot.log, for failure messages.
    pub boot_logs: String,
}

pub fn outcome(work_dir: &Path) -> Outcome {
    let mut out = Outcome { jobs: Vec::new(), job_log: Vec::new(), boot_logs: String::new() };
    let mut disks: Vec<_> = fs::read_dir(work_dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    disks.sort();
    for disk in disks {
        let read = |p: &str| fs::read_to_string(disk.join(p)).unwrap_or_default();
        for line in read("actions-runner/jobs-ran").lines() {
            if let Some((id, result)) = line.split_once(' ') {
                out.jobs.push((id.parse().unwrap_or(0), result.to_owned()));
            }
        }
        out.job_log.extend(read("actions-runner/job.log").lines().map(str::to_owned));
        out.boot_logs.push_str(&format!("--- {}\n{}", disk.display(), read("boot.log")));
        out.boot_logs.push_str(&read("actions-runner/job.log"));
    }
    out
}
