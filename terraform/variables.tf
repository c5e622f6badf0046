# Inputs of the whole deployment. Required first, then optional, each group in
# alphabetical order. The seed workflow's parameters map to:
#   vmss-runner-name            -> vmss_runner_name
#   vmss-scaler-name            -> vmss_scaler_name
#   github-repo                 -> github_repository (or github_organization)
#   runner-labels               -> runner_labels
#   pool-min-instances          -> pool_min_instances
#   pool-max-instances          -> pool_max_instances
#   pool-free-target-percentage -> pool_free_target_percentage
#   build-image                 -> a workflow input only (.github/workflows/image.yml)
# Cross-variable rules are preconditions on data.azurerm_resource_group.this, except
# those that qualify one variable by others: pool_min_instances, runner_labels and
# scale_set_name against github_demand; pool_parked_instances and pool_schedules against
# the pool's min and max; pool_learned against pool_schedules; pool_learned_tuning against
# pool_learned; runners.os_disk.ephemeral against parking; network's DNS zones against
# pool_learned. Those are validation blocks of that variable, which Terraform >= 1.9
# (versions.tf) lets reference another one, so the error names the variable to change.

variable "admin_ssh_public_key" {
  type        = string
  description = "OpenSSH public key of the admin user on the runners and the scaler. Password authentication is disabled everywhere."
  nullable    = false

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.admin_ssh_public_key)))
    error_message = "admin_ssh_public_key must be one OpenSSH public key line, for example the content of ~/.ssh/id_ed25519.pub."
  }
}

variable "operator_package" {
  type = object({
    url    = string
    sha256 = string
  })
  description = "The operator binary the scaler installs at boot: an HTTPS URL of the Linux x86_64 executable and its sha256 (cloud-init refuses a mismatch)."
  nullable    = false

  validation {
    condition     = startswith(var.operator_package.url, "https://") && can(regex("^[0-9a-f]{64}$", var.operator_package.sha256))
    error_message = "operator_package.url must start with https:// and operator_package.sha256 must be 64 lowercase hex digits (sha256sum output)."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Existing resource group that receives every resource of the deployment."
  nullable    = false

  validation {
    condition     = can(regex("^[-\\w._()]{1,89}[-\\w_()]$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 letters, digits, underscores, hyphens, periods or parentheses, not ending with a period."
  }
}

variable "vmss_runner_name" {
  type        = string
  description = "Name of the runner virtual machine scale set (seed parameter vmss-runner-name). Its first 9 characters prefix the runners' host names."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$", var.vmss_runner_name))
    error_message = "vmss_runner_name must be 2-64 letters, digits or hyphens, start with a letter and end with a letter or digit, for example \"vmss-gh-runners\"."
  }
}

variable "vmss_scaler_name" {
  type        = string
  description = "Name of the scaler virtual machine (seed parameter vmss-scaler-name); also its host name."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$", var.vmss_scaler_name))
    error_message = "vmss_scaler_name must be 2-64 letters, digits or hyphens, start with a letter and end with a letter or digit, for example \"vm-gh-scaler\"."
  }
}

variable "admin_username" {
  type        = string
  default     = "azureuser"
  description = "Admin user on the runners and the scaler (SSH key only)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.admin_username)) && !contains(["root", "admin", "administrator", "runner"], var.admin_username)
    error_message = "admin_username must be a lowercase Linux user name of 1-32 characters, and not root, admin, administrator or runner."
  }
}

variable "custom_role_definition_ids" {
  type = object({
    scaler_vmss   = string
    linked_access = string
  })
  default     = null
  description = "The scaler's two custom roles, pre-created by an administrator (docs/deploy.md, \"Custom roles\"), as role definition resource ids. Null: Terraform defines them, and its principal then needs Microsoft.Authorization/roleDefinitions/write on the resource group."
}

variable "github_api_url" {
  type        = string
  default     = "https://api.github.com"
  description = "GitHub REST API base URL: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server."
  nullable    = false

  validation {
    condition     = can(regex("^https://[^/]+(/api/v3)?/?$", var.github_api_url))
    error_message = "github_api_url must be https://api.github.com or https://HOST/api/v3 (GitHub Enterprise Server)."
  }
}

variable "github_app" {
  type = object({
    app_id          = number
    installation_id = number
  })
  default     = null
  description = "Authenticate as a GitHub App: its app id and installation id; the key vault secret then holds the App's private key (PEM). Null: the secret holds a PAT."

  validation {
    condition     = var.github_app == null || try(var.github_app.app_id > 0 && var.github_app.installation_id > 0, false)
    error_message = "github_app.app_id and github_app.installation_id must be positive integers (GitHub App settings and the installation URL show them)."
  }
}

