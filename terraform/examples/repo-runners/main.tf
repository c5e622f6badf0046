# Repository runners authenticated with a PAT that you store in the key vault
# out of band after the first apply (docs/deploy.md). The resource group must exist:
# the deploying principal's rights are scoped to it. This is what deploy.yml applies.
# By default a GitHub runner scale set named after the VM scale set reports the
# repository's queued jobs, so the pool may sit at 0 runners between jobs; workflows
# use `runs-on: vmss-gh-runners` (the runs_on output).

module "github_runners" {
  source = "../.."

  resource_group_name         = var.resource_group_name
  vmss_runner_name            = var.vmss_runner_name
  vmss_scaler_name            = var.vmss_scaler_name
  admin_ssh_public_key        = var.admin_ssh_public_key
  operator_package            = var.operator_package
  github_repository           = var.github_repository
  github_demand               = var.github_demand
  scale_set_name              = var.scale_set_name
  runner_labels               = var.runner_labels
  pool_min_instances          = var.pool_min_instances
  pool_max_instances          = var.pool_max_instances
  pool_free_target_percentage = var.pool_free_target_percentage

  # null on the first apply (the gallery has no version yet), then "latest" or a
  # pinned version once image.yml has published one (docs/deploy.md, "Images").
  runner_image = {
    ubuntu_version        = var.runner_ubuntu_version
    gallery_image_version = var.runner_image_version
  }
}
