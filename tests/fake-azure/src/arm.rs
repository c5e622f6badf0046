//! Fake Azure Resource Manager for Uniform VM scale sets: the Compute calls the operator makes
//! (get, PATCH `sku.capacity`, list VMs with instance view, delete and reimage instances,
//! async-operation status) and the Network RP's scale-set NIC listing for private IPs.
//!
//! Instances live on tokio's clock: Creating → Running after `boot_delay`, Reimaging → Running
//! after `reimage_delay` (a new boot, same address), Deleting → gone after `delete_delay`.
//! Each write (capacity, delete, reimage) spends from a per-scale-set bucket shaped like Azure's
//! documented limit (burst 12, one more every 15 s) and is answered 429 + `Retry-After` when it
//! is empty.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::{
    fault::{Fault, Faults},
    identity::{FakeIdentity, IdentityState, TokenProblem},
    record::{self, Recorder},
    server::{self, Server},
};

/// The Compute api-version the fake serves (the operator pins the same).
pub const COMPUTE_API_VERSION: &str = "2025-04-01";
/// The Network RP's scale-set NIC operations exist only at this api-version.
pub const NETWORK_VMSS_API_VERSION: &str = "2018-10-01";
/// Name of the rate-limit policy the fake reports in `x-ms-ratelimit-remaining-resource`.
pub const WRITE_POLICY: &str = "Microsoft.Compute/VMScaleSetUpdates";

/// The calls the fake serves, for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmOp {
    GetScaleSet,
    SetCapacity,
    ListVms,
    ListNics,
    DeleteInstances,
    ReimageInstances,
    OperationStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrchestrationMode {
    Uniform,
    Flexible,
}

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstancePhase {
    Creating,
    Running,
    Reimaging,
    Deleting,
    Failed,
}

/// One scale set to create in the fake.
#[derive(Clone, Debug)]
pub struct ScaleSetSpec {
    pub name: String,
    pub orchestration_mode: OrchestrationMode,
    /// Instances that exist, already running, when the scale set is added.
    pub running: u32,
    pub sku_name: String,
    /// Computer names are `<prefix><6-digit id>`, as in a Uniform scale set.
    pub computer_name_prefix: String,
    /// Instances get private IPs <ip_first_octet>.<ip_block>.x.y (x, y from 1; .0.z is never
    /// handed out, so a test can put its own host address there).
    pub ip_block: u8,
    /// 127 by default, so simulated VMs can bind their loopback address; a test that gives
    /// each VM its own network namespace picks a private range such as 10 instead.
    pub ip_first_octet: u8,
}

impl ScaleSetSpec {
    pub fn uniform(name: &str, running: u32) -> Self {
        Self {
            name: name.to_owned(),
            orchestration_mode: OrchestrationMode::Uniform,
            running,
            sku_name: "Standard_D2s_v5".to_owned(),
            computer_name_prefix: "runner".to_owned(),
            ip_block: 1,
            ip_first_octet: 127,
        }
    }

    pub fn flexible(name: &str) -> Self {
        Self { orchestration_mode: OrchestrationMode::Flexible, ..Self::uniform(name, 0) }
    }
}

/// A write bucket: `burst` writes, one more every `refill_every`.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimit {
    pub burst: u32,
    pub refill_every: Duration,
}

impl WriteLimit {
    /// Azure's documented per-scale-set limit: 4 updates a minute, burst 12.
    pub fn azure() -> Self {
        Self { burst: 12, refill_every: Duration::from_secs(15) }
    }
}

#[derive(Clone, Debug)]
pub struct ArmSettings {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub boot_delay: Duration,
    pub reimage_delay: Duration,
    pub delete_delay: Duration,
    /// VMs and NICs per listing page; `nextLink` leads to the next.
    pub page_size: usize,
    /// `None` disables the fake's own write throttling.
    pub write_limit: Option<WriteLimit>,
    /// `Retry-After` (seconds) on async-operation answers still in progress; none when `None`.
    pub operation_retry_after: Option<u64>,
}

