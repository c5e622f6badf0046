variable "admin_ssh_public_key" {
  type        = string
  description = "OpenSSH public key for the admin user; password authentication is disabled."
  nullable    = false

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.admin_ssh_public_key)))
    error_message = "admin_ssh_public_key must be an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "identity_client_id" {
  type        = string
  description = "Client id of the scaler identity, written into the operator config so it picks that identity."
  nullable    = false
}

variable "identity_id" {
  type        = string
  description = "Resource id of the scaler user-assigned identity."
  nullable    = false
}

variable "location" {
  type        = string
  description = "Azure region of the scaler VM."
  nullable    = false
}

variable "name" {
  type        = string
  description = "Scaler VM name (the seed's vmss-scaler-name); also its host name."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 2-64 letters, digits or hyphens, starting and ending with a letter or digit."
  }
}

variable "operator_config" {
  type = object({
    github = object({
      api_url        = string
      repository     = optional(string)
      organization   = optional(string)
      runner_group   = optional(string)
      labels         = list(string)
      jit            = optional(bool, true)
      demand         = optional(string, "scale_set")
      scale_set_name = optional(string)
      key_vault_url  = string
      secret_name    = string
      app = optional(object({
        app_id          = number
        installation_id = number
      }))
    })
    vmss_resource_id     = string
    computer_name_prefix = optional(string)
    queue_url            = string
    pool = object({
      min                    = number
      max                    = number
      free_target_percentage = number
      scale_in_delay         = optional(string, "5m")
      registration_timeout   = optional(string, "10m")
      runner_exit_timeout    = optional(string, "10m")
      keep_unhealthy         = optional(bool, false)
      parked                 = optional(number, 0)
      schedules = optional(list(object({
        cron                   = string
        timezone               = string
        min                    = optional(number)
        parked                 = optional(number)
        free_target_percentage = optional(number)
      })), [])
      learned = optional(object({
        state_url        = string
        slot             = optional(string)
        burst_window     = optional(string)
        warm_quantile    = optional(number)
        reserve_quantile = optional(number)
        lead             = optional(string)
        half_life        = optional(string)
        history_weeks    = optional(number)
        save_period      = optional(string)
      }))
      prices = optional(object({
        currency         = string
        running_per_hour = number
        parked_per_hour  = number
      }))
    })
    reconcile_period = optional(string, "30s")
    api_port         = optional(number, 8080)
    max_body_bytes   = optional(number, 16384)
    shutdown_grace   = optional(string, "20s")
    log_format       = optional(string, "json")
  })
  description = "Values of the operator config file (`operator-config.json.tftpl`, schema `schema/operator-config.schema.json`). The root module fills it from its variables and the other modules' outputs."
  nullable    = false

  validation {
    condition     = (var.operator_config.github.repository == null) != (var.operator_config.github.organization == null)
    error_message = "operator_config.github needs exactly one of repository or organization."
  }
  validation {
    condition     = contains(["scale_set", "none"], var.operator_config.github.demand)
    error_message = "operator_config.github.demand must be \"scale_set\" or \"none\"."
  }
  validation {
    condition     = var.operator_config.github.demand == "none" || var.operator_config.github.jit
    error_message = "operator_config.github.jit must be true with demand = \"scale_set\": scale-set runners register only with JIT configs."
  }
  validation {
    condition     = var.operator_config.pool.min >= 1 || var.operator_config.github.demand == "scale_set"
    error_message = "operator_config.pool.min must be at least 1 with demand = \"none\": the pool then learns of demand only from its own runners."
  }
  validation {
    condition     = length(var.operator_config.github.labels) >= 1 || var.operator_config.github.demand == "scale_set"
    error_message = "operator_config.github.labels must hold at least one label with demand = \"none\"."
  }
  validation {
    condition     = var.operator_config.github.scale_set_name == null || can(regex("^[A-Za-z0-9._-]{1,100}$", coalesce(var.operator_config.github.scale_set_name, "x")))
    error_message = "operator_config.github.scale_set_name must be 1-100 letters, digits, periods, underscores or hyphens, or null."
  }
  validation {
    condition     = var.operator_config.pool.min + var.operator_config.pool.parked <= var.operator_config.pool.max
    error_message = "operator_config.pool.min + pool.parked must not exceed pool.max: parked VMs are instances of the scale set."
  }
  validation {
    condition = alltrue([
      for s in var.operator_config.pool.schedules :
      coalesce(s.min, var.operator_config.pool.min) + coalesce(s.parked, var.operator_config.pool.parked) <= var.operator_config.pool.max
    ])
    error_message = "operator_config.pool.schedules: each entry's min + parked (unset ones take pool.min and pool.parked) must not exceed pool.max."
  }
  validation {
    condition     = var.operator_config.pool.learned == null || length(var.operator_config.pool.schedules) == 0
    error_message = "operator_config.pool.learned and pool.schedules are exclusive: with learned, schedules must be empty."
  }
  validation {
    condition     = var.operator_config.pool.learned == null || can(regex("^https://[a-z0-9]{3,24}\\.blob\\.[^/]+/operator-state/[^/]+\\.json$", try(var.operator_config.pool.learned.state_url, "")))
    error_message = "operator_config.pool.learned.state_url must be the HTTPS URL of a JSON blob in the operator-state container, https://<account>.blob.core.windows.net/operator-state/<name>.json."
  }
}

variable "operator_package" {
  type = object({
    url    = string
    sha256 = string
  })
  description = "Where cloud-init downloads the operator binary (a Linux x86_64 executable over HTTPS) and its sha256; the download is refused unless the checksum matches."
  nullable    = false

  validation {
    condition     = startswith(var.operator_package.url, "https://") && can(regex("^[0-9a-f]{64}$", var.operator_package.sha256))
    error_message = "operator_package.url must start with https:// and operator_package.sha256 must be 64 lowercase hex digits."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the scaler VM."
  nullable    = false
}

variable "subnet_id" {
  type        = string
  description = "Resource id of the scaler subnet."
  nullable    = false
}

variable "admin_username" {
  type        = string
  default     = "azureuser"
  description = "Admin user created on the scaler (SSH key only)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.admin_username)) && !contains(["root", "admin", "administrator"], var.admin_username)
    error_message = "admin_username must be a lowercase Linux user name (1-32 characters) and not root, admin or administrator."
  }
}

variable "encryption_at_host_enabled" {
  type        = bool
  default     = false
  description = "Encrypt temp and cache disks at the host. Needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first."
  nullable    = false
}

variable "private_ip_address" {
  type        = string
  default     = null
  description = "Static private IP of the scaler inside the scaler subnet. Null: the first free address, kept for the NIC's lifetime."

  validation {
    condition     = var.private_ip_address == null || can(cidrhost("${coalesce(var.private_ip_address, "0.0.0.0")}/32", 0))
    error_message = "private_ip_address must be an IPv4 address such as 10.70.16.4."
  }
}

variable "size" {
  type        = string
  default     = "Standard_B2s"
  description = "VM size of the scaler; the operator is a single small process."
  nullable    = false
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to the scaler VM and its NIC."
  nullable    = false
}

variable "zone" {
  type        = string
  default     = null
  description = "Availability zone of the scaler VM (\"1\", \"2\" or \"3\"); null for none."

  validation {
    condition     = var.zone == null || contains(["1", "2", "3"], coalesce(var.zone, "1"))
    error_message = "zone must be \"1\", \"2\", \"3\" or null."
  }
}
