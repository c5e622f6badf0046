//! The runner scale set through Azure Resource Manager (REST with reqwest).
//!
//! Calls, all on the one scale set named by its resource id:
//!
//! | port method | request |
//! |---|---|
//! | `capacity`, [`ArmScaleSet::verify`] | `GET {vmss}` (Compute) |
//! | `set_capacity` | `PATCH {vmss}` with `{"sku":{"capacity":N}}` |
//! | `list_instances` | `GET {vmss}/virtualMachines?$expand=instanceView` (Compute) joined with `GET {vmss}/networkInterfaces` (Network, api-version 2018-10-01, the only one serving scale-set NICs) for the private IPs |
//! | `delete_instances` | `POST {vmss}/delete` with `{"instanceIds":[...]}` |
//! | `reimage_instances` | `POST {vmss}/reimage` with `{"instanceIds":[...]}` |
//!
//! Deletes and reimages are long-running: the client follows `Azure-AsyncOperation` (else
//! `Location`) until the operation ends. That status lives under
//! `Microsoft.Compute/locations/operations`, which a role scoped to the scale set may not read:
//! on a 403 the call was still accepted, so the client confirms it from the instance list
//! instead (a deleted instance is gone; a reimaged one runs again after having been seen
//! reimaging, or finished provisioning after Azure's `Date` of the acceptance), within the same
//! deadline. A capacity change returns once Azure accepted it: the new VMs take minutes to boot,
//! and the controller already counts accepted capacity as free.
//!
//! Numbers are read with `try_from`, and a missing `sku.capacity` is a read failure
//! ([`CloudFault::MissingField`]), never 0.
//!
//! 429 answers are retried after their `Retry-After` a bounded number of times, then reported
//! as [`CloudFault::Throttled`]; other failures are not retried here (the reconcile loop's error
//! policy backs off). Every `x-ms-ratelimit-remaining-resource` seen is kept for
//! [`ArmScaleSet::rate_limits`]. The operator's write budget (`budget.rs`) keeps writes under
//! Azure's per-scale-set limit; this client does not count writes a second time.
//!
//! Only **Uniform** orchestration is supported. A Flexible scale set has no scale-set-level
//! instance ids, instance view listing, batched delete/reimage or scale-set NIC listing: its
//! VMs are ordinary `Microsoft.Compute/virtualMachines` handled one by one, which would cost
//! one write per VM against the same limit. [`ArmScaleSet::verify`] refuses Flexible at start.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{header, Method, StatusCode, Url};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::time::Instant;

use crate::{
    model::InstanceId,
    ports::{CloudFault, CloudInstance, CloudState, ScaleSet, ScaleSetError},
};

/// Compute api-version (the newest stable one with published examples).
pub const COMPUTE_API_VERSION: &str = "2025-04-01";
/// The Network RP serves the scale-set NIC listing only at this api-version.
pub const NETWORK_API_VERSION: &str = "2018-10-01";

/// Pages of one listing followed at most (a listing that goes on is a fault, not a loop).
const MAX_PAGES: u32 = 10_000;

/// How long the client waits, retries and polls.
#[derive(Clone, Debug)]
pub struct ArmTimings {
    /// Limit on each HTTP request.
    pub request_timeout: Duration,
    /// 429 answers retried before giving up with `Throttled`.
    pub throttle_retries: u32,
    /// A `Retry-After` longer than this is not waited for: the call fails with `Throttled` at once.
    pub max_retry_after: Duration,
    /// First poll delay of a long-running operation without `Retry-After` (doubles up to `poll_max`).
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// Give up following a long-running operation after this long.
    pub operation_timeout: Duration,
}

impl Default for ArmTimings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            throttle_retries: 3,
            max_retry_after: Duration::from_secs(60),
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(15),
            operation_timeout: Duration::from_secs(30 * 60),
        }
    }
}

type UrlParseError = <Url as std::str::FromStr>::Err;

/// Why the Resource Manager URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("it is not a URL")]
    NotAUrl(#[source] UrlParseError),
    /// A bearer token never travels unencrypted over a network.
    #[error("scheme {0} is not allowed: use https (plain http only to a loopback address)")]
    InsecureScheme(String),
}

