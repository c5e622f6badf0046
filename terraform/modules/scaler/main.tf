# The scaler: one small VM running the operator. No public IP; reached only by
# the runners on the API port (see the network module's NSG).

locals {
  # The operator config. templatefile() evaluates the template's single
  # jsonencode() expression; tests/static/test_operator_config.py evaluates the
  # same template with an example's values and validates the result against
  # schema/operator-config.schema.json, so Terraform and the operator cannot drift.
  operator_config_json = templatefile("${path.module}/operator-config.json.tftpl", {
    github_api_url              = var.operator_config.github.api_url
    github_repository           = var.operator_config.github.repository
    github_organization         = var.operator_config.github.organization
    github_runner_group         = var.operator_config.github.runner_group
    runner_labels               = var.operator_config.github.labels
    jit                         = var.operator_config.github.jit
    github_demand               = var.operator_config.github.demand
    scale_set_name              = var.operator_config.github.scale_set_name
    key_vault_url               = var.operator_config.github.key_vault_url
    secret_name                 = var.operator_config.github.secret_name
    github_app                  = var.operator_config.github.app
    vmss_resource_id            = var.operator_config.vmss_resource_id
    computer_name_prefix        = var.operator_config.computer_name_prefix
    managed_identity_client_id  = var.identity_client_id
    queue_url                   = var.operator_config.queue_url
    pool_min                    = var.operator_config.pool.min
    pool_max                    = var.operator_config.pool.max
    pool_free_target_percentage = var.operator_config.pool.free_target_percentage
    scale_in_delay              = var.operator_config.pool.scale_in_delay
    registration_timeout        = var.operator_config.pool.registration_timeout
    runner_exit_timeout         = var.operator_config.pool.runner_exit_timeout
    keep_unhealthy              = var.operator_config.pool.keep_unhealthy
    pool_parked                 = var.operator_config.pool.parked
    pool_schedules              = var.operator_config.pool.schedules
    pool_learned                = var.operator_config.pool.learned
    pool_prices                 = var.operator_config.pool.prices
    reconcile_period            = var.operator_config.reconcile_period
    api_port                    = var.operator_config.api_port
    max_body_bytes              = var.operator_config.max_body_bytes
    shutdown_grace              = var.operator_config.shutdown_grace
    log_format                  = var.operator_config.log_format
  })

  # The scaler's boot: one source for Terraform and the tests, cloud-init/scaler.yaml
  # at the repository root, with the units and scripts from vm/scaler/. Files go in
  # base64 so their text needs no YAML indentation or template escaping. Nothing that
  # changes with the configuration is in here: custom_data is ForceNew on a VM.
  cloud_init = templatefile("${path.module}/../../../cloud-init/scaler.yaml", {
    operator_service = filebase64("${path.module}/../../../vm/scaler/operator.service")
    install_operator = filebase64("${path.module}/../../../vm/scaler/install-operator.sh")
    refresh_config   = filebase64("${path.module}/../../../vm/scaler/refresh-operator-config.sh")
    config_service   = filebase64("${path.module}/../../../vm/scaler/vmss-github-runner-config.service")
    config_timer     = filebase64("${path.module}/../../../vm/scaler/vmss-github-runner-config.timer")
  })

  # What changes with the configuration: the operator config and the package pin, as
  # the VM's user data (updated in place, no replacement; vm/scaler/refresh-operator-config.sh
  # applies it within a minute and restarts the operator).
  user_data = jsonencode({
    operator_config_b64 = base64encode(local.operator_config_json)
    operator_package = {
      url    = var.operator_package.url
      sha256 = var.operator_package.sha256
    }
  })
}

resource "azurerm_network_interface" "this" {
  name                = "nic-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  ip_configuration {
    name                          = "internal"
    subnet_id                     = var.subnet_id
    private_ip_address_allocation = var.private_ip_address == null ? "Dynamic" : "Static"
    private_ip_address            = var.private_ip_address
    # No public_ip_address_id: the scaler is private.
  }
}

resource "azurerm_linux_virtual_machine" "this" {
  name                  = var.name
  location              = var.location
  resource_group_name   = var.resource_group_name
  size                  = var.size
  zone                  = var.zone
  network_interface_ids = [azurerm_network_interface.this.id]
  tags                  = var.tags

  admin_username                  = var.admin_username
  disable_password_authentication = true
  admin_ssh_key {
    username   = var.admin_username
    public_key = trimspace(var.admin_ssh_public_key)
  }

  custom_data = base64encode(local.cloud_init)
  user_data   = base64encode(local.user_data)

  source_image_reference {
    publisher = "Canonical"
    offer     = "ubuntu-24_04-lts"
    sku       = "server"
    version   = "latest"
  }

  secure_boot_enabled        = true
  vtpm_enabled               = true
  encryption_at_host_enabled = var.encryption_at_host_enabled
  # No VM extensions: nothing but cloud-init configures this VM. Security
  # updates come from Ubuntu's unattended-upgrades (on by default).
  allow_extension_operations = false
  patch_mode                 = "ImageDefault"

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "StandardSSD_LRS"
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }

  boot_diagnostics {}
}
