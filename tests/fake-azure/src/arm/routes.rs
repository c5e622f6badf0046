//! The handlers of the Compute and Network calls the operator makes, and the JSON they render.

use super::*;
use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use tokio::time::Instant;

pub(super) fn scale_set_json(state: &ArmState, set: &FakeScaleSet, now: Instant) -> Value {
    let spec = &set.spec;
    let mut properties = json!({
        "provisioningState": if set.busy_until > now { "Updating" } else { "Succeeded" },
        "orchestrationMode": match spec.orchestration_mode {
            OrchestrationMode::Uniform => "Uniform",
            OrchestrationMode::Flexible => "Flexible",
        },
        "singlePlacementGroup": false,
        "platformFaultDomainCount": 1,
        "uniqueId": format!("00000000-0000-4000-9000-{:012x}", spec.name.len()),
    });
    if spec.orchestration_mode == OrchestrationMode::Uniform {
        properties["overprovision"] = json!(false);
        properties["upgradePolicy"] = json!({ "mode": "Manual" });
    }
    json!({
        "id": state.scale_set_id(&spec.name),
        "name": spec.name,
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": state.settings.location,
        "sku": { "name": spec.sku_name, "tier": "Standard", "capacity": set.capacity },
        "properties": properties,
    })
}

pub(super) async fn get_scale_set(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, ArmOp::GetScaleSet, COMPUTE_API_VERSION).await {
        return r;
    }
    let now = Instant::now();
    let mut inner = state.lock();
    let set = match find(&state, &mut inner, &path) {
        Ok(set) => set,
        Err(r) => return r,
    };
    let body = scale_set_json(&state, set, now);
    let remaining = set.remaining_writes(state.settings.write_limit, now);
    with_rate_headers(Json(body).into_response(), remaining)
}

pub(super) fn parse_body(bytes: &Bytes) -> Result<Value, Response> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", &format!("The request content was invalid: {e}"))
    })
}

/// Spend one write from the bucket of the policy `op` falls under, or answer 429: capacity
/// changes spend the Update policy's, deletes and deallocations the Delete policy's (the page
/// lists Deallocate under it), and batched reimages and starts none (the page: Update policy,
/// "only subscription level policies are applicable").
pub(super) fn spend_write(state: &ArmState, set: &mut FakeScaleSet, op: ArmOp, now: Instant) -> Result<(), Response> {
    let Some(limit) = state.settings.write_limit else { return Ok(()) };
    let bucket = match op {
        ArmOp::DeleteInstances | ArmOp::DeallocateInstances => &mut set.delete_bucket,
        ArmOp::ReimageInstances | ArmOp::StartInstances => return Ok(()),
        _ => &mut set.update_bucket,
    };
    bucket.take(limit, now).map_err(|wait| {
        set.writes.throttled += 1;
        with_rate_headers(throttled(wait), Some(0))
    })
}

pub(super) fn async_headers(state: &ArmState, mut response: Response, operation: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&state.operation_path("operations", operation)) {
        headers.insert("azure-asyncoperation", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state.operation_path("operationResults", operation)) {
        headers.insert(header::LOCATION, v);
    }
    if let Some(seconds) = state.settings.operation_retry_after {
        headers.insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

pub(super) async fn patch_scale_set(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, ArmOp::SetCapacity, COMPUTE_API_VERSION).await {
        return r;
    }
    let body = match parse_body(&bytes) {
        Ok(body) => body,
        Err(r) => return r,
    };
    let Some(capacity) = body.pointer("/sku/capacity").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok())
    else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The fake updates only 'sku.capacity', a whole number.",
        );
    };
    let now = Instant::now();
    let settings = state.settings.clone();
    let mut inner = state.lock();
    let set = match find(&state, &mut inner, &path) {
        Ok(set) => set,
        Err(r) => return r,
    };
    if set.spec.orchestration_mode == OrchestrationMode::Flexible {
        return arm_error(StatusCode::BAD_REQUEST, "InvalidParameter", "The fake scales Uniform scale sets only.");
    }
    if let Err(r) = spend_write(&state, set, ArmOp::SetCapacity, now) {
        return r;
    }
    set.writes.set_capacity += 1;
    let live: Vec<u64> = set.live().collect();
    let current = live.len() as u32;
    for _ in current..capacity {
        set.add_instance(InstancePhase::Creating, now);
    }
    // Shrinking removes the highest ids, as Azure's default scale-in policy may.
    for id in live.iter().rev().take(current.saturating_sub(capacity) as usize) {
        if let Some(inst) = set.instances.get_mut(id) {
            inst.phase = InstancePhase::Deleting;
            inst.since = now;
        }
    }
    set.capacity = capacity;
    let done_at = now + if capacity > current { settings.boot_delay } else { settings.delete_delay };
    set.busy_until = set.busy_until.max(done_at);
    let body = scale_set_json(&state, set, now);
    let remaining = set.remaining_writes(settings.write_limit, now);
    let operation = state.start_operation(&mut inner, now, done_at);
    let response = with_rate_headers(Json(body).into_response(), remaining);
    let mut response = async_headers(&state, response, &operation);
    // PATCH answers with the resource; only Azure-AsyncOperation is sent, never Location.
    response.headers_mut().remove(header::LOCATION);
    response
}

