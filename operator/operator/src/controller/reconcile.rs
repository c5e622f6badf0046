//! One reconcile pass: observe, decide with the pure policy, act. The decisions are
//! values (`policy::decide`, `pass::capacity_to_set`, `InstanceRecord::may_recycle`);
//! this file awaits the scale set and GitHub for them and reports what it did as
//! [`Effect`]s. Returns when to look again; the loop in [`crate::run`] owns the error
//! policy.

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::{BootPath, Controller, ReconcileAction, ReconcileError};
use crate::{
    budget::Call,
    fleet::{InstanceRecord, Operation},
    labels::{Api, OperationKind, OperationOutcome},
    model::InstanceId,
    pass::{capacity_to_set, Effect, IdList},
    policy::{self, Target},
    ports::{CloudFault, DeregisterOutcome, Runner, ScaleSetError},
};

/// After starting deletes, look again soon so a replacement is not a period late.
const AFTER_DELETE: Duration = Duration::from_secs(1);

/// The longest wait between two deregistration attempts for a runner GitHub reports busy,
/// in reconcile periods.
pub const BUSY_BACKOFF_CAP_PERIODS: u32 = 8;

/// How long to wait before asking GitHub again to remove a runner it refused `refusals`
/// times in a row as busy: one period, then doubling, capped at
/// [`BUSY_BACKOFF_CAP_PERIODS`]. A job on the VM can make the policy want its instance
/// recycled (an early runner-exited or job-completed); without this, every pass — one a
/// second while deletes are pending — would spend a GitHub request on it for as long as
/// the job runs.
pub fn busy_backoff(period: Duration, refusals: u32) -> Duration {
    let doublings = refusals.saturating_sub(1).min(BUSY_BACKOFF_CAP_PERIODS.ilog2());
    (period * 2u32.pow(doublings)).min(period * BUSY_BACKOFF_CAP_PERIODS)
}

/// Per instance: GitHub refused to remove its runner as busy, how often in a row, and
/// when to ask again. Forgotten once the runner is removed, or the instance or its
/// runner changes.
#[derive(Debug, Default)]
pub(super) struct BusyRefusals(HashMap<InstanceId, BusyRefusal>);

#[derive(Debug)]
struct BusyRefusal {
    runner: String,
    refusals: u32,
    retry_at: Instant,
}

impl BusyRefusals {
    /// Whether `runner` of `id` must not be asked about again yet.
    fn waiting(&self, id: &InstanceId, runner: &str, now: Instant) -> bool {
        self.0.get(id).is_some_and(|r| r.runner == runner && now < r.retry_at)
    }

    /// GitHub refused again: the wait until the next attempt.
    fn refused(&mut self, id: &InstanceId, runner: &str, now: Instant, period: Duration) -> Duration {
        let entry =
            self.0.entry(id.clone()).or_insert(BusyRefusal { runner: runner.to_owned(), refusals: 0, retry_at: now });
        if entry.runner != runner {
            *entry = BusyRefusal { runner: runner.to_owned(), refusals: 0, retry_at: now };
        }
        entry.refusals += 1;
        let wait = busy_backoff(period, entry.refusals);
        entry.retry_at = now + wait;
        wait
    }

    fn forget(&mut self, id: &InstanceId) {
        self.0.remove(id);
    }

    /// Drops the entries of instances no longer in the fleet.
    fn retain(&mut self, exists: impl Fn(&InstanceId) -> bool) {
        self.0.retain(|id, _| exists(id));
    }
}

/// The budget bucket an operation spends.
fn op_call(op: Operation) -> Call {
    match op {
        Operation::Reimage => Call::Reimage,
        Operation::Delete => Call::Delete,
        Operation::Park => Call::Deallocate,
        Operation::Start => Call::Start,
    }
}

/// GitHub's runner list, read at most once in a pass and only when a runner's id is
/// unknown (token mode).
enum RunnerList {
    NotRead,
    Read(Vec<Runner>),
    Failed,
}