/// The shape a scale set's resource id must have.
#[derive(Debug, thiserror::Error)]
#[error(
    "expected /subscriptions/{{id}}/resourceGroups/{{rg}}/providers/Microsoft.Compute/virtualMachineScaleSets/{{name}}"
)]
pub struct NotAScaleSetId;

/// Why only Uniform orchestration is driven.
#[derive(Debug, thiserror::Error)]
#[error(
    "a Flexible scale set has no batched instance delete/reimage or scale-set NIC listing; \
     create the runner scale set with orchestration_mode = \"Uniform\""
)]
pub struct UniformOnly;

/// Setting up the client and checking the scale set.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("the Resource Manager URL {url:?} cannot be used")]
    InvalidEndpoint {
        url: String,
        #[source]
        source: EndpointError,
    },
    #[error("{id:?} is not a scale set resource id")]
    InvalidResourceId {
        id: String,
        #[source]
        source: NotAScaleSetId,
    },
    #[error("building the HTTP client failed")]
    HttpClientFailed(#[source] reqwest::Error),
    #[error("checking the scale set failed")]
    VerifyFailed(#[source] ScaleSetError),
    #[error("scale set {name} uses {mode} orchestration; only Uniform is supported")]
    UnsupportedOrchestration {
        name: String,
        mode: String,
        #[source]
        source: UniformOnly,
    },
}

/// What [`ArmScaleSet::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSetInfo {
    pub name: String,
    pub capacity: u32,
    pub provisioning_state: String,
    pub orchestration_mode: String,
    pub sku: Option<String>,
}

// ---- wire types (official description, Compute 2025-04-01 / Network 2018-10-01; only the fields used) ----

#[derive(Debug, Deserialize)]
struct VirtualMachineScaleSet {
    name: Option<String>,
    sku: Option<Sku>,
    properties: Option<ScaleSetProperties>,
}

