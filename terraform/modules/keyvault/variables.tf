variable "location" {
  type        = string
  description = "Azure region of the key vault and its private endpoint."
  nullable    = false
}

variable "name" {
  type        = string
  description = "Key vault name: globally unique, 3-24 characters, letters, digits and hyphens, starting with a letter."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 3-24 letters, digits or hyphens, start with a letter, end with a letter or digit, and contain no \"--\"."
  }
}

variable "private_dns_zone_id" {
  type        = string
  description = "Resource id of the `privatelink.vaultcore.azure.net` private DNS zone for the private endpoint."
  nullable    = false
}

variable "private_endpoint_subnet_id" {
  type        = string
  description = "Resource id of the subnet that receives the vault's private endpoint (the scaler subnet)."
  nullable    = false
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the key vault."
  nullable    = false
}

variable "tenant_id" {
  type        = string
  description = "Microsoft Entra tenant id that authenticates requests to the vault."
  nullable    = false
}

variable "allowed_ip_ranges" {
  type        = list(string)
  default     = []
  description = "Public IPv4 ranges allowed through the vault firewall, for a Terraform run outside the VNet that writes the GitHub credential secret. Empty (default): public network access is off and only the private endpoint reaches the vault."
  nullable    = false

  validation {
    condition     = alltrue([for cidr in var.allowed_ip_ranges : can(cidrhost(cidr, 0)) && !contains(["0.0.0.0/0"], cidr)])
    error_message = "allowed_ip_ranges must be IPv4 CIDR blocks (a single address as x.y.z.w/32); 0.0.0.0/0 is refused."
  }
}

variable "github_credential" {
  type        = string
  default     = null
  description = "The GitHub credential: a PAT, or the GitHub App private key (PEM). Used only when `manage_github_credential_secret` is true; it then lands in the Terraform state, so protect the state. Leave null to create the secret out of band."
  sensitive   = true
}

variable "github_credential_content_type" {
  type        = string
  default     = "github-pat"
  description = "Content type recorded on the secret: `github-pat` or `github-app-private-key`."
  nullable    = false

  validation {
    condition     = contains(["github-pat", "github-app-private-key"], var.github_credential_content_type)
    error_message = "github_credential_content_type must be \"github-pat\" or \"github-app-private-key\"."
  }
}

variable "github_credential_expiration_date" {
  type        = string
  default     = null
  description = "Expiry recorded on the secret (RFC 3339, for example `2026-12-31T00:00:00Z`): the PAT's expiry or the planned App key rotation date."

  validation {
    condition     = var.github_credential_expiration_date == null || can(formatdate("YYYY", var.github_credential_expiration_date))
    error_message = "github_credential_expiration_date must be an RFC 3339 timestamp such as 2026-12-31T00:00:00Z."
  }
}

variable "github_credential_secret_name" {
  type        = string
  default     = "github-credential"
  description = "Name of the secret that holds the GitHub credential."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,127}$", var.github_credential_secret_name))
    error_message = "github_credential_secret_name must be 1-127 letters, digits or hyphens."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  default     = null
  description = "Log Analytics workspace that receives the vault's AuditEvent log (every secret read). Null: no diagnostic setting."
}

variable "manage_github_credential_secret" {
  type        = bool
  default     = false
  description = "true: Terraform writes `github_credential` into the vault (needs data-plane access: run inside the VNet or list your address in `allowed_ip_ranges`) and grants `secrets_officer_principal_id` Key Vault Secrets Officer. false: create the secret out of band."
  nullable    = false
}

variable "rbac_propagation_wait" {
  type        = string
  default     = "120s"
  description = "How long to wait after granting Key Vault Secrets Officer before writing the secret (manage_github_credential_secret only): RBAC reaches the data plane after minutes."
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+[smh]$", var.rbac_propagation_wait))
    error_message = "rbac_propagation_wait must be a duration such as \"120s\" or \"3m\"."
  }
}

variable "secrets_officer_principal_id" {
  type        = string
  default     = null
  description = "Object id of the principal running Terraform; granted Key Vault Secrets Officer on this vault only when `manage_github_credential_secret` is true."
}

variable "soft_delete_retention_days" {
  type        = number
  default     = 90
  description = "Days a deleted vault or secret stays recoverable (7-90)."
  nullable    = false

  validation {
    condition     = var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90
    error_message = "soft_delete_retention_days must be between 7 and 90."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags applied to the vault and its private endpoint."
  nullable    = false
}
