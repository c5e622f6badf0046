//! Deletes, reimages, deallocations and starts: the batched call, then its long-running
//! operation followed to the end, or (when the operation's status is forbidden) confirmed
//! from the instance list.

use super::*;
use std::collections::HashMap;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use crate::{
    model::InstanceId,
    ports::{CloudFault, CloudState},
};

impl ArmScaleSet {
    /// Follow a long-running operation until it ends.
    ///
    /// The operation's status lives at `Microsoft.Compute/locations/operations`, outside the
    /// scale set; the scaler's role, scoped to the scale set, may not read it (403
    /// `AuthorizationFailed`). Azure accepted the call all the same, so the client then
    /// confirms its effect from the instance list instead, within the same deadline.
    pub(super) async fn wait_for(&self, accepted: reqwest::Response, confirm: Confirm<'_>) -> Result<(), CloudFault> {
        let header_url = |name: &str| accepted.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let async_operation = header_url("azure-asyncoperation");
        let location = header_url("location");
        let (url, by_status) = match (async_operation, location) {
            (Some(url), _) => (self.same_origin(&url)?, true),
            (None, Some(url)) => (self.same_origin(&url)?, false),
            (None, None) => return Ok(()),
        };
        let deadline = Instant::now() + self.timings.operation_timeout;
        let mut polls = ExponentialBuilder::new()
            .with_min_delay(self.timings.poll_min)
            .with_max_delay(self.timings.poll_max)
            .without_max_times()
            .build();
        let mut wait = parse_retry_after(accepted.headers());
        loop {
            let delay = wait.take().or_else(|| polls.next()).unwrap_or(self.timings.poll_max);
            if Instant::now() + delay > deadline {
                return Err(CloudFault::OperationTimedOut(self.timings.operation_timeout));
            }
            tokio::time::sleep(delay).await;
            let response = match self.send::<()>(Method::GET, url.clone(), None).await {
                Ok(response) => response,
                Err(CloudFault::Server { status: 403, message }) => {
                    tracing::info!(
                        action = confirm.action.as_str(),
                        instances = ?confirm.ids,
                        cause = %message,
                        "the operation's status is not readable (the role is scoped to the scale set); \
                         confirming from the instance list"
                    );
                    return self.confirm_from_instances(&confirm, deadline).await;
                }
                Err(fault) => return Err(fault),
            };
            wait = parse_retry_after(response.headers()).filter(|d| *d <= self.timings.max_retry_after);
            if by_status {
                let status: OperationStatus = response.json().await.map_err(transport)?;
                match status.status.as_str() {
                    "Succeeded" => return Ok(()),
                    "Failed" | "Canceled" => {
                        let detail = status.error.map(|e| e.describe()).unwrap_or_default();
                        return Err(CloudFault::OperationFailed { status: status.status, detail });
                    }
                    _ => {}
                }
            } else if response.status() != StatusCode::ACCEPTED {
                return Ok(());
            }
        }
    }

    /// Poll the instance list until every instance of `confirm` shows the action done, or
    /// `deadline` passes.
    pub(super) async fn confirm_from_instances(
        &self,
        confirm: &Confirm<'_>,
        deadline: Instant,
    ) -> Result<(), CloudFault> {
        let mut polls = ExponentialBuilder::new()
            .with_min_delay(self.timings.poll_min)
            .with_max_delay(self.timings.poll_max)
            .without_max_times()
            .build();
        let mut progress = ConfirmProgress::default();
        loop {
            let vms = self.list_vms().await?;
            if progress.done(confirm, &vms)? {
                return Ok(());
            }
            let delay = polls.next().unwrap_or(self.timings.poll_max);
            if Instant::now() + delay > deadline {
                return Err(CloudFault::OperationTimedOut(self.timings.operation_timeout));
            }
            tokio::time::sleep(delay).await;
        }
    }