impl Default for ArmSettings {
    fn default() -> Self {
        Self {
            subscription_id: "00000000-0000-0000-0000-000000000001".to_owned(),
            resource_group: "rg-runners".to_owned(),
            location: "westeurope".to_owned(),
            boot_delay: Duration::from_millis(300),
            reimage_delay: Duration::from_millis(200),
            delete_delay: Duration::from_millis(200),
            page_size: 50,
            write_limit: Some(WriteLimit::azure()),
            operation_retry_after: None,
        }
    }
}

/// Accepted writes, by kind. Deliberately not `operator_sim::memory::WriteCounts`:
/// this fake shares no code with the operator's side (see the crate docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub set_capacity: u32,
    pub delete: u32,
    pub reimage: u32,
    pub deleted_ids: Vec<String>,
    pub reimaged_ids: Vec<String>,
    /// Writes refused with 429 by the fake's write limit.
    pub throttled: u32,
}

impl WriteCounts {
    pub fn total(&self) -> u32 {
        self.set_capacity + self.delete + self.reimage
    }
}

/// One instance as the test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeInstance {
    pub id: String,
    pub computer_name: String,
    pub ip: IpAddr,
    pub phase: InstancePhase,
    /// Bumped by every completed reimage (a new boot).
    pub generation: u32,
}

struct Inst {
    computer_name: String,
    ip: Ipv4Addr,
    phase: InstancePhase,
    since: Instant,
    generation: u32,
}

/// Azure's per-scale-set write limit. It does what `operator_core::budget::WriteBudget`
/// does on the operator's side, written again on purpose: a fake that reused the
/// operator's bucket could not show the operator's bucket to be wrong (crate docs).
struct Bucket {
    tokens: u32,
    last_refill: Instant,
}

impl Bucket {
    fn refill(&mut self, limit: WriteLimit, now: Instant) {
        let every = limit.refill_every.as_nanos().max(1);
        let earned = (now.saturating_duration_since(self.last_refill).as_nanos() / every) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(limit.burst);
            self.last_refill =
                if self.tokens == limit.burst { now } else { self.last_refill + limit.refill_every * earned };
        }
    }

    /// Take one write, or say how long until one is available.
    fn take(&mut self, limit: WriteLimit, now: Instant) -> Result<(), Duration> {
        self.refill(limit, now);
        if self.tokens > 0 {
            self.tokens -= 1;
            Ok(())
        } else {
            Err((self.last_refill + limit.refill_every).saturating_duration_since(now))
        }
    }
}

struct FakeScaleSet {
    spec: ScaleSetSpec,
    capacity: u32,
    next_id: u64,
    instances: BTreeMap<u64, Inst>,
    writes: WriteCounts,
    bucket: Bucket,
    busy_until: Instant,
}

impl FakeScaleSet {
    fn add_instance(&mut self, phase: InstancePhase, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let ip =
            Ipv4Addr::new(self.spec.ip_first_octet, self.spec.ip_block, (1 + id / 250) as u8, (1 + id % 250) as u8);
        let computer_name = format!("{}{:06}", self.spec.computer_name_prefix, id);
        self.instances.insert(id, Inst { computer_name, ip, phase, since: now, generation: 0 });
    }

    /// Apply every transition due by `now`.
    fn settle(&mut self, settings: &ArmSettings, now: Instant) {
        let mut gone = Vec::new();
        for (id, inst) in &mut self.instances {
            let age = now.saturating_duration_since(inst.since);
            match inst.phase {
                InstancePhase::Creating if age >= settings.boot_delay => {
                    inst.phase = InstancePhase::Running;
                    inst.since += settings.boot_delay;
                }
                InstancePhase::Reimaging if age >= settings.reimage_delay => {
                    inst.phase = InstancePhase::Running;
                    inst.generation += 1;
                    inst.since += settings.reimage_delay;
                }
                InstancePhase::Deleting if age >= settings.delete_delay => gone.push(*id),
                _ => {}
            }
        }
        for id in gone {
            self.instances.remove(&id);
        }
    }

