# Plan-only tests of the key resource settings of each module, with a mocked
# azurerm provider. Run with terraform >= 1.9 from terraform/: `terraform test`.
# Not run on this repository's development machine (no terraform there).

mock_provider "azurerm" {}

variables {
  location            = "westeurope"
  resource_group_name = "rg-test"
  ssh_key             = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTests test@example"
  subnet_id           = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Network/virtualNetworks/vnet/subnets/snet"
  identity_id         = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id"
}

run "runners_have_no_password_no_public_ip_and_operator_owned_capacity" {
  command = plan
  module {
    source = "./modules/runners"
  }
  variables {
    name                 = "vmss-gh-runners"
    admin_ssh_public_key = var.ssh_key
    custom_data          = "#cloud-config\n"
    source_image = {
      marketplace = {
        publisher = "Canonical"
        offer     = "ubuntu-24_04-lts"
        sku       = "server"
        version   = "latest"
      }
    }
  }

  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.disable_password_authentication
    error_message = "Password authentication must be off."
  }
  assert {
    condition     = length(azurerm_linux_virtual_machine_scale_set.this.network_interface[0].ip_configuration[0].public_ip_address) == 0
    error_message = "Runners must have no public IP."
  }
  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.overprovision == false && azurerm_linux_virtual_machine_scale_set.this.upgrade_mode == "Manual"
    error_message = "Overprovisioning must be off and the upgrade mode Manual: the operator owns the instances."
  }
  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.instances == 0
    error_message = "The scale set starts empty; the operator sets the capacity."
  }
  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.os_disk[0].diff_disk_settings[0].option == "Local"
    error_message = "The OS disk is ephemeral by default."
  }
  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.priority == "Regular"
    error_message = "Regular priority unless spot is set."
  }
}

run "spot_runners_are_deleted_on_eviction" {
  command = plan
  module {
    source = "./modules/runners"
  }
  variables {
    name                 = "vmss-gh-runners"
    admin_ssh_public_key = var.ssh_key
    custom_data          = "#cloud-config\n"
    spot                 = {}
    source_image = {
      gallery_image_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    }
  }

  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.priority == "Spot" && azurerm_linux_virtual_machine_scale_set.this.eviction_policy == "Delete"
    error_message = "Spot runners must use eviction policy Delete."
  }
}

run "runner_image_needs_exactly_one_source" {
  command = plan
  module {
    source = "./modules/runners"
  }
  variables {
    name                 = "vmss-gh-runners"
    admin_ssh_public_key = var.ssh_key
    custom_data          = "#cloud-config\n"
    source_image         = {}
  }
  expect_failures = [var.source_image]
}

run "storage_has_shared_keys_off_and_no_public_access" {
  command = plan
  module {
    source = "./modules/storage"
  }
  variables {
    storage_account_name       = "stghrunnerstest01"
    gallery_name               = "gal_runners"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Network/privateDnsZones/privatelink.queue.core.windows.net"
  }

  assert {
    condition     = azurerm_storage_account.this.shared_access_key_enabled == false
    error_message = "Shared key access must be disabled."
  }
  assert {
    condition     = azurerm_storage_account.this.min_tls_version == "TLS1_2" && azurerm_storage_account.this.public_network_access_enabled == false
    error_message = "TLS 1.2 minimum and no public network access."
  }
  assert {
    condition     = azurerm_storage_account.this.account_kind == "StorageV2"
    error_message = "The queue lives in a StorageV2 account."
  }
}

run "storage_account_name_follows_azure_rules" {
  command = plan
  module {
    source = "./modules/storage"
  }
  variables {
    storage_account_name       = "St-Bad-Name"
    gallery_name               = "gal_runners"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/zone"
  }
  expect_failures = [var.storage_account_name]
}

run "key_vault_is_rbac_private_and_purge_protected" {
  command = plan
  module {
    source = "./modules/keyvault"
  }
  variables {
    name                       = "kv-gh-runners-test"
    tenant_id                  = "00000000-0000-0000-0000-000000000001"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/zone"
  }

  assert {
    condition     = azurerm_key_vault.this.rbac_authorization_enabled && azurerm_key_vault.this.purge_protection_enabled
    error_message = "The vault must use RBAC and purge protection."
  }
  assert {
    condition     = azurerm_key_vault.this.public_network_access_enabled == false
    error_message = "Public network access must be off by default."
  }
  assert {
    condition     = length(azurerm_key_vault_secret.github_credential) == 0
    error_message = "Without manage_github_credential_secret the secret is created out of band."
  }
}

