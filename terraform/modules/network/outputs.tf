output "nat_public_ip_address" {
  description = "The NAT gateway's outbound public IP address (null when the module creates no NAT gateway). Allow-list it where GitHub or a package mirror needs a fixed source address."
  value       = try(azurerm_public_ip.nat[0].ip_address, null)
}

output "private_dns_zone_ids" {
  description = "Private DNS zone ids by purpose: `key_vault` and `queue`."
  value       = { for key, zone in azurerm_private_dns_zone.this : key => zone.id }
}

output "runner_subnet_id" {
  description = "Resource id of the runner subnet (created or brought)."
  value       = local.runner_subnet_id
}

output "scaler_subnet_id" {
  description = "Resource id of the scaler subnet (created or brought); it also holds the private endpoints."
  value       = local.scaler_subnet_id
}

output "virtual_network_id" {
  description = "Resource id of the virtual network that holds the scaler subnet."
  value       = local.virtual_network_id
}
