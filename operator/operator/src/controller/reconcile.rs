//! One reconcile pass: observe, decide with the pure policy, act. Returns when to
//! look again; the loop in [`crate::run`] owns the error policy.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, instrument, warn};

use super::{Controller, ReconcileAction, ReconcileError};
use crate::{
    fleet::{Operation, Phase},
    model::InstanceId,
    policy::{self, Target},
    ports::{CloudState, DeregisterOutcome, Runner, ScaleSetError},
};

/// After starting deletes, look again soon so a replacement is not a period late.
const AFTER_DELETE: Duration = Duration::from_secs(1);

impl Controller {
    /// One level-triggered pass: observe the scale set, repair the picture from
    /// GitHub's runner list ([`super::truth`]), decide, act.
    #[instrument(skip_all, fields(pool = %self.settings().pool))]
    pub async fn reconcile(&self) -> Result<ReconcileAction, ReconcileError> {
        self.refresh_cloud().await.map_err(ReconcileError::ObserveFailed)?;
        self.remove_orphan_markers().await;
        self.audit_busy_record().await;
        self.align_with_github().await;
        let observed = self.fleet().observe(Instant::now());
        let decision = policy::decide(&self.settings().spec, &observed);
        let mut actions = Vec::new();
        let mut requeue_after = self.settings().period;

        // Scale-out first (waiting jobs), then reimages (also serve demand), then deletes.
        // With deletes pending the new capacity is set before them, counting the
        // instances about to go, so replacing a broken instance never takes the pool
        // below min; when that would pass max, the replacement waits for the deletes.
        let pending_deletes = u32::try_from(decision.delete.len()).unwrap_or(u32::MAX);
        // Foreign instances are outside the policy's pool but inside Azure's capacity.
        let foreign = self.fleet().foreign_count();
        let scale_out = decision
            .capacity
            .map(|c| c.saturating_add(pending_deletes))
            .filter(|c| pending_deletes == 0 || *c <= self.settings().spec.max);
        if let Some(capacity) = scale_out {
            if self.spend_write() {
                let from = observed.capacity;
                match self.ports().scale_set.set_capacity(capacity + foreign).await {
                    Ok(()) => {
                        self.metrics().scale_operation("set_capacity", "ok");
                        info!(from, to = capacity, "scaled out");
                        actions.push(format!("scale out {from} -> {capacity}"));
                    }
                    Err(err) => {
                        self.metrics().scale_operation("set_capacity", "failed");
                        self.record_cloud_error(&err);
                        self.note_throttling(&err);
                        return Err(ReconcileError::ScaleOutFailed(err));
                    }
                }
            } else {
                requeue_after = requeue_after.min(self.write_wait());
                actions.push(format!("scale out to {capacity} deferred: write budget spent"));
            }
        }
        if !decision.reimage.is_empty() {
            if let Some(line) = self.start_operation(Operation::Reimage, &decision.reimage).await {
                actions.push(line);
            }
            if self.write_wait() > Duration::ZERO {
                requeue_after = requeue_after.min(self.write_wait().max(Duration::from_millis(100)));
            }
        }
        if !decision.delete.is_empty() {
            if let Some(line) = self.start_operation(Operation::Delete, &decision.delete).await {
                actions.push(line);
            }
            requeue_after = requeue_after.min(AFTER_DELETE.max(self.write_wait()));
        }

        self.publish(decision.target, actions);
        Ok(ReconcileAction { requeue_after })
    }

    fn spend_write(&self) -> bool {
        self.shared.budget.lock().expect("budget lock poisoned").try_spend()
    }

    /// Azure throttled a write: stop writing until it says we may.
    fn note_throttling(&self, err: &ScaleSetError) {
        if let crate::ports::CloudFault::Throttled { retry_after } = err.fault() {
            let pause = retry_after.unwrap_or(Duration::from_secs(15));
            self.shared.budget.lock().expect("budget lock poisoned").throttled(pause);
            warn!(?pause, "Azure throttled a scale-set write; pausing writes");
        }
    }

    fn write_wait(&self) -> Duration {
        self.shared.budget.lock().expect("budget lock poisoned").wait_time()
    }

