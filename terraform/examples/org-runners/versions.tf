terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.46, < 5.0"
    }
  }
}

provider "azurerm" {
  # The storage account has shared keys disabled: use Entra ID for storage.
  storage_use_azuread = true

  features {
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
