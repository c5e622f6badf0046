# Identities and the scaler's least-privilege role assignments.
#
# Instead of the seed's Reader + Network Contributor + Virtual Machine
# Contributor + Contributor, the scaler gets:
#   1. a custom role on the one scale set, listing only what the operator does;
#   2. a custom "linked access" role on the three resources a scale-set write
#      references (runner subnet, runner identity, image definition);
#   3. Storage Queue Data Contributor on the one queue;
#   4. Key Vault Secrets User on the one vault;
#   5. with pool_learned, Storage Blob Data Contributor on the one state container.
# The runner identity gets no role at all: a job can read anything its VM holds,
# so the VM holds nothing. It exists so that users can grant their jobs Azure
# access deliberately, and so the scale set's identity does not change later.

locals {
  # Custom role names are unique in the whole tenant: the resource group id (with the
  # subscription in it) makes them unique per deployment, so staging and production in
  # two subscriptions can use the same scale set name.
  role_name_suffix = substr(sha256(lower(var.resource_group_id)), 0, 8)

  # The operator's calls (operator/operator/src/azure/arm/): GET and PATCH of the scale
  # set, GET of its virtualMachines (with $expand=instanceView) and of its network
  # interfaces, POST delete, reimage, deallocate and start with instance ids. Nothing else.
  # Action names: "Azure permissions for Compute" (learn.microsoft.com, Azure RBAC).
  scaler_vmss_actions = [
    # GET {vmss}: the model and its capacity.
    "Microsoft.Compute/virtualMachineScaleSets/read",
    # PATCH {vmss} sku.capacity (scale out / in). Also permits other model changes,
    # which is why this role is assigned on the runner scale set only.
    "Microsoft.Compute/virtualMachineScaleSets/write",
    # POST {vmss}/delete with instanceIds: scale in exactly the idle instances.
    "Microsoft.Compute/virtualMachineScaleSets/delete/action",
    # POST {vmss}/reimage with instanceIds: recycle a finished runner.
    "Microsoft.Compute/virtualMachineScaleSets/reimage/action",
    # POST {vmss}/deallocate with instanceIds: park a ready VM (stopped and deallocated,
    # it bills only its OS disk until it is started again).
    "Microsoft.Compute/virtualMachineScaleSets/deallocate/action",
    # POST {vmss}/start with instanceIds: bring a parked VM back on demand.
    "Microsoft.Compute/virtualMachineScaleSets/start/action",
    # GET {vmss}/virtualMachines: instances, provisioning and power state.
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    # GET {vmss}/networkInterfaces: map a hook's source IP to its instance.
    "Microsoft.Compute/virtualMachineScaleSets/networkInterfaces/read",
  ]
  linked_access_actions = [
    # New instances put their NIC in the runner subnet.
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    # The scale set model carries the runner identity.
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
    # The scale set model references the gallery image.
    "Microsoft.Compute/galleries/images/read",
    "Microsoft.Compute/galleries/images/versions/read",
  ]
  create_roles          = var.custom_role_definition_ids == null
  scaler_vmss_role_id   = local.create_roles ? azurerm_role_definition.scaler_vmss[0].role_definition_resource_id : var.custom_role_definition_ids.scaler_vmss
  linked_access_role_id = local.create_roles ? azurerm_role_definition.scaler_linked_access[0].role_definition_resource_id : var.custom_role_definition_ids.linked_access

  # A BYO subnet may live in another resource group; the linked-access role
  # must be assignable there too.
  runner_subnet_resource_group_id = regex("(?i)^(/subscriptions/[^/]+/resourceGroups/[^/]+)/", var.runner_subnet_id)[0]
  linked_access_assignable_scopes = distinct([var.resource_group_id, local.runner_subnet_resource_group_id])

  linked_access_scopes = {
    runner_subnet    = var.runner_subnet_id
    runner_identity  = azurerm_user_assigned_identity.runners.id
    image_definition = var.image_definition_id
  }
}

