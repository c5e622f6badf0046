# The runner scale set. Its capacity belongs to the operator: Terraform creates
# it empty and never touches `instances` again (no Azure autoscale either).

locals {
  # Host names of the instances start with this; the operator gets the same value
  # (output computer_name_prefix) and leaves instances named otherwise alone.
  computer_name_prefix = substr(var.name, 0, 9)

  # The OS disk follows the pool unless the caller chose: ephemeral (local, free, fast to
  # reimage) for a pool that never parks; managed for one that does, since Azure cannot
  # stop-deallocate a VM with an ephemeral OS disk ("Ephemeral OS disks for Azure VMs",
  # learn.microsoft.com: "Stop-deallocated state ... Not Supported"). A managed OS disk
  # defaults to Standard SSD: Azure retires Standard HDD OS disks in September 2028; an
  # ephemeral disk's base disk stays Standard HDD, which that retirement does not affect.
  os_disk_ephemeral    = var.os_disk.ephemeral == null ? !var.parking_enabled : var.os_disk.ephemeral
  os_disk_caching      = local.os_disk_ephemeral ? "ReadOnly" : "ReadWrite"
  os_disk_storage_type = var.os_disk.storage_type != null ? var.os_disk.storage_type : (local.os_disk_ephemeral ? "Standard_LRS" : "StandardSSD_LRS")
}

resource "azurerm_linux_virtual_machine_scale_set" "this" {
  #checkov:skip=CKV_AZURE_97:Encryption at host needs a subscription feature registration; it is the encryption_at_host_enabled input (default false). Ephemeral OS disks keep nothing after an instance is deleted or reimaged; the managed OS disks of a parking pool are encrypted at rest by Azure (server-side encryption with platform-managed keys).
  name                 = var.name
  location             = var.location
  resource_group_name  = var.resource_group_name
  sku                  = var.sku
  instances            = 0
  zones                = length(var.zones) > 0 ? var.zones : null
  computer_name_prefix = local.computer_name_prefix
  tags                 = var.tags

  # The operator decides which instances exist: no overprovisioned extras,
  # no model roll-outs behind its back, no Azure autoscale.
  overprovision          = false
  upgrade_mode           = "Manual"
  single_placement_group = false

  admin_username                  = var.admin_username
  disable_password_authentication = true
  admin_ssh_key {
    username   = var.admin_username
    public_key = trimspace(var.admin_ssh_public_key)
  }

  custom_data = base64encode(var.custom_data)

  source_image_id = var.source_image.gallery_image_id
  dynamic "source_image_reference" {
    for_each = var.source_image.marketplace == null ? [] : [var.source_image.marketplace]

    content {
      publisher = source_image_reference.value.publisher
      offer     = source_image_reference.value.offer
      sku       = source_image_reference.value.sku
      version   = source_image_reference.value.version
    }
  }

  secure_boot_enabled        = true
  vtpm_enabled               = true
  encryption_at_host_enabled = var.encryption_at_host_enabled

  priority        = var.spot == null ? "Regular" : "Spot"
  eviction_policy = var.spot == null ? null : "Delete"
  max_bid_price   = var.spot == null ? null : var.spot.max_bid_price

  # Both the disk kind (diff_disk_settings) and storage_account_type are ForceNew in
  # azurerm: switching a pool between parking and not parking replaces the scale set.
  os_disk {
    caching              = local.os_disk_caching
    storage_account_type = local.os_disk_storage_type
    disk_size_gb         = var.os_disk.size_gb

    dynamic "diff_disk_settings" {
      for_each = local.os_disk_ephemeral ? [1] : []

      content {
        option    = "Local"
        placement = var.os_disk.placement
      }
    }
  }

  network_interface {
    name    = "nic-${var.name}"
    primary = true

    ip_configuration {
      name      = "internal"
      primary   = true
      subnet_id = var.subnet_id
      # No public_ip_address block: runners have private addresses only and
      # reach the internet through the subnet's NAT gateway.
    }
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }

  boot_diagnostics {}

  scale_in {
    rule                   = "Default"
    force_deletion_enabled = false
  }

  lifecycle {
    # Capacity is the operator's; Terraform must not reset it on every apply.
    ignore_changes = [instances]
  }
}
