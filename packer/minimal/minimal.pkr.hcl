# Minimal runner image: Ubuntu (22.04 or 24.04) + Docker + the pinned runner agent +
# the boot and hook scripts from vm/ (the same files cloud-init/runner.yaml writes).
# Builds in minutes, for teams that do not need runner-images' full toolset.
# Run with `just image-minimal` (packer/build.sh), which passes the variables below.

packer {
  required_version = ">= 1.11.0, < 2.0.0"
  required_plugins {
    azure = {
      source  = "github.com/hashicorp/azure"
      version = "= 2.2.1"
    }
  }
}

# Authentication. In GitHub Actions (image.yml, `id-token: write`) the plugin's own OIDC:
# it asks GitHub for a fresh federated token whenever it needs one, so a build longer
# than the one-hour assertion an `az login` holds keeps working. Elsewhere: the Azure CLI
# login (`az login`).
variable "allowed_inbound_ip_addresses" {
  type        = list(string)
  default     = []
  description = "Addresses (CIDR or IP) allowed to reach the build VM's SSH port, e.g. the egress IP of the machine running Packer. Empty: any source (the plugin's default; SSH accepts only Packer's one-time key)."
}

variable "client_id" {
  type        = string
  default     = env("ARM_CLIENT_ID")
  description = "Entra application (client) id for OIDC; from ARM_CLIENT_ID."
}

variable "oidc_request_token" {
  type        = string
  default     = env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
  description = "GitHub Actions OIDC request token (set by the runner when the job has id-token: write); empty: Azure CLI login."
  sensitive   = true
}

variable "oidc_request_url" {
  type        = string
  default     = env("ACTIONS_ID_TOKEN_REQUEST_URL")
  description = "GitHub Actions OIDC request URL (set by the runner); empty: Azure CLI login."
}

variable "subscription_id" {
  type        = string
  default     = env("ARM_SUBSCRIPTION_ID")
  description = "Subscription of the gallery and the build; from ARM_SUBSCRIPTION_ID."
}

variable "tenant_id" {
  type        = string
  default     = env("ARM_TENANT_ID")
  description = "Entra tenant for OIDC; from ARM_TENANT_ID."
}

variable "gallery_name" {
  type        = string
  description = "Azure Compute Gallery of the deployment (the Terraform storage module's gallery)."
}

variable "image_name" {
  type        = string
  description = "Image definition in the gallery (the Terraform storage module's definition)."
}

variable "image_version" {
  type        = string
  description = "Gallery image version to publish, e.g. 2026.11.29 (build.sh derives it from the date when empty)."
}

variable "location" {
  type        = string
  description = "Azure region of the gallery image version (the gallery's region)."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the gallery; the build VM and its temporary resources go here too (no resource group is created)."
}

variable "ubuntu_version" {
  type        = string
  default     = "24.04"
  description = "22.04 or 24.04 (20.04 is end of life)."

  validation {
    condition     = contains(["22.04", "24.04"], var.ubuntu_version)
    error_message = "The ubuntu_version must be 22.04 or 24.04; 20.04 is end of life."
  }
}

variable "vm_size" {
  type        = string
  default     = "Standard_D2ads_v5"
  description = "Size of the temporary build VM."
}

locals {
  # Canonical's marketplace images; the version is whatever is current at build time,
  # recorded in the gallery image version's source.
  marketplace = {
    "22.04" = { offer = "0001-com-ubuntu-server-jammy", sku = "22_04-lts-gen2" }
    "24.04" = { offer = "ubuntu-24_04-lts", sku = "server" }
  }
}

source "azure-arm" "minimal" {
  use_azure_cli_auth = var.oidc_request_token == ""
  client_id          = var.client_id
  subscription_id    = var.subscription_id
  tenant_id          = var.tenant_id
  oidc_request_url   = var.oidc_request_url
  oidc_request_token = var.oidc_request_token

  os_type         = "Linux"
  image_publisher = "Canonical"
  image_offer     = local.marketplace[var.ubuntu_version].offer
  image_sku       = local.marketplace[var.ubuntu_version].sku
  # An existing resource group instead of `location`: Packer then creates no resource
  # group at subscription scope, so the build needs rights on this group only.
  build_resource_group_name = var.resource_group_name
  vm_size                   = var.vm_size
  # The build VM's public IP (Standard SKU, with an NSG) admits SSH from these only.
  allowed_inbound_ip_addresses = var.allowed_inbound_ip_addresses

  shared_image_gallery_destination {
    resource_group       = var.resource_group_name
    gallery_name         = var.gallery_name
    image_name           = var.image_name
    image_version        = var.image_version
    storage_account_type = "Standard_LRS"

    target_region {
      name = var.location
    }
  }
}

build {
  sources = ["source.azure-arm.minimal"]

  # Wait for the build VM's own cloud-init to finish before changing anything.
  provisioner "shell" {
    # Exit 2 is "done, degraded" (a recoverable warning), which Azure images report now
    # and then; only a real failure (1) stops the build.
    inline = ["cloud-init status --wait > /dev/null || [ $? -eq 2 ]"]
  }

  # The one source of the VM scripts. No trailing slash: Packer creates /tmp/vm
  # (a destination directory must already exist; /tmp does).
  provisioner "file" {
    source      = "${path.root}/../../vm"
    destination = "/tmp"
  }

  provisioner "shell" {
    execute_command = "sudo -E bash '{{ .Path }}'"
    scripts = [
      "${path.root}/../scripts/install-docker.sh",
      "${path.root}/../scripts/install-vm-scripts.sh",
      "${path.root}/../scripts/deprovision.sh",
    ]
  }
}
