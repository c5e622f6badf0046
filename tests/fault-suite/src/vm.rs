//! Simulated runner VMs, as the boot and hook scripts behave (`cloud-init/`): ask
//! for a registration with backoff until the registration timeout, start the
//! runner, run the job between the two job hooks (each with bounded retries, then
//! given up), report runner-exited when the runner process ends. Faults make some
//! VMs never boot, never run cloud-init or never bring their runner online, and
//! drop, duplicate or delay hooks. A VM's tasks die with its boot.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use operator::{
    controller::Registration,
    model::{InstanceId, JobRef},
};
use operator_sim::memory::Boot;
use tokio::task::{JoinHandle, JoinSet};

use crate::{
    scenario,
    world::{Call, CallError, Reply, World, LABELS, REPOSITORY},
};

/// Watches the scale set: decides the fate of every new instance and runs one VM
/// task per boot; a boot that ends (delete, reimage) takes its tasks with it.
pub async fn hypervisor(world: Arc<World>) {
    let mut vms: BTreeMap<(InstanceId, u32), JoinHandle<()>> = BTreeMap::new();
    let mut seen_creating = std::collections::BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for id in world.scale_set.creating() {
            if seen_creating.insert(id.clone()) && world.roll(world.scenario.faults.vm_never_boots, "vm_never_boots") {
                world.scale_set.fail_provisioning(&id);
            }
        }
        let boots = world.scale_set.running_boots();
        let current: std::collections::BTreeSet<(InstanceId, u32)> =
            boots.iter().map(|b| (b.id.clone(), b.generation)).collect();
        vms.retain(|key, task| {
            let keep = current.contains(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for boot in boots {
            let key = (boot.id.clone(), boot.generation);
            vms.entry(key).or_insert_with(|| tokio::spawn(run_vm(world.clone(), boot)));
        }
    }
}

async fn run_vm(world: Arc<World>, boot: Boot) {
    // Hooks delivered late run beside the VM and die with it (the JoinSet aborts them).
    let mut late = JoinSet::new();
    if world.roll(world.scenario.faults.vm_never_registers, "vm_never_registers") {
        return std::future::pending().await;
    }
    tokio::time::sleep(scenario::VM_START / 2).await;
    let Some(registration) = register(&world, &boot).await else { return std::future::pending().await };
    let runner_name = match &registration {
        Registration::Jit { runner_name, .. } | Registration::Token { runner_name, .. } => runner_name.clone(),
    };
    world.record().runner_boots.insert(runner_name, (boot.id.clone(), boot.generation));
    let never_online = world.roll(world.scenario.faults.runner_never_online, "runner_never_online");
    let runner_id = if never_online {
        None
    } else {
        match &registration {
            Registration::Jit { encoded_jit_config, .. } => world.github.start_with_jit(encoded_jit_config),
            Registration::Token { runner_name, token, .. } => {
                let labels: Vec<String> = LABELS.iter().map(|l| (*l).to_owned()).collect();
                world.github.register_with_token(token, runner_name, &labels)
            }
        }
    };
    let Some(runner_id) = runner_id else {
        if never_online {
            return std::future::pending().await; // the runner hangs: nothing reports
        }
        // config.sh / run.sh refused the registration: the boot script reports the exit.
        send(&world, &boot, Call::RunnerExited, &mut late).await;
        return std::future::pending().await;
    };
    world.record().boot_runners.insert((boot.id.clone(), boot.generation), runner_id);

    // run.sh: poll for a job; it ends when GitHub no longer knows the runner.
    let job = loop {
        tokio::time::sleep(scenario::POLL).await;
        if world.github.runners().iter().all(|r| r.id != runner_id) {
            break None;
        }
        if let Some(job) = world.github.poll_job(runner_id) {
            break Some(job);
        }
    };
    if let Some(job) = job {
        note_assignment(&world, &job);
        send(&world, &boot, Call::JobStarted(job.clone()), &mut late).await;
        tokio::time::sleep(job_duration(&world, &job)).await;
        send(&world, &boot, Call::JobCompleted(job.clone()), &mut late).await;
        world.github.finish_job(runner_id);
        if let Some(times) = world.record().jobs.get_mut(&job.run_id) {
            times.completed = true;
        }
    }
    send(&world, &boot, Call::RunnerExited, &mut late).await;
    // Until the operator reimages or deletes it, boot.sh repeats the report every minute.
    loop {
        tokio::time::sleep(scenario::RUNNER_EXITED_REPEAT).await;
        deliver(&world, &boot, Call::RunnerExited).await;
    }
}

fn job_duration(world: &World, job: &JobRef) -> Duration {
    world.scenario.jobs.iter().find(|j| j.number == job.run_id).map_or(Duration::from_secs(60), |j| j.runs_for)
}

fn note_assignment(world: &World, job: &JobRef) {
    let at = world.elapsed();
    let mut record = world.record();
    let times = record.jobs.entry(job.run_id).or_default();
    times.assignments += 1;
    times.assigned.get_or_insert(at);
}

/// The boot script: ask until the registration timeout, backing off; give up loudly.
async fn register(world: &World, boot: &Boot) -> Option<Registration> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_secs(2);
    loop {
        match world.call(boot.ip, Call::Register).await {
            Ok(Reply::Registration(r)) => return Some(r),
            Ok(Reply::Done) => unreachable!("registration answers with a registration"),
            Err(CallError::Refused(why)) => {
                tracing::warn!(instance = %boot.id, why, "registration refused; boot script gives up");
                return None;
            }
            Err(CallError::Unreachable | CallError::Retry(_)) => {}
        }
        if started.elapsed() >= scenario::REGISTRATION_TIMEOUT {
            tracing::warn!(instance = %boot.id, "no registration within the timeout; boot script gives up");
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// A hook script: bounded retries with backoff, then give up (exit 0). Faults drop
/// the hook, send it twice, or deliver it late (after the hooks that follow it).
async fn send(world: &Arc<World>, boot: &Boot, call: Call, late: &mut JoinSet<()>) {
    let faults = &world.scenario.faults;
    if world.roll(faults.hook_drop, "hook_drop") {
        return;
    }
    let copies = if world.roll(faults.hook_duplicate, "hook_duplicate") { 2 } else { 1 };
    if world.roll(faults.hook_delay, "hook_delay") {
        let (world, boot) = (world.clone(), boot.clone());
        let delay = Duration::from_secs(world.pick(5..=120));
        late.spawn(async move {
            tokio::time::sleep(delay).await;
            for _ in 0..copies {
                deliver(&world, &boot, call.clone()).await;
            }
        });
        return;
    }
    for _ in 0..copies {
        deliver(world, boot, call.clone()).await;
    }
}

/// Attempts 1 s, 2 s, 4 s, 8 s, 16 s apart: about half a minute of an unreachable
/// scaler is ridden out; longer, and the reconcile pass repairs from GitHub.
async fn deliver(world: &World, boot: &Boot, call: Call) {
    let mut delay = Duration::from_secs(1);
    for _ in 0..6 {
        match world.call(boot.ip, call.clone()).await {
            Ok(_) | Err(CallError::Refused(_)) => return,
            Err(CallError::Unreachable | CallError::Retry(_)) => {}
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    tracing::info!(instance = %boot.id, ?call, "hook given up after its retries");
}

/// The repository every simulated job belongs to.
pub fn job_ref(number: u64) -> JobRef {
    JobRef { repository: REPOSITORY.into(), run_id: number, run_attempt: 1, job_name: format!("job-{number}") }
}
