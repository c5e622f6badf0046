# RBAC-mode key vault for the GitHub credential (PAT or GitHub App private key).
# Reached by the scaler through a private endpoint; public network access is off
# unless the caller lists deployer addresses in allowed_ip_ranges.

resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_189:Public network access is off unless the caller lists deployer IP ranges in allowed_ip_ranges (default empty); even then network_acls denies every other address. checkov cannot evaluate the length() expression that encodes this.
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  tenant_id                     = var.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = var.soft_delete_retention_days
  public_network_access_enabled = length(var.allowed_ip_ranges) > 0
  tags                          = var.tags

  network_acls {
    default_action = "Deny"
    bypass         = "None"
    ip_rules       = var.allowed_ip_ranges
  }
}

resource "azurerm_private_endpoint" "this" {
  name                = "pe-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "psc-${var.name}"
    private_connection_resource_id = azurerm_key_vault.this.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [var.private_dns_zone_id]
  }
}

# Scope: this vault only, and only when Terraform writes the secret. Why: in
# RBAC mode even the vault's creator cannot write secrets without a data role.
resource "azurerm_role_assignment" "secrets_officer" {
  count = var.manage_github_credential_secret ? 1 : 0

  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = var.secrets_officer_principal_id
  description          = "Terraform writes the GitHub credential secret."

  lifecycle {
    precondition {
      condition     = var.secrets_officer_principal_id != null
      error_message = "manage_github_credential_secret = true needs secrets_officer_principal_id (the object id of the principal running Terraform)."
    }
  }
}

# Azure RBAC takes minutes to reach the Key Vault data plane: a secret written right
# after its role assignment fails with 403 ForbiddenByRbac on the first apply
# (azurerm#23927; the AVM key vault module waits the same way).
resource "time_sleep" "secrets_officer_propagation" {
  count = var.manage_github_credential_secret ? 1 : 0

  create_duration = var.rbac_propagation_wait
  triggers = {
    role_assignment_id = azurerm_role_assignment.secrets_officer[0].id
  }
}

resource "azurerm_key_vault_secret" "github_credential" {
  count = var.manage_github_credential_secret ? 1 : 0

  name            = var.github_credential_secret_name
  key_vault_id    = azurerm_key_vault.this.id
  value           = var.github_credential
  content_type    = var.github_credential_content_type
  expiration_date = var.github_credential_expiration_date

  depends_on = [time_sleep.secrets_officer_propagation, azurerm_private_endpoint.this]

  lifecycle {
    precondition {
      condition     = var.github_credential != null
      error_message = "manage_github_credential_secret = true needs github_credential; or set it to false and create the secret out of band (see docs/terraform.md)."
    }
  }
}

# Who read the GitHub credential, and when: the vault's AuditEvent log, when a
# workspace is given (the queue's logs go to the same workspace).
resource "azurerm_monitor_diagnostic_setting" "this" {
  count = var.log_analytics_workspace_id == null ? 0 : 1

  name                       = "key-vault-audit"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "AuditEvent"
  }
}
