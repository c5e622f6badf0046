//! The reserve of parked VMs on the in-memory world, on a paused clock, with the real
//! controller, listener, reconcile loop and the VMs' boot script (`operator_sim::vms`,
//! which follows `vm/boot.sh`): VMs created for the reserve are told to park at their
//! registration and deallocated; a burst starts them (a start, not a boot) before any
//! new VM is created; the reserve is refilled; a start that fails or comes late, and a
//! parked VM started or deleted by someone else, leave the pool whole.

mod common;

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use operator::{
    controller::{Controller, Settings},
    listener::{Listener, ListenerSettings},
    model::{InstanceId, JobRef},
    policy::PoolSpec,
    ports::{CloudState, Ports},
    retry::ErrorPolicy,
    run::reconcile_loop_with,
    simulate::direct::DirectTransport,
};
use operator_sim::{
    memory::{
        Boot, InMemoryBusyRecord, InMemoryGithub, InMemoryScaleSet, InMemorySecretStore, ScaleSetSettings, SimJob,
    },
    vms::{Hypervisor, HypervisorSettings, ScriptSettings, VmEnvironment, VmEvent, VmTransport},
};
use tokio_util::sync::CancellationToken;

const REPO: &str = "octo-org/octo-repo";
const LABELS: [&str; 2] = ["self-hosted", "linux"];
const BOOT: Duration = Duration::from_secs(90);
const START: Duration = Duration::from_secs(45);
const JOB: Duration = Duration::from_secs(120);

struct Vms {
    controller: Controller,
    told_to_park: AtomicU32,
}

impl VmEnvironment for Vms {
    fn connect(&self, boot: &Boot) -> Box<dyn VmTransport> {
        Box::new(DirectTransport { controller: self.controller.clone(), ip: boot.ip })
    }

    fn job_duration(&self, _job: &JobRef) -> Duration {
        JOB
    }

