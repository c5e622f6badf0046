output "custom_role_actions" {
  description = "The actions of the two custom roles (`scaler_vmss`, `linked_access`), for pre-creating them outside Terraform."
  value = {
    scaler_vmss   = local.scaler_vmss_actions
    linked_access = local.linked_access_actions
  }
}

output "runner_identity_id" {
  description = "Resource id of the runner identity (holds no role assignment)."
  value       = azurerm_user_assigned_identity.runners.id
}

output "runner_identity_principal_id" {
  description = "Principal (object) id of the runner identity, for roles you choose to grant your jobs."
  value       = azurerm_user_assigned_identity.runners.principal_id
}

output "scaler_identity_client_id" {
  description = "Client id of the scaler identity; the operator authenticates with it."
  value       = azurerm_user_assigned_identity.scaler.client_id
}

output "scaler_identity_id" {
  description = "Resource id of the scaler identity."
  value       = azurerm_user_assigned_identity.scaler.id
}

output "scaler_identity_principal_id" {
  description = "Principal (object) id of the scaler identity."
  value       = azurerm_user_assigned_identity.scaler.principal_id
}