run "network_allows_only_runner_to_scaler_api_and_has_one_public_ip" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    name = "gh-runners"
  }

  assert {
    condition = alltrue([
      for rule in azurerm_network_security_group.scaler[0].security_rule :
      rule.access == "Deny" || rule.source_address_prefix != "Internet"
    ])
    error_message = "No inbound allow rule may come from the internet."
  }
  assert {
    condition = length([
      for rule in azurerm_network_security_group.scaler[0].security_rule : rule
      if rule.access == "Allow" && rule.destination_port_range == "8080" && rule.source_address_prefix == "10.70.0.0/20"
    ]) == 1
    error_message = "The scaler NSG must allow the runner subnet to reach the API port."
  }
  assert {
    condition     = length(azurerm_public_ip.nat) == 1
    error_message = "The NAT gateway's egress address is the only public IP."
  }
}

run "bring_your_own_subnets_creates_no_network" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    name = "gh-runners"
    existing_subnets = {
      runner_subnet_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub/subnets/runners"
      scaler_subnet_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub/subnets/scaler"
    }
  }

  assert {
    condition     = length(azurerm_virtual_network.this) == 0 && length(azurerm_public_ip.nat) == 0
    error_message = "With existing subnets the module creates no VNet and no public IP."
  }
}

run "scaler_role_lists_actions_and_no_wildcards" {
  command = plan
  module {
    source = "./modules/identity"
  }
  variables {
    name                = "gh-runners"
    resource_group_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
    vmss_id             = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
    runner_subnet_id    = var.subnet_id
    image_definition_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    queue_id            = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/st/queueServices/default/queues/busy-runners"
    key_vault_id        = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv"
  }

  assert {
    condition     = alltrue([for action in azurerm_role_definition.scaler_vmss[0].permissions[0].actions : !strcontains(action, "*")])
    error_message = "The scaler's custom role must list its actions, no wildcards."
  }
  assert {
    condition     = length(azurerm_role_definition.scaler_vmss[0].permissions[0].actions) == 8 && !contains(azurerm_role_definition.scaler_vmss[0].permissions[0].actions, "Microsoft.Compute/locations/operations/read")
    error_message = "The scaler's role holds exactly the eight actions the operator calls, and no async-operation read."
  }
  assert {
    condition = alltrue([for action in ["Microsoft.Compute/virtualMachineScaleSets/deallocate/action", "Microsoft.Compute/virtualMachineScaleSets/start/action"] :
    contains(azurerm_role_definition.scaler_vmss[0].permissions[0].actions, action)])
    error_message = "The scaler parks VMs (POST deallocate) and starts them on demand (POST start) with instance ids."
  }
  assert {
    condition     = endswith(azurerm_role_definition.scaler_vmss[0].name, "${substr(sha256(lower(var.resource_group_id)), 0, 8)})")
    error_message = "Custom role names are tenant-unique: they carry a hash of the resource group id."
  }
  assert {
    condition     = azurerm_role_assignment.scaler_vmss.scope == var.vmss_id
    error_message = "The scaler's scale-set role is assigned on the scale set only."
  }
}

run "pre_created_custom_roles_are_used_not_defined" {
  command = plan
  module {
    source = "./modules/identity"
  }
  variables {
    name                = "gh-runners"
    resource_group_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
    vmss_id             = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
    runner_subnet_id    = var.subnet_id
    image_definition_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    queue_id            = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/st/queueServices/default/queues/busy-runners"
    key_vault_id        = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv"
    custom_role_definition_ids = {
      scaler_vmss   = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/11111111-1111-1111-1111-111111111111"
      linked_access = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/22222222-2222-2222-2222-222222222222"
    }
  }

  assert {
    condition     = length(azurerm_role_definition.scaler_vmss) == 0 && length(azurerm_role_definition.scaler_linked_access) == 0
    error_message = "With pre-created roles the module defines none (no roleDefinitions/write needed)."
  }
  assert {
    condition     = azurerm_role_assignment.scaler_vmss.role_definition_id == var.custom_role_definition_ids.scaler_vmss
    error_message = "The pre-created scale-set role is the one assigned."
  }
}

