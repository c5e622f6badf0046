output "vmss_id" {
  description = "Resource id of the runner scale set."
  value       = azurerm_linux_virtual_machine_scale_set.this.id
}

output "vmss_name" {
  description = "Name of the runner scale set."
  value       = azurerm_linux_virtual_machine_scale_set.this.name
}

output "vmss_unique_id" {
  description = "Unique id of the runner scale set."
  value       = azurerm_linux_virtual_machine_scale_set.this.unique_id
}
