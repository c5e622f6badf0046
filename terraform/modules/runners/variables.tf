variable "admin_ssh_public_key" {
  type        = string
  description = "OpenSSH public key for the admin user; password authentication is disabled."
  nullable    = false

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.admin_ssh_public_key)))
    error_message = "admin_ssh_public_key must be an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "custom_data" {
  type        = string
  description = "Rendered cloud-init document the instances boot with (plain text; the module base64-encodes it)."
  nullable    = false
}

variable "identity_id" {
  type        = string
  description = "Resource id of the runner user-assigned identity."
  nullable    = false
}

variable "location" {
  type        = string
  description = "Azure region of the scale set."
  nullable    = false
}

variable "name" {
  type        = string
  description = "Scale set name (the seed's vmss-runner-name); also the computer name prefix of the instances."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 2-64 letters, digits or hyphens, starting and ending with a letter or digit."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the scale set."
  nullable    = false
}

variable "source_image" {
  type = object({
    gallery_image_id = optional(string)
    marketplace = optional(object({
      publisher = string
      offer     = string
      sku       = string
      version   = string
    }))
  })
  description = "Image the instances boot from: exactly one of `gallery_image_id` (a gallery image version id, or the image definition id for its latest version) or `marketplace`."
  nullable    = false

  validation {
    condition     = (var.source_image.gallery_image_id == null) != (var.source_image.marketplace == null)
    error_message = "source_image needs exactly one of gallery_image_id or marketplace."
  }
}

variable "subnet_id" {
  type        = string
  description = "Resource id of the runner subnet."
  nullable    = false
}

variable "admin_username" {
  type        = string
  default     = "azureuser"
  description = "Admin user created on the instances (SSH key only)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.admin_username)) && !contains(["root", "admin", "administrator", "runner"], var.admin_username)
    error_message = "admin_username must be a lowercase Linux user name (1-32 characters) and not root, admin, administrator or runner."
  }
}

variable "encryption_at_host_enabled" {
  type        = bool
  default     = false
  description = "Encrypt temp and cache disks at the host. Needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first."
  nullable    = false
}

variable "os_disk" {
  type = object({
    ephemeral    = optional(bool)
    placement    = optional(string, "ResourceDisk")
    size_gb      = optional(number)
    storage_type = optional(string)
  })
  default     = {}
  description = "OS disk. `ephemeral`: on the host's local disk (fast reimage, nothing persisted, no disk to pay for) where the VM size's cache or resource disk is at least the image size; null chooses: ephemeral unless parking_enabled, managed (caching ReadWrite) with it, since Azure cannot stop-deallocate a VM with an ephemeral OS disk. Set `ephemeral = false` for sizes without a local disk. `placement` (ephemeral only) is ResourceDisk or CacheDisk (the values azurerm 4.x accepts for a scale set). `storage_type`: null is Standard_LRS for an ephemeral disk (its base disk) and StandardSSD_LRS for a managed one (Azure retires Standard HDD OS disks in 2028). The disk kind and type are ForceNew: changing them replaces the scale set."
  nullable    = false

  validation {
    condition     = contains(["ResourceDisk", "CacheDisk"], var.os_disk.placement)
    error_message = "os_disk.placement must be ResourceDisk or CacheDisk (azurerm 4.x has no NvmeDisk for scale sets)."
  }
  validation {
    condition     = var.os_disk.storage_type == null || contains(["Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS"], coalesce(var.os_disk.storage_type, "Standard_LRS"))
    error_message = "os_disk.storage_type must be Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS, Premium_ZRS or null (chosen from the disk kind)."
  }
  validation {
    condition     = !(var.os_disk.ephemeral == true && var.parking_enabled)
    error_message = "os_disk.ephemeral = true cannot be combined with parking_enabled = true: Azure cannot stop-deallocate a VM whose OS disk is ephemeral. Leave os_disk.ephemeral null (a managed disk is then chosen) or set it to false."
  }
  validation {
    # An ephemeral OS disk's base disk is Standard HDD, Standard SSD or Premium SSD, locally
    # redundant ("Ephemeral OS disks for Azure VMs", SSD storage account support).
    condition     = !(var.os_disk.ephemeral == true || (var.os_disk.ephemeral == null && !var.parking_enabled)) || contains(["Standard_LRS", "StandardSSD_LRS", "Premium_LRS"], coalesce(var.os_disk.storage_type, "Standard_LRS"))
    error_message = "An ephemeral OS disk's storage_type must be Standard_LRS, StandardSSD_LRS or Premium_LRS: zone-redundant types need a managed disk (os_disk.ephemeral = false)."
  }
}

variable "parking_enabled" {
  type        = bool
  default     = false
  description = "The operator parks instances of this scale set: it stop-deallocates ready VMs and starts them on demand (the root module sets this from pool_parked_instances, pool_schedules and pool_learned). Azure cannot deallocate a VM with an ephemeral OS disk, so the OS disk is then managed unless os_disk.ephemeral says otherwise, and os_disk.ephemeral = true is refused."
  nullable    = false
}

variable "sku" {
  type        = string
  default     = "Standard_D4ads_v5"
  description = "VM size of the runners. The default has a 150 GiB resource disk, enough for an ephemeral OS disk of the runner image."
  nullable    = false
}

variable "spot" {
  type = object({
    max_bid_price = optional(number, -1)
  })
  default     = null
  description = "Run the runners as Spot VMs (eviction policy Delete; max_bid_price -1 pays up to the on-demand price). An evicted runner's job fails and GitHub can re-run it. Null: regular priority."

  validation {
    condition     = var.spot == null || try(var.spot.max_bid_price == -1 || var.spot.max_bid_price > 0, false)
    error_message = "spot.max_bid_price must be -1 (up to the on-demand price) or a positive price in USD per hour."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to the scale set."
  nullable    = false
}

variable "zones" {
  type        = list(string)
  default     = []
  description = "Availability zones to spread the runners over, for example [\"1\", \"2\", \"3\"]. Empty: no zone pinning."
  nullable    = false

  validation {
    condition     = alltrue([for zone in var.zones : contains(["1", "2", "3"], zone)])
    error_message = "zones may contain only \"1\", \"2\" and \"3\"."
  }
}
