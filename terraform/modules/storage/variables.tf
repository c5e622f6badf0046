variable "gallery_name" {
  type        = string
  description = "Azure Compute Gallery name: letters, digits, underscores and periods, 1-80 characters, starting and ending with a letter or digit."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9]([a-zA-Z0-9_.]{0,78}[a-zA-Z0-9])?$", var.gallery_name))
    error_message = "gallery_name may hold only letters, digits, underscores and periods (no hyphens), 1-80 characters, starting and ending with a letter or digit."
  }
}

variable "location" {
  type        = string
  description = "Azure region of the storage account, gallery and private endpoint."
  nullable    = false
}

variable "private_dns_zone_id" {
  type        = string
  description = "Resource id of the `privatelink.queue.core.windows.net` private DNS zone."
  nullable    = false
}

variable "private_endpoint_subnet_id" {
  type        = string
  description = "Resource id of the subnet that receives the queue private endpoint (the scaler subnet)."
  nullable    = false
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the storage account and the gallery."
  nullable    = false
}

variable "storage_account_name" {
  type        = string
  description = "Storage account name: globally unique, 3-24 lowercase letters and digits."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lowercase letters and digits (no hyphens or capitals)."
  }
}

variable "account_replication_type" {
  type        = string
  default     = "ZRS"
  description = "Replication of the storage account: the busy-runner queue is small but is the operator's record of running jobs, so zone-redundant by default."
  nullable    = false

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "GZRS", "RAGRS", "RAGZRS"], var.account_replication_type)
    error_message = "account_replication_type must be one of LRS, ZRS, GRS, GZRS, RAGRS, RAGZRS."
  }
}

variable "blob_private_dns_zone_id" {
  type        = string
  default     = null
  description = "Resource id of the `privatelink.blob.core.windows.net` private DNS zone, for the blob private endpoint; needed with operator_state_enabled."

  validation {
    condition     = var.blob_private_dns_zone_id != null || !var.operator_state_enabled
    error_message = "blob_private_dns_zone_id must be set with operator_state_enabled = true: without the privatelink.blob.core.windows.net zone the account's blob endpoint does not resolve to its private endpoint."
  }
}

variable "image_definition" {
  type = object({
    publisher = optional(string, "vmss-github-runner")
    offer     = optional(string, "github-runner")
  })
  default     = {}
  description = "Publisher and offer of the gallery image definitions (Linux, generalized, Hyper-V generation 2, Trusted Launch) that receive the Packer builds; each definition is named `github-runner-ubuntu-<release>` with SKU `ubuntu-<release>`."
  nullable    = false
}

variable "log_analytics_workspace_id" {
  type        = string
  default     = null
  description = "Log Analytics workspace that receives the queue's (and, with operator_state_enabled, the blob service's) read, write and delete logs (StorageRead/Write/Delete). Null: no diagnostic setting."
}

variable "operator_state_enabled" {
  type        = bool
  default     = false
  description = "Create the private blob container `operator-state`, where the operator keeps its learned-demand state (root pool_learned), and a blob private endpoint in private_endpoint_subnet_id for it."
  nullable    = false
}

variable "queue_name" {
  type        = string
  default     = "busy-runners"
  description = "Name of the queue in which the operator records busy runners."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9](-?[a-z0-9]){2,62}$", var.queue_name))
    error_message = "queue_name must be 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to every resource of this module."
  nullable    = false
}

variable "ubuntu_versions" {
  type        = list(string)
  default     = ["22.04", "24.04"]
  description = "Ubuntu releases that get an image definition (`github-runner-ubuntu-<release>`), the ones packer/build.sh can build."
  nullable    = false

  validation {
    condition     = length(var.ubuntu_versions) > 0 && alltrue([for v in var.ubuntu_versions : contains(["22.04", "24.04"], v)])
    error_message = "ubuntu_versions may hold \"22.04\" and \"24.04\" (20.04 is end of life)."
  }
}
