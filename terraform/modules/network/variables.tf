variable "location" {
  type        = string
  description = "Azure region of the virtual network, NSGs and NAT gateway."
  nullable    = false
}

variable "name" {
  type        = string
  description = "Base name: resources are named `vnet-<name>`, `snet-<name>-runners`, `nsg-<name>-scaler`, and so on."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{0,50}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 2-52 letters, digits or hyphens and start and end with a letter or digit."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Resource group that holds the network resources created by this module."
  nullable    = false
}

variable "address_space" {
  type        = list(string)
  default     = ["10.70.0.0/16"]
  description = "Address space of the virtual network created by this module. Ignored when `existing_subnets` is set."
  nullable    = false

  validation {
    condition     = length(var.address_space) > 0 && alltrue([for cidr in var.address_space : can(cidrhost(cidr, 0))])
    error_message = "address_space must hold at least one valid CIDR block, for example [\"10.70.0.0/16\"]."
  }
}

variable "admin_source_address_prefixes" {
  type        = list(string)
  default     = []
  description = "Private address prefixes (for example an Azure Bastion subnet) allowed to reach SSH (22/tcp) on the runners and the scaler. Empty: no SSH at all."
  nullable    = false

  validation {
    condition = alltrue([
      for prefix in var.admin_source_address_prefixes :
      can(cidrhost(prefix, 0)) && !contains(["0.0.0.0/0", "::/0"], prefix)
    ])
    error_message = "admin_source_address_prefixes must be CIDR blocks of private networks; 0.0.0.0/0 and ::/0 would open SSH to the internet."
  }
}

variable "blob_private_dns_zone_enabled" {
  type        = bool
  default     = false
  description = "Also create and link `privatelink.blob.core.windows.net`, for the storage account's blob private endpoint (the operator's learned-demand state). With existing_private_dns_zone_ids its `blob` zone is used instead."
  nullable    = false
}

variable "existing_private_dns_zone_ids" {
  type = object({
    key_vault = string
    queue     = string
    blob      = optional(string)
  })
  default     = null
  description = "Existing `privatelink.vaultcore.azure.net`, `privatelink.queue.core.windows.net` and (for a blob private endpoint) `privatelink.blob.core.windows.net` zones, for example a hub's, already linked to the VNet; the module then creates and links none. Null: create them and link them to the scaler's VNet."

  validation {
    condition     = var.existing_private_dns_zone_ids == null || !var.blob_private_dns_zone_enabled || try(var.existing_private_dns_zone_ids.blob != null, false)
    error_message = "existing_private_dns_zone_ids.blob must be set with blob_private_dns_zone_enabled = true: the blob private endpoint needs the privatelink.blob.core.windows.net zone."
  }
}

variable "existing_subnets" {
  type = object({
    runner_subnet_id = string
    scaler_subnet_id = string
  })
  default     = null
  description = <<-EOT
    Bring your own network: resource ids of an existing runner subnet and scaler subnet.
    When set, this module creates no VNet, subnets, NSGs or NAT gateway; it only links the
    private DNS zones to the VNet that holds the scaler subnet. You must then provide
    egress for both subnets and rules equivalent to those in this module's README.
  EOT

  validation {
    condition = var.existing_subnets == null || alltrue([
      for id in [try(var.existing_subnets.runner_subnet_id, ""), try(var.existing_subnets.scaler_subnet_id, "")] :
      can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.Network/virtualNetworks/[^/]+/subnets/[^/]+$", id))
    ])
    error_message = "existing_subnets ids must look like /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>."
  }
}

variable "nat_gateway_enabled" {
  type        = bool
  default     = true
  description = "Create a NAT gateway (with one Standard public IP used only for outbound traffic) for both subnets. Set to false when egress goes through your own firewall or NVA by a route table."
  nullable    = false
}

variable "runner_subnet_address_prefix" {
  type        = string
  default     = "10.70.0.0/20"
  description = "Address prefix of the runner subnet; its size bounds the pool (a /20 holds 4091 runners)."
  nullable    = false

  validation {
    condition     = can(cidrhost(var.runner_subnet_address_prefix, 0))
    error_message = "runner_subnet_address_prefix must be a CIDR block such as 10.70.0.0/20."
  }
}

variable "scaler_api_port" {
  type        = number
  default     = 8080
  description = "TCP port of the operator's HTTP API on the scaler; the only port the runner subnet may reach."
  nullable    = false

  validation {
    condition     = var.scaler_api_port >= 1024 && var.scaler_api_port <= 65535 && floor(var.scaler_api_port) == var.scaler_api_port
    error_message = "scaler_api_port must be an unprivileged TCP port, 1024-65535."
  }
}

variable "scaler_subnet_address_prefix" {
  type        = string
  default     = "10.70.16.0/27"
  description = "Address prefix of the scaler subnet, which also holds the private endpoints of the key vault and the storage queue."
  nullable    = false

  validation {
    condition     = can(cidrhost(var.scaler_subnet_address_prefix, 0))
    error_message = "scaler_subnet_address_prefix must be a CIDR block such as 10.70.16.0/27."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to every resource of this module."
  nullable    = false
}