/// `{"instanceIds": [...]}` parsed into known instance numbers; 404 for any id that does not exist.
pub(super) fn instance_ids(body: &Value, set: &FakeScaleSet, required: bool) -> Result<Vec<u64>, Response> {
    let ids = match body.get("instanceIds") {
        Some(Value::Array(ids)) => ids,
        Some(_) => {
            return Err(arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "'instanceIds' must be an array of strings.",
            ))
        }
        None if required => {
            return Err(arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "Required parameter 'instanceIds' is missing (null).",
            ))
        }
        None => return Ok(set.instances.keys().copied().collect()),
    };
    if ids.is_empty() {
        return Err(arm_error(StatusCode::BAD_REQUEST, "InvalidParameter", "'instanceIds' must not be empty."));
    }
    ids.iter()
        .map(|id| {
            let text = id.as_str().unwrap_or_default();
            text.parse::<u64>().ok().filter(|n| set.instances.contains_key(n)).ok_or_else(|| {
                arm_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("The instance id '{text}' was not found in the virtual machine scale set."),
                )
            })
        })
        .collect()
}

pub(super) async fn delete_instances(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    instance_write(state, path, query, headers, bytes, ArmOp::DeleteInstances).await
}

pub(super) async fn reimage_instances(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    instance_write(state, path, query, headers, bytes, ArmOp::ReimageInstances).await
}

pub(super) async fn deallocate_instances(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    instance_write(state, path, query, headers, bytes, ArmOp::DeallocateInstances).await
}

pub(super) async fn start_instances(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    instance_write(state, path, query, headers, bytes, ArmOp::StartInstances).await
}

/// The phases in which an instance refuses `op` with 409 (another operation holds it).
fn conflicts(op: ArmOp, phase: InstancePhase) -> bool {
    use InstancePhase::*;
    match op {
        ArmOp::ReimageInstances => matches!(phase, Deleting | Deallocating | Starting),
        ArmOp::DeallocateInstances => matches!(phase, Deleting | Creating | Reimaging | Starting),
        ArmOp::StartInstances => matches!(phase, Deleting | Creating | Reimaging | Deallocating),
        _ => false,
    }
}

