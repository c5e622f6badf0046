output "vmss_id" {
  description = "Resource id of the runner scale set."
  value       = azurerm_linux_virtual_machine_scale_set.this.id
}

output "computer_name_prefix" {
  description = "Computer-name prefix of the scale set's instances; the operator leaves instances named otherwise alone."
  value       = local.computer_name_prefix
}

output "vmss_name" {
  description = "Name of the runner scale set."
  value       = azurerm_linux_virtual_machine_scale_set.this.name
}

output "vmss_unique_id" {
  description = "Unique id of the runner scale set."
  value       = azurerm_linux_virtual_machine_scale_set.this.unique_id
}

output "os_disk" {
  description = "The OS disk the instances get, as chosen: `ephemeral` (false for a parking pool unless set), `caching` and `storage_type`."
  value = {
    ephemeral    = local.os_disk_ephemeral
    caching      = local.os_disk_caching
    storage_type = local.os_disk_storage_type
  }
}