variable "github_credential" {
  type        = string
  default     = null
  description = "The GitHub credential (PAT, or GitHub App private key PEM), written to the key vault when manage_github_credential_secret is true. It is then stored in the Terraform state: protect the state, or leave this null and create the secret out of band."
  sensitive   = true
}

variable "github_credential_expiration_date" {
  type        = string
  default     = null
  description = "Expiry recorded on the credential secret (RFC 3339, for example 2026-12-31T00:00:00Z): the PAT's expiry or the planned App key rotation."

  validation {
    condition     = var.github_credential_expiration_date == null || can(formatdate("YYYY", var.github_credential_expiration_date))
    error_message = "github_credential_expiration_date must be an RFC 3339 timestamp such as 2026-12-31T00:00:00Z."
  }
}

variable "github_credential_secret_name" {
  type        = string
  default     = "github-credential"
  description = "Name of the key vault secret that holds the GitHub credential."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,127}$", var.github_credential_secret_name))
    error_message = "github_credential_secret_name must be 1-127 letters, digits or hyphens."
  }
}

variable "github_demand" {
  type        = string
  default     = "scale_set"
  description = "Where the operator learns of demand (operator config github.demand). \"scale_set\": the operator creates (or adopts) a GitHub runner scale set named scale_set_name, workflows select it with `runs-on: <scale set name>` (the runs_on output), every queued job is reported to the operator and the pool may scale from zero (pool_min_instances = 0). \"none\": only the pool's own runners report jobs, so pool_min_instances must be at least 1; workflows select the runners by runner_labels. Use \"none\" for a GitHub Enterprise Server without the runner scale set API (before 3.9)."
  nullable    = false

  validation {
    condition     = contains(["scale_set", "none"], var.github_demand)
    error_message = "github_demand must be \"scale_set\" (the runner scale set reports demand; the pool may scale from zero) or \"none\" (demand only from the pool's own runners)."
  }
}

variable "github_organization" {
  type        = string
  default     = null
  description = "Register the runners at this GitHub organization (organization-level runners). Set exactly one of github_organization and github_repository."

  validation {
    condition     = var.github_organization == null || can(regex("^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}$", coalesce(var.github_organization, "x")))
    error_message = "github_organization must be a GitHub organization login: letters, digits and single hyphens, at most 39 characters, for example \"my-org\"."
  }
}

variable "github_repository" {
  type        = string
  default     = null
  description = "Register the runners at this repository, as owner/name (seed parameter github-repo). Set exactly one of github_repository and github_organization."

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}/[A-Za-z0-9._-]{1,100}$", coalesce(var.github_repository, "x/y")))
    error_message = "github_repository must be owner/name, for example \"octo-org/octo-repo\"."
  }
}

variable "github_runner_group" {
  type        = string
  default     = null
  description = "Runner group the runners join (organization scope only); with github_demand = \"scale_set\" the operator creates the runner scale set in this group. Null: the organization's default group."

  validation {
    condition     = var.github_runner_group == null || try(length(var.github_runner_group) > 0 && length(var.github_runner_group) <= 100, false)
    error_message = "github_runner_group must be 1-100 characters, or null for the default group."
  }
}