    fn live(&self) -> impl Iterator<Item = u64> + '_ {
        self.instances.iter().filter(|(_, i)| i.phase != InstancePhase::Deleting).map(|(id, _)| *id)
    }

    fn remaining_writes(&mut self, limit: Option<WriteLimit>, now: Instant) -> Option<u32> {
        let limit = limit?;
        self.bucket.refill(limit, now);
        Some(self.bucket.tokens)
    }
}

struct Operation {
    started: SystemTime,
    length: Duration,
    done_at: Instant,
}

struct Inner {
    sets: BTreeMap<String, FakeScaleSet>,
    operations: HashMap<String, Operation>,
    next_operation: u64,
}

struct ArmState {
    settings: ArmSettings,
    identity: Arc<IdentityState>,
    base: String,
    inner: Mutex<Inner>,
    faults: Faults<ArmOp>,
}

impl ArmState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> &str {
        &self.base
    }

    fn scale_set_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}",
            self.settings.subscription_id, self.settings.resource_group, name
        )
    }

    fn operation_path(&self, kind: &str, id: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/{kind}/{id}?api-version={COMPUTE_API_VERSION}",
            self.base(),
            self.settings.subscription_id,
            self.settings.location
        )
    }

    fn start_operation(&self, inner: &mut Inner, now: Instant, done_at: Instant) -> String {
        inner.next_operation += 1;
        let id = format!("00000000-0000-4000-8000-{:012x}", inner.next_operation);
        let length = done_at.saturating_duration_since(now);
        inner.operations.insert(id.clone(), Operation { started: SystemTime::now(), length, done_at });
        id
    }
}

/// The fake Resource Manager on a loopback port. Requests need a bearer token from the
/// [`FakeIdentity`] it was started with, issued for [`FakeArm::audience`].
pub struct FakeArm {
    server: Server,
    state: Arc<ArmState>,
    recorder: Recorder,
}