impl Controller {
    /// One level-triggered pass: observe the scale set, repair the picture from
    /// GitHub's runner list ([`crate::truth`]), decide, act.
    #[instrument(skip_all, fields(pool = %self.settings().pool))]
    pub async fn reconcile(&self) -> Result<ReconcileAction, ReconcileError> {
        // Every pass reads the scale set; hooks can ask for passes faster than Azure
        // allows reads. Without a read the pass waits for one rather than spend a 429.
        if !self.spend(Call::Read) {
            return Ok(ReconcileAction {
                requeue_after: self.wait_for_budget(Call::Read).max(Duration::from_millis(100)),
            });
        }
        self.refresh_cloud().await.map_err(ReconcileError::ObserveFailed)?;
        self.remove_orphan_markers().await;
        self.audit_busy_record().await;
        self.align_with_github().await;
        {
            let state = &mut *self.state();
            let fleet = &state.fleet;
            state.busy_refusals.retain(|id| fleet.get(id).is_some());
        }
        // One snapshot: capacity and the foreign count come from the same listing.
        let (observed, foreign) = {
            let state = self.state();
            (state.observe_pool(Instant::now()), state.fleet.foreign_count())
        };
        let targeting = &self.settings().targeting;
        let wall = targeting.clock.now();
        let spec = &self.effective_spec_at(wall);
        let decision = policy::decide(spec, &observed);
        targeting.observe(wall, decision.target.demand);
        let mut effects = Vec::new();
        // Targets that follow the clock are looked at again when they may change.
        let mut requeue_after = self
            .settings()
            .period
            .min(targeting.until_next_change(wall).map_or(Duration::MAX, |d| d + Duration::from_millis(50)));

        // Scale-out first (waiting jobs), then reimages (also serve demand), then deletes.
        if let Some(capacity) = capacity_to_set(&decision, spec) {
            if self.spend(Call::SetCapacity) {
                let from = observed.capacity;
                // Foreign instances are outside the policy's pool but inside Azure's capacity.
                match self.ports().scale_set.set_capacity(capacity + foreign).await {
                    Ok(()) => {
                        self.state().boot_clock.scaled_out(Instant::now());
                        self.metrics().scale_operation(OperationKind::SetCapacity, OperationOutcome::Ok);
                        info!(from, to = capacity, "scaled out");
                        effects.push(Effect::ScaledOut { from, to: capacity });
                    }
                    Err(err) => {
                        self.metrics().scale_operation(OperationKind::SetCapacity, OperationOutcome::Failed);
                        self.record_cloud_error(&err);
                        self.note_throttling(Call::SetCapacity, &err);
                        return Err(ReconcileError::ScaleOutFailed(err));
                    }
                }
            } else {
                requeue_after = requeue_after.min(self.wait_for_budget(Call::SetCapacity));
                effects.push(Effect::ScaleOutDeferred { to: capacity });
            }
        }
        // Parked VMs serve waiting jobs in about half a boot.
        if !decision.start.is_empty() {
            effects.extend(self.start_operation(Operation::Start, &decision.start).await);
        }
        if !decision.reimage.is_empty() {
            effects.extend(self.start_operation(Operation::Reimage, &decision.reimage).await);
            let wait = self.wait_for_budget(Call::Reimage);
            if wait > Duration::ZERO {
                requeue_after = requeue_after.min(wait.max(Duration::from_millis(100)));
            }
        }
        if !decision.delete.is_empty() {
            let effect = self.start_operation(Operation::Delete, &decision.delete).await;
            // Look again soon only for deletes that started or wait for the budget; instances
            // left alone (GitHub says busy, or backing off) do not hurry the next pass.
            if effect.is_some() {
                requeue_after = requeue_after.min(AFTER_DELETE.max(self.wait_for_budget(Call::Delete)));
            }
            effects.extend(effect);
        }
        if !decision.park.is_empty() {
            effects.extend(self.start_operation(Operation::Park, &decision.park).await);
        }

        self.publish(decision.target, effects);
        Ok(ReconcileAction { requeue_after })
    }

    /// Spend one call of `call`'s kind from the scale set's budget, if its bucket has one.
    pub(super) fn spend(&self, call: Call) -> bool {
        self.state().budget.try_spend(call)
    }

    /// Azure throttled a write: stop writing until it says we may.
    pub(super) fn note_throttling(&self, call: Call, err: &ScaleSetError) {
        if let CloudFault::Throttled { retry_after } = err.fault() {
            let pause = retry_after.unwrap_or(Duration::from_secs(15));
            self.state().budget.throttled(call, pause);
            warn!(?pause, "Azure throttled a scale-set write; pausing writes");
        }
    }

    /// How long until `call`'s bucket allows one.
    pub(super) fn wait_for_budget(&self, call: Call) -> Duration {
        self.state().budget.wait_time(call)
    }