variable "key_vault" {
  type = object({
    name                       = optional(string)
    allowed_ip_ranges          = optional(list(string), [])
    soft_delete_retention_days = optional(number, 90)
  })
  default     = {}
  description = <<-EOT
    Key vault settings. `name`: globally unique, 3-24 characters (null: derived from vmss_runner_name).
    `allowed_ip_ranges`: public IPv4 ranges let through the vault firewall, only needed when Terraform
    writes the secret from outside the VNet; empty keeps public network access off.
    `soft_delete_retention_days`: 7-90.
  EOT
  nullable    = false

  validation {
    condition     = var.key_vault.name == null || can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", coalesce(var.key_vault.name, "kv0")))
    error_message = "key_vault.name must be 3-24 letters, digits or hyphens, start with a letter and end with a letter or digit."
  }
  validation {
    condition     = alltrue([for cidr in var.key_vault.allowed_ip_ranges : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "key_vault.allowed_ip_ranges must be IPv4 CIDR blocks (x.y.z.w/32 for one address); 0.0.0.0/0 is refused."
  }
  validation {
    condition     = var.key_vault.soft_delete_retention_days >= 7 && var.key_vault.soft_delete_retention_days <= 90
    error_message = "key_vault.soft_delete_retention_days must be between 7 and 90."
  }
}

variable "location" {
  type        = string
  default     = null
  description = "Azure region of every resource. Null: the resource group's region."
}

variable "log_analytics_workspace_id" {
  type        = string
  default     = null
  description = "Log Analytics workspace for the queue's read/write/delete logs. Null: no diagnostic setting."
}

variable "manage_github_credential_secret" {
  type        = bool
  default     = false
  description = "true: Terraform writes github_credential into the key vault (and grants the identity running Terraform Key Vault Secrets Officer on that vault); it must reach the vault's data plane (run inside the VNet, or list your address in key_vault.allowed_ip_ranges). false: create the secret out of band (docs/terraform.md)."
  nullable    = false
}

variable "network" {
  type = object({
    address_space                 = optional(list(string), ["10.70.0.0/16"])
    runner_subnet_address_prefix  = optional(string, "10.70.0.0/20")
    scaler_subnet_address_prefix  = optional(string, "10.70.16.0/27")
    nat_gateway_enabled           = optional(bool, true)
    admin_source_address_prefixes = optional(list(string), [])
    existing_subnets = optional(object({
      runner_subnet_id = string
      scaler_subnet_id = string
    }))
    existing_private_dns_zone_ids = optional(object({
      key_vault = string
      queue     = string
      blob      = optional(string)
    }))
  })
  default     = {}
  description = <<-EOT
    Network. By default a new VNet with a runner subnet and a scaler subnet, NSGs that admit only
    runner subnet -> scaler API port, and a NAT gateway for egress. `existing_subnets` brings your own
    subnets instead (you then own their NSGs and egress). `existing_private_dns_zone_ids` uses your
    `privatelink.vaultcore.azure.net` and `privatelink.queue.core.windows.net` zones, and with
    pool_learned your `privatelink.blob.core.windows.net` zone (`blob`), a hub's, already linked to the
    VNet, instead of creating and linking new ones. `admin_source_address_prefixes`: private
    prefixes (for example Azure Bastion) allowed to SSH; empty means no SSH.
  EOT
  nullable    = false

  validation {
    condition     = !var.pool_learned || var.network.existing_private_dns_zone_ids == null || try(var.network.existing_private_dns_zone_ids.blob != null, false)
    error_message = "network.existing_private_dns_zone_ids.blob must be set with pool_learned = true: the scaler reaches its learned-demand blob through a blob private endpoint, which needs your privatelink.blob.core.windows.net zone."
  }
}

variable "operator" {
  type = object({
    api_port                     = optional(number, 8080)
    keep_unhealthy_for_debugging = optional(bool, false)
    log_format                   = optional(string, "json")
    max_body_bytes               = optional(number, 16384)
    reconcile_period             = optional(string, "30s")
    registration_timeout         = optional(string, "10m")
    runner_exit_timeout          = optional(string, "10m")
    scale_in_delay               = optional(string, "5m")
    shutdown_grace               = optional(string, "20s")
  })
  default     = {}
  description = "Operator tuning written to its config file. Durations are humantime strings (\"30s\", \"5m\", \"1h 30m\"); log_format is auto, json or pretty; keep_unhealthy_for_debugging keeps the newest broken runner VM (at most one) instead of deleting it."
  nullable    = false

  validation {
    condition     = var.operator.api_port >= 1024 && var.operator.api_port <= 65535
    error_message = "operator.api_port must be an unprivileged TCP port, 1024-65535 (the operator runs without capabilities)."
  }
  validation {
    condition = alltrue([
      for d in [var.operator.reconcile_period, var.operator.registration_timeout, var.operator.runner_exit_timeout, var.operator.scale_in_delay, var.operator.shutdown_grace] :
      can(regex("^[0-9]+(ms|s|m|h|d)( ?[0-9]+(ms|s|m|h|d))*$", d))
    ])
    error_message = "operator durations must be humantime strings such as \"30s\", \"10m\" or \"1h 30m\"."
  }
  validation {
    condition     = contains(["auto", "json", "pretty"], var.operator.log_format)
    error_message = "operator.log_format must be auto, json or pretty."
  }
  validation {
    condition     = var.operator.max_body_bytes >= 1024 && var.operator.max_body_bytes <= 1048576
    error_message = "operator.max_body_bytes must be between 1024 and 1048576."
  }
}

variable "pool_free_target_percentage" {
  type        = number
  default     = 25
  description = "Share of the pool the operator tries to keep idle, in percent of the active runner count (seed parameter pool-free-target-percentage)."
  nullable    = false

  validation {
    condition     = var.pool_free_target_percentage >= 0 && var.pool_free_target_percentage < 100 && floor(var.pool_free_target_percentage) == var.pool_free_target_percentage
    error_message = "pool_free_target_percentage must be a whole number from 0 to 99: at 100 every runner would have to stay idle."
  }
}

variable "pool_learned" {
  type        = bool
  default     = false
  description = "Learned parking (operator config pool.learned): the operator sizes the parked reserve itself from the demand it has seen, and keeps what it learned as the blob `learned-demand.json` in a private `operator-state` container of the deployment's storage account. Terraform then creates that container, a blob private endpoint (and its privatelink.blob.core.windows.net zone) and grants the scaler Storage Blob Data Contributor on that container only. The pool parks, so the runners get a managed OS disk (see runners). Excludes pool_schedules. The model's tuning is pool_learned_tuning."
  nullable    = false

  validation {
    condition     = !var.pool_learned || length(var.pool_schedules) == 0
    error_message = "pool_learned = true and pool_schedules are exclusive: the learned mode decides the parked reserve itself. Empty pool_schedules, or set pool_learned = false."
  }
}

variable "pool_learned_tuning" {
  type = object({
    burst_window     = optional(string)
    half_life        = optional(string)
    history_weeks    = optional(number)
    lead             = optional(string)
    reserve_quantile = optional(number)
    save_period      = optional(string)
    slot             = optional(string)
    warm_quantile    = optional(number)
  })
  default     = null
  description = "Tuning of the learned mode (operator config pool.learned, besides its state_url); needs pool_learned = true. Null, or a field left unset, leaves the field out of the config, so the operator's default (in brackets) applies. `slot` (\"4h\"): the week, from Monday 00:00 UTC, is cut into slots of this length, each learning its own bursts; whole minutes dividing a day. `burst_window` (\"90s\"): a burst is how far demand rose within this window, about one VM boot; 30s to 1h. `warm_quantile` (0): the running VMs (min) cover this quantile of a slot's weekly largest bursts; `reserve_quantile` (1): running plus parked VMs cover this one; both 0 to 1, warm_quantile not above reserve_quantile. `lead` (\"15m\"): how long before a slot begins its targets already apply, so VMs are running or parked in time; less than a day. `half_life` (\"28d\"): a week's burst weighs half as much for every half_life of age; more than 0. `history_weeks` (12): weeks of bursts kept per slot, newest first; 1 to 520. `save_period` (\"5m\"): how often the learned state is written to the blob (and once more on shutdown); at least 30s. Durations are one or more <whole number><unit> parts with units s, m, h or d, such as \"90s\", \"1h 30m\" or \"28d\": a subset of the operator's humantime format that Terraform can convert to seconds to check these rules. The defaults were chosen on the history of the bitcoin/bitcoin CI trace (docs/scaling-policy.md, \"Where the targets come from\"); to choose values for another workload, replay its own trace with `operator simulate --learned --learned-slot ... --learned-burst-window ...` (and the other --learned-* options, docs/simulate.md) and keep the cheapest setting that meets your wait target. Changing slot once the blob holds a learned state stops the operator, naming the blob: delete the blob to learn anew, or set slot back. The operator's pool.learned.seed_trace (a trace to learn from before the blob exists) is a path on the scaler VM, where Terraform has no way to put the file, so it cannot be set here."

  # The rules are the operator's (LearnedParams::problems in operator/core, save_period's
  # in operator/operator/src/config/targets.rs). A duration is checked in seconds: each
  # <number><unit> part found by regexall(), times its unit's seconds, summed, named
  # `seconds` by the one-element for. An unset field is not checked (the operator's
  # default applies); a duration not in the format fails its field's rule.
  validation {
    condition     = var.pool_learned_tuning == null || var.pool_learned
    error_message = "pool_learned_tuning is set while pool_learned = false: it tunes the learned mode. Set pool_learned = true, or remove pool_learned_tuning."
  }
  validation {
    condition = try(var.pool_learned_tuning.slot, null) == null ? true : try(alltrue([
      for seconds in [sum([for p in regexall("([0-9]+)([smhd])", var.pool_learned_tuning.slot) : tonumber(p[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[p[1]]])] :
      can(regex("^[0-9]+[smhd]( ?[0-9]+[smhd])*$", var.pool_learned_tuning.slot)) && (seconds >= 60 ? seconds % 60 == 0 && 86400 % seconds == 0 : false)
    ]), false)
    error_message = "pool_learned_tuning.slot (\"${var.pool_learned_tuning.slot}\") must be whole minutes, at least 1 minute, dividing a day evenly, such as \"30m\", \"1h\", \"4h\" (the default) or \"1d\" (\"7m\" does not divide 1440 minutes), written as one or more <whole number><unit> parts with units s, m, h or d."
  }
  validation {
    condition = try(var.pool_learned_tuning.burst_window, null) == null ? true : try(alltrue([
      for seconds in [sum([for p in regexall("([0-9]+)([smhd])", var.pool_learned_tuning.burst_window) : tonumber(p[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[p[1]]])] :
      can(regex("^[0-9]+[smhd]( ?[0-9]+[smhd])*$", var.pool_learned_tuning.burst_window)) && seconds >= 30 && seconds <= 3600
    ]), false)
    error_message = "pool_learned_tuning.burst_window (\"${var.pool_learned_tuning.burst_window}\") must be from 30s to 1h inclusive (the default is \"90s\", about one VM boot), written as one or more <whole number><unit> parts with units s, m, h or d."
  }
  validation {
    condition = alltrue([
      for q in [try(var.pool_learned_tuning.warm_quantile, null), try(var.pool_learned_tuning.reserve_quantile, null)] :
      q == null ? true : q >= 0 && q <= 1
    ])
    error_message = "pool_learned_tuning.warm_quantile and pool_learned_tuning.reserve_quantile must each be from 0 to 1: they are quantiles of a slot's weekly largest bursts."
  }
  validation {
    condition     = try(var.pool_learned_tuning.warm_quantile, null) == null || try(var.pool_learned_tuning.reserve_quantile, null) == null ? true : var.pool_learned_tuning.warm_quantile <= var.pool_learned_tuning.reserve_quantile
    error_message = "pool_learned_tuning.warm_quantile must not exceed pool_learned_tuning.reserve_quantile: the running VMs are part of the reserve (running plus parked). Lower warm_quantile or raise reserve_quantile."
  }
  validation {
    condition = try(var.pool_learned_tuning.lead, null) == null ? true : try(alltrue([
      for seconds in [sum([for p in regexall("([0-9]+)([smhd])", var.pool_learned_tuning.lead) : tonumber(p[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[p[1]]])] :
      can(regex("^[0-9]+[smhd]( ?[0-9]+[smhd])*$", var.pool_learned_tuning.lead)) && seconds < 86400
    ]), false)
    error_message = "pool_learned_tuning.lead (\"${var.pool_learned_tuning.lead}\") must be less than a day (the default is \"15m\"), written as one or more <whole number><unit> parts with units s, m, h or d."
  }
  validation {
    condition = try(var.pool_learned_tuning.half_life, null) == null ? true : try(alltrue([
      for seconds in [sum([for p in regexall("([0-9]+)([smhd])", var.pool_learned_tuning.half_life) : tonumber(p[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[p[1]]])] :
      can(regex("^[0-9]+[smhd]( ?[0-9]+[smhd])*$", var.pool_learned_tuning.half_life)) && seconds > 0
    ]), false)
    error_message = "pool_learned_tuning.half_life (\"${var.pool_learned_tuning.half_life}\") must be more than zero (the default is \"28d\"), written as one or more <whole number><unit> parts with units s, m, h or d."
  }
  validation {
    condition     = try(var.pool_learned_tuning.history_weeks, null) == null ? true : var.pool_learned_tuning.history_weeks >= 1 && var.pool_learned_tuning.history_weeks <= 520 && floor(var.pool_learned_tuning.history_weeks) == var.pool_learned_tuning.history_weeks
    error_message = "pool_learned_tuning.history_weeks must be a whole number from 1 to 520: the weeks of bursts kept per slot (the default is 12)."
  }
  validation {
    condition = try(var.pool_learned_tuning.save_period, null) == null ? true : try(alltrue([
      for seconds in [sum([for p in regexall("([0-9]+)([smhd])", var.pool_learned_tuning.save_period) : tonumber(p[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[p[1]]])] :
      can(regex("^[0-9]+[smhd]( ?[0-9]+[smhd])*$", var.pool_learned_tuning.save_period)) && seconds >= 30
    ]), false)
    error_message = "pool_learned_tuning.save_period (\"${var.pool_learned_tuning.save_period}\") must be at least 30s (the default is \"5m\"), written as one or more <whole number><unit> parts with units s, m, h or d."
  }
}

variable "pool_max_instances" {
  type        = number
  default     = 10
  description = "Most runners the pool may hold (seed parameter pool-max-instances)."
  nullable    = false

  validation {
    condition     = var.pool_max_instances >= 1 && var.pool_max_instances <= 1000 && floor(var.pool_max_instances) == var.pool_max_instances
    error_message = "pool_max_instances must be a whole number from 1 to 1000 (the limit of one scale set)."
  }
}

variable "pool_min_instances" {
  type        = number
  default     = 1
  description = "Fewest runners the pool keeps, idle or busy (seed parameter pool-min-instances). 0 is allowed with github_demand = \"scale_set\": the runner scale set reports queued jobs, so an empty pool grows on demand (the first job then waits for a VM to boot). With github_demand = \"none\" at least 1: the operator learns of demand only from its own runners' job hooks, so an empty pool would never grow."
  nullable    = false

  validation {
    condition     = var.pool_min_instances >= 0 && floor(var.pool_min_instances) == var.pool_min_instances
    error_message = "pool_min_instances must be a whole number of at least 0."
  }
  validation {
    condition     = var.pool_min_instances >= 1 || var.github_demand == "scale_set"
    error_message = "pool_min_instances must be at least 1 with github_demand = \"none\": with no runner, no job hook ever reaches the operator, so the pool could not scale out. Set github_demand = \"scale_set\" to scale from zero."
  }
}

variable "pool_parked_instances" {
  type        = number
  default     = 0
  description = "VMs kept parked in reserve besides the pool_min_instances running ones (operator config pool.parked): stopped and deallocated, they bill only their OS disk, and the operator starts one when a job needs it, which is faster than creating a VM. Parked VMs count against pool_max_instances. Any parking (this, a pool_schedules entry with parked_instances, or pool_learned) gives the runners a managed OS disk: Azure cannot deallocate a VM with an ephemeral one (see runners)."
  nullable    = false

  validation {
    condition     = var.pool_parked_instances >= 0 && floor(var.pool_parked_instances) == var.pool_parked_instances
    error_message = "pool_parked_instances must be a whole number of at least 0 (0: no VM kept parked)."
  }
  validation {
    condition     = var.pool_min_instances + var.pool_parked_instances <= var.pool_max_instances
    error_message = "pool_min_instances + pool_parked_instances (${var.pool_min_instances} + ${var.pool_parked_instances}) must not exceed pool_max_instances (${var.pool_max_instances}): parked VMs are instances of the scale set. Lower pool_parked_instances or raise pool_max_instances."
  }
}

variable "pool_prices" {
  type = object({
    currency         = optional(string, "USD")
    running_per_hour = number
    parked_per_hour  = number
  })
  default     = null
  description = "What one runner costs per hour running (VM plus OS disk) and parked (OS disk only), written to the operator config as pool.prices. Only `operator simulate --prices <the config file>` reads them, to price the settings it replays; `operator serve` (the scaler) only checks them, and the learned mode does not use them either, whose reserve follows its quantiles (pool_learned_tuning). Null: the operator's defaults, for Standard_D4ads_v5 and its OS disk; set it for another VM size, disk type or region. `currency` is an ISO 4217 code."

  validation {
    condition     = var.pool_prices == null || try(var.pool_prices.running_per_hour > 0 && var.pool_prices.parked_per_hour >= 0, false)
    error_message = "pool_prices.running_per_hour must be greater than 0 and pool_prices.parked_per_hour at least 0 (prices per VM and hour)."
  }
  validation {
    condition     = var.pool_prices == null || try(var.pool_prices.parked_per_hour <= var.pool_prices.running_per_hour, false)
    error_message = "pool_prices.parked_per_hour must not exceed pool_prices.running_per_hour: a parked VM bills only its OS disk, a running one the disk and the VM."
  }
  validation {
    condition     = var.pool_prices == null || can(regex("^[A-Z]{3}$", try(var.pool_prices.currency, "")))
    error_message = "pool_prices.currency must be an ISO 4217 code of three capital letters, for example \"USD\" or \"EUR\"."
  }
}

variable "pool_schedules" {
  type = list(object({
    cron                   = string
    timezone               = string
    min_instances          = optional(number)
    parked_instances       = optional(number)
    free_target_percentage = optional(number)
  }))
  default     = []
  description = "Times with other pool sizes (operator config pool.schedules). An entry applies during every minute its `cron` (five fields: minute hour day-of-month month day-of-week, as in crontab) matches in its IANA `timezone`; where several match, the last in the list wins. It overrides pool_min_instances (`min_instances`), pool_parked_instances (`parked_instances`) and pool_free_target_percentage (`free_target_percentage`); fields left unset keep those base values. For example `{ cron = \"* 7-18 * * 1-5\", timezone = \"Europe/Berlin\", min_instances = 4, parked_instances = 6 }` for working hours. An entry with parked_instances > 0 gives the runners a managed OS disk (see runners). Excludes pool_learned."
  nullable    = false

  validation {
    condition     = alltrue([for s in var.pool_schedules : can(regex("^[0-9A-Za-z*,/?#-]+( +[0-9A-Za-z*,/?#-]+){4}$", s.cron))])
    error_message = "Each pool_schedules cron must be five space-separated fields, minute hour day-of-month month day-of-week, for example \"* 7-18 * * 1-5\" (every minute from 07:00 to 18:59 on weekdays); the operator checks the fields themselves."
  }
  validation {
    condition     = alltrue([for s in var.pool_schedules : can(regex("^(UTC|[A-Z][A-Za-z]+(/[A-Za-z0-9_+-]+){1,2})$", s.timezone))])
    error_message = "Each pool_schedules timezone must be an IANA time zone name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\" (abbreviations such as CET or PST are not names)."
  }
  validation {
    condition = alltrue([
      for s in var.pool_schedules :
      (s.min_instances == null || try(s.min_instances >= 0 && floor(s.min_instances) == s.min_instances, false)) &&
      (s.parked_instances == null || try(s.parked_instances >= 0 && floor(s.parked_instances) == s.parked_instances, false))
    ])
    error_message = "Each pool_schedules entry's min_instances and parked_instances must be whole numbers of at least 0, or unset (the base value applies)."
  }
  validation {
    condition = alltrue([
      for s in var.pool_schedules :
      s.free_target_percentage == null || try(s.free_target_percentage >= 0 && s.free_target_percentage < 100 && floor(s.free_target_percentage) == s.free_target_percentage, false)
    ])
    error_message = "Each pool_schedules entry's free_target_percentage must be a whole number from 0 to 99, or unset (pool_free_target_percentage applies)."
  }
  validation {
    condition     = alltrue([for s in var.pool_schedules : coalesce(s.min_instances, var.pool_min_instances) + coalesce(s.parked_instances, var.pool_parked_instances) <= var.pool_max_instances])
    error_message = "In each pool_schedules entry, min_instances + parked_instances (an unset one takes pool_min_instances or pool_parked_instances) must not exceed pool_max_instances (${var.pool_max_instances}): lower the entry's counts or raise pool_max_instances."
  }
  validation {
    condition     = var.github_demand == "scale_set" || alltrue([for s in var.pool_schedules : s.min_instances == null || try(s.min_instances >= 1, false)])
    error_message = "With github_demand = \"none\" each pool_schedules entry's min_instances must be at least 1, or unset: with no runner, no job hook reaches the operator, so the pool could not scale out."
  }
}

variable "runner_image" {
  type = object({
    ubuntu_version        = optional(string, "24.04")
    gallery_image_version = optional(string)
    marketplace = optional(object({
      publisher = string
      offer     = string
      sku       = string
      version   = string
    }))
  })
  default     = {}
  description = "Runner image. `ubuntu_version`: \"24.04\" or \"22.04\", which picks the gallery definition `github-runner-ubuntu-<release>` (build the image with the same UBUNTU_VERSION) and the default marketplace image. `gallery_image_version`: a version in that definition (\"2026.1201.1200\") or \"latest\"; null boots the `marketplace` image instead (default: Canonical's Ubuntu of that release, Gen2), for the first deployment before Packer has published an image (docs/deploy.md)."
  nullable    = false

  validation {
    condition     = contains(["22.04", "24.04"], var.runner_image.ubuntu_version)
    error_message = "runner_image.ubuntu_version must be \"24.04\" or \"22.04\" (20.04 is end of life)."
  }
  validation {
    condition     = var.runner_image.gallery_image_version == null || can(regex("^(latest|[0-9]+\\.[0-9]+\\.[0-9]+)$", coalesce(var.runner_image.gallery_image_version, "latest")))
    error_message = "runner_image.gallery_image_version must be \"latest\", a version such as \"1.2.3\", or null."
  }
}

variable "runner_labels" {
  type        = list(string)
  default     = ["self-hosted", "linux", "x64"]
  description = "Labels the runners register with (seed parameter runner-labels, given there as a comma-separated string). github_demand = \"none\": workflows select the runners with runs-on: these labels, at least one. github_demand = \"scale_set\": extra labels of the runner scale set, set only when the operator creates it, and may be empty; `runs-on: <scale set name>` is what always routes (the runs_on output)."
  nullable    = false

  validation {
    condition     = length(var.runner_labels) <= 100
    error_message = "runner_labels must hold at most 100 labels."
  }
  validation {
    condition     = length(var.runner_labels) >= 1 || var.github_demand == "scale_set"
    error_message = "runner_labels must hold at least one label with github_demand = \"none\": workflows select these runners by their labels."
  }
  validation {
    condition     = alltrue([for label in var.runner_labels : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", label))])
    error_message = "Each runner label must be 1-100 letters, digits, periods, underscores or hyphens, starting with a letter or digit (no commas or spaces): write [\"self-hosted\", \"linux\", \"gpu\"], not [\"self-hosted, linux\"]."
  }
  validation {
    condition     = length(distinct([for label in var.runner_labels : lower(label)])) == length(var.runner_labels)
    error_message = "runner_labels must not repeat a label (GitHub compares labels case-insensitively)."
  }
}

variable "runners" {
  type = object({
    sku                        = optional(string, "Standard_D4ads_v5")
    encryption_at_host_enabled = optional(bool, false)
    os_disk = optional(object({
      ephemeral    = optional(bool)
      placement    = optional(string, "ResourceDisk")
      size_gb      = optional(number)
      storage_type = optional(string)
    }), {})
    spot = optional(object({
      max_bid_price = optional(number, -1)
    }))
    zones = optional(list(string), [])
  })
  default     = {}
  description = <<-EOT
    Runner scale set. `sku`: VM size. `os_disk.ephemeral`: null (default) chooses from the pool: an
    ephemeral OS disk (on the resource or cache disk, which must hold the image; `storage_type` default
    Standard_LRS) unless the pool parks VMs (pool_parked_instances > 0, a pool_schedules entry with
    parked_instances > 0, or pool_learned), which needs a managed OS disk (caching ReadWrite,
    `storage_type` default StandardSSD_LRS), because Azure cannot stop-deallocate a VM with an
    ephemeral OS disk; true with parking is refused. Changing the disk kind or type replaces the scale
    set and its instances. `spot`: set to {} for Spot VMs (eviction policy Delete); `zones`:
    availability zones; `encryption_at_host_enabled` needs the EncryptionAtHost feature.
  EOT
  nullable    = false

  validation {
    condition = !(var.runners.os_disk.ephemeral == true && (
      var.pool_parked_instances > 0 || var.pool_learned || anytrue([for s in var.pool_schedules : try(s.parked_instances > 0, false)])
    ))
    error_message = "runners.os_disk.ephemeral = true cannot be combined with parking (pool_parked_instances > 0, a pool_schedules entry with parked_instances > 0, or pool_learned = true): Azure cannot stop-deallocate a VM whose OS disk is ephemeral. Leave runners.os_disk.ephemeral unset (a managed disk is then chosen) or set it to false, or stop parking."
  }
}

variable "scale_set_name" {
  type        = string
  default     = null
  description = "Name of the GitHub runner scale set (github_demand = \"scale_set\" only): what workflows put in `runs-on:` (the runs_on output), unique within its runner group. The operator creates it, or adopts an existing one of that name. Null: vmss_runner_name. Terraform writes the resolved name into the operator config (github.scale_set_name), so the config and the runs_on output always agree."

  validation {
    condition     = var.scale_set_name == null || can(regex("^[A-Za-z0-9._-]{1,100}$", coalesce(var.scale_set_name, "x")))
    error_message = "scale_set_name must be 1-100 letters, digits, periods, underscores or hyphens, for example \"linux-x64\", or null for vmss_runner_name."
  }
  validation {
    condition     = var.scale_set_name == null || var.github_demand == "scale_set"
    error_message = "scale_set_name applies only with github_demand = \"scale_set\": leave it null with github_demand = \"none\" (workflows then select the runners by runner_labels)."
  }
}

variable "scaler" {
  type = object({
    size                       = optional(string, "Standard_B2s")
    private_ip_address         = optional(string)
    zone                       = optional(string)
    encryption_at_host_enabled = optional(bool, false)
  })
  default     = {}
  description = "Scaler VM: `size`, an optional static `private_ip_address` in the scaler subnet, an optional availability `zone`, `encryption_at_host_enabled`."
  nullable    = false
}

variable "storage" {
  type = object({
    account_name             = optional(string)
    account_replication_type = optional(string, "ZRS")
    gallery_name             = optional(string)
    queue_name               = optional(string, "busy-runners")
  })
  default     = {}
  description = "Storage account (busy-runner queue) and Azure Compute Gallery (runner images). Null names are derived from vmss_runner_name; `account_name` must be globally unique, 3-24 lowercase letters and digits."
  nullable    = false

  validation {
    condition     = var.storage.account_name == null || can(regex("^[a-z0-9]{3,24}$", coalesce(var.storage.account_name, "abc")))
    error_message = "storage.account_name must be 3-24 lowercase letters and digits."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to every resource."
  nullable    = false
}