    fn observe(&self, _boot: &Boot, event: &VmEvent) {
        if matches!(event, VmEvent::ToldToPark) {
            self.told_to_park.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct World {
    scale_set: Arc<InMemoryScaleSet>,
    github: Arc<InMemoryGithub>,
    controller: Controller,
    vms: Arc<Vms>,
    hypervisor: Hypervisor,
    stop: CancellationToken,
}

fn world(spec: PoolSpec) -> World {
    let scale_set = Arc::new(
        InMemoryScaleSet::new(ScaleSetSettings {
            boot_delay: BOOT,
            reimage_delay: Duration::from_secs(60),
            delete_delay: Duration::from_secs(30),
            deallocate_delay: Duration::from_secs(30),
            start_delay: START,
            ..ScaleSetSettings::default()
        })
        .with_azure_throttling(),
    );
    let github = Arc::new(InMemoryGithub::new(format!("https://github.com/{REPO}")));
    let labels: Vec<String> = LABELS.iter().map(|l| (*l).to_owned()).collect();
    let (runners, listener) =
        Listener::attach(github.clone(), github.clone(), ListenerSettings::new("vmss-test", labels.clone(), "test", 7));
    let ports = Ports {
        scale_set: scale_set.clone(),
        github: runners,
        busy: Arc::new(InMemoryBusyRecord::default()),
        secrets: Arc::new(InMemorySecretStore::default()),
    };
    let settings = Settings { labels, period: Duration::from_secs(30), ..Settings::new("vmss-test", REPO, spec) };
    let controller = Controller::new(settings, ports);
    let stop = CancellationToken::new();
    let errors = ErrorPolicy::seeded(Duration::from_secs(1), Duration::from_secs(30), 7);
    tokio::spawn(reconcile_loop_with(controller.clone(), Duration::from_millis(500), errors, stop.clone()));
    {
        let (controller, stop) = (controller.clone(), stop.clone());
        tokio::spawn(async move { listener.run(&controller, &stop).await });
    }
    let vms = Arc::new(Vms { controller: controller.clone(), told_to_park: AtomicU32::new(0) });
    let script = ScriptSettings { cloud_init: Duration::from_secs(5), ..ScriptSettings::of_the_scripts() };
    let hypervisor = Hypervisor::start(
        scale_set.clone(),
        github.clone(),
        HypervisorSettings { tick: Duration::from_secs(1), script, seed: 7 },
        vms.clone(),
    );
    World { scale_set, github, controller, vms, hypervisor, stop }
}

impl World {
    fn count(&self, state: CloudState) -> usize {
        self.scale_set.snapshot().iter().filter(|(_, _, s)| *s == state).count()
    }

    fn parked_ids(&self) -> Vec<InstanceId> {
        self.scale_set
            .snapshot()
            .into_iter()
            .filter(|(_, _, s)| *s == CloudState::Deallocated)
            .map(|(id, ..)| id)
            .collect()
    }

    fn enqueue(&self, first: u64, n: u64) {
        for run_id in first..first + n {
            self.github.enqueue(SimJob {
                job: JobRef { repository: REPO.into(), run_id, run_attempt: 1, job_name: "build".into() },
                labels: LABELS.iter().map(|l| (*l).to_owned()).collect(),
            });
        }
    }

    /// Observations of `vmss_runner_boot_duration_seconds` on `path`.
    fn boots_timed(&self, path: &str) -> u64 {
        let series = format!("vmss_runner_boot_duration_seconds_count{{path=\"{path}\"}}");
        common::sample(&self.controller.metrics().render(), &series).unwrap_or(0.0) as u64
    }

    async fn shut_down(self) {
        self.stop.cancel();
        self.hypervisor.stop().await;
    }
}

/// Let the paused clock run until `done` holds (at most `limit` of virtual time).
async fn until(limit: Duration, done: impl Fn() -> bool) -> bool {
    common::until_within(limit, Duration::from_millis(500), done).await
}

fn parking_pool(parked: u32) -> PoolSpec {
    PoolSpec { parked, ..PoolSpec::new(0, 12, 0) }
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_served_by_starting_parked_vms_and_the_reserve_is_refilled() {
    let w = world(parking_pool(3));
    assert!(until(Duration::from_secs(600), || w.count(CloudState::Deallocated) == 3).await, "the reserve is parked");
    let writes = w.scale_set.writes();
    assert_eq!((writes.set_capacity, writes.start), (1, 0), "one scale-out 0 -> 3, nothing started");
    assert!(writes.deallocate >= 1, "{writes:?}");
    assert_eq!(w.vms.told_to_park.load(Ordering::SeqCst), 3, "each new VM was told to park, none registered");
    assert!(w.github.runner_jobs().is_empty());
    assert_eq!(w.count(CloudState::Running), 0, "nothing runs: the reserve bills disks only");

    w.enqueue(1, 2);
    assert!(until(Duration::from_secs(300), || w.github.job_waits().len() == 2).await, "both jobs get a runner");
    let waits = w.github.job_waits();
    let longest = waits.iter().max().copied().unwrap_or_default();
    assert!(longest < BOOT, "served by a start ({START:?}), not a boot ({BOOT:?}): waits {waits:?}");
    let writes = w.scale_set.writes();
    assert_eq!(writes.started_ids.len(), 2, "{writes:?}");
    assert_eq!(w.boots_timed("started"), 2, "each start timed from the call to its runner online");

    // The reserve is refilled while the jobs run, and the finished VMs go.
    let refilled = until(Duration::from_secs(900), || {
        w.count(CloudState::Deallocated) == 3 && w.count(CloudState::Running) == 0 && w.scale_set.live() == 3
    })
    .await;
    assert!(refilled, "back to three parked and none running: {:?}", w.scale_set.snapshot());
    assert_eq!(w.github.completed().len(), 2);
    w.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_start_that_fails_or_comes_late_and_parked_vms_touched_by_someone_else_leave_the_pool_whole() {
    let w = world(parking_pool(3));
    assert!(until(Duration::from_secs(600), || w.count(CloudState::Deallocated) == 3).await);
    let parked = w.parked_ids();

    // Someone deletes one parked VM and starts another: the first is replaced, the
    // second boots, asks, is told to park again and is deallocated.
    w.scale_set.delete_by_hand(&parked[0]);
    w.scale_set.start_by_hand(&parked[1]);
    let whole =
        until(Duration::from_secs(900), || w.count(CloudState::Deallocated) == 3 && w.scale_set.live() == 3).await;
    assert!(whole, "the reserve is whole again: {:?}", w.scale_set.snapshot());
    assert_eq!(w.vms.told_to_park.load(Ordering::SeqCst), 5, "the replacement and the started VM were parked");

    // The next starts: one fails (allocation failure), one comes two minutes late.
    let parked = w.parked_ids();
    w.scale_set.next_start_of(&parked[0], true, Duration::ZERO);
    w.scale_set.next_start_of(&parked[1], false, Duration::from_secs(120));
    w.enqueue(1, 3);
    assert!(until(Duration::from_secs(900), || w.github.job_waits().len() == 3).await, "every job gets a runner");
    let waits = w.github.job_waits();
    assert!(waits.iter().filter(|w| **w < BOOT).count() >= 1, "the healthy start served one: {waits:?}");
    assert!(until(Duration::from_secs(1800), || w.github.completed().len() == 3).await);
    let settled = until(Duration::from_secs(1800), || {
        w.count(CloudState::Deallocated) == 3 && w.count(CloudState::Failed) == 0 && w.scale_set.live() == 3
    })
    .await;
    assert!(settled, "the failed VM replaced, the reserve refilled: {:?}", w.scale_set.snapshot());
    assert!(w.scale_set.writes().total() > 0);
    w.shut_down().await;
}
