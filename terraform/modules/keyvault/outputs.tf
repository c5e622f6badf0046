output "github_credential_secret_name" {
  description = "Name of the secret the operator reads (whether Terraform or you created it)."
  value       = var.github_credential_secret_name
}

output "key_vault_id" {
  description = "Resource id of the key vault."
  value       = azurerm_key_vault.this.id
}

output "key_vault_uri" {
  description = "URI of the key vault, for example https://kv-name.vault.azure.net/."
  value       = azurerm_key_vault.this.vault_uri
}
