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

variable "image_definition" {
  type = object({
    name      = optional(string, "github-runner-ubuntu-24.04")
    publisher = optional(string, "vmss-github-runner")
    offer     = optional(string, "github-runner")
    sku       = optional(string, "ubuntu-24.04")
  })
  default     = {}
  description = "Gallery image definition that receives the Packer builds of the runner image (Linux, generalized, Hyper-V generation 2, Trusted Launch)."
  nullable    = false
}

variable "log_analytics_workspace_id" {
  type        = string
  default     = null
  description = "Log Analytics workspace that receives the queue's read, write and delete logs (StorageRead/Write/Delete). Null: no diagnostic setting."
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
