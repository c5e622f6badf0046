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
  description = "HTTPS URL and sha256 of the operator binary (for example a release asset of this repository)."
  nullable    = false
}

variable "github_demand" {
  type        = string
  default     = "scale_set"
  description = "\"scale_set\": a GitHub runner scale set reports the queued jobs and the pool may scale from zero; \"none\": demand only from the pool's own runners (GHES before 3.9), pool_min_instances at least 1."
  nullable    = false
}

variable "github_repository" {
  type        = string
  default     = "octo-org/octo-repo"
  description = "Repository the runners register at, as owner/name (seed parameter github-repo)."
  nullable    = false
}

variable "pool_free_target_percentage" {
  type        = number
  default     = 25
  description = "Share of the pool kept idle, in percent (seed parameter pool-free-target-percentage)."
  nullable    = false
}

variable "pool_max_instances" {
  type        = number
  default     = 10
  description = "Most runners (seed parameter pool-max-instances)."
  nullable    = false
}

variable "pool_min_instances" {
  type        = number
  default     = 0
  description = "Fewest runners (seed parameter pool-min-instances); 0 scales from zero (github_demand = \"scale_set\" only)."
  nullable    = false
}

variable "resource_group_name" {
  type        = string
  default     = "rg-github-runners"
  description = "Existing resource group of the deployment (created beforehand, with the deployer's roles on it: docs/deploy.md)."
  nullable    = false
}

variable "runner_image_version" {
  type        = string
  default     = null
  description = "Gallery image version the runners boot (\"latest\" or e.g. \"2026.1201.830\"); null: the marketplace Ubuntu, for the first apply before an image exists."
}

variable "runner_labels" {
  type        = list(string)
  default     = ["self-hosted", "linux", "x64", "azure"]
  description = "Runner labels (seed parameter runner-labels): what runs-on selects with github_demand = \"none\"; extra labels of the scale set otherwise."
  nullable    = false
}

variable "runner_ubuntu_version" {
  type        = string
  default     = "24.04"
  description = "Ubuntu release of the runners (\"24.04\" or \"22.04\"): picks the gallery definition github-runner-ubuntu-<release>."
  nullable    = false
}

variable "scale_set_name" {
  type        = string
  default     = null
  description = "Name of the runner scale set, what workflows put in runs-on; null: vmss_runner_name."
}

variable "vmss_runner_name" {
  type        = string
  default     = "vmss-gh-runners"
  description = "Name of the runner scale set (seed parameter vmss-runner-name)."
  nullable    = false
}

variable "vmss_scaler_name" {
  type        = string
  default     = "vm-gh-scaler"
  description = "Name of the scaler VM (seed parameter vmss-scaler-name)."
  nullable    = false
}
