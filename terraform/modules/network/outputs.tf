output "nat_public_ip_address" {
  description = "The NAT gateway's outbound public IP address (null when the module creates no NAT gateway). Allow-list it where GitHub or a package mirror needs a fixed source address."
  value       = try(azurerm_public_ip.nat[0].ip_address, null)
}

output "private_dns_zone_ids" {
  description = "Private DNS zone ids by purpose: `key_vault`, `queue` and, with blob_private_dns_zone_enabled, `blob`."
  value       = local.private_dns_zone_ids
}

output "runner_subnet_id" {
  description = "Resource id of the runner subnet (created or brought), available only once its NSG and NAT gateway are attached."
  value       = local.runner_subnet_id

  # Default outbound access is off: a VM that boots before the NAT gateway is attached
  # has no egress (no package mirror, no GitHub). Whoever uses the subnet id waits.
  depends_on = [azurerm_subnet_nat_gateway_association.runners, azurerm_subnet_network_security_group_association.runners]
}

output "scaler_subnet_id" {
  description = "Resource id of the scaler subnet (created or brought; it also holds the private endpoints), available only once its NSG and NAT gateway are attached."
  value       = local.scaler_subnet_id

  # As for the runners: the scaler downloads the operator through the NAT gateway.
  depends_on = [azurerm_subnet_nat_gateway_association.scaler, azurerm_subnet_network_security_group_association.scaler]
}

output "virtual_network_id" {
  description = "Resource id of the virtual network that holds the scaler subnet."
  value       = local.virtual_network_id
}
