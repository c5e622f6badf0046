terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.46, < 5.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}

provider "azurerm" {
  # The storage account has shared keys disabled: use Entra ID for storage.
  storage_use_azuread = true

  features {
    virtual_machine_scale_set {
      # The runners' capacity and instances are the operator's. A change of the scale
      # set model (custom_data, image, sku, os_disk) must not make the provider update
      # and reimage every instance, busy runners included: new instances get the new
      # model, and the operator replaces the old ones as they finish (docs/deploy.md).
      roll_instances_when_required = false
      reimage_on_manual_upgrade    = false
    }
    key_vault {
      # The vault has purge protection; never try to purge it on destroy.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    storage {
      # The storage account is reachable only through its private endpoint:
      # manage it through Azure Resource Manager alone.
      data_plane_available = false
    }
  }
}
