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
//! | `deallocate_instances` | `POST {vmss}/deallocate` with `{"instanceIds":[...]}` |
//! | `start_instances` | `POST {vmss}/start` with `{"instanceIds":[...]}` |
//!
//! Deletes, reimages, deallocations and starts are long-running (200 or 202, no body): the
//! client follows `Azure-AsyncOperation` (else `Location`) until the operation ends. That status lives under
//! `Microsoft.Compute/locations/operations`, which a role scoped to the scale set may not read:
//! on a 403 the call was still accepted, so the client confirms it from the instance list
//! instead (a deleted instance is gone; a reimaged one runs again after having been seen
//! reimaging, or finished provisioning after Azure's `Date` of the acceptance; a deallocated one
//! shows `PowerState/deallocated`; a started one runs), within the same deadline. The instance
//! listing reads each VM's power state from its instance view (`wire::cloud_state`). A capacity change returns once Azure accepted it: the new VMs take minutes to boot,
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
//!
//! Files: this one holds the client, its set-up errors and the port; `wire` the answers'
//! types and their readers; `transport` one request (token, 429 retries, paging); `lro`
//! the instance actions followed to the end or confirmed from the instance list.

mod lro;
mod transport;
mod wire;

use lro::*;
use transport::*;
use wire::*;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use reqwest::{Method, Url};

use crate::{
    model::InstanceId,
    ports::{CloudInstance, ScaleSet, ScaleSetError},
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

    async fn deallocate_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        // Without instance ids Azure would deallocate the whole scale set.
        if ids.is_empty() {
            return Ok(());
        }
        self.instance_action(InstanceAction::Deallocate, ids)
            .await
            .map_err(|source| ScaleSetError::DeallocateFailed { ids: ids.to_vec(), source })
    }

    async fn start_instances(&self, ids: &[InstanceId]) -> Result<(), ScaleSetError> {
        // Without instance ids Azure would start every instance of the scale set.
        if ids.is_empty() {
            return Ok(());
        }
        self.instance_action(InstanceAction::Start, ids)
            .await
            .map_err(|source| ScaleSetError::StartFailed { ids: ids.to_vec(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
