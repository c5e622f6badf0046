output "operator_config_json" {
  description = "The rendered operator config file (no secrets: the GitHub credential stays in the key vault)."
  value       = local.operator_config_json
}

output "private_ip_address" {
  description = "Private IP address of the scaler; the runners call the operator at http://<this>:<port>."
  value       = azurerm_network_interface.this.private_ip_address
}

output "vm_id" {
  description = "Resource id of the scaler VM."
  value       = azurerm_linux_virtual_machine.this.id
}