    fn publish(&self, target: Target, effects: Vec<Effect>) {
        let (census, capacity) = {
            let state = self.state();
            (state.fleet.census(), state.fleet.capacity())
        };
        self.stop_boot_clocks();
        let metrics = self.metrics();
        for (state, n) in &census {
            metrics.instances.get_or_create(&crate::metrics::StateLabel { state: state.as_str() }).set(i64::from(*n));
        }
        metrics.desired_instances.set(i64::from(target.desired));
        metrics.actual_instances.set(i64::from(capacity));
        if let Some(left) = self.ports().github.rate_limit_remaining() {
            metrics.github_rate_limit_remaining.set(i64::try_from(left).unwrap_or(i64::MAX));
        }
        for (policy, left) in self.ports().scale_set.rate_limits() {
            metrics
                .azure_rate_limit_remaining
                .get_or_create(&crate::metrics::PolicyLabel { policy })
                .set(i64::try_from(left).unwrap_or(i64::MAX));
        }
        self.shared.reports.send_modify(|r| {
            r.pass += 1;
            r.target = target;
            r.census = census;
            r.effects = effects;
        });
    }

    /// For a reimage or delete, deregisters each instance's runner at GitHub (GitHub
    /// refuses while a job runs, and then the instance is left alone); parking and
    /// starting touch only VMs without a runner. Marks the instances still eligible and
    /// starts one batched scale-set call for them in the background.
    async fn start_operation(&self, op: Operation, ids: &[InstanceId]) -> Option<Effect> {
        let call = op_call(op);
        if self.wait_for_budget(call) > Duration::ZERO {
            return Some(Effect::OperationDeferred { operation: op, instances: ids.to_vec() });
        }
        let mut runners = RunnerList::NotRead;
        let mut cleared = Vec::new();
        let mut turns = Vec::new();
        for id in ids {
            let turn = self.turn(id).await;
            let Some(record) = self.state().fleet.get(id).cloned() else { continue };
            // A hook may have arrived since the decision: never act on a busy instance,
            // park a VM that was since given a registration, or start one twice.
            let eligible = match op {
                Operation::Reimage | Operation::Delete => record.may_recycle(),
                Operation::Park => record.may_park(),
                Operation::Start => record.may_start(),
            };
            if !eligible {
                continue;
            }
            // GitHub refused to remove this runner as busy not long ago: do not ask again yet.
            if let Some(runner) = record.runner() {
                if self.state().busy_refusals.waiting(id, &runner.name, Instant::now()) {
                    continue;
                }
            }
            if !self.deregister_before(op, &record, &mut runners).await {
                continue;
            }
            if let Some(r) = self.state().fleet.get_mut(id) {
                r.begin_operation(op, Instant::now());
            }
            cleared.push(id.clone());
            turns.push(turn);
        }
        drop(turns);
        if cleared.is_empty() {
            return None;
        }
        if !self.spend(call) {
            self.undo_operation(&cleared);
            return Some(Effect::OperationDeferred { operation: op, instances: cleared });
        }
        info!(operation = op.kind().as_str(), instances = %IdList(&cleared), "scale-set operation started");
        let path = match op {
            Operation::Reimage => Some(BootPath::Reimaged),
            Operation::Start => Some(BootPath::Started),
            Operation::Park | Operation::Delete => None,
        };
        if let Some(path) = path {
            let now = Instant::now();
            let clock = &mut self.state().boot_clock;
            cleared.iter().for_each(|id| clock.call_started(id, path, now));
        }
        let ctl = self.clone();
        let batch = cleared.clone();
        let span = tracing::Span::current();
        self.operations().spawn(tracing::Instrument::instrument(
            async move {
                let scale_set = &ctl.ports().scale_set;
                let result = match op {
                    Operation::Reimage => scale_set.reimage_instances(&batch).await,
                    Operation::Delete => scale_set.delete_instances(&batch).await,
                    Operation::Park => scale_set.deallocate_instances(&batch).await,
                    Operation::Start => scale_set.start_instances(&batch).await,
                };
                ctl.finish_operation(op, &batch, result);
            },
            span,
        ));
        Some(Effect::Started { operation: op, instances: cleared })
    }

