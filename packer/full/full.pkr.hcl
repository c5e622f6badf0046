# Full runner image: the GitHub Actions Ubuntu image (actions/runner-images at the release
# pinned in vm/versions.env), plus the pinned runner agent and the boot and hook scripts
# from vm/ (the same files cloud-init/runner.yaml writes). packer/build.sh first builds
# runner-images' own template into a managed image (about 2 hours), then this template
# adds our layer and publishes to the gallery. Run with `just image`.

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

variable "base_image_name" {
  type        = string
  description = "Managed image built from actions/runner-images by packer/build.sh."
}

variable "base_image_resource_group" {
  type        = string
  description = "Resource group of that managed image."
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
  description = "Gallery image version to publish, e.g. 2026.11.29."
}

variable "location" {
  type        = string
  description = "Azure region of the gallery image version (the gallery's region)."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the gallery; the build VM and its temporary resources go here too (no resource group is created)."
}

variable "vm_size" {
  type        = string
  default     = "Standard_D4ads_v5"
  description = "Size of the temporary build VM."
}

source "azure-arm" "full" {
  use_azure_cli_auth = var.oidc_request_token == ""
  client_id          = var.client_id
  subscription_id    = var.subscription_id
  tenant_id          = var.tenant_id
  oidc_request_url   = var.oidc_request_url
  oidc_request_token = var.oidc_request_token

  os_type                                  = "Linux"
  custom_managed_image_name                = var.base_image_name
  custom_managed_image_resource_group_name = var.base_image_resource_group
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
  sources = ["source.azure-arm.full"]

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

  # runner-images already has Docker; the rest is the same as the minimal image.
  provisioner "shell" {
    execute_command = "sudo -E bash '{{ .Path }}'"
    scripts = [
      "${path.root}/../scripts/install-vm-scripts.sh",
      "${path.root}/../scripts/deprovision.sh",
    ]
  }
}