impl FakeArm {
    pub async fn start(identity: &FakeIdentity, settings: ArmSettings) -> Self {
        let listener = server::bind().await;
        let addr = listener.local_addr().expect("listener address");
        let state = Arc::new(ArmState {
            settings,
            identity: identity.state.clone(),
            base: format!("http://{addr}"),
            inner: Mutex::new(Inner { sets: BTreeMap::new(), operations: HashMap::new(), next_operation: 0 }),
            faults: Faults::default(),
        });
        let recorder = Recorder::default();
        let set = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}";
        let ops = "/subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}";
        let router = Router::new()
            .route(set, get(get_scale_set).patch(patch_scale_set))
            .route(&format!("{set}/virtualMachines"), get(list_vms))
            .route(&format!("{set}/networkInterfaces"), get(list_nics))
            .route(&format!("{set}/delete"), post(delete_instances))
            .route(&format!("{set}/reimage"), post(reimage_instances))
            .route(&format!("{ops}/operations/{{id}}"), get(operation_status))
            .route(&format!("{ops}/operationResults/{{id}}"), get(operation_result))
            .fallback(|| async {
                arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", "The fake serves no such path.")
            })
            .with_state(state.clone())
            .layer(middleware::from_fn_with_state(recorder.clone(), record::record));
        let server = server::serve(listener, router);
        Self { server, state, recorder }
    }

    /// The Resource Manager endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The resource tokens must be issued for: the endpoint itself.
    pub fn audience(&self) -> String {
        self.base_url()
    }

    /// Add a scale set; returns its resource id.
    pub fn add_scale_set(&self, spec: ScaleSetSpec) -> String {
        let now = Instant::now();
        let name = spec.name.clone();
        let burst = self.state.settings.write_limit.map_or(0, |l| l.burst);
        let mut set = FakeScaleSet {
            capacity: spec.running,
            spec,
            next_id: 0,
            instances: BTreeMap::new(),
            writes: WriteCounts::default(),
            bucket: Bucket { tokens: burst, last_refill: now },
            busy_until: now,
        };
        for _ in 0..set.capacity {
            set.add_instance(InstancePhase::Running, now);
        }
        self.state.lock().sets.insert(name.to_lowercase(), set);
        self.resource_id(&name)
    }

    pub fn resource_id(&self, name: &str) -> String {
        self.state.scale_set_id(name)
    }

    /// The next `times` calls of `op` (of any call when `None`) fail with `fault`.
    pub fn inject(&self, op: Option<ArmOp>, fault: Fault, times: u32) {
        self.state.faults.push(op, fault, times);
    }

    /// Injected faults not yet consumed.
    pub fn pending_faults(&self) -> usize {
        self.state.faults.pending()
    }

    fn with_set<T>(&self, name: &str, f: impl FnOnce(&mut FakeScaleSet) -> T) -> T {
        let mut inner = self.state.lock();
        let set = inner.sets.get_mut(&name.to_lowercase()).unwrap_or_else(|| panic!("no scale set {name} in the fake"));
        set.settle(&self.state.settings, Instant::now());
        f(set)
    }

    pub fn writes(&self, name: &str) -> WriteCounts {
        self.with_set(name, |s| s.writes.clone())
    }

    /// `sku.capacity` as the fake holds it.
    pub fn capacity(&self, name: &str) -> u32 {
        self.with_set(name, |s| s.capacity)
    }

    pub fn instances(&self, name: &str) -> Vec<FakeInstance> {
        self.with_set(name, |s| {
            s.instances
                .iter()
                .map(|(id, i)| FakeInstance {
                    id: id.to_string(),
                    computer_name: i.computer_name.clone(),
                    ip: IpAddr::V4(i.ip),
                    phase: i.phase,
                    generation: i.generation,
                })
                .collect()
        })
    }

    /// The instance disappears without any call (as when someone deletes it by hand).
    pub fn vanish(&self, name: &str, instance_id: &str) {
        self.with_set(name, |s| {
            if let Some(id) = instance_id.parse::<u64>().ok().filter(|id| s.instances.contains_key(id)) {
                s.instances.remove(&id);
                s.capacity = s.capacity.saturating_sub(1);
            }
        });
    }

    /// The instance's provisioning fails.
    pub fn fail_instance(&self, name: &str, instance_id: &str) {
        self.with_set(name, |s| {
            if let Some(inst) = instance_id.parse::<u64>().ok().and_then(|id| s.instances.get_mut(&id)) {
                inst.phase = InstancePhase::Failed;
            }
        });
    }

    /// Every exchange served so far (ARM and Network calls alike).
    pub fn exchanges(&self) -> Vec<contract::Exchange> {
        self.recorder.exchanges()
    }
}

// ---- responses -------------------------------------------------------------------------

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

fn unauthorized(problem: TokenProblem) -> Response {
    let (code, message, error) = match problem {
        TokenProblem::Missing => {
            ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", None)
        }
        TokenProblem::Unknown => ("InvalidAuthenticationToken", "The access token is invalid.", Some("invalid_token")),
        TokenProblem::Expired => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
            Some("invalid_token"),
        ),
        TokenProblem::WrongAudience => (
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource.",
            Some("invalid_token"),
        ),
    };
    let mut response = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = match error {
        Some(error) => format!(
            r#"Bearer authorization_uri="https://login.microsoftonline.com/common", error="{error}", error_description="{message}""#
        ),
        None => r#"Bearer authorization_uri="https://login.microsoftonline.com/common""#.to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn throttled(retry_after: Duration) -> Response {
    let mut response = arm_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type.",
    );
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

/// Auth, injected faults and api-version, in the order ARM applies them.
async fn gate(
    state: &ArmState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    op: ArmOp,
    api_version: &str,
) -> Result<(), Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.identity.check(authorization, state.base()).map_err(unauthorized)?;
    if let Some(fault) = state.faults.take(op) {
        match fault {
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Throttle { retry_after } => return Err(throttled(retry_after)),
            Fault::ServerError => {
                return Err(arm_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An internal execution error occurred. Please retry later.",
                ))
            }
            Fault::NotFound => {
                return Err(arm_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "The entity was not found in this Azure location.",
                ))
            }
            Fault::Conflict => {
                return Err(arm_error(
                    StatusCode::CONFLICT,
                    "OperationNotAllowed",
                    "Operation is not allowed since another operation is in progress on the scale set.",
                ))
            }
            Fault::ExpiredToken => return Err(unauthorized(TokenProblem::Expired)),
            Fault::Forbidden => {
                return Err(arm_error(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailed",
                    "The client does not have authorization to perform action \
                     'Microsoft.Compute/locations/operations/read' over the scope or the scope is invalid.",
                ))
            }
        }
    }
    match query.get("api-version") {
        None => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if v != api_version => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            &format!("The fake serves api-version '{api_version}' for this call, not '{v}'."),
        )),
        Some(_) => Ok(()),
    }
}

