# Organization runners as a GitHub runner scale set in a runner group, authenticated
# as a GitHub App whose private key Terraform writes into the key vault; Spot VMs from
# the gallery image that image.yml publishes. Workflows of the organization's
# repositories (those the runner group admits) use `runs-on: azure-linux-spot` (the
# runs_on output). The resource group must exist (docs/deploy.md).

module "github_runners" {
  source = "../.."

  resource_group_name  = var.resource_group_name
  vmss_runner_name     = "vmss-org-runners"
  vmss_scaler_name     = "vm-org-scaler"
  admin_ssh_public_key = var.admin_ssh_public_key
  operator_package     = var.operator_package

  github_organization = "octo-org"
  github_runner_group = "azure-vmss"
  # The operator creates the scale set in github_runner_group (or adopts one of
  # this name there); its queued jobs are the pool's demand.
  github_demand  = "scale_set"
  scale_set_name = "azure-linux-spot"
  github_app = {
    app_id          = 123456
    installation_id = 7890123
  }
  manage_github_credential_secret   = true
  github_credential                 = var.github_app_private_key
  github_credential_expiration_date = "2027-06-30T00:00:00Z"
  key_vault = {
    allowed_ip_ranges = var.key_vault_allowed_ip_ranges
  }

  # Extra labels of the scale set, set when the operator creates it.
  runner_labels               = ["self-hosted", "linux", "x64", "spot"]
  pool_min_instances          = 2
  pool_max_instances          = 50
  pool_free_target_percentage = 20

  # null on the first apply (the gallery has no version yet), then "latest" or a
  # pinned version once image.yml has published one (docs/deploy.md, "Images").
  runner_image = {
    gallery_image_version = var.runner_image_version
  }
  runners = {
    sku  = "Standard_D8ads_v5"
    spot = {}
  }
  operator = {
    scale_in_delay = "10m"
  }
  tags = {
    workload = "github-runners"
  }
}
