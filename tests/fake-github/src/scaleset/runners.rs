//! JIT runners of a scale set and the agents endpoints (A12–A15, PROTOCOL.md §9). The runners
//! live in the REST fake's runner table, so `GET /repos/o/r/actions/runners` shows the same
//! runners with their busy and online state.

use base64::Engine as _;
use serde_json::{json, Value};

use super::{error, http::Reply, sets};
use crate::{
    server::Inner,
    state::{FakeRunner, Refusal, Scope},
};

fn reference(r: &FakeRunner) -> Value {
    json!({"id": r.id, "name": r.name, "runnerScaleSetId": r.scale_set_id.unwrap_or_default()})
}

/// The `encodedJITConfig` blob: base64 of JSON `{file name: base64 of the file}`, the files a
/// runner writes before it starts (RUN `Runner.cs`). The values only look like the real ones.
fn jit_blob(id: u64, name: &str, work_folder: &str, server: &str, secret: u64) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let runner = json!({
        "AgentId": id, "AgentName": name, "PoolId": 1, "PoolName": "Default", "DisableUpdate": true,
        "Ephemeral": true, "ServerUrl": server, "WorkFolder": if work_folder.is_empty() { "_work" } else { work_folder },
        "UseV2Flow": true, "ServerUrlV2": server,
    });
    let credentials = json!({
        "Scheme": "OAuth",
        "Data": {"clientId": format!("fake-client-{id}"), "authorizationUrl": format!("{server}_apis/oauth2/token"),
                 "requireFipsCryptography": "False"},
    });
    let key = b64.encode(format!("fake-rsa-private-key-{id}-{secret}"));
    let rsa = json!({"d": key, "dp": key, "dq": key, "exponent": "AQAB", "inverseQ": key, "modulus": key, "p": key, "q": key});
    let files = json!({
        ".runner": b64.encode(runner.to_string()),
        ".credentials": b64.encode(credentials.to_string()),
        ".credentials_rsaparams": b64.encode(rsa.to_string()),
    });
    b64.encode(files.to_string())
}

/// A12 `POST runnerscalesets/{id}/generatejitconfig` with `{"name","workFolder"}`: a registered,
/// offline runner of the set and its config; 409 `AgentExistsException` for a taken name.
pub(crate) fn generate_jit(inner: &mut Inner, set_id: u64, scope: &Scope, body: Option<&Value>, base: &str) -> Reply {
    let Some(set) = inner.broker.sets.get(&set_id) else { return error::set_not_found(set_id) };
    let (labels, group) = (set.label_names(), set.group_id);
    let name = body.and_then(|b| sets::field(b, "name")).and_then(Value::as_str).filter(|n| !n.is_empty());
    let Some(name) = name else { return error::bad_request("The runner name is required.") };
    let work_folder =
        body.and_then(|b| sets::field(b, "workFolder")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let created = inner.runners.create_scale_set_runner(scope, name, &labels, group, set_id, |id, runners| {
        let secret = runners.serial();
        jit_blob(id, name, &work_folder, base, secret)
    });
    match created {
        Ok((runner, encoded)) => Reply::json(200, json!({"runner": reference(&runner), "encodedJITConfig": encoded})),
        Err(_) => error::agent_exists(name),
    }
}

/// A13 `GET distributedtask/pools/0/agents/{id}`.
pub(crate) fn get(inner: &Inner, scope: &Scope, id: u64) -> Reply {
    match inner.runners.runner(scope, id) {
        Some(r) => Reply::json(200, reference(r)),
        None => error::agent_not_found(id),
    }
}

/// A14 `GET distributedtask/pools/0/agents?agentName=`: `{count, value}`.
pub(crate) fn by_name(inner: &Inner, scope: &Scope, name: Option<&str>) -> Reply {
    let value: Vec<Value> =
        inner.runners.runners_of(scope).iter().filter(|r| name.is_none_or(|n| r.name == n)).map(reference).collect();
    Reply::json(200, json!({"count": value.len(), "value": value}))
}

/// A15 `DELETE distributedtask/pools/0/agents/{id}`: 204, also for an unknown runner; 400
/// `JobStillRunningException` while it runs a job.
pub(crate) fn remove(inner: &mut Inner, scope: &Scope, id: u64) -> Reply {
    match inner.runners.delete(scope, id) {
        Err(Refusal::Busy { name }) => error::job_still_running(&name),
        Ok(()) | Err(_) => Reply::empty(204),
    }
}