/// Headers every answer about one scale set carries.
fn with_rate_headers(mut response: Response, remaining: Option<u32>) -> Response {
    let headers = response.headers_mut();
    if let Some(remaining) = remaining {
        if let Ok(v) = HeaderValue::from_str(&format!("{WRITE_POLICY};{remaining}")) {
            headers.insert("x-ms-ratelimit-remaining-resource", v);
        }
    }
    headers.insert("x-ms-ratelimit-remaining-subscription-reads", HeaderValue::from_static("11999"));
    response
}

type SetPath = Path<(String, String, String)>;

/// Find the scale set named in the path, settled to now.
fn find<'a>(
    state: &ArmState,
    inner: &'a mut Inner,
    (sub, rg, name): &(String, String, String),
) -> Result<&'a mut FakeScaleSet, Response> {
    let settings = &state.settings;
    if !sub.eq_ignore_ascii_case(&settings.subscription_id) {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{sub}' could not be found."),
        ));
    }
    if !rg.eq_ignore_ascii_case(&settings.resource_group) {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            &format!("Resource group '{rg}' could not be found."),
        ));
    }
    let set = inner.sets.get_mut(&name.to_lowercase()).ok_or_else(|| {
        arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource group '{rg}' was not found."),
        )
    })?;
    set.settle(settings, Instant::now());
    Ok(set)
}

fn scale_set_json(state: &ArmState, set: &FakeScaleSet, now: Instant) -> Value {
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

async fn get_scale_set(
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

fn parse_body(bytes: &Bytes) -> Result<Value, Response> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", &format!("The request content was invalid: {e}"))
    })
}

/// Spend one write from the scale set's bucket, or answer 429.
fn spend_write(state: &ArmState, set: &mut FakeScaleSet, now: Instant) -> Result<(), Response> {
    let Some(limit) = state.settings.write_limit else { return Ok(()) };
    set.bucket.take(limit, now).map_err(|wait| {
        set.writes.throttled += 1;
        with_rate_headers(throttled(wait), Some(0))
    })
}