pub(super) async fn instance_write(
    state: Arc<ArmState>,
    path: SetPath,
    query: HashMap<String, String>,
    headers: HeaderMap,
    bytes: Bytes,
    op: ArmOp,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, op, COMPUTE_API_VERSION).await {
        return r;
    }
    let body = match parse_body(&bytes) {
        Ok(body) => body,
        Err(r) => return r,
    };
    let now = Instant::now();
    let settings = state.settings.clone();
    let mut inner = state.lock();
    let set = match find(&state, &mut inner, &path) {
        Ok(set) => set,
        Err(r) => return r,
    };
    let numbers = match instance_ids(&body, set, op == ArmOp::DeleteInstances) {
        Ok(numbers) => numbers,
        Err(r) => return r,
    };
    if let Some(n) = numbers.iter().find(|n| conflicts(op, set.instances[n].phase)) {
        let phase = set.instances[n].phase;
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            &format!("The operation is not allowed because instance {n} is {phase:?}."),
        );
    }
    if let Err(r) = spend_write(&state, set, op, now) {
        return r;
    }
    let ids = numbers.iter().map(u64::to_string);
    let delay = match op {
        ArmOp::DeleteInstances => {
            set.writes.delete += 1;
            set.writes.deleted_ids.extend(ids);
            for n in &numbers {
                let inst = set.instances.get_mut(n).expect("checked above");
                if inst.phase != InstancePhase::Deleting {
                    inst.phase = InstancePhase::Deleting;
                    inst.since = now;
                    set.capacity = set.capacity.saturating_sub(1);
                }
            }
            settings.delete_delay
        }
        ArmOp::DeallocateInstances => {
            set.writes.deallocate += 1;
            set.writes.deallocated_ids.extend(ids);
            // Deallocated or deallocating already: nothing more to do for that one.
            for n in &numbers {
                let inst = set.instances.get_mut(n).expect("checked above");
                if !matches!(inst.phase, InstancePhase::Deallocating | InstancePhase::Deallocated) {
                    inst.phase = InstancePhase::Deallocating;
                    inst.since = now;
                }
            }
            settings.deallocate_delay
        }
        ArmOp::StartInstances => {
            set.writes.start += 1;
            set.writes.started_ids.extend(ids);
            // Running already: a start changes nothing (Azure answers success).
            for n in &numbers {
                let inst = set.instances.get_mut(n).expect("checked above");
                if matches!(inst.phase, InstancePhase::Deallocated | InstancePhase::Failed) {
                    inst.phase = InstancePhase::Starting;
                    inst.since = now;
                }
            }
            settings.start_delay
        }
        _ => {
            set.writes.reimage += 1;
            set.writes.reimaged_ids.extend(ids);
            for n in &numbers {
                let inst = set.instances.get_mut(n).expect("checked above");
                inst.phase = InstancePhase::Reimaging;
                inst.since = now;
            }
            settings.reimage_delay
        }
    };
    set.busy_until = set.busy_until.max(now + delay);
    let remaining = set.remaining_writes(settings.write_limit, now);
    let operation = state.start_operation(&mut inner, now, now + delay);
    let response = with_rate_headers(StatusCode::ACCEPTED.into_response(), remaining);
    async_headers(&state, response, &operation)
}

/// The page of `items` that `$skiptoken` asks for, and the link to the next page.
pub(super) fn page<T>(
    state: &ArmState,
    items: Vec<T>,
    path: &str,
    query: &HashMap<String, String>,
) -> (Vec<T>, Option<String>) {
    let skip: usize = query.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let size = state.settings.page_size.max(1);
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(skip).take(size).collect();
    let next = (skip + size < total).then(|| {
        let mut link = format!("{}{path}?", state.base());
        for (k, v) in query.iter().filter(|(k, _)| k.as_str() != "$skiptoken") {
            link.push_str(&format!("{k}={v}&"));
        }
        link.push_str(&format!("$skiptoken={}", skip + size));
        link
    });
    (page, next)
}

pub(super) fn vm_json(state: &ArmState, set: &FakeScaleSet, id: u64, inst: &Inst, expand: bool) -> Value {
    let vm_id = format!("{}/virtualMachines/{id}", state.scale_set_id(&set.spec.name));
    let provisioning = match inst.phase {
        InstancePhase::Creating => "Creating",
        InstancePhase::Running => "Succeeded",
        InstancePhase::Reimaging => "Updating",
        InstancePhase::Deleting => "Deleting",
        InstancePhase::Failed => "Failed",
        InstancePhase::Deallocating | InstancePhase::Starting => "Updating",
        InstancePhase::Deallocated => "Succeeded",
    };
    let mut properties = json!({
        "latestModelApplied": true,
        "vmId": format!("00000000-0000-4000-a000-{:012x}", id),
        "provisioningState": provisioning,
        "osProfile": {
            "computerName": inst.computer_name,
            "adminUsername": "runner",
            "linuxConfiguration": { "disablePasswordAuthentication": true },
        },
        "networkProfile": {
            "networkInterfaces": [{ "id": format!("{vm_id}/networkInterfaces/nic0") }],
        },
    });
    if expand {
        let (provisioning_status, power) = match inst.phase {
            InstancePhase::Creating => ("ProvisioningState/creating", "PowerState/starting"),
            InstancePhase::Running => ("ProvisioningState/succeeded", "PowerState/running"),
            InstancePhase::Reimaging => ("ProvisioningState/updating", "PowerState/starting"),
            InstancePhase::Deleting => ("ProvisioningState/deleting", "PowerState/deallocating"),
            InstancePhase::Failed => ("ProvisioningState/failed/InternalOperationError", "PowerState/stopped"),
            InstancePhase::Deallocating => ("ProvisioningState/updating", "PowerState/deallocating"),
            InstancePhase::Deallocated => ("ProvisioningState/succeeded", "PowerState/deallocated"),
            InstancePhase::Starting => ("ProvisioningState/updating", "PowerState/starting"),
        };
        let level = if inst.phase == InstancePhase::Failed { "Error" } else { "Info" };
        properties["instanceView"] = json!({
            "platformUpdateDomain": 0,
            "platformFaultDomain": 0,
            "statuses": [
                { "code": provisioning_status, "level": level, "displayStatus": provisioning_status.replace('/', " ") },
                { "code": power, "level": "Info", "displayStatus": power.trim_start_matches("PowerState/") },
            ],
        });
    }
    json!({
        "id": vm_id,
        "name": format!("{}_{id}", set.spec.name),
        "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
        "location": state.settings.location,
        "instanceId": id.to_string(),
        "sku": { "name": set.spec.sku_name, "tier": "Standard" },
        "properties": properties,
    })
}

