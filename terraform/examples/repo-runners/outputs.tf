output "key_vault_uri" {
  description = "Store the PAT here as secret `github-credential`."
  value       = module.github_runners.key_vault_uri
}

output "runs_on" {
  description = "What workflows put in runs-on: the scale set's name (or the label list with github_demand = \"none\")."
  value       = module.github_runners.runs_on
}

output "scaler_private_ip" {
  description = "Private IP address of the scaler."
  value       = module.github_runners.scaler_private_ip
}

output "vmss_id" {
  description = "Resource id of the runner scale set."
  value       = module.github_runners.vmss_id
}