run "storage_has_one_image_definition_per_ubuntu_release" {
  command = plan
  module {
    source = "./modules/storage"
  }
  variables {
    storage_account_name       = "stghrunnerstest02"
    gallery_name               = "gal_runners"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/zone"
  }

  assert {
    condition     = azurerm_shared_image.runner["22.04"].name == "github-runner-ubuntu-22.04" && azurerm_shared_image.runner["24.04"].name == "github-runner-ubuntu-24.04"
    error_message = "packer/build.sh publishes to github-runner-ubuntu-<release>: both definitions must exist."
  }
  assert {
    condition     = azurerm_shared_image.runner["24.04"].hyper_v_generation == "V2" && azurerm_shared_image.runner["24.04"].trusted_launch_supported
    error_message = "The scale set uses Trusted Launch: the definitions are Gen2 with Trusted Launch support."
  }
}

run "parking_runners_get_a_managed_os_disk" {
  command = plan
  module {
    source = "./modules/runners"
  }
  variables {
    name                 = "vmss-gh-runners"
    admin_ssh_public_key = var.ssh_key
    custom_data          = "#cloud-config\n"
    parking_enabled      = true
    source_image = {
      gallery_image_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    }
  }

  assert {
    condition     = length(azurerm_linux_virtual_machine_scale_set.this.os_disk[0].diff_disk_settings) == 0
    error_message = "Azure cannot stop-deallocate a VM with an ephemeral OS disk: a parking pool has no diff_disk_settings."
  }
  assert {
    condition     = azurerm_linux_virtual_machine_scale_set.this.os_disk[0].caching == "ReadWrite" && azurerm_linux_virtual_machine_scale_set.this.os_disk[0].storage_account_type == "StandardSSD_LRS"
    error_message = "A managed OS disk: caching ReadWrite, Standard SSD by default."
  }
}

run "parking_runners_refuse_an_ephemeral_disk" {
  command = plan
  module {
    source = "./modules/runners"
  }
  variables {
    name                 = "vmss-gh-runners"
    admin_ssh_public_key = var.ssh_key
    custom_data          = "#cloud-config\n"
    parking_enabled      = true
    os_disk = {
      ephemeral = true
    }
    source_image = {
      gallery_image_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    }
  }
  expect_failures = [var.os_disk]
}

run "an_ephemeral_base_disk_is_locally_redundant" {
  command = plan
  module {
    source = "./modules/runners"
  }
  variables {
    name                 = "vmss-gh-runners"
    admin_ssh_public_key = var.ssh_key
    custom_data          = "#cloud-config\n"
    os_disk = {
      storage_type = "StandardSSD_ZRS"
    }
    source_image = {
      gallery_image_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    }
  }
  expect_failures = [var.os_disk]
}

run "storage_without_operator_state_has_no_container_and_no_blob_endpoint" {
  command = plan
  module {
    source = "./modules/storage"
  }
  variables {
    storage_account_name       = "stghrunnerstest03"
    gallery_name               = "gal_runners"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/zone"
  }

  assert {
    condition     = length(azurerm_storage_container.operator_state) == 0 && length(azurerm_private_endpoint.blob) == 0
    error_message = "Without the learned mode the account holds only the queue: no container, no blob endpoint."
  }
  assert {
    condition     = output.learned_state_url == null && output.operator_state_container_id == null
    error_message = "Without the learned mode there is no state blob."
  }
}

run "operator_state_is_a_private_container_behind_a_blob_private_endpoint" {
  command = plan
  module {
    source = "./modules/storage"
  }
  variables {
    storage_account_name       = "stghrunnerstest04"
    gallery_name               = "gal_runners"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Network/privateDnsZones/privatelink.queue.core.windows.net"
    operator_state_enabled     = true
    blob_private_dns_zone_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Network/privateDnsZones/privatelink.blob.core.windows.net"
  }

  assert {
    condition     = azurerm_storage_container.operator_state[0].name == "operator-state" && azurerm_storage_container.operator_state[0].container_access_type == "private"
    error_message = "The operator's state lives in the private container operator-state."
  }
  assert {
    condition     = contains(azurerm_private_endpoint.blob[0].private_service_connection[0].subresource_names, "blob") && azurerm_private_endpoint.blob[0].subnet_id == var.subnet_id
    error_message = "The blob service is reached through its own private endpoint, beside the queue's."
  }
  assert {
    condition     = azurerm_storage_account.this.public_network_access_enabled == false && azurerm_storage_account.this.allow_nested_items_to_be_public == false
    error_message = "The container adds no public access to the account."
  }
}

