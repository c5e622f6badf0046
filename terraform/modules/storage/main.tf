# Storage for the operator's busy-runner queue (and, with operator_state_enabled, the
# private blob container of its learned-demand state), and the Azure Compute Gallery
# that holds the runner image built by Packer (see README: why a gallery
# replaces the seed's premium blob image storage).

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV_AZURE_33:Queue logging through queue_properties needs the storage data plane, which is private here; queue read/write/delete logs go to Azure Monitor via azurerm_monitor_diagnostic_setting.queue when log_analytics_workspace_id is set.
  #checkov:skip=CKV_AZURE_43:The name is enforced by the storage_account_name validation (^[a-z0-9]{3,24}$) and the root derives it from lowercase letters, digits and a hash; checkov cannot evaluate that coalesce()/sha256() expression when the module is called from an example.
  #checkov:skip=CKV_AZURE_206:The queue describes jobs running on this region's scale set only, so a geo-replica would outlive everything it describes; ZRS (default) survives a zone loss, and account_replication_type accepts GRS/GZRS.
  #checkov:skip=CKV_AZURE_36:No Azure service needs the queue's data plane: the operator uses the private endpoint and logs go through diagnostic settings. Letting "trusted Microsoft services" bypass the firewall would widen access for nothing.
  #checkov:skip=CKV2_AZURE_1:Customer-managed keys would need a key vault reachable by the storage service and a key rotation process for a queue that holds only runner names and job ids; Microsoft-managed keys plus infrastructure encryption are used.
  name                              = var.storage_account_name
  location                          = var.location
  resource_group_name               = var.resource_group_name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.account_replication_type
  access_tier                       = "Hot"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  public_network_access_enabled     = false
  allow_nested_items_to_be_public   = false
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  sftp_enabled                      = false
  tags                              = var.tags

  network_rules {
    default_action = "Deny"
    bypass         = ["None"]
  }

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }
}

resource "azurerm_storage_queue" "this" {
  name               = var.queue_name
  storage_account_id = azurerm_storage_account.this.id
}

resource "azurerm_private_endpoint" "queue" {
  name                = "pe-${var.storage_account_name}-queue"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "psc-${var.storage_account_name}-queue"
    private_connection_resource_id = azurerm_storage_account.this.id
    subresource_names              = ["queue"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [var.private_dns_zone_id]
  }
}

# The operator's state (pool_learned: what it learned of the demand, one JSON blob),
# private like everything in this account: no anonymous access (container_access_type
# "private", and allow_nested_items_to_be_public = false on the account), no shared keys,
# reached only through the blob private endpoint below. Created through Resource Manager
# (storage_account_id), so Terraform never needs the account's data plane.
resource "azurerm_storage_container" "operator_state" {
  #checkov:skip=CKV2_AZURE_21:Blob read/write/delete logs go to Azure Monitor through azurerm_monitor_diagnostic_setting.blob when log_analytics_workspace_id is set (as for the queue); the check accepts only azurerm_log_analytics_storage_insights, which needs a storage account key, and shared keys are disabled on this account.
  count = var.operator_state_enabled ? 1 : 0

  name                  = "operator-state"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# The scaler reads and writes that blob over the account's blob endpoint, which is as
# closed to the internet as the queue's: a second private endpoint, in the same subnet.
resource "azurerm_private_endpoint" "blob" {
  count = var.operator_state_enabled ? 1 : 0

  name                = "pe-${var.storage_account_name}-blob"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "psc-${var.storage_account_name}-blob"
    private_connection_resource_id = azurerm_storage_account.this.id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [var.blob_private_dns_zone_id]
  }
}

resource "azurerm_monitor_diagnostic_setting" "blob" {
  count = var.operator_state_enabled && var.log_analytics_workspace_id != null ? 1 : 0

  name                       = "blob-logs"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

resource "azurerm_monitor_diagnostic_setting" "queue" {
  count = var.log_analytics_workspace_id == null ? 0 : 1

  name                       = "queue-logs"
  target_resource_id         = "${azurerm_storage_account.this.id}/queueServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

resource "azurerm_shared_image_gallery" "this" {
  name                = var.gallery_name
  location            = var.location
  resource_group_name = var.resource_group_name
  description         = "Runner images for vmss-github-runner, built by Packer."
  tags                = var.tags
}

# One definition per supported Ubuntu release (packer/build.sh publishes to
# github-runner-ubuntu-<release>); the root module picks one for the scale set.
# Definitions cost nothing, and keeping both lets a pool move between releases without
# deleting a definition that still holds versions.
resource "azurerm_shared_image" "runner" {
  for_each = toset(var.ubuntu_versions)

  name                     = "github-runner-ubuntu-${each.key}"
  gallery_name             = azurerm_shared_image_gallery.this.name
  resource_group_name      = var.resource_group_name
  location                 = var.location
  os_type                  = "Linux"
  hyper_v_generation       = "V2"
  architecture             = "x64"
  trusted_launch_supported = true
  specialized              = false
  tags                     = var.tags

  identifier {
    publisher = var.image_definition.publisher
    offer     = var.image_definition.offer
    sku       = "ubuntu-${each.key}"
  }
}

moved {
  from = azurerm_shared_image.runner
  to   = azurerm_shared_image.runner["24.04"]
}
