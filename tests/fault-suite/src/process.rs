//! Operator processes: start one on the shared world, kill it abruptly (scheduled
//! or when a port decides so), start the next after a downtime. A new process
//! knows nothing but what it recovers from the three inventories.

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use operator::{
    budget::ScaleSetBudget,
    controller::{Controller, Settings},
    policy::PoolSpec,
    ports::Ports,
    retry::ErrorPolicy,
    run::reconcile_loop_with,
};
use operator_sim::memory::InMemorySecretStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    faults::{FaultyBusyRecord, FaultyGithub, FaultyScaleSet},
    scenario,
    world::{Incarnation, World, REPOSITORY},
};

pub struct Process {
    incarnation: Incarnation,
    reconciler: JoinHandle<()>,
}

pub fn settings(world: &World) -> Settings {
    let s = &world.scenario;
    Settings {
        labels: crate::world::LABELS.iter().map(|l| (*l).to_owned()).collect(),
        jit: s.jit,
        period: scenario::PERIOD,
        ..Settings::new(
            "vmss-fault",
            REPOSITORY,
            PoolSpec {
                scale_in_delay: scenario::SCALE_IN_DELAY,
                registration_timeout: scenario::REGISTRATION_TIMEOUT,
                runner_exit_timeout: scenario::RUNNER_EXIT_TIMEOUT,
                keep_unhealthy: s.keep_unhealthy,
                ..PoolSpec::new(s.min, s.max, s.free_target_percentage)
            },
        )
    }
}

impl Process {
    /// Start operator process number `n`: fresh controller, recovery, reconcile loop.
    pub fn start(world: &Arc<World>, n: u64) -> Self {
        let alive = Arc::new(AtomicBool::new(true));
        let ports = Ports {
            scale_set: Arc::new(FaultyScaleSet { world: world.clone(), alive: alive.clone() }),
            github: Arc::new(FaultyGithub { world: world.clone(), alive: alive.clone() }),
            busy: Arc::new(FaultyBusyRecord { world: world.clone(), alive: alive.clone() }),
            secrets: Arc::new(InMemorySecretStore::default()),
        };
        let controller = Controller::with_budget(settings(world), ports, ScaleSetBudget::azure_vmss());
        let incarnation = Incarnation { controller: controller.clone(), alive };
        world.set_operator(Some(incarnation.clone()));
        let errors = ErrorPolicy::seeded(Duration::from_secs(1), scenario::PERIOD, world.scenario.seed ^ n);
        let reconciler =
            tokio::spawn(reconcile_loop_with(controller, scenario::DEBOUNCE, errors, CancellationToken::new()));
        Self { incarnation, reconciler }
    }

    pub fn controller(&self) -> &Controller {
        &self.incarnation.controller
    }

    /// SIGKILL: no drain, no goodbye. Work in flight is abandoned; whatever already
    /// reached the cloud or GitHub stays done.
    pub fn kill(self, world: &World) {
        self.incarnation.alive.store(false, std::sync::atomic::Ordering::SeqCst);
        world.set_operator(None);
        self.reconciler.abort();
    }
}