pub(super) async fn list_vms(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, ArmOp::ListVms, COMPUTE_API_VERSION).await {
        return r;
    }
    let now = Instant::now();
    let mut inner = state.lock();
    let set = match find(&state, &mut inner, &path) {
        Ok(set) => set,
        Err(r) => return r,
    };
    let expand = query.get("$expand").is_some_and(|e| e == "instanceView");
    let vms: Vec<Value> = set.instances.iter().map(|(id, inst)| vm_json(&state, set, *id, inst, expand)).collect();
    let (value, next) = page(&state, vms, uri.path(), &query);
    let mut body = json!({ "value": value });
    if let Some(next) = next {
        body["nextLink"] = json!(next);
    }
    let remaining = set.remaining_writes(state.settings.write_limit, now);
    with_rate_headers(Json(body).into_response(), remaining)
}

pub(super) async fn list_nics(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, ArmOp::ListNics, NETWORK_VMSS_API_VERSION).await {
        return r;
    }
    let mut inner = state.lock();
    let set = match find(&state, &mut inner, &path) {
        Ok(set) => set,
        Err(r) => return r,
    };
    let set_id = state.scale_set_id(&set.spec.name);
    let nics: Vec<Value> = set
        .instances
        .iter()
        .map(|(id, inst)| {
            let vm_id = format!("{set_id}/virtualMachines/{id}");
            let nic_id = format!("{vm_id}/networkInterfaces/nic0");
            json!({
                "id": nic_id,
                "name": "nic0",
                "location": state.settings.location,
                "properties": {
                    "provisioningState": "Succeeded",
                    "primary": true,
                    "ipConfigurations": [{
                        "id": format!("{nic_id}/ipConfigurations/ipconfig0"),
                        "name": "ipconfig0",
                        "properties": {
                            "provisioningState": "Succeeded",
                            "privateIPAddress": inst.ip.to_string(),
                            "privateIPAllocationMethod": "Dynamic",
                            "privateIPAddressVersion": "IPv4",
                            "primary": true,
                        },
                    }],
                    "virtualMachine": { "id": vm_id },
                },
            })
        })
        .collect();
    let (value, next) = page(&state, nics, uri.path(), &query);
    let mut body = json!({ "value": value });
    if let Some(next) = next {
        body["nextLink"] = json!(next);
    }
    with_rate_headers(Json(body).into_response(), None)
}

/// `Azure-AsyncOperation`: the operation's status document.
pub(super) async fn operation_status(
    State(state): State<Arc<ArmState>>,
    Path((_sub, _location, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, ArmOp::OperationStatus, COMPUTE_API_VERSION).await {
        return r;
    }
    let now = Instant::now();
    let inner = state.lock();
    let Some(operation) = inner.operations.get(&id) else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", "The operation was not found.");
    };
    let mut body = json!({
        "name": id,
        "startTime": humantime::format_rfc3339_millis(operation.started).to_string(),
        "status": "InProgress",
    });
    let done = now >= operation.done_at;
    if done {
        body["status"] = json!("Succeeded");
        let ended = operation.started + operation.length;
        body["endTime"] = json!(humantime::format_rfc3339_millis(ended).to_string());
    }
    let mut response = Json(body).into_response();
    if let (false, Some(seconds)) = (done, state.settings.operation_retry_after) {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// `Location`: 202 while the operation runs, 200 once it is done.
pub(super) async fn operation_result(
    State(state): State<Arc<ArmState>>,
    Path((_sub, _location, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, ArmOp::OperationStatus, COMPUTE_API_VERSION).await {
        return r;
    }
    let done_at = match state.lock().operations.get(&id) {
        Some(operation) => operation.done_at,
        None => return arm_error(StatusCode::NOT_FOUND, "NotFound", "The operation was not found."),
    };
    if Instant::now() >= done_at {
        return StatusCode::OK.into_response();
    }
    let response = StatusCode::ACCEPTED.into_response();
    async_headers(&state, response, &id)
}