    fn publish(&self, target: Target, actions: Vec<String>) {
        let census = self.fleet().census();
        let metrics = self.metrics();
        for (state, n) in &census {
            metrics.instances.get_or_create(&crate::metrics::StateLabel { state: state.as_str() }).set(i64::from(*n));
        }
        metrics.desired_instances.set(i64::from(target.desired));
        metrics.actual_instances.set(i64::from(self.fleet().capacity()));
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
            r.actions = actions;
        });
    }

    /// Deregisters each instance's runner at GitHub (GitHub refuses while a job runs,
    /// and then the instance is left alone), marks the survivors and starts one
    /// batched scale-set call for them in the background.
    async fn start_operation(&self, op: Operation, ids: &[InstanceId]) -> Option<String> {
        let verb = match op {
            Operation::Reimage => "reimage",
            Operation::Delete => "delete",
        };
        if self.write_wait() > Duration::ZERO {
            return Some(format!("{verb} {} deferred: write budget spent", list(ids)));
        }
        // GitHub's list, fetched once and only if a runner's id is unknown; `Err` once it failed.
        let mut runners: Option<Result<Vec<Runner>, ()>> = None;
        let mut cleared = Vec::new();
        let mut turns = Vec::new();
        for id in ids {
            let turn = self.lock_instance(id).await;
            let Some(record) = self.fleet().get(id).cloned() else { continue };
            // A hook may have arrived since the decision: never act on a busy instance.
            if matches!(record.phase, Phase::Busy(_)) || record.operation.is_some() || record.foreign {
                continue;
            }
            if let Some(runner) = &record.runner {
                let runner_id = match runner.id {
                    Some(rid) => Some(rid),
                    None => {
                        if runners.is_none() {
                            let listed = self.ports().github.list_runners().await.map_err(|err| {
                                self.metrics().api_error("github", err.kind());
                                warn!(error = %err, "listing runners failed; {verb} of instances with unknown runner ids postponed");
                            });
                            runners = Some(listed);
                        }
                        // Without the list this instance waits for a later pass; the others
                        // (already deregistered, some of them) go ahead.
                        let Some(Ok(list)) = &runners else { continue };
                        list.iter().find(|r| r.name == runner.name).map(|r| r.id)
                    }
                };
                if let Some(rid) = runner_id {
                    match self.ports().github.deregister_runner(rid).await {
                        Ok(DeregisterOutcome::Removed | DeregisterOutcome::AlreadyGone) => {
                            self.metrics().scale_operation("deregister", "ok");
                        }
                        Ok(DeregisterOutcome::Busy) => {
                            self.metrics().scale_operation("deregister", "refused_busy");
                            warn!(instance = %id, runner = %runner.name, "GitHub says the runner is busy; {verb} skipped");
                            continue;
                        }
                        Err(err) => {
                            self.metrics().scale_operation("deregister", "failed");
                            self.metrics().api_error("github", err.kind());
                            warn!(instance = %id, error = %err, "deregistering the runner failed; {verb} skipped");
                            continue;
                        }
                    }
                }
            }
            if let Some(r) = self.fleet().get_mut(id) {
                r.operation = Some(op);
                r.since = Instant::now();
            }
            cleared.push(id.clone());
            turns.push(turn);
        }
        drop(turns);
        if cleared.is_empty() {
            return None;
        }
        if !self.spend_write() {
            self.undo_operation(&cleared);
            return Some(format!("{verb} {} deferred: write budget spent", list(&cleared)));
        }
        info!(instances = %list(&cleared), "{verb} started");
        let line = format!("{verb} {}", list(&cleared));
        let ctl = self.clone();
        self.operations().spawn(async move {
            let scale_set = &ctl.ports().scale_set;
            let result = match op {
                Operation::Reimage => scale_set.reimage_instances(&cleared).await,
                Operation::Delete => scale_set.delete_instances(&cleared).await,
            };
            ctl.finish_operation(op, verb, &cleared, result);
        });
        Some(line)
    }

    fn finish_operation(
        &self,
        op: Operation,
        verb: &'static str,
        ids: &[InstanceId],
        result: Result<(), ScaleSetError>,
    ) {
        let now = Instant::now();
        match result {
            Ok(()) => {
                self.metrics().scale_operation(verb, "ok");
                let mut fleet = self.fleet();
                for id in ids {
                    if let Some(r) = fleet.get_mut(id) {
                        match op {
                            Operation::Reimage => {
                                r.reset_boot(now);
                                r.cloud = CloudState::Running;
                            }
                            Operation::Delete => r.cloud = CloudState::Deleting,
                        }
                    }
                }
                info!(instances = %list(ids), "{verb} finished");
            }
            Err(err) => {
                self.metrics().scale_operation(verb, "failed");
                self.record_cloud_error(&err);
                self.note_throttling(&err);
                warn!(error = %err, cause = %err.fault(), "{verb} failed; will retry");
                self.undo_operation(ids);
            }
        }
        self.nudge();
    }

    /// The operation did not happen. Runners were already deregistered, so the
    /// instances are recycled again on a later pass.
    fn undo_operation(&self, ids: &[InstanceId]) {
        let now = Instant::now();
        let mut fleet = self.fleet();
        for id in ids {
            if let Some(r) = fleet.get_mut(id) {
                r.operation = None;
                if r.runner.is_some() && !matches!(r.phase, Phase::Busy(_)) {
                    r.set_phase(Phase::Exited, now);
                }
            }
        }
    }
}

fn list(ids: &[InstanceId]) -> String {
    let names: Vec<&str> = ids.iter().map(InstanceId::as_str).collect();
    format!("[{}]", names.join(","))
}
