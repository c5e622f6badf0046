//! Runners of the scale set (PROTOCOL.md §9): JIT configs (A12), lookup by name (A14)
//! and removal (A15).
//!
//! A name that is taken (409 `AgentExistsException`, typically a `generatejitconfig`
//! repeated after a lost answer) is recovered as ARC does (§9.4): look the runner up;
//! gone → generate again; of this scale set → remove it, then generate again; of
//! another set, or busy → `RunnerExists`. One recovery per call: a second 409 is the
//! caller's.

use reqwest::Method;
use tracing::{debug, warn};

use super::{
    errors::{AGENT_EXISTS, JOB_STILL_RUNNING},
    transport::Policy,
    wire::{JitAnswer, JitRequest, List, RunnerReference},
    Endpoint, ScaleSetClient,
};
use crate::ports::{ActionsError, JitConfig, RemoveOutcome, ScaleSetApi, ScaleSetRunner};

/// `pools/0` is fixed (§4).
const AGENTS: &str = "_apis/distributedtask/pools/0/agents";

/// What one A12 attempt gave.
enum Attempt {
    Issued(JitConfig),
    NameTaken,
}

/// A12's answer checked: SS does not, and a config without a runner id or blob would
/// start a VM that can never register (§9.1).
fn checked_config(answer: JitAnswer) -> Result<JitConfig, ActionsError> {
    let runner_id = answer.runner.map(|r| r.id).filter(|id| *id != 0);
    let encoded = answer.encoded_jit_config.filter(|e| !e.is_empty());
    match (runner_id, encoded) {
        (Some(runner_id), Some(encoded)) => Ok(JitConfig { runner_id, encoded }),
        (None, _) => Err(ActionsError::InvalidAnswer("a runner id in the JIT config".into())),
        (_, None) => Err(ActionsError::InvalidAnswer("an encodedJITConfig".into())),
    }
}

fn runner(r: RunnerReference) -> Result<ScaleSetRunner, ActionsError> {
    if r.id == 0 {
        return Err(ActionsError::InvalidAnswer("a runner id".into()));
    }
    Ok(ScaleSetRunner { id: r.id, name: r.name, scale_set_id: r.scale_set_id })
}

impl ScaleSetClient {
    async fn generate_once(&self, scale_set_id: u64, name: &str) -> Result<Attempt, ActionsError> {
        let body = serde_json::to_vec(&JitRequest { name, work_folder: &self.settings.work_folder })
            .map_err(|e| ActionsError::Transport(Box::new(e)))?;
        let path = format!("_apis/runtime/runnerscalesets/{scale_set_id}/generatejitconfig");
        // Repeating after a lost answer is safe here: the 409 it may meet is recovered.
        let answer = self
            .admin_call(Endpoint::GenerateJitConfig, Method::POST, &path, &[], Some(body), Policy::REPEATABLE)
            .await?;
        match answer.status {
            200..=299 => checked_config(super::decode(&answer.body, "a JIT config")?).map(Attempt::Issued),
            409 => Ok(Attempt::NameTaken),
            400 if answer.refusal().is(AGENT_EXISTS) => Ok(Attempt::NameTaken),
            404 => Err(ActionsError::ScaleSetNotFound),
            _ => Err(answer.refusal().into_error()),
        }
    }

    pub(super) async fn jit_config(&self, scale_set_id: u64, name: &str) -> Result<JitConfig, ActionsError> {
        if let Attempt::Issued(config) = self.generate_once(scale_set_id, name).await? {
            return Ok(config);
        }
        let taken = || ActionsError::RunnerExists { name: name.to_owned() };
        match self.runner_by_name(name).await? {
            None => debug!(runner = name, "the runner name was taken but its runner is gone; generating again"),
            Some(r) if r.scale_set_id == scale_set_id => match self.remove_runner(r.id).await? {
                RemoveOutcome::Removed => {
                    debug!(
                        runner = name,
                        runner_id = r.id,
                        "removed the stale runner of the same name; generating again"
                    )
                }
                RemoveOutcome::Busy => return Err(taken()),
            },
            Some(r) => {
                warn!(runner = name, other_scale_set = r.scale_set_id, "a runner of another scale set has this name");
                return Err(taken());
            }
        }
        match self.generate_once(scale_set_id, name).await? {
            Attempt::Issued(config) => Ok(config),
            Attempt::NameTaken => Err(taken()),
        }
    }

    /// A14.
    pub(super) async fn find_runner(&self, name: &str) -> Result<Option<ScaleSetRunner>, ActionsError> {
        let answer = self
            .admin_call(Endpoint::RunnerByName, Method::GET, AGENTS, &[("agentName", name)], None, Policy::REPEATABLE)
            .await?;
        if answer.status != 200 {
            return Err(answer.refusal().into_error());
        }
        let list: List<RunnerReference> = super::decode(&answer.body, "a runner list")?;
        match super::single(list) {
            Ok(found) => found.map(runner).transpose(),
            Err(n) => Err(ActionsError::InvalidAnswer(format!("exactly one runner named {name:?} (it listed {n})"))),
        }
    }

    /// A15: 204 also for an unknown runner; 400 `JobStillRunningException` while busy.
    pub(super) async fn delete_runner(&self, runner_id: u64) -> Result<RemoveOutcome, ActionsError> {
        let path = format!("{AGENTS}/{runner_id}");
        let answer =
            self.admin_call(Endpoint::RemoveRunner, Method::DELETE, &path, &[], None, Policy::REPEATABLE).await?;
        match answer.status {
            200..=299 | 404 => Ok(RemoveOutcome::Removed),
            400 => {
                let refusal = answer.refusal();
                if refusal.is(JOB_STILL_RUNNING) {
                    Ok(RemoveOutcome::Busy)
                } else {
                    Err(refusal.into_error())
                }
            }
            _ => Err(answer.refusal().into_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::scaleset::wire;

    #[test]
    fn a_jit_answer_needs_a_runner_id_and_a_config() {
        let ok: JitAnswer = wire::decode(
            br#"{"runner":{"id":42,"name":"runner-1a2b3c4d","runnerScaleSetId":7},"encodedJITConfig":"eyIucnVubmVyIjoi"}"#,
        )
        .unwrap();
        let config = checked_config(ok).unwrap();
        assert_eq!(config.runner_id, 42);
        // SS's test decodes this list into an empty config without an error (§9.1).
        let list: JitAnswer = wire::decode(br#"{"count":1,"value":[{"id":1}]}"#).unwrap();
        assert!(matches!(checked_config(list), Err(ActionsError::InvalidAnswer(m)) if m.contains("runner id")));
        let no_blob: JitAnswer = wire::decode(br#"{"runner":{"id":42},"encodedJITConfig":""}"#).unwrap();
        assert!(
            matches!(checked_config(no_blob), Err(ActionsError::InvalidAnswer(m)) if m.contains("encodedJITConfig"))
        );
    }
}
