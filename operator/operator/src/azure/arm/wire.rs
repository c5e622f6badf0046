//! The wire types of the Resource Manager answers the client reads (official description,
//! Compute 2025-04-01 / Network 2018-10-01; only the fields used), and the readers that turn
//! them into what the operator acts on.

use serde::{Deserialize, Serialize};

use crate::{
    model::InstanceId,
    ports::{CloudFault, CloudState},
};

#[derive(Debug, Deserialize)]
pub(super) struct VirtualMachineScaleSet {
    pub(super) name: Option<String>,
    pub(super) sku: Option<Sku>,
    pub(super) properties: Option<ScaleSetProperties>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Sku {
    pub(super) name: Option<String>,
    pub(super) capacity: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScaleSetProperties {
    pub(super) provisioning_state: Option<String>,
    pub(super) orchestration_mode: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct ScaleSetUpdate {
    pub(super) sku: CapacityOnly,
}

#[derive(Debug, Serialize)]
pub(super) struct CapacityOnly {
    pub(super) capacity: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InstanceIds<'a> {
    pub(super) instance_ids: &'a [InstanceId],
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page<T> {
    pub(super) value: Vec<T>,
    pub(super) next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScaleSetVm {
    pub(super) instance_id: String,
    pub(super) name: Option<String>,
    pub(super) properties: Option<VmProperties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VmProperties {
    pub(super) provisioning_state: Option<String>,
    pub(super) latest_model_applied: Option<bool>,
    pub(super) os_profile: Option<OsProfile>,
    pub(super) instance_view: Option<InstanceView>,
    pub(super) protection_policy: Option<ProtectionPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtectionPolicy {
    pub(super) protect_from_scale_in: Option<bool>,
    pub(super) protect_from_scale_set_actions: Option<bool>,
}

/// Absent means Azure did not say: taken as current, so nothing is deleted on a guess.
pub(super) fn latest_model(properties: Option<&VmProperties>) -> bool {
    properties.and_then(|p| p.latest_model_applied).unwrap_or(true)
}

pub(super) fn protected(properties: Option<&VmProperties>) -> bool {
    properties
        .and_then(|p| p.protection_policy.as_ref())
        .is_some_and(|p| p.protect_from_scale_in == Some(true) || p.protect_from_scale_set_actions == Some(true))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OsProfile {
    pub(super) computer_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct InstanceView {
    #[serde(default)]
    pub(super) statuses: Vec<InstanceViewStatus>,
}

#[derive(Debug, Deserialize)]
pub(super) struct InstanceViewStatus {
    pub(super) code: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(super) time: Option<time::OffsetDateTime>,
}

/// When provisioning last succeeded (`ProvisioningState/succeeded` carries the time).
pub(super) fn ready_since(properties: Option<&VmProperties>) -> Option<time::OffsetDateTime> {
    properties?
        .instance_view
        .as_ref()?
        .statuses
        .iter()
        .find(|s| s.code.as_deref() == Some("ProvisioningState/succeeded"))
        .and_then(|s| s.time)
}

#[derive(Debug, Deserialize)]
pub(super) struct NetworkInterface {
    pub(super) properties: Option<NicProperties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NicProperties {
    pub(super) primary: Option<bool>,
    #[serde(default)]
    pub(super) ip_configurations: Vec<IpConfiguration>,
    pub(super) virtual_machine: Option<SubResource>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IpConfiguration {
    pub(super) properties: Option<IpConfigurationProperties>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IpConfigurationProperties {
    #[serde(rename = "privateIPAddress")]
    pub(super) private_ip_address: Option<String>,
    pub(super) primary: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SubResource {
    pub(super) id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct OperationStatus {
    pub(super) status: String,
    pub(super) error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
pub(super) struct CloudError {
    pub(super) error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorDetail {
    pub(super) code: Option<String>,
    pub(super) message: Option<String>,
}

impl ErrorDetail {
    pub(super) fn describe(&self) -> String {
        format!("{}: {}", self.code.as_deref().unwrap_or("unknown"), self.message.as_deref().unwrap_or(""))
    }
}
/// Reduce a VM's provisioning state and power state to what the operator acts on.
///
/// `PowerState/deallocating` and `PowerState/deallocated` are read first (unless the VM is being
/// deleted or failed): only a deallocation produces them, whatever the provisioning state
/// (`Updating` while it runs). Otherwise `Updating` is read as reimaging: with a manual upgrade
/// policy the operator's own reimages and starts are the only updates of single instances, and
/// the instance view cannot tell them apart (both show `PowerState/starting`, a start may show
/// `PowerState/stopped` on its way; Microsoft Learn, "States and billing status"). A VM that
/// finished provisioning but is stopped (still allocated and billed) cannot run a job and is
/// reported `Failed`, so the policy replaces it.
pub(super) fn cloud_state(properties: Option<&VmProperties>) -> CloudState {
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
    match (provisioning.as_str(), power.as_deref()) {
        ("deleting", _) => return CloudState::Deleting,
        ("failed", _) => return CloudState::Failed,
        (_, Some("deallocating")) => return CloudState::Deallocating,
        (_, Some("deallocated")) => return CloudState::Deallocated,
        _ => {}
    }
    match provisioning.as_str() {
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
pub(super) fn capacity_of(vmss: &VirtualMachineScaleSet) -> Result<u32, CloudFault> {
    let capacity = vmss.sku.as_ref().and_then(|s| s.capacity).ok_or(CloudFault::MissingField("sku.capacity"))?;
    u32::try_from(capacity).map_err(|_| CloudFault::OutOfRange { field: "sku.capacity", value: capacity })
}

/// `.../virtualMachines/{instanceId}` → instance id.
pub(super) fn instance_of_vm_id(id: &str) -> Option<&str> {
    let (prefix, instance) = id.trim_end_matches('/').rsplit_once('/')?;
    prefix.to_ascii_lowercase().ends_with("/virtualmachines").then_some(instance)
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
            (vm("Succeeded", &["ProvisioningState/succeeded", "PowerState/deallocated"]), CloudState::Deallocated),
            (vm("Updating", &["ProvisioningState/updating", "PowerState/deallocating"]), CloudState::Deallocating),
            (vm("Updating", &["PowerState/deallocated"]), CloudState::Deallocated),
            (vm("Succeeded", &["PowerState/stopped"]), CloudState::Failed),
            (vm("Updating", &["PowerState/stopped"]), CloudState::Reimaging),
            (vm("Deleting", &["PowerState/deallocated"]), CloudState::Deleting),
            (vm("Failed", &["PowerState/deallocated"]), CloudState::Failed),
            (vm("Updating", &["PowerState/starting"]), CloudState::Reimaging),
            (vm("Deleting", &[]), CloudState::Deleting),
            (vm("Failed", &["ProvisioningState/failed/InternalOperationError"]), CloudState::Failed),
        ];
        for (properties, expected) in cases {
            assert_eq!(cloud_state(Some(&properties)), expected, "{properties:?}");
        }
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
