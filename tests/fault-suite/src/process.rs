//! Operator processes: start one on the shared world, kill it abruptly (scheduled
//! or when a port decides so), start the next after a downtime. A new process
//! knows nothing but what it recovers from the three inventories.

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use operator::{
    budget::ScaleSetBudget,
    controller::{Controller, ListenerStatus, Settings},
    listener::{Listener, ListenerSettings},
    policy::PoolSpec,
    ports::{Github, Ports},
    retry::ErrorPolicy,
    run::reconcile_loop_with,
};
use operator_sim::memory::InMemorySecretStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    faults::{FaultyBusyRecord, FaultyGithub, FaultyScaleSet, FaultyScaleSetApi},
    scenario::{self, Demand},
    world::{Incarnation, World, REPOSITORY},
};

pub struct Process {
    incarnation: Incarnation,
    reconciler: JoinHandle<()>,
    /// The scale-set listener, with this process's lifetime (scale-set demand only).
    listener: Option<(JoinHandle<()>, Arc<FaultyScaleSetApi>)>,
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
                parked: s.parked,
                ..PoolSpec::new(s.min, s.max, s.free_target_percentage)
            },
        )
    }
}

impl Process {
    /// Start operator process number `n`: fresh controller, recovery, reconcile loop.
    pub fn start(world: &Arc<World>, n: u64) -> Self {
        let alive = Arc::new(AtomicBool::new(true));
        let rest: Arc<dyn Github> = Arc::new(FaultyGithub { world: world.clone(), alive: alive.clone() });
        // A new process knows no scale set id until its listener finds the set.
        let (github, listener) = match world.scenario.demand {
            Demand::ScaleSet => {
                let api = Arc::new(FaultyScaleSetApi::new(world.clone(), alive.clone()));
                let settings = ListenerSettings::new(
                    scenario::SCALE_SET_NAME,
                    crate::world::LABELS.iter().map(|l| (*l).to_owned()).collect(),
                    format!("vmss-fault-{n}"),
                    world.scenario.seed ^ n.rotate_left(17),
                );
                let (github, listener) = Listener::attach(rest, api.clone(), settings);
                (github, Some((listener, api)))
            }
            Demand::None => (rest, None),
        };
        let ports = Ports {
            scale_set: Arc::new(FaultyScaleSet { world: world.clone(), alive: alive.clone() }),
            github,
            busy: Arc::new(FaultyBusyRecord { world: world.clone(), alive: alive.clone() }),
            secrets: Arc::new(InMemorySecretStore::default()),
        };
        let controller = Controller::with_budget(settings(world), ports, ScaleSetBudget::azure_vmss());
        let incarnation = Incarnation { controller: controller.clone(), alive };
        world.set_operator(Some(incarnation.clone()));
        let errors = ErrorPolicy::seeded(Duration::from_secs(1), scenario::PERIOD, world.scenario.seed ^ n);
        let listener = listener.map(|(listener, api)| {
            let controller = controller.clone();
            let task = tokio::spawn(async move { listener.run(&controller, &CancellationToken::new()).await });
            (task, api)
        });
        let reconciler =
            tokio::spawn(reconcile_loop_with(controller, scenario::DEBOUNCE, errors, CancellationToken::new()));
        Self { incarnation, reconciler, listener }
    }

    /// End the run: close the open stale window (for invariant 3).
    pub fn finish_windows(&self) {
        if let Some((_, api)) = &self.listener {
            api.close_windows();
        }
    }

    /// Does this process's listener hold an open session? (`true` without one.)
    pub fn listening(&self) -> bool {
        self.listener.is_none() || self.incarnation.controller.listener_status() == Some(ListenerStatus::Listening)
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
        // No goodbye to GitHub either: the session stays open until it expires.
        if let Some((task, api)) = self.listener {
            task.abort();
            api.close_windows();
        }
    }
}
