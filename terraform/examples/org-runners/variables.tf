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

variable "resource_group_name" {
  type        = string
  default     = "rg-github-org-runners"
  description = "Existing resource group of the deployment (created beforehand, with the deployer's roles on it: docs/deploy.md)."
  nullable    = false
}

variable "runner_image_version" {
  type        = string
  default     = null
  description = "Gallery image version the runners boot (\"latest\" or e.g. \"2026.1201.830\"); null: the marketplace Ubuntu, for the first apply before an image exists."
}
