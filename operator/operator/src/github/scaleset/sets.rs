//! Runner groups and scale sets (PROTOCOL.md §5): A6, A1, A2, A3.

use reqwest::Method;

use super::{
    decode, single,
    transport::Policy,
    wire::{self, CreateScaleSet, LabelOut, List, RunnerGroup, RunnerSettingOut, ScaleSet, GO_ZERO_TIME},
    Endpoint, ScaleSetClient,
};
use crate::ports::{ActionsError, ScaleSetInfo, ScaleSetSpec};

impl ScaleSetClient {
    pub(super) async fn runner_group(&self, name: &str) -> Result<u64, ActionsError> {
        let answer = self
            .admin_call(
                Endpoint::RunnerGroup,
                Method::GET,
                "_apis/runtime/runnergroups/",
                &[("groupName", name)],
                None,
                Policy::REPEATABLE,
            )
            .await?;
        if answer.status != 200 {
            return Err(answer.refusal().into_error());
        }
        let list: List<RunnerGroup> = decode(&answer.body, "a runner group list")?;
        match single(list) {
            Ok(Some(group)) => Ok(group.id),
            Ok(None) => Err(ActionsError::InvalidAnswer(format!("a runner group named {name:?}"))),
            Err(n) => {
                Err(ActionsError::InvalidAnswer(format!("exactly one runner group named {name:?} (it listed {n})")))
            }
        }
    }

    pub(super) async fn find(&self, runner_group_id: u64, name: &str) -> Result<Option<ScaleSetInfo>, ActionsError> {
        let group = runner_group_id.to_string();
        let answer = self
            .admin_call(
                Endpoint::FindScaleSet,
                Method::GET,
                "_apis/runtime/runnerscalesets",
                &[("runnerGroupId", &group), ("name", name)],
                None,
                Policy::REPEATABLE,
            )
            .await?;
        if answer.status != 200 {
            return Err(answer.refusal().into_error());
        }
        let list: List<ScaleSet> = decode(&answer.body, "a scale set list")?;
        match single(list) {
            Ok(found) => found.map(scale_set_info).transpose(),
            Err(n) => Err(ActionsError::InvalidAnswer(format!(
                "exactly one scale set named {name:?} in runner group {runner_group_id} (it listed {n})"
            ))),
        }
    }

    pub(super) async fn get(&self, id: u64) -> Result<Option<ScaleSetInfo>, ActionsError> {
        let path = format!("_apis/runtime/runnerscalesets/{id}");
        let answer = self.admin_call(Endpoint::GetScaleSet, Method::GET, &path, &[], None, Policy::REPEATABLE).await?;
        match answer.status {
            // SS reads JSON `null` as "none" too.
            200 if wire::strip_bom(&answer.body).trim_ascii() == b"null" => Ok(None),
            200 => scale_set_info(decode(&answer.body, "a scale set")?).map(Some),
            404 => Ok(None),
            _ => Err(answer.refusal().into_error()),
        }
    }

    pub(super) async fn create(&self, spec: &ScaleSetSpec) -> Result<ScaleSetInfo, ActionsError> {
        // The name is the scale set's one `System` label; SS gives extra labels the
        // type `System` too (§5.4).
        let mut labels = vec![LabelOut { kind: "System", name: &spec.name }];
        labels.extend(
            spec.extra_labels.iter().filter(|l| **l != spec.name).map(|l| LabelOut { kind: "System", name: l }),
        );
        let body = CreateScaleSet {
            name: &spec.name,
            runner_group_id: spec.runner_group_id,
            labels,
            runner_setting: RunnerSettingOut { disable_update: true },
            created_on: GO_ZERO_TIME,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ActionsError::Transport(Box::new(e)))?;
        // Not repeated after a lost answer: the set may exist; the caller finds it.
        let answer = self
            .admin_call(
                Endpoint::CreateScaleSet,
                Method::POST,
                "_apis/runtime/runnerscalesets",
                &[],
                Some(body),
                Policy::ONCE,
            )
            .await?;
        if !answer.is_success() {
            return Err(answer.refusal().into_error());
        }
        let info = scale_set_info(decode(&answer.body, "the created scale set")?)?;
        self.learn_scale_set(info.id);
        Ok(info)
    }
}

fn scale_set_info(s: ScaleSet) -> Result<ScaleSetInfo, ActionsError> {
    if s.id == 0 {
        return Err(ActionsError::InvalidAnswer("a scale set id".into()));
    }
    Ok(ScaleSetInfo {
        id: s.id,
        name: s.name,
        runner_group_id: s.runner_group_id,
        labels: s.labels.into_iter().map(|l| l.name).collect(),
    })
}
