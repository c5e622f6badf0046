//! What the fault suite gives the simulated world's hypervisor (`operator_sim::vms`,
//! where the VMs' behaviour — `vm/boot.sh` and the hook scripts — lives): each VM's
//! fate drawn from the seed (never boots, never runs cloud-init, runner never online),
//! how long each job runs, a direct transport to the current operator process, and
//! the hook faults (lost, duplicated, late) between the runner and the operator. What
//! the VMs do is written into the [`crate::world::Observations`] the invariants read.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use operator::model::{InstanceId, JobRef};
use operator_sim::{
    memory::Boot,
    vms::{post, Answer, Failure, Posted, Registration, Request, Retry, VmEnvironment, VmEvent, VmFate, VmTransport},
};
use tokio::task::JoinSet;

use crate::world::{World, REPOSITORY};

/// The fault suite's VMs: fates and hook faults from the seed's scenario.
pub struct FaultVms(pub Arc<World>);

impl VmEnvironment for FaultVms {
    fn connect(&self, boot: &Boot) -> Box<dyn VmTransport> {
        // Once per boot script: a new instance, a reimage, or a start of a deallocated one.
        self.0.power_on(&boot.id, boot.generation);
        let direct = Direct { world: self.0.clone(), ip: boot.ip, name: boot.name.clone() };
        Box::new(LossyHooks { direct, late: Mutex::new(JoinSet::new()) })
    }

    fn provisioning_fails(&self, _instance: &InstanceId) -> bool {
        self.0.roll(self.0.scenario.faults.vm_never_boots, "vm_never_boots")
    }

    fn fate(&self, _boot: &Boot) -> VmFate {
        let (world, faults) = (&self.0, &self.0.scenario.faults);
        if world.roll(faults.vm_never_registers, "vm_never_registers") {
            VmFate::NeverRunsCloudInit
        } else if world.roll(faults.runner_never_online, "runner_never_online") {
            VmFate::RunnerNeverOnline
        } else {
            VmFate::Healthy
        }
    }

    fn job_duration(&self, job: &JobRef) -> Duration {
        let jobs = &self.0.scenario.jobs;
        jobs.iter().find(|j| j.number == job.run_id).map_or(Duration::from_secs(60), |j| j.runs_for)
    }

    fn observe(&self, boot: &Boot, event: &VmEvent) {
        let at = self.0.elapsed();
        let mut record = self.0.record();
        let this_boot = self.0.boot_key(&boot.id, boot.generation);
        match event {
            VmEvent::ToldToPark => {
                record.parking.park_answers += 1;
                record.parking.told_to_park.entry(this_boot).or_insert(at);
            }
            VmEvent::Registered { runner_name } => {
                if record.parking.told_to_park.remove(&this_boot).is_some() {
                    record.parking.registered_after_park += 1;
                }
                record.runner_boots.insert(runner_name.clone(), this_boot);
            }
            VmEvent::RunnerOnline { runner_id } => {
                record.boot_runners.insert(this_boot, *runner_id);
            }
            VmEvent::JobAssigned(job) => {
                let times = record.jobs.entry(job.run_id).or_default();
                times.assignments += 1;
                times.assigned.get_or_insert(at);
            }
            VmEvent::JobFinished(job) => {
                if let Some(times) = record.jobs.get_mut(&job.run_id) {
                    times.completed = true;
                }
            }
        }
    }
}

tokio::task_local! {
    /// The registration credentials (JIT runners, registration tokens) the operator made
    /// at GitHub while handling the registration request in this task: the ports note
    /// them here ([`note_credential`]).
    static CREDENTIALS: Arc<Mutex<Vec<String>>>;
}

/// A port made a registration credential (`what`) at GitHub; if a VM's registration
/// request is being handled in this task, it is noted for that request.
pub fn note_credential(what: impl FnOnce() -> String) {
    let _ = CREDENTIALS.try_with(|made| made.lock().expect("credentials poisoned").push(what()));
}

/// A VM's call, straight into whichever operator process is alive: what the script
/// would have seen over HTTP.
#[derive(Clone)]
pub struct Direct {
    world: Arc<World>,
    ip: IpAddr,
    name: String,
}

#[async_trait]
impl VmTransport for Direct {
    async fn send(&self, request: &Request) -> Result<Answer, Failure> {
        let Some(incarnation) = self.world.operator() else { return Err(Failure::NoAnswer) };
        let made = Arc::new(Mutex::new(Vec::new()));
        let call = operator::simulate::direct::call(&incarnation.controller, self.ip, request);
        let result = CREDENTIALS.scope(made.clone(), call).await;
        // A process that died while handling the call never sent the answer.
        if !incarnation.is_alive() {
            return Err(Failure::NoAnswer);
        }
        // Invariant 7: a VM told to park gets no registration, so none is made for it.
        let made = made.lock().expect("credentials poisoned").clone();
        match &result {
            Ok(Answer::Registration(Registration::Park { .. })) => {
                self.world.record().parking.park_answers_checked += 1;
                if !made.is_empty() {
                    self.world.violation(format!(
                        "invariant 7: {} was told to park at {:?}, yet its request made {made:?} at GitHub",
                        self.name,
                        self.world.elapsed()
                    ));
                }
            }
            Ok(Answer::Registration(_)) if !made.is_empty() => self.world.record().parking.registrations_checked += 1,
            _ => {}
        }
        result
    }
}

/// Hooks between the runner and the operator, at the scenario's fault rates: lost
/// (never delivered), duplicated (delivered twice), or late (delivered 5–120 s later,
/// after the hooks that follow it). Late hooks die with their VM's boot: the
/// `JoinSet` is dropped with the transport.
struct LossyHooks {
    direct: Direct,
    late: Mutex<JoinSet<()>>,
}

#[async_trait]
impl VmTransport for LossyHooks {
    async fn send(&self, request: &Request) -> Result<Answer, Failure> {
        self.direct.send(request).await
    }

    async fn hook(&self, request: &Request, retry: Retry) -> Posted {
        let world = &self.direct.world;
        let faults = &world.scenario.faults;
        if world.roll(faults.hook_drop, "hook_drop") {
            return Posted::GaveUp(None);
        }
        let copies = if world.roll(faults.hook_duplicate, "hook_duplicate") { 2 } else { 1 };
        if world.roll(faults.hook_delay, "hook_delay") {
            let delay = Duration::from_secs(world.pick(5..=120));
            let (direct, request) = (self.direct.clone(), request.clone());
            self.late.lock().expect("late hooks poisoned").spawn(async move {
                tokio::time::sleep(delay).await;
                for _ in 0..copies {
                    post(&direct, &request, retry.clone()).await;
                }
            });
            // The script goes on as if answered; the operator hears of it later.
            return Posted::Answered(Answer::Taken);
        }
        let mut outcome = post(&self.direct, request, retry.clone()).await;
        for _ in 1..copies {
            outcome = post(&self.direct, request, retry.clone()).await;
        }
        outcome
    }
}

/// The repository every simulated job belongs to.
pub fn job_ref(number: u64) -> JobRef {
    JobRef { repository: REPOSITORY.into(), run_id: number, run_attempt: 1, job_name: format!("job-{number}") }
}
