output "gallery_name" {
  description = "Azure Compute Gallery that receives the Packer builds of the runner image."
  value       = module.storage.gallery_name
}

output "image_definition_id" {
  description = "Resource id of the gallery image definition the runners use (runner_image.ubuntu_version)."
  value       = local.image_definition_id
}

output "image_definition_name" {
  description = "Name of that definition: PKR_VAR_image_name for packer/build.sh (github-runner-ubuntu-<release>)."
  value       = module.storage.image_definition_names[var.runner_image.ubuntu_version]
}

output "key_vault_uri" {
  description = "URI of the key vault that holds the GitHub credential."
  value       = module.keyvault.key_vault_uri
}

output "learned_state_url" {
  description = "URL of the blob in which the operator keeps its learned-demand state (pool_learned = true; private, reached through the blob private endpoint); null otherwise."
  value       = module.storage.learned_state_url
}

output "nat_public_ip_address" {
  description = "Outbound public IP of the runners and the scaler (null with existing subnets or without NAT gateway)."
  value       = module.network.nat_public_ip_address
}

output "operator_config_json" {
  description = "The operator config file written to the scaler (contains no secret)."
  value       = module.scaler.operator_config_json
}

output "queue_url" {
  description = "URL of the busy-runner storage queue."
  value       = module.storage.queue_url
}

output "runner_os_disk" {
  description = "The runners' OS disk as chosen from the pool: `ephemeral` (false when the pool parks VMs, unless runners.os_disk says otherwise), `caching` and `storage_type`."
  value       = module.runners.os_disk
}

output "runs_on" {
  description = "What workflows put in `runs-on:` to reach this pool. github_demand = \"scale_set\": the runner scale set's name, a string (`runs-on: vmss-gh-runners`). github_demand = \"none\": the runner labels, a list (`runs-on: [self-hosted, linux, x64]`). `terraform output -json runs_on` prints it as JSON, for a repository variable read with fromJSON (docs/terraform.md, \"Selecting the runners\")."
  value       = local.runs_on
}

output "runner_identity_id" {
  description = "Resource id of the runner identity (no role assignments)."
  value       = module.identity.runner_identity_id
}

output "scaler_api_url" {
  description = "URL at which the runners call the operator."
  value       = local.scaler_api_url
}

output "scaler_identity_client_id" {
  description = "Client id of the scaler identity."
  value       = module.identity.scaler_identity_client_id
}

output "scaler_identity_id" {
  description = "Resource id of the scaler identity."
  value       = module.identity.scaler_identity_id
}

output "scaler_private_ip" {
  description = "Private IP address of the scaler VM."
  value       = module.scaler.private_ip_address
}

output "vmss_id" {
  description = "Resource id of the runner scale set."
  value       = module.runners.vmss_id
}
