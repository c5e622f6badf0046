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

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to the user-assigned identities."
  nullable    = false
}
