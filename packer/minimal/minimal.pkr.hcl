# Minimal runner image: Ubuntu (22.04 or 24.04) + Docker + the pinned runner agent +
# the boot and hook scripts from vm/ (the same files cloud-init/runner.yaml writes).
# Builds in minutes, for teams that do not need runner-images' full toolset.
# Run with `just image-minimal` (packer/build.sh), which passes the variables below.

packer {
  required_version = ">= 1.11.0, < 2.0.0"
  required_plugins {
    azure = {
      source  = "github.com/hashicorp/azure"
      version = "= 2.1.7"
    }
  }
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
  description = "Azure region to build in and replicate to."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group of the gallery."
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
  use_azure_cli_auth = true

  os_type         = "Linux"
  image_publisher = "Canonical"
  image_offer     = local.marketplace[var.ubuntu_version].offer
  image_sku       = local.marketplace[var.ubuntu_version].sku
  location        = var.location
  vm_size         = var.vm_size

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
  sources = ["source.azure-arm.minimal"]

  # Wait for the build VM's own cloud-init to finish before changing anything.
  provisioner "shell" {
    inline = ["cloud-init status --wait > /dev/null"]
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