    /// Removes `record`'s runner at GitHub before `op` touches its VM. False when the
    /// instance must be left alone this pass: GitHub says the runner is busy, or it
    /// could not be asked.
    async fn deregister_before(&self, op: Operation, record: &InstanceRecord, runners: &mut RunnerList) -> bool {
        let Some(runner) = record.runner() else { return true };
        let id = record.id();
        if record.runner_already_removed() {
            // Its job is over and this pass's listing no longer has it: GitHub removed the
            // ephemeral runner itself. A removal would answer "gone" and cost a call a job.
            debug!(instance = %id, runner = %runner.name, "runner already removed by GitHub; nothing to deregister");
            self.state().busy_refusals.forget(id);
            return true;
        }
        let runner_id = match runner.id {
            Some(rid) => rid,
            None => {
                if let RunnerList::NotRead = runners {
                    *runners = match self.ports().github.list_runners().await {
                        Ok(list) => RunnerList::Read(list),
                        Err(err) => {
                            self.metrics().api_error(Api::Github, err.kind());
                            warn!(error = %err, operation = op.kind().as_str(), "listing runners failed; instances with unknown runner ids wait for a later pass");
                            RunnerList::Failed
                        }
                    };
                }
                // Without the list this instance waits for a later pass; the others
                // (already deregistered, some of them) go ahead.
                let RunnerList::Read(list) = runners else { return false };
                match list.iter().find(|r| r.name == runner.name) {
                    Some(listed) => listed.id,
                    None => return true, // never registered at GitHub: nothing to remove
                }
            }
        };
        match self.ports().github.deregister_runner(runner_id).await {
            Ok(DeregisterOutcome::Removed | DeregisterOutcome::AlreadyGone) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::Ok);
                self.state().busy_refusals.forget(id);
                true
            }
            Ok(DeregisterOutcome::Busy) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::RefusedBusy);
                let period = self.settings().period;
                let retry_in = self.state().busy_refusals.refused(id, &runner.name, Instant::now(), period);
                warn!(instance = %id, runner = %runner.name, operation = op.kind().as_str(), ?retry_in, "GitHub says the runner is busy; instance left alone until then");
                false
            }
            Err(err) => {
                self.metrics().scale_operation(OperationKind::Deregister, OperationOutcome::Failed);
                self.metrics().api_error(Api::Github, err.kind());
                warn!(instance = %id, error = %err, operation = op.kind().as_str(), "deregistering the runner failed; instance left for a later pass");
                false
            }
        }
    }

    fn finish_operation(&self, op: Operation, ids: &[InstanceId], result: Result<(), ScaleSetError>) {
        let now = Instant::now();
        match result {
            Ok(()) => {
                self.metrics().scale_operation(op.kind(), OperationOutcome::Ok);
                let fleet = &mut self.state().fleet;
                for id in ids {
                    if let Some(r) = fleet.get_mut(id) {
                        r.finish_operation(op, now);
                    }
                }
                info!(operation = op.kind().as_str(), instances = %IdList(ids), "scale-set operation finished");
            }
            Err(err) => {
                self.metrics().scale_operation(op.kind(), OperationOutcome::Failed);
                self.record_cloud_error(&err);
                self.note_throttling(op_call(op), &err);
                warn!(operation = op.kind().as_str(), error = %err, cause = %err.fault(), "scale-set operation failed; will retry");
                self.undo_operation(ids);
            }
        }
        self.nudge();
    }

    /// The operation did not happen. Runners were already deregistered, so the
    /// instances are recycled again on a later pass.
    fn undo_operation(&self, ids: &[InstanceId]) {
        let now = Instant::now();
        let fleet = &mut self.state().fleet;
        for id in ids {
            if let Some(r) = fleet.get_mut(id) {
                r.undo_operation(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(30);

    #[test]
    fn a_busy_refusal_waits_at_least_a_period_then_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=7).map(|n| busy_backoff(PERIOD, n).as_secs()).collect();
        assert_eq!(waits, vec![30, 60, 120, 240, 240, 240, 240]);
        assert_eq!(busy_backoff(PERIOD, u32::MAX), PERIOD * BUSY_BACKOFF_CAP_PERIODS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_refused_as_busy_is_not_asked_about_again_until_its_wait_is_over() {
        let mut refusals = BusyRefusals::default();
        let id = InstanceId::new("3");
        let now = Instant::now();
        assert!(!refusals.waiting(&id, "r-3", now));
        assert_eq!(refusals.refused(&id, "r-3", now, PERIOD), PERIOD);
        assert!(refusals.waiting(&id, "r-3", now + PERIOD - Duration::from_millis(1)));
        assert!(!refusals.waiting(&id, "r-3", now + PERIOD));
        assert_eq!(refusals.refused(&id, "r-3", now + PERIOD, PERIOD), PERIOD * 2, "growing");
        assert!(!refusals.waiting(&id, "r-3-next-boot", now + PERIOD), "a new runner starts afresh");
        refusals.forget(&id);
        assert!(!refusals.waiting(&id, "r-3", now + PERIOD));
    }
}