run "operator_state_needs_the_blob_dns_zone" {
  command = plan
  module {
    source = "./modules/storage"
  }
  variables {
    storage_account_name       = "stghrunnerstest05"
    gallery_name               = "gal_runners"
    private_endpoint_subnet_id = var.subnet_id
    private_dns_zone_id        = "/zone"
    operator_state_enabled     = true
  }
  expect_failures = [var.blob_private_dns_zone_id]
}

run "the_state_container_grant_is_scoped_to_the_container" {
  command = plan
  module {
    source = "./modules/identity"
  }
  variables {
    name                = "gh-runners"
    resource_group_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
    vmss_id             = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
    runner_subnet_id    = var.subnet_id
    image_definition_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    queue_id            = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/st/queueServices/default/queues/busy-runners"
    key_vault_id        = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv"
    state_container_ids = {
      learned_demand = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/st/blobServices/default/containers/operator-state"
    }
  }

  assert {
    condition     = azurerm_role_assignment.scaler_state_container["learned_demand"].scope == var.state_container_ids.learned_demand && azurerm_role_assignment.scaler_state_container["learned_demand"].role_definition_name == "Storage Blob Data Contributor"
    error_message = "The scaler gets Storage Blob Data Contributor on the state container only, not on the account."
  }
}

run "no_state_container_no_blob_grant" {
  command = plan
  module {
    source = "./modules/identity"
  }
  variables {
    name                = "gh-runners"
    resource_group_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"
    vmss_id             = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
    runner_subnet_id    = var.subnet_id
    image_definition_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/galleries/gal/images/img"
    queue_id            = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/st/queueServices/default/queues/busy-runners"
    key_vault_id        = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv"
  }

  assert {
    condition     = length(azurerm_role_assignment.scaler_state_container) == 0
    error_message = "Without the learned mode the scaler holds no blob role."
  }
}

run "network_creates_the_blob_zone_only_when_asked" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    name                          = "gh-runners"
    blob_private_dns_zone_enabled = true
  }

  assert {
    condition     = azurerm_private_dns_zone.this["blob"].name == "privatelink.blob.core.windows.net" && length(azurerm_private_dns_zone.this) == 3
    error_message = "With the blob endpoint the network creates and links privatelink.blob.core.windows.net besides the vault and queue zones."
  }
}

run "network_with_a_hubs_zones_needs_the_blob_zone_for_a_blob_endpoint" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    name                          = "gh-runners"
    blob_private_dns_zone_enabled = true
    existing_private_dns_zone_ids = {
      key_vault = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-hub/providers/Microsoft.Network/privateDnsZones/privatelink.vaultcore.azure.net"
      queue     = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-hub/providers/Microsoft.Network/privateDnsZones/privatelink.queue.core.windows.net"
    }
  }
  expect_failures = [var.existing_private_dns_zone_ids]
}

run "scaler_writes_the_learned_tuning_fields_set_and_no_others" {
  command = plan
  module {
    source = "./modules/scaler"
  }
  variables {
    name                 = "vm-gh-scaler"
    admin_ssh_public_key = var.ssh_key
    identity_client_id   = "11111111-2222-3333-4444-555555555555"
    operator_package = {
      url    = "https://example.invalid/operator"
      sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
    }
    operator_config = {
      github = {
        api_url       = "https://api.github.com"
        repository    = "octo-org/octo-repo"
        labels        = []
        key_vault_url = "https://kvexample123456.vault.azure.net/"
        secret_name   = "github-credential"
      }
      vmss_resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
      queue_url        = "https://stexample123456.queue.core.windows.net/busy-runners"
      pool = {
        min                    = 0
        max                    = 10
        free_target_percentage = 25
        learned = {
          state_url     = "https://stexample123456.blob.core.windows.net/operator-state/learned-demand.json"
          slot          = "2h"
          history_weeks = 8
        }
      }
    }
  }

  assert {
    condition     = jsondecode(output.operator_config_json).pool.learned == { state_url = "https://stexample123456.blob.core.windows.net/operator-state/learned-demand.json", slot = "2h", history_weeks = 8 }
    error_message = "pool.learned holds the state URL and the tuning fields set, under the operator's names; unset ones stay out, so the operator's defaults apply."
  }
}
