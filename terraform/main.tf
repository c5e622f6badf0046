# Composition of the whole system: network, storage (queue + image gallery),
# key vault, identities with least-privilege roles, the runner scale set and the
# scaler VM. Providers are configured by the caller (see examples/).

data "azurerm_client_config" "current" {}

data "azurerm_resource_group" "this" {
  name = var.resource_group_name

  lifecycle {
    # Cross-variable rules between inputs of equal standing. Single-variable rules, and
    # the rules that qualify one variable by github_demand, are validation blocks (variables.tf).
    precondition {
      condition     = var.pool_min_instances <= var.pool_max_instances
      error_message = "pool_min_instances (${var.pool_min_instances}) must not exceed pool_max_instances (${var.pool_max_instances}): raise pool_max_instances or lower pool_min_instances."
    }
    precondition {
      condition     = (var.github_repository == null) != (var.github_organization == null)
      error_message = "Set exactly one of github_repository (\"owner/repo\", repository runners) and github_organization (\"my-org\", organization runners)."
    }
    precondition {
      condition     = var.github_runner_group == null || var.github_organization != null
      error_message = "github_runner_group applies to organization runners only: set github_organization, or leave github_runner_group null."
    }
    precondition {
      condition     = !var.manage_github_credential_secret || var.github_credential != null
      error_message = "manage_github_credential_secret = true needs github_credential (a PAT or the GitHub App private key); or set it to false and create the secret out of band."
    }
  }
}

locals {
  location = coalesce(var.location, data.azurerm_resource_group.this.location)

  # Globally unique names, derived unless given: a short hash of the resource
  # group id and the scale set name keeps them stable across applies.
  name_suffix = substr(sha256("${data.azurerm_resource_group.this.id}/${var.vmss_runner_name}"), 0, 6)
  name_stem   = lower(replace(var.vmss_runner_name, "/[^a-zA-Z0-9]/", ""))

  key_vault_name       = coalesce(var.key_vault.name, "kv${substr(local.name_stem, 0, 16)}${local.name_suffix}")
  storage_account_name = coalesce(var.storage.account_name, "st${substr(local.name_stem, 0, 16)}${local.name_suffix}")
  gallery_name         = coalesce(var.storage.gallery_name, "gal_${replace(var.vmss_runner_name, "-", "_")}")

  # The gallery image (a pinned version, or the definition for its latest
  # version) once Packer has published one; a marketplace image before that. Both
  # Generation 2 (the scale set has Trusted Launch), of the release chosen.
  default_marketplace_images = {
    "22.04" = { publisher = "Canonical", offer = "0001-com-ubuntu-server-jammy", sku = "22_04-lts-gen2", version = "latest" }
    "24.04" = { publisher = "Canonical", offer = "ubuntu-24_04-lts", sku = "server", version = "latest" }
  }
  default_marketplace_image = local.default_marketplace_images[var.runner_image.ubuntu_version]
  image_definition_id       = module.storage.image_definition_ids[var.runner_image.ubuntu_version]
  runner_gallery_image_id = (
    var.runner_image.gallery_image_version == null ? null :
    var.runner_image.gallery_image_version == "latest" ? local.image_definition_id :
    "${local.image_definition_id}/versions/${var.runner_image.gallery_image_version}"
  )
  runner_source_image = {
    gallery_image_id = local.runner_gallery_image_id
    marketplace      = var.runner_image.gallery_image_version != null ? null : (var.runner_image.marketplace != null ? var.runner_image.marketplace : local.default_marketplace_image)
  }

  scaler_api_url = "http://${module.scaler.private_ip_address}:${var.operator.api_port}"

  # The pool parks VMs (stop-deallocates them, starts them on demand) if any setting can
  # ask for a parked one: then the runners need a managed OS disk (modules/runners).
  pool_parks = var.pool_parked_instances > 0 || var.pool_learned || anytrue([for s in var.pool_schedules : coalesce(s.parked_instances, 0) > 0])

  # What workflows put in runs-on. With the runner scale set: its name, resolved here
  # (not left to the operator's default) so the operator config and the runs_on output
  # cannot disagree. Without it: the runners' labels. The two have different types, which
  # a conditional cannot return, hence the round trip through JSON.
  scale_set_name = var.github_demand == "scale_set" ? coalesce(var.scale_set_name, var.vmss_runner_name) : null
  runs_on        = jsondecode(var.github_demand == "scale_set" ? jsonencode(local.scale_set_name) : jsonencode(var.runner_labels))

  # Runner boot config: cloud-init/runner.yaml with every file of vm/ (the boot and
  # hook scripts Packer also bakes), base64-encoded so their text needs no escaping.
  runner_vm_files = {
    for name in fileset("${path.module}/../vm", "*") : name => filebase64("${path.module}/../vm/${name}")
  }
  runner_cloud_init = templatefile("${path.module}/../cloud-init/runner.yaml", {
    scaler_api_url = local.scaler_api_url
    vm_files       = local.runner_vm_files
  })
}

module "network" {
  source = "./modules/network"

  name                          = var.vmss_runner_name
  location                      = local.location
  resource_group_name           = var.resource_group_name
  address_space                 = var.network.address_space
  runner_subnet_address_prefix  = var.network.runner_subnet_address_prefix
  scaler_subnet_address_prefix  = var.network.scaler_subnet_address_prefix
  scaler_api_port               = var.operator.api_port
  nat_gateway_enabled           = var.network.nat_gateway_enabled
  admin_source_address_prefixes = var.network.admin_source_address_prefixes
  existing_subnets              = var.network.existing_subnets
  existing_private_dns_zone_ids = var.network.existing_private_dns_zone_ids
  blob_private_dns_zone_enabled = var.pool_learned
  tags                          = var.tags
}

