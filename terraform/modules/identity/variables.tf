variable "image_definition_id" {
  type        = string
  description = "Resource id of the Azure Compute Gallery image definition that receives the Packer builds of the runner image."
  nullable    = false
}

variable "key_vault_id" {
  type        = string
  description = "Resource id of the key vault that holds the GitHub credential."
  nullable    = false
}

variable "location" {
  type        = string
  description = "Azure region of the user-assigned identities."
  nullable    = false
}

variable "name" {
  type        = string
  description = "Base name: identities are named `id-<name>-scaler` and `id-<name>-runners`; custom roles carry it too."
  nullable    = false
}

variable "queue_id" {
  type        = string
  description = "Azure Resource Manager id of the busy-runner storage queue (`.../queueServices/default/queues/<name>`)."
  nullable    = false
}

variable "resource_group_id" {
  type        = string
  description = "Resource id of the resource group of the scale set; the custom roles are defined (and assignable) there."
  nullable    = false
}

variable "resource_group_name" {
  type        = string
  description = "Resource group that holds the user-assigned identities."
  nullable    = false
}

variable "runner_subnet_id" {
  type        = string
  description = "Resource id of the runner subnet, which new scale set instances join."
  nullable    = false
}

variable "vmss_id" {
  type        = string
  description = "Resource id of the runner scale set the scaler operates."
  nullable    = false
}

variable "custom_role_definition_ids" {
  type = object({
    scaler_vmss   = string
    linked_access = string
  })
  default     = null
  description = "Resource ids of the two custom roles when they are pre-created outside Terraform (docs/deploy.md, \"Custom roles\": same actions as this module's `custom_role_actions` output; `scaler_vmss` assignable on the scale set, `linked_access` on the runner subnet, runner identity and image definition). Null: the module defines them, which needs Microsoft.Authorization/roleDefinitions/write."

  validation {
    # try(): values(null) fails when the variable is null, which is valid.
    condition     = try(alltrue([for id in values(var.custom_role_definition_ids) : can(regex("(?i)/providers/Microsoft\\.Authorization/roleDefinitions/[^/]+$", id))]), true)
    error_message = "custom_role_definition_ids values must be role definition resource ids (.../providers/Microsoft.Authorization/roleDefinitions/<guid>)."
  }
}

variable "state_container_ids" {
  type        = map(string)
  default     = {}
  description = "Blob containers in which the operator keeps state, by purpose (`learned_demand`: the `operator-state` container of pool_learned), as Resource Manager ids (`.../blobServices/default/containers/<name>`): Storage Blob Data Contributor on each container, not on the account. Empty: none."
  nullable    = false
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to the user-assigned identities."
  nullable    = false
}