    pub(super) async fn instance_action(&self, action: InstanceAction, ids: &[InstanceId]) -> Result<(), CloudFault> {
        let body = InstanceIds { instance_ids: ids };
        let url = self.url(&format!("/{}", action.as_str()), COMPUTE_API_VERSION, &[]);
        let response = self.send(Method::POST, url, Some(&body)).await?;
        let accepted_at = azure_date(response.headers());
        self.wait_for(response, Confirm { action, ids, accepted_at }).await
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InstanceAction {
    Delete,
    Reimage,
    Deallocate,
    Start,
}

impl InstanceAction {
    /// The last segment of the action's path, `POST {vmss}/{action}`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Reimage => "reimage",
            Self::Deallocate => "deallocate",
            Self::Start => "start",
        }
    }
}

/// An accepted instance action, to confirm from the instance list.
pub(super) struct Confirm<'a> {
    pub(super) action: InstanceAction,
    pub(super) ids: &'a [InstanceId],
    /// Azure's clock when it accepted the call (its `Date` header).
    pub(super) accepted_at: Option<time::OffsetDateTime>,
}

/// What the instance listings have shown so far.
#[derive(Default)]
pub(super) struct ConfirmProgress {
    /// Instances seen not running (reimaging, starting) since the action was accepted.
    pub(super) seen_in_progress: std::collections::HashSet<String>,
}