resource "azurerm_user_assigned_identity" "scaler" {
  name                = "id-${var.name}-scaler"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_user_assigned_identity" "runners" {
  name                = "id-${var.name}-runners"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

# The two custom roles, unless the caller pre-created them (custom_role_definition_ids):
# defining roles needs Microsoft.Authorization/roleDefinitions/write, which a deployer
# limited to "Role Based Access Control Administrator" does not have (docs/deploy.md).
resource "azurerm_role_definition" "scaler_vmss" {
  count = local.create_roles ? 1 : 0

  name              = "vmss-github-runner scaler (${var.name}, ${local.role_name_suffix})"
  scope             = var.resource_group_id
  description       = "Operate the instances of one runner scale set: read it and its instances and NICs, set its capacity, delete, reimage, deallocate (park) and start instances."
  assignable_scopes = [var.resource_group_id]

  permissions {
    actions     = local.scaler_vmss_actions
    not_actions = []
  }
}

resource "azurerm_role_definition" "scaler_linked_access" {
  count = local.create_roles ? 1 : 0

  name              = "vmss-github-runner scaler linked access (${var.name}, ${local.role_name_suffix})"
  scope             = var.resource_group_id
  description       = "Linked-access checks of a scale set write: join the runner subnet, assign the runner identity, read the runner image."
  assignable_scopes = local.linked_access_assignable_scopes

  permissions {
    actions     = local.linked_access_actions
    not_actions = []
  }
}

moved {
  from = azurerm_role_definition.scaler_vmss
  to   = azurerm_role_definition.scaler_vmss[0]
}

moved {
  from = azurerm_role_definition.scaler_linked_access
  to   = azurerm_role_definition.scaler_linked_access[0]
}

# Scope: the runner scale set only. Why: scale out/in, delete, reimage, park
# (deallocate) and start instances, read instances and NICs (custom role above). Deliberately not granted:
# Microsoft.Compute/locations/operations/read (the async-operation status of a delete
# or reimage): it would have to be granted at resource-group scope or wider; the
# operator treats a 403 on the status as "accepted" and confirms from the instance list.
resource "azurerm_role_assignment" "scaler_vmss" {
  scope              = var.vmss_id
  role_definition_id = local.scaler_vmss_role_id
  principal_id       = azurerm_user_assigned_identity.scaler.principal_id
  principal_type     = "ServicePrincipal"
  description        = "Scaler operates the runner scale set's instances."
}

# Scope: each of the runner subnet, the runner identity and the image
# definition, separately. Why: Azure checks these linked resources on every
# scale set write, including a capacity change. Nothing else in those resource
# groups is reachable through this role.
resource "azurerm_role_assignment" "scaler_linked_access" {
  for_each = local.linked_access_scopes

  scope              = each.value
  role_definition_id = local.linked_access_role_id
  principal_id       = azurerm_user_assigned_identity.scaler.principal_id
  principal_type     = "ServicePrincipal"
  description        = "Scaler passes linked-access checks for ${each.key} on scale set writes."
}

# Scope: the one busy-runner queue (not the account). Why: the operator
# records busy runners as queue messages and deletes them when jobs complete.
resource "azurerm_role_assignment" "scaler_queue" {
  scope                = var.queue_id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = azurerm_user_assigned_identity.scaler.principal_id
  principal_type       = "ServicePrincipal"
  description          = "Scaler reads and writes busy-runner messages."
}

# Scope: each operator state container (state_container_ids: with pool_learned, the
# `operator-state` container), not the storage account. Why: the operator reads and
# overwrites its learned-demand blob there; scoped to the container, the grant reaches no
# other container the account holds or will hold, and nothing of the queue service.
# Storage Blob Data Contributor is the narrowest built-in role that writes blobs (Reader
# cannot write; Owner adds ACL and ownership management a flat container never needs).
resource "azurerm_role_assignment" "scaler_state_container" {
  for_each = var.state_container_ids

  scope                = each.value
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.scaler.principal_id
  principal_type       = "ServicePrincipal"
  description          = "Scaler reads and writes its ${each.key} state."
}

# Scope: the one key vault, which holds only the GitHub credential. Why: the
# operator reads the PAT or GitHub App key to mint runner JIT configs. Secrets
# User grants get/list of secret values, nothing on keys, certificates or RBAC.
resource "azurerm_role_assignment" "scaler_key_vault" {
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.scaler.principal_id
  principal_type       = "ServicePrincipal"
  description          = "Scaler reads the GitHub credential."
}
