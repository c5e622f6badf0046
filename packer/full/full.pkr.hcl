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
      version = "= 2.1.7"
    }
  }
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
  description = "Azure region to build in and replicate to."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the gallery."
}

variable "vm_size" {
  type        = string
  default     = "Standard_D4ads_v5"
  description = "Size of the temporary build VM."
}

source "azure-arm" "full" {
  use_azure_cli_auth = true

  os_type                                  = "Linux"
  custom_managed_image_name                = var.base_image_name
  custom_managed_image_resource_group_name = var.base_image_resource_group
  location                                 = var.location
  vm_size                                  = var.vm_size

  shared_image_gallery_destination {
    resource_group       = var.resource_group_name
    gallery_name         = var.gallery_name
    image_name           = var.image_name
    image_version        = var.image_version
    replication_regions  = [var.location]
    storage_account_type = "Standard_LRS"
  }
}

build {
  sources = ["source.azure-arm.full"]

  provisioner "shell" {
    inline = ["cloud-init status --wait > /dev/null"]
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