#[derive(Debug, Deserialize)]
struct Sku {
    name: Option<String>,
    capacity: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaleSetProperties {
    provisioning_state: Option<String>,
    orchestration_mode: Option<String>,
}

#[derive(Debug, Serialize)]
struct ScaleSetUpdate {
    sku: CapacityOnly,
}

#[derive(Debug, Serialize)]
struct CapacityOnly {
    capacity: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceIds<'a> {
    instance_ids: &'a [InstanceId],
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    value: Vec<T>,
    next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaleSetVm {
    instance_id: String,
    name: Option<String>,
    properties: Option<VmProperties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmProperties {
    provisioning_state: Option<String>,
    latest_model_applied: Option<bool>,
    os_profile: Option<OsProfile>,
    instance_view: Option<InstanceView>,
    protection_policy: Option<ProtectionPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProtectionPolicy {
    protect_from_scale_in: Option<bool>,
    protect_from_scale_set_actions: Option<bool>,
}

/// Absent means Azure did not say: taken as current, so nothing is deleted on a guess.
fn latest_model(properties: Option<&VmProperties>) -> bool {
    properties.and_then(|p| p.latest_model_applied).unwrap_or(true)
}

fn protected(properties: Option<&VmProperties>) -> bool {
    properties
        .and_then(|p| p.protection_policy.as_ref())
        .is_some_and(|p| p.protect_from_scale_in == Some(true) || p.protect_from_scale_set_actions == Some(true))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsProfile {
    computer_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InstanceView {
    #[serde(default)]
    statuses: Vec<InstanceViewStatus>,
}

#[derive(Debug, Deserialize)]
struct InstanceViewStatus {
    code: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    time: Option<time::OffsetDateTime>,
}

/// When provisioning last succeeded (`ProvisioningState/succeeded` carries the time).
fn ready_since(properties: Option<&VmProperties>) -> Option<time::OffsetDateTime> {
    properties?
        .instance_view
        .as_ref()?
        .statuses
        .iter()
        .find(|s| s.code.as_deref() == Some("ProvisioningState/succeeded"))
        .and_then(|s| s.time)
}

#[derive(Debug, Deserialize)]
struct NetworkInterface {
    properties: Option<NicProperties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NicProperties {
    primary: Option<bool>,
    #[serde(default)]
    ip_configurations: Vec<IpConfiguration>,
    virtual_machine: Option<SubResource>,
}

#[derive(Debug, Deserialize)]
struct IpConfiguration {
    properties: Option<IpConfigurationProperties>,
}

#[derive(Debug, Deserialize)]
struct IpConfigurationProperties {
    #[serde(rename = "privateIPAddress")]
    private_ip_address: Option<String>,
    primary: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct SubResource {
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OperationStatus {
    status: String,
    error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct CloudError {
    error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

impl ErrorDetail {
    fn describe(&self) -> String {
        format!("{}: {}", self.code.as_deref().unwrap_or("unknown"), self.message.as_deref().unwrap_or(""))
    }
}

// ---- the client ----------------------------------------------------------------------------

/// A Uniform scale set through Azure Resource Manager.
pub struct ArmScaleSet {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    base: Url,
    vmss_id: String,
    timings: ArmTimings,
    rate_limits: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for ArmScaleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmScaleSet").field("base", &self.base.as_str()).field("vmss_id", &self.vmss_id).finish()
    }
}

/// `https://...`, or `http://` to a loopback address (a test fake): a bearer token never
/// travels unencrypted over a network.
fn check_endpoint(url: &Url) -> Result<(), EndpointError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().and_then(|h| h.parse::<IpAddr>().ok()).is_some_and(|ip| ip.is_loopback()) => Ok(()),
        scheme => Err(EndpointError::InsecureScheme(scheme.to_owned())),
    }
}

fn check_resource_id(id: &str) -> Result<(), NotAScaleSetId> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    let ok = parts.len() == 8
        && parts[0].eq_ignore_ascii_case("subscriptions")
        && parts[2].eq_ignore_ascii_case("resourceGroups")
        && parts[4].eq_ignore_ascii_case("providers")
        && parts[5].eq_ignore_ascii_case("Microsoft.Compute")
        && parts[6].eq_ignore_ascii_case("virtualMachineScaleSets")
        && parts.iter().all(|p| !p.is_empty() && !p.contains(['?', '#']));
    if ok {
        Ok(())
    } else {
        Err(NotAScaleSetId)
    }
}

fn parse_retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn transport(err: impl std::error::Error + Send + Sync + 'static) -> CloudFault {
    CloudFault::Transport(Box::new(err))
}

/// Reduce a VM's provisioning state and power state to what the operator acts on.
///
/// `Updating` is read as reimaging: with a manual upgrade policy the operator's own reimages are
/// the only updates of single instances. A VM that finished provisioning but is stopped or
/// deallocated cannot run a job and is reported `Failed`, so the policy replaces it.
fn cloud_state(properties: Option<&VmProperties>) -> CloudState {
    let Some(properties) = properties else { return CloudState::Creating };
    let statuses: Vec<&str> = properties
        .instance_view
        .as_ref()
        .map(|v| v.statuses.iter().filter_map(|s| s.code.as_deref()).collect())
        .unwrap_or_default();
    let provisioning = properties
        .provisioning_state
        .clone()
        .or_else(|| {
            statuses
                .iter()
                .find_map(|c| c.strip_prefix("ProvisioningState/"))
                .map(|s| s.split('/').next().unwrap_or(s).to_owned())
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    let power = statuses.iter().find_map(|c| c.strip_prefix("PowerState/")).map(str::to_ascii_lowercase);
    match provisioning.as_str() {
        "deleting" => CloudState::Deleting,
        "failed" => CloudState::Failed,
        "updating" => CloudState::Reimaging,
        "succeeded" => match power.as_deref() {
            None | Some("running") => CloudState::Running,
            Some("starting") => CloudState::Creating,
            Some(_) => CloudState::Failed,
        },
        _ => CloudState::Creating,
    }
}

/// `sku.capacity`: absent is a read failure (never 0, which would tell the policy the pool is
/// empty), and a number beyond `u32` is refused rather than truncated.
fn capacity_of(vmss: &VirtualMachineScaleSet) -> Result<u32, CloudFault> {
    let capacity = vmss.sku.as_ref().and_then(|s| s.capacity).ok_or(CloudFault::MissingField("sku.capacity"))?;
    u32::try_from(capacity).map_err(|_| CloudFault::OutOfRange { field: "sku.capacity", value: capacity })
}

/// The `Date` header of an answer: Azure's clock when it accepted the call.
fn azure_date(headers: &header::HeaderMap) -> Option<time::OffsetDateTime> {
    let text = headers.get(header::DATE)?.to_str().ok()?;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text, &format).ok().map(time::PrimitiveDateTime::assume_utc)
}

/// `.../virtualMachines/{instanceId}` → instance id.
fn instance_of_vm_id(id: &str) -> Option<&str> {
    let (prefix, instance) = id.trim_end_matches('/').rsplit_once('/')?;
    prefix.to_ascii_lowercase().ends_with("/virtualmachines").then_some(instance)
}

impl ArmScaleSet {
    /// A client for the scale set `vmss_resource_id` at `resource_manager_url`
    /// (`https://management.azure.com` in the public cloud). Tokens are requested for
    /// `{resource_manager_url}/.default`; see [`Self::with_token_scope`] for another audience.
    pub fn new(
        resource_manager_url: &str,
        vmss_resource_id: &str,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ArmError> {
        Self::with_timings(resource_manager_url, vmss_resource_id, credential, ArmTimings::default())
    }

    pub fn with_timings(
        resource_manager_url: &str,
        vmss_resource_id: &str,
        credential: Arc<dyn TokenCredential>,
        timings: ArmTimings,
    ) -> Result<Self, ArmError> {
        let invalid = |source| ArmError::InvalidEndpoint { url: resource_manager_url.to_owned(), source };
        let base =
            Url::parse(resource_manager_url.trim_end_matches('/')).map_err(|e| invalid(EndpointError::NotAUrl(e)))?;
        check_endpoint(&base).map_err(invalid)?;
        check_resource_id(vmss_resource_id)
            .map_err(|source| ArmError::InvalidResourceId { id: vmss_resource_id.to_owned(), source })?;
        let http =
            reqwest::Client::builder().timeout(timings.request_timeout).build().map_err(ArmError::HttpClientFailed)?;
        let scope = format!("{}/.default", base.as_str().trim_end_matches('/'));
        Ok(Self {
            http,
            credential,
            scope,
            base,
            vmss_id: format!("/{}", vmss_resource_id.trim_matches('/')),
            timings,
            rate_limits: Mutex::new(BTreeMap::new()),
        })
    }

    /// Request tokens for `scope` instead (e.g. `https://management.azure.com/.default` when
    /// Resource Manager is reached through another address).
    pub fn with_token_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The latest `x-ms-ratelimit-remaining-resource` values: policy name → calls left.
    pub fn rate_limits(&self) -> BTreeMap<String, u64> {
        self.rate_limits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Read the scale set and refuse what the operator cannot drive (Flexible orchestration).
    pub async fn verify(&self) -> Result<ScaleSetInfo, ArmError> {
        let vmss = self.get_scale_set().await.map_err(|f| ArmError::VerifyFailed(ScaleSetError::ReadFailed(f)))?;
        let properties = vmss.properties.as_ref();
        let name = vmss.name.clone().unwrap_or_else(|| self.vmss_id.rsplit('/').next().unwrap_or_default().to_owned());
        // Absent orchestrationMode means a scale set created before Flexible existed: Uniform.
        let mode = properties.and_then(|p| p.orchestration_mode.clone()).unwrap_or_else(|| "Uniform".to_owned());
        if !mode.eq_ignore_ascii_case("Uniform") {
            return Err(ArmError::UnsupportedOrchestration { name, mode, source: UniformOnly });
        }
        let capacity = capacity_of(&vmss).map_err(|f| ArmError::VerifyFailed(ScaleSetError::ReadFailed(f)))?;
        Ok(ScaleSetInfo {
            name,
            capacity,
            provisioning_state: properties.and_then(|p| p.provisioning_state.clone()).unwrap_or_default(),
            orchestration_mode: mode,
            sku: vmss.sku.and_then(|s| s.name),
        })
    }

    fn url(&self, suffix: &str, api_version: &str, extra: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{suffix}", self.vmss_id));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", api_version);
            for (k, v) in extra {
                query.append_pair(k, v);
            }
        }
        url
    }

    /// A link Azure handed back (nextLink, operation status) is followed only on the same
    /// origin, so the bearer token never goes anywhere else.
    fn same_origin(&self, link: &str) -> Result<Url, CloudFault> {
        let url = Url::parse(link).map_err(transport)?;
        if url.origin() == self.base.origin() {
            Ok(url)
        } else {
            Err(CloudFault::ForeignLink { host: url.host_str().unwrap_or_default().to_owned() })
        }
    }

    async fn token(&self) -> Result<String, CloudFault> {
        let token = self.credential.get_token(&[self.scope.as_str()], None).await.map_err(transport)?;
        Ok(token.token.secret().to_owned())
    }

    fn remember_rate_limits(&self, headers: &header::HeaderMap) {
        let Some(value) = headers.get("x-ms-ratelimit-remaining-resource").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let mut limits = self.rate_limits.lock().unwrap_or_else(|e| e.into_inner());
        for entry in value.split(',') {
            if let Some((policy, remaining)) = entry.trim().rsplit_once(';') {
                if let Ok(remaining) = remaining.trim().parse() {
                    limits.insert(policy.trim().to_owned(), remaining);
                }
            }
        }
    }

    /// Send one call: bearer token, 429 + `Retry-After` retried (bounded), one retry with a new
    /// token after a 401; any other non-2xx answer becomes a [`CloudFault`].
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<reqwest::Response, CloudFault> {
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(self.timings.max_retry_after)
            .with_jitter()
            .build();
        let mut throttled = 0;
        let mut refused_token: Option<String> = None;
        loop {
            let token = self.token().await?;
            let mut request = self.http.request(method.clone(), url.clone()).bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(transport)?;
            self.remember_rate_limits(response.headers());
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = parse_retry_after(response.headers());
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after.or_else(|| backoff.next()).unwrap_or(self.timings.max_retry_after);
                if throttled >= self.timings.throttle_retries || wait > self.timings.max_retry_after {
                    return Err(CloudFault::Throttled { retry_after });
                }
                throttled += 1;
                tracing::warn!(%method, path = url.path(), wait_ms = wait.as_millis() as u64, attempt = throttled, "Azure throttled the call; retrying after Retry-After");
                tokio::time::sleep(wait).await;
                continue;
            }
            let message = Self::error_message(response).await;
            if status == StatusCode::UNAUTHORIZED && refused_token.is_none() {
                // The token may have expired between the SDK's check and Azure's: ask again once.
                refused_token = Some(token.clone());
                let fresh = self.token().await?;
                if Some(&fresh) != refused_token.as_ref() {
                    tracing::info!(%method, path = url.path(), "Azure refused the access token; retrying with a new one");
                    continue;
                }
            }
            return Err(match status {
                StatusCode::NOT_FOUND => CloudFault::NotFound,
                StatusCode::CONFLICT => CloudFault::Conflict(message),
                _ => CloudFault::Server { status: status.as_u16(), message },
            });
        }
    }

    async fn error_message(response: reqwest::Response) -> String {
        let status = response.status();
        match response.json::<CloudError>().await {
            Ok(CloudError { error: Some(detail) }) => detail.describe(),
            _ => status.canonical_reason().unwrap_or("error").to_owned(),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, CloudFault> {
        let response = self.send::<()>(Method::GET, url, None).await?;
        response.json().await.map_err(transport)
    }

    /// Every item of a paged listing, following `nextLink`.
    async fn list_all<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, CloudFault> {
        let mut items = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.get_json(url).await?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(items),
            }
        }
        Err(CloudFault::EndlessListing { pages: MAX_PAGES })
    }

    async fn get_scale_set(&self) -> Result<VirtualMachineScaleSet, CloudFault> {
        self.get_json(self.url("", COMPUTE_API_VERSION, &[])).await
    }

    /// Every instance of the scale set (without the NIC join).
    async fn list_vms(&self) -> Result<Vec<ScaleSetVm>, CloudFault> {
        self.list_all(self.url("/virtualMachines", COMPUTE_API_VERSION, &[("$expand", "instanceView")])).await
    }

    /// Follow a long-running operation until it ends.
    ///
    /// The operation's status lives at `Microsoft.Compute/locations/operations`, outside the
    /// scale set; the scaler's role, scoped to the scale set, may not read it (403
    /// `AuthorizationFailed`). Azure accepted the call all the same, so the client then
    /// confirms its effect from the instance list instead, within the same deadline.
    async fn wait_for(&self, accepted: reqwest::Response, confirm: Confirm<'_>) -> Result<(), CloudFault> {
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
    async fn confirm_from_instances(&self, confirm: &Confirm<'_>, deadline: Instant) -> Result<(), CloudFault> {
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

    async fn instance_action(&self, action: InstanceAction, ids: &[InstanceId]) -> Result<(), CloudFault> {
        let body = InstanceIds { instance_ids: ids };
        let url = self.url(&format!("/{}", action.as_str()), COMPUTE_API_VERSION, &[]);
        let response = self.send(Method::POST, url, Some(&body)).await?;
        let accepted_at = azure_date(response.headers());
        self.wait_for(response, Confirm { action, ids, accepted_at }).await
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InstanceAction {
    Delete,
    Reimage,
}

impl InstanceAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Reimage => "reimage",
        }
    }
}

/// An accepted delete or reimage, to confirm from the instance list.
struct Confirm<'a> {
    action: InstanceAction,
    ids: &'a [InstanceId],
    /// Azure's clock when it accepted the call (its `Date` header).
    accepted_at: Option<time::OffsetDateTime>,
}

/// What the instance listings have shown so far.
#[derive(Default)]
struct ConfirmProgress {
    /// Instances seen not running (reimaging) since the action was accepted.
    seen_in_progress: std::collections::HashSet<String>,
}

impl ConfirmProgress {
    /// Is the action done for every instance, as far as `vms` shows?
    ///
    /// A delete is done when the instance is gone. A reimage is done when the instance runs
    /// again after having been seen reimaging, or when its provisioning finished after Azure
    /// accepted the call. An instance that failed fails the operation; one that is gone
    /// needs no reimage any more (the next pass sees it gone).
    fn done(&mut self, confirm: &Confirm<'_>, vms: &[ScaleSetVm]) -> Result<bool, CloudFault> {
        let by_id: HashMap<&str, &ScaleSetVm> = vms.iter().map(|vm| (vm.instance_id.as_str(), vm)).collect();
        let mut all = true;
        for id in confirm.ids {
            let Some(vm) = by_id.get(id.as_str()) else { continue };
            let done = match confirm.action {
                InstanceAction::Delete => false,
                InstanceAction::Reimage => match cloud_state(vm.properties.as_ref()) {
                    CloudState::Failed => {
                        return Err(CloudFault::OperationFailed {
                            status: "Failed".into(),
                            detail: format!("instance {id} failed provisioning after the reimage"),
                        })
                    }
                    CloudState::Running => {
                        self.seen_in_progress.contains(id.as_str())
                            || ready_since(vm.properties.as_ref())
                                .zip(confirm.accepted_at)
                                .is_some_and(|(ready, accepted)| ready >= accepted)
                    }
                    CloudState::Creating | CloudState::Reimaging | CloudState::Deleting => {
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

#[async_trait]
impl ScaleSet for ArmScaleSet {
    fn rate_limits(&self) -> BTreeMap<String, u64> {
        // The inherent method of the same name: the latest x-ms-ratelimit-remaining-resource.
        ArmScaleSet::rate_limits(self)
    }

    async fn capacity(&self) -> Result<u32, ScaleSetError> {
        let vmss = self.get_scale_set().await.map_err(ScaleSetError::ReadFailed)?;
        capacity_of(&vmss).map_err(ScaleSetError::ReadFailed)
    }

    async fn list_instances(&self) -> Result<Vec<CloudInstance>, ScaleSetError> {
        let vms: Vec<ScaleSetVm> = self
            .list_all(self.url("/virtualMachines", COMPUTE_API_VERSION, &[("$expand", "instanceView")]))
            .await
            .map_err(ScaleSetError::ReadFailed)?;
        let nics: Vec<NetworkInterface> = self
            .list_all(self.url("/networkInterfaces", NETWORK_API_VERSION, &[]))
            .await
            .map_err(ScaleSetError::ReadFailed)?;
        // instance id → primary private IP (the primary NIC's primary IP configuration).
        let mut ips: HashMap<String, (bool, IpAddr)> = HashMap::new();
        for nic in nics.into_iter().filter_map(|n| n.properties) {
            let Some(instance) =
                nic.virtual_machine.as_ref().and_then(|vm| vm.id.as_deref()).and_then(instance_of_vm_id)
            else {
                continue;
            };
            let mut configs: Vec<_> = nic.ip_configurations.iter().filter_map(|c| c.properties.as_ref()).collect();
            configs.sort_by_key(|c| !c.primary.unwrap_or(false));
            let Some(ip) = configs.iter().find_map(|c| c.private_ip_address.as_deref()?.parse::<IpAddr>().ok()) else {
                continue;
            };
            let primary = nic.primary.unwrap_or(false);
            match ips.get(instance) {
                Some((true, _)) => {}
                _ => {
                    ips.insert(instance.to_owned(), (primary, ip));
                }
            }
        }
        Ok(vms
            .into_iter()
            .map(|vm| {
                let name = vm
                    .properties
                    .as_ref()
                    .and_then(|p| p.os_profile.as_ref())
                    .and_then(|o| o.computer_name.clone())
                    .or(vm.name)
                    .unwrap_or_else(|| vm.instance_id.clone());
                CloudInstance {
                    private_ip: ips.get(&vm.instance_id).map(|(_, ip)| *ip),
                    state: cloud_state(vm.properties.as_ref()),
                    ready_since: ready_since(vm.properties.as_ref()),
                    protected: protected(vm.properties.as_ref()),
                    latest_model: latest_model(vm.properties.as_ref()),
                    id: InstanceId::new(vm.instance_id),
                    name,
                }
            })
            .collect())
    }

    async fn set_capacity(&self, capacity: u32) -> Result<(), ScaleSetError> {
        let body = ScaleSetUpdate { sku: CapacityOnly { capacity } };
        self.send(Method::PATCH, self.url("", COMPUTE_API_VERSION, &[]), Some(&body))
            .await
            .map(drop)
            .map_err(|source| ScaleSetError::SetCapacityFailed { capacity, source })
    }

    async fn delete_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.instance_action(InstanceAction::Delete, ids)
            .await
            .map_err(|source| ScaleSetError::DeleteFailed { ids: ids.to_vec(), source })
    }

    async fn reimage_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.instance_action(InstanceAction::Reimage, ids)
            .await
            .map_err(|source| ScaleSetError::ReimageFailed { ids: ids.to_vec(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(provisioning: &str, statuses: &[&str]) -> VmProperties {
        VmProperties {
            provisioning_state: Some(provisioning.into()),
            latest_model_applied: None,
            os_profile: None,
            instance_view: Some(InstanceView {
                statuses: statuses.iter().map(|c| InstanceViewStatus { code: Some((*c).into()), time: None }).collect(),
            }),
            protection_policy: None,
        }
    }

    #[test]
    fn an_instance_is_on_the_latest_model_unless_azure_says_it_is_not() {
        let stale: VmProperties = serde_json::from_str(r#"{"latestModelApplied":false}"#).unwrap();
        let current: VmProperties = serde_json::from_str(r#"{"latestModelApplied":true}"#).unwrap();
        let unsaid: VmProperties = serde_json::from_str(r#"{"provisioningState":"Succeeded"}"#).unwrap();
        assert_eq!(
            [Some(&stale), Some(&current), Some(&unsaid), None].map(latest_model),
            [false, true, true, true],
            "only an explicit false makes an instance stale"
        );
    }

    #[test]
    fn provisioning_and_power_state_map_to_what_the_operator_acts_on() {
        let cases = [
            (vm("Creating", &["PowerState/starting"]), CloudState::Creating),
            (vm("Succeeded", &["ProvisioningState/succeeded", "PowerState/running"]), CloudState::Running),
            (vm("Succeeded", &["PowerState/starting"]), CloudState::Creating),
            (vm("Succeeded", &["PowerState/deallocated"]), CloudState::Failed),
            (vm("Updating", &["PowerState/starting"]), CloudState::Reimaging),
            (vm("Deleting", &[]), CloudState::Deleting),
            (vm("Failed", &["ProvisioningState/failed/InternalOperationError"]), CloudState::Failed),
        ];
        for (properties, expected) in cases {
            assert_eq!(cloud_state(Some(&properties)), expected, "{properties:?}");
        }
    }

    #[test]
    fn resource_ids_and_endpoints_are_checked() {
        let id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss";
        assert!(check_resource_id(id).is_ok());
        assert!(check_resource_id("/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")
            .is_err());
        assert!(check_endpoint(&Url::parse("https://management.azure.com").unwrap()).is_ok());
        assert!(check_endpoint(&Url::parse("http://127.0.0.1:8080").unwrap()).is_ok());
        assert!(check_endpoint(&Url::parse("http://management.azure.com").unwrap()).is_err());
    }

    #[test]
    fn a_missing_or_oversized_capacity_is_a_read_failure_never_zero() {
        let parse = |json: &str| capacity_of(&serde_json::from_str::<VirtualMachineScaleSet>(json).unwrap());
        assert_eq!(parse(r#"{"sku":{"name":"Standard_D2s_v5","capacity":7}}"#).unwrap(), 7);
        assert!(matches!(
            parse(r#"{"sku":{"name":"Standard_D2s_v5"}}"#),
            Err(CloudFault::MissingField("sku.capacity"))
        ));
        assert!(matches!(parse(r#"{"name":"vmss"}"#), Err(CloudFault::MissingField(_))));
        let huge = parse(r#"{"sku":{"capacity":4294967296}}"#);
        assert!(matches!(huge, Err(CloudFault::OutOfRange { value: 4_294_967_296, .. })), "{huge:?}");
    }

    #[test]
    fn the_date_header_is_azures_clock() {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::DATE, "Tue, 01 Dec 2026 08:32:10 GMT".parse().unwrap());
        let want = time::OffsetDateTime::parse("2026-12-01T08:32:10Z", &time::format_description::well_known::Rfc3339);
        assert_eq!(azure_date(&headers), Some(want.unwrap()));
        assert_eq!(azure_date(&header::HeaderMap::new()), None);
    }

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

    #[test]
    fn a_delete_is_confirmed_once_the_instances_are_gone() {
        let ids = [InstanceId::new("1"), InstanceId::new("2")];
        let confirm = Confirm { action: InstanceAction::Delete, ids: &ids, accepted_at: None };
        let mut progress = ConfirmProgress::default();
        assert!(!progress.done(&confirm, &[listed("1", "Deleting", None), listed("3", "Succeeded", None)]).unwrap());
        assert!(progress.done(&confirm, &[listed("3", "Succeeded", None)]).unwrap());
    }

    #[test]
    fn nic_virtual_machine_ids_name_their_instance() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v/virtualMachines/17";
        assert_eq!(instance_of_vm_id(id), Some("17"));
        assert_eq!(instance_of_vm_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/foo/17"), None);
    }

    #[test]
    fn a_protection_policy_marks_the_instance_hands_off() {
        let parse = |json: &str| protected(Some(&serde_json::from_str::<VmProperties>(json).unwrap()));
        assert!(parse(r#"{"protectionPolicy":{"protectFromScaleIn":true}}"#));
        assert!(parse(r#"{"protectionPolicy":{"protectFromScaleIn":false,"protectFromScaleSetActions":true}}"#));
        assert!(!parse(r#"{"protectionPolicy":{"protectFromScaleIn":false}}"#));
        assert!(!parse(r#"{"provisioningState":"Succeeded"}"#));
    }

    #[test]
    fn ready_since_is_the_time_provisioning_succeeded() {
        let json = r#"{"instanceView":{"statuses":[
            {"code":"ProvisioningState/succeeded","time":"2026-11-29T10:00:00Z"},
            {"code":"PowerState/running"}]}}"#;
        let got = ready_since(Some(&serde_json::from_str::<VmProperties>(json).unwrap()));
        let want = time::OffsetDateTime::parse("2026-11-29T10:00:00Z", &time::format_description::well_known::Rfc3339);
        assert_eq!(got, Some(want.unwrap()));
    }
}
