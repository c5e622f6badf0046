#!/usr/bin/env bash
# deploy.yml: `terraform init` of the example in the current directory against the
# azurerm state backend (Entra ID auth, no storage key), one state file per scale set.
# Inputs in the environment: TFSTATE_RESOURCE_GROUP, TFSTATE_STORAGE_ACCOUNT,
# TFSTATE_CONTAINER, RUNNER_NAME. The plan and apply jobs both run it, so they use the
# same backend; the apply job has the plan job's .terraform.lock.hcl, so the same providers.
set -euo pipefail

printf 'terraform {\n  backend "azurerm" {}\n}\n' > backend.tf
terraform init \
  -backend-config="resource_group_name=${TFSTATE_RESOURCE_GROUP:?}" \
  -backend-config="storage_account_name=${TFSTATE_STORAGE_ACCOUNT:?}" \
  -backend-config="container_name=${TFSTATE_CONTAINER:?}" \
  -backend-config="key=${RUNNER_NAME:?}.tfstate" \
  -backend-config="use_oidc=true" \
  -backend-config="use_azuread_auth=true"
