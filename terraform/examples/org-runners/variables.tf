variable "admin_ssh_public_key" {
  type        = string
  description = "OpenSSH public key of the admin user on the runners and the scaler."
  nullable    = false
}

variable "operator_package" {
  type = object({
    url    = string
    sha256 = string
  })
  description = "HTTPS URL and sha256 of the operator binary."
  nullable    = false
}

variable "github_app_private_key" {
  type        = string
  default     = null
  description = "The GitHub App's private key (PEM). Terraform writes it into the key vault, so it lands in the state: protect the state."
  sensitive   = true
}

variable "key_vault_allowed_ip_ranges" {
  type        = list(string)
  default     = []
  description = "Public address of the machine running Terraform, as x.y.z.w/32, so it can write the App key into the vault. Empty when Terraform runs inside the VNet."
  nullable    = false
}

variable "location" {
  type        = string
  default     = "westeurope"
  description = "Azure region of the deployment."
  nullable    = false
}

variable "resource_group_name" {
  type        = string
  default     = "rg-github-org-runners"
  description = "Resource group created for the deployment."
  nullable    = false
}
