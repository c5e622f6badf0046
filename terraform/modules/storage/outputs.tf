output "gallery_name" {
  description = "Name of the Azure Compute Gallery (Packer publishes versions into it)."
  value       = azurerm_shared_image_gallery.this.name
}

output "image_definition_ids" {
  description = "Resource ids of the runner image definitions, by Ubuntu release (\"22.04\", \"24.04\")."
  value       = { for release, image in azurerm_shared_image.runner : release => image.id }
}

output "image_definition_names" {
  description = "Names of the runner image definitions, by Ubuntu release."
  value       = { for release, image in azurerm_shared_image.runner : release => image.name }
}

output "learned_state_url" {
  description = "URL of the blob in which the operator keeps its learned-demand state (operator config pool.learned.state_url), for example https://account.blob.core.windows.net/operator-state/learned-demand.json; null without operator_state_enabled."
  value       = var.operator_state_enabled ? "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.operator_state[0].name}/learned-demand.json" : null
}

output "operator_state_container_id" {
  description = "Resource Manager id of the `operator-state` blob container (scope of the scaler's Storage Blob Data Contributor role); null without operator_state_enabled."
  value       = var.operator_state_enabled ? azurerm_storage_container.operator_state[0].id : null
}

output "queue_id" {
  description = "Azure Resource Manager id of the busy-runner queue (scope of the scaler's Storage Queue Data Contributor role)."
  value       = azurerm_storage_queue.this.id
}

output "queue_url" {
  description = "URL of the busy-runner queue, for example https://account.queue.core.windows.net/busy-runners."
  value       = azurerm_storage_queue.this.url
}

output "storage_account_id" {
  description = "Resource id of the storage account."
  value       = azurerm_storage_account.this.id
}