module "storage" {
  source = "./modules/storage"

  storage_account_name       = local.storage_account_name
  gallery_name               = local.gallery_name
  location                   = local.location
  resource_group_name        = var.resource_group_name
  private_endpoint_subnet_id = module.network.scaler_subnet_id
  private_dns_zone_id        = module.network.private_dns_zone_ids["queue"]
  account_replication_type   = var.storage.account_replication_type
  queue_name                 = var.storage.queue_name
  operator_state_enabled     = var.pool_learned
  blob_private_dns_zone_id   = var.pool_learned ? module.network.private_dns_zone_ids["blob"] : null
  log_analytics_workspace_id = var.log_analytics_workspace_id
  tags                       = var.tags
}

module "keyvault" {
  source = "./modules/keyvault"

  name                              = local.key_vault_name
  location                          = local.location
  resource_group_name               = var.resource_group_name
  tenant_id                         = data.azurerm_client_config.current.tenant_id
  private_endpoint_subnet_id        = module.network.scaler_subnet_id
  private_dns_zone_id               = module.network.private_dns_zone_ids["key_vault"]
  allowed_ip_ranges                 = var.key_vault.allowed_ip_ranges
  soft_delete_retention_days        = var.key_vault.soft_delete_retention_days
  manage_github_credential_secret   = var.manage_github_credential_secret
  github_credential                 = var.github_credential
  github_credential_content_type    = var.github_app == null ? "github-pat" : "github-app-private-key"
  github_credential_expiration_date = var.github_credential_expiration_date
  github_credential_secret_name     = var.github_credential_secret_name
  secrets_officer_principal_id      = data.azurerm_client_config.current.object_id
  log_analytics_workspace_id        = var.log_analytics_workspace_id
  tags                              = var.tags
}

module "identity" {
  source = "./modules/identity"

  name                       = var.vmss_runner_name
  location                   = local.location
  resource_group_name        = var.resource_group_name
  resource_group_id          = data.azurerm_resource_group.this.id
  vmss_id                    = module.runners.vmss_id
  runner_subnet_id           = module.network.runner_subnet_id
  image_definition_id        = local.image_definition_id
  queue_id                   = module.storage.queue_id
  key_vault_id               = module.keyvault.key_vault_id
  custom_role_definition_ids = var.custom_role_definition_ids
  state_container_ids        = var.pool_learned ? { learned_demand = module.storage.operator_state_container_id } : {}
  tags                       = var.tags
}

module "runners" {
  source = "./modules/runners"

  name                       = var.vmss_runner_name
  location                   = local.location
  resource_group_name        = var.resource_group_name
  subnet_id                  = module.network.runner_subnet_id
  identity_id                = module.identity.runner_identity_id
  admin_username             = var.admin_username
  admin_ssh_public_key       = var.admin_ssh_public_key
  source_image               = local.runner_source_image
  custom_data                = local.runner_cloud_init
  sku                        = var.runners.sku
  os_disk                    = var.runners.os_disk
  parking_enabled            = local.pool_parks
  spot                       = var.runners.spot
  zones                      = var.runners.zones
  encryption_at_host_enabled = var.runners.encryption_at_host_enabled
  tags                       = var.tags
}

module "scaler" {
  source = "./modules/scaler"

  name                       = var.vmss_scaler_name
  location                   = local.location
  resource_group_name        = var.resource_group_name
  subnet_id                  = module.network.scaler_subnet_id
  identity_id                = module.identity.scaler_identity_id
  identity_client_id         = module.identity.scaler_identity_client_id
  admin_username             = var.admin_username
  admin_ssh_public_key       = var.admin_ssh_public_key
  operator_package           = var.operator_package
  size                       = var.scaler.size
  private_ip_address         = var.scaler.private_ip_address
  zone                       = var.scaler.zone
  encryption_at_host_enabled = var.scaler.encryption_at_host_enabled
  tags                       = var.tags

  operator_config = {
    github = {
      api_url        = var.github_api_url
      repository     = var.github_repository
      organization   = var.github_organization
      runner_group   = var.github_runner_group
      labels         = var.runner_labels
      demand         = var.github_demand
      scale_set_name = local.scale_set_name
      key_vault_url  = module.keyvault.key_vault_uri
      secret_name    = module.keyvault.github_credential_secret_name
      app            = var.github_app
    }
    vmss_resource_id     = module.runners.vmss_id
    computer_name_prefix = module.runners.computer_name_prefix
    queue_url            = module.storage.queue_url
    pool = {
      min                    = var.pool_min_instances
      max                    = var.pool_max_instances
      free_target_percentage = var.pool_free_target_percentage
      scale_in_delay         = var.operator.scale_in_delay
      registration_timeout   = var.operator.registration_timeout
      runner_exit_timeout    = var.operator.runner_exit_timeout
      keep_unhealthy         = var.operator.keep_unhealthy_for_debugging
      parked                 = var.pool_parked_instances
      schedules = [
        for s in var.pool_schedules : {
          cron                   = s.cron
          timezone               = s.timezone
          min                    = s.min_instances
          parked                 = s.parked_instances
          free_target_percentage = s.free_target_percentage
        }
      ]
      # The tuning fields set, under the operator's names (the same as Terraform's); unset
      # ones stay out, so the operator's defaults apply.
      learned = var.pool_learned ? merge(
        { state_url = module.storage.learned_state_url },
        var.pool_learned_tuning == null ? null : { for k, v in var.pool_learned_tuning : k => v if v != null },
      ) : null
      prices = var.pool_prices
    }
    reconcile_period = var.operator.reconcile_period
    api_port         = var.operator.api_port
    max_body_bytes   = var.operator.max_body_bytes
    shutdown_grace   = var.operator.shutdown_grace
    log_format       = var.operator.log_format
  }
}