impl ConfirmProgress {
    /// Is the action done for every instance, as far as `vms` shows?
    ///
    /// A delete is done when the instance is gone. A reimage is done when the instance runs
    /// again after having been seen reimaging, or when its provisioning finished after Azure
    /// accepted the call. A deallocation is done when the instance is deallocated; a start
    /// when it runs (it was deallocated when the call was accepted, so running means
    /// started). An instance that failed fails the operation; one that is gone needs no
    /// action any more (the next pass sees it gone).
    pub(super) fn done(&mut self, confirm: &Confirm<'_>, vms: &[ScaleSetVm]) -> Result<bool, CloudFault> {
        let by_id: HashMap<&str, &ScaleSetVm> = vms.iter().map(|vm| (vm.instance_id.as_str(), vm)).collect();
        let mut all = true;
        for id in confirm.ids {
            let Some(vm) = by_id.get(id.as_str()) else { continue };
            let state = cloud_state(vm.properties.as_ref());
            let failed = || CloudFault::OperationFailed {
                status: "Failed".into(),
                detail: format!("instance {id} failed provisioning after the {}", confirm.action.as_str()),
            };
            let done = match confirm.action {
                InstanceAction::Delete => false,
                InstanceAction::Deallocate => match state {
                    CloudState::Failed => return Err(failed()),
                    CloudState::Deallocated => true,
                    _ => false,
                },
                InstanceAction::Start => match state {
                    CloudState::Failed => return Err(failed()),
                    CloudState::Running => true,
                    _ => false,
                },
                InstanceAction::Reimage => match state {
                    CloudState::Failed => return Err(failed()),
                    CloudState::Running => {
                        self.seen_in_progress.contains(id.as_str())
                            || ready_since(vm.properties.as_ref())
                                .zip(confirm.accepted_at)
                                .is_some_and(|(ready, accepted)| ready >= accepted)
                    }
                    CloudState::Creating
                    | CloudState::Reimaging
                    | CloudState::Deleting
                    | CloudState::Deallocating
                    | CloudState::Deallocated => {
                        self.seen_in_progress.insert(id.as_str().to_owned());
                        false
                    }
                },
            };
            all &= done;
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, provisioning: &str, succeeded_at: Option<&str>) -> ScaleSetVm {
        let time = succeeded_at.map(|t| format!(r#","time":"{t}""#)).unwrap_or_default();
        let json = format!(
            r#"{{"instanceId":"{id}","properties":{{"provisioningState":"{provisioning}",
                "instanceView":{{"statuses":[{{"code":"ProvisioningState/{}"{time}}},{{"code":"PowerState/running"}}]}}}}}}"#,
            provisioning.to_ascii_lowercase()
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn a_reimage_is_confirmed_once_the_instance_runs_again_after_reimaging() {
        let ids = [InstanceId::new("0")];
        let confirm = Confirm { action: InstanceAction::Reimage, ids: &ids, accepted_at: None };
        let mut progress = ConfirmProgress::default();
        assert!(!progress.done(&confirm, &[listed("0", "Succeeded", None)]).unwrap(), "not yet seen reimaging");
        assert!(!progress.done(&confirm, &[listed("0", "Updating", None)]).unwrap());
        assert!(progress.done(&confirm, &[listed("0", "Succeeded", None)]).unwrap());
        assert!(matches!(
            ConfirmProgress::default().done(&confirm, &[listed("0", "Failed", None)]),
            Err(CloudFault::OperationFailed { .. })
        ));
    }

    #[test]
    fn a_reimage_that_finished_between_two_listings_is_confirmed_by_its_provisioning_time() {
        let ids = [InstanceId::new("0")];
        let accepted =
            time::OffsetDateTime::parse("2026-12-01T08:00:00Z", &time::format_description::well_known::Rfc3339);
        let confirm = Confirm { action: InstanceAction::Reimage, ids: &ids, accepted_at: Some(accepted.unwrap()) };
        let before = listed("0", "Succeeded", Some("2026-12-01T07:40:00Z"));
        assert!(!ConfirmProgress::default().done(&confirm, &[before]).unwrap(), "provisioned before the reimage");
        let after = listed("0", "Succeeded", Some("2026-12-01T08:03:00Z"));
        assert!(ConfirmProgress::default().done(&confirm, &[after]).unwrap());
    }

    fn powered(id: &str, provisioning: &str, power: &str) -> ScaleSetVm {
        let json = format!(
            r#"{{"instanceId":"{id}","properties":{{"provisioningState":"{provisioning}",
                "instanceView":{{"statuses":[{{"code":"PowerState/{power}"}}]}}}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn a_deallocation_is_confirmed_once_the_instance_is_deallocated() {
        let ids = [InstanceId::new("0"), InstanceId::new("1")];
        let confirm = Confirm { action: InstanceAction::Deallocate, ids: &ids, accepted_at: None };
        let mut progress = ConfirmProgress::default();
        let halfway = [powered("0", "Updating", "deallocating"), powered("1", "Succeeded", "deallocated")];
        assert!(!progress.done(&confirm, &halfway).unwrap());
        let done = [powered("0", "Succeeded", "deallocated"), powered("1", "Succeeded", "deallocated")];
        assert!(progress.done(&confirm, &done).unwrap());
        assert!(progress.done(&confirm, &[powered("0", "Succeeded", "deallocated")]).unwrap(), "1 is gone");
        assert!(matches!(
            progress.done(&confirm, &[powered("0", "Failed", "deallocated")]),
            Err(CloudFault::OperationFailed { .. })
        ));
    }

    #[test]
    fn a_start_is_confirmed_once_the_instance_runs() {
        let ids = [InstanceId::new("0")];
        let confirm = Confirm { action: InstanceAction::Start, ids: &ids, accepted_at: None };
        let mut progress = ConfirmProgress::default();
        assert!(!progress.done(&confirm, &[powered("0", "Succeeded", "deallocated")]).unwrap());
        assert!(!progress.done(&confirm, &[powered("0", "Updating", "starting")]).unwrap());
        assert!(progress.done(&confirm, &[powered("0", "Succeeded", "running")]).unwrap());
    }

    #[test]
    fn a_delete_is_confirmed_once_the_instances_are_gone() {
        let ids = [InstanceId::new("1"), InstanceId::new("2")];
        let confirm = Confirm { action: InstanceAction::Delete, ids: &ids, accepted_at: None };
        let mut progress = ConfirmProgress::default();
        assert!(!progress.done(&confirm, &[listed("1", "Deleting", None), listed("3", "Succeeded", None)]).unwrap());
        assert!(progress.done(&confirm, &[listed("3", "Succeeded", None)]).unwrap());
    }
}
