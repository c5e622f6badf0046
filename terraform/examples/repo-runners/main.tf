# Repository runners authenticated with a PAT that you store in the key vault
# out of band after the first apply (docs/terraform.md, "The GitHub credential").

resource "azurerm_resource_group" "this" {
  name     = var.resource_group_name
  location = var.location
}

module "github_runners" {
  source = "../.."

  resource_group_name         = azurerm_resource_group.this.name
  vmss_runner_name            = var.vmss_runner_name
  vmss_scaler_name            = var.vmss_scaler_name
  admin_ssh_public_key        = var.admin_ssh_public_key
  operator_package            = var.operator_package
  github_repository           = var.github_repository
  runner_labels               = var.runner_labels
  pool_min_instances          = var.pool_min_instances
  pool_max_instances          = var.pool_max_instances
  pool_free_target_percentage = var.pool_free_target_percentage
}