fn async_headers(state: &ArmState, mut response: Response, operation: &str) -> Response {
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

async fn patch_scale_set(
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
    if let Err(r) = spend_write(&state, set, now) {
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
fn instance_ids(body: &Value, set: &FakeScaleSet, required: bool) -> Result<Vec<u64>, Response> {
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

async fn delete_instances(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    instance_write(state, path, query, headers, bytes, ArmOp::DeleteInstances).await
}

async fn reimage_instances(
    State(state): State<Arc<ArmState>>,
    path: SetPath,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    instance_write(state, path, query, headers, bytes, ArmOp::ReimageInstances).await
}

async fn instance_write(
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
    if op == ArmOp::ReimageInstances && numbers.iter().any(|n| set.instances[n].phase == InstancePhase::Deleting) {
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            "The operation is not allowed because an instance is being deleted.",
        );
    }
    if let Err(r) = spend_write(&state, set, now) {
        return r;
    }
    let ids = numbers.iter().map(u64::to_string);
    let delay = if op == ArmOp::DeleteInstances {
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
    } else {
        set.writes.reimage += 1;
        set.writes.reimaged_ids.extend(ids);
        for n in &numbers {
            let inst = set.instances.get_mut(n).expect("checked above");
            inst.phase = InstancePhase::Reimaging;
            inst.since = now;
        }
        settings.reimage_delay
    };
    set.busy_until = set.busy_until.max(now + delay);
    let remaining = set.remaining_writes(settings.write_limit, now);
    let operation = state.start_operation(&mut inner, now, now + delay);
    let response = with_rate_headers(StatusCode::ACCEPTED.into_response(), remaining);
    async_headers(&state, response, &operation)
}

/// The page of `items` that `$skiptoken` asks for, and the link to the next page.
fn page<T>(state: &ArmState, items: Vec<T>, path: &str, query: &HashMap<String, String>) -> (Vec<T>, Option<String>) {
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

fn vm_json(state: &ArmState, set: &FakeScaleSet, id: u64, inst: &Inst, expand: bool) -> Value {
    let vm_id = format!("{}/virtualMachines/{id}", state.scale_set_id(&set.spec.name));
    let provisioning = match inst.phase {
        InstancePhase::Creating => "Creating",
        InstancePhase::Running => "Succeeded",
        InstancePhase::Reimaging => "Updating",
        InstancePhase::Deleting => "Deleting",
        InstancePhase::Failed => "Failed",
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

async fn list_vms(
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

async fn list_nics(
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
async fn operation_status(
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
async fn operation_result(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ArmSettings {
        ArmSettings {
            boot_delay: Duration::from_secs(10),
            reimage_delay: Duration::from_secs(5),
            delete_delay: Duration::from_secs(3),
            ..ArmSettings::default()
        }
    }

    fn set(running: u32) -> FakeScaleSet {
        let now = Instant::now();
        let mut set = FakeScaleSet {
            spec: ScaleSetSpec::uniform("vmss", running),
            capacity: running,
            next_id: 0,
            instances: BTreeMap::new(),
            writes: WriteCounts::default(),
            bucket: Bucket { tokens: 12, last_refill: now },
            busy_until: now,
        };
        for _ in 0..running {
            set.add_instance(InstancePhase::Running, now);
        }
        set
    }

    #[tokio::test(start_paused = true)]
    async fn instances_boot_after_the_boot_delay_with_addresses_in_their_block() {
        let mut set = set(0);
        set.add_instance(InstancePhase::Creating, Instant::now());
        set.add_instance(InstancePhase::Creating, Instant::now());
        tokio::time::advance(Duration::from_secs(9)).await;
        set.settle(&settings(), Instant::now());
        assert!(set.instances.values().all(|i| i.phase == InstancePhase::Creating));
        tokio::time::advance(Duration::from_secs(1)).await;
        set.settle(&settings(), Instant::now());
        assert!(set.instances.values().all(|i| i.phase == InstancePhase::Running));
        let ips: Vec<_> = set.instances.values().map(|i| i.ip.to_string()).collect();
        assert_eq!(ips, ["127.1.1.1", "127.1.1.2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn reimage_is_a_new_boot_and_delete_removes_the_instance_for_good() {
        let mut set = set(2);
        let now = Instant::now();
        set.instances.get_mut(&0).unwrap().phase = InstancePhase::Reimaging;
        set.instances.get_mut(&0).unwrap().since = now;
        set.instances.get_mut(&1).unwrap().phase = InstancePhase::Deleting;
        set.instances.get_mut(&1).unwrap().since = now;
        tokio::time::advance(Duration::from_secs(5)).await;
        set.settle(&settings(), Instant::now());
        assert_eq!(set.instances.len(), 1);
        assert_eq!((set.instances[&0].phase, set.instances[&0].generation), (InstancePhase::Running, 1));
        set.add_instance(InstancePhase::Creating, Instant::now());
        assert_eq!(set.instances.keys().copied().collect::<Vec<_>>(), [0, 2], "ids are never reused");
    }

    #[tokio::test(start_paused = true)]
    async fn the_write_bucket_allows_a_burst_of_twelve_then_one_every_fifteen_seconds() {
        let mut bucket = Bucket { tokens: 12, last_refill: Instant::now() };
        let limit = WriteLimit::azure();
        for _ in 0..12 {
            bucket.take(limit, Instant::now()).unwrap();
        }
        assert_eq!(bucket.take(limit, Instant::now()), Err(Duration::from_secs(15)));
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(bucket.take(limit, Instant::now()), Ok(()));
        assert!(bucket.take(limit, Instant::now()).is_err());
    }
}
