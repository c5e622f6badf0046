#!/usr/bin/env bash
# packer/build.sh full|minimal — build a runner image and publish it to the deployment's
# Azure Compute Gallery (`just image`, `just image-minimal`, .github/workflows/image.yml).
#
#   minimal  Ubuntu + Docker + the pinned runner + vm/ scripts (packer/minimal), minutes
#   full     actions/runner-images at the release pinned in vm/versions.env, built with
#            runner-images' own Ubuntu template into a managed image (about 2 hours),
#            then packer/full adds the pinned runner and vm/ scripts on top
#
# Needs packer and an Azure CLI login (the workflow logs in with OIDC). Inputs, as
# environment variables (image.yml sets them from repository variables):
#   PKR_VAR_resource_group_name, PKR_VAR_gallery_name   the Terraform storage module's gallery
#   PKR_VAR_location                                    region (default: the resource group's)
#   PKR_VAR_image_name        image definition (default github-runner-ubuntu-<version>,
#                             the storage module's default definition for 24.04)
#   PKR_VAR_image_version     gallery version (default: YYYY.MMDD.HHMM, UTC)
#   UBUNTU_VERSION            22.04 or 24.04 (default); 20.04 is end of life
set -euo pipefail

kind="${1:?usage: packer/build.sh full|minimal}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=vm/versions.env
source "${repo_root}/vm/versions.env"
ubuntu="${UBUNTU_VERSION:-24.04}"
: "${PKR_VAR_resource_group_name:?set PKR_VAR_resource_group_name}"
: "${PKR_VAR_gallery_name:?set PKR_VAR_gallery_name}"
export PKR_VAR_image_name="${PKR_VAR_image_name:-github-runner-ubuntu-${ubuntu}}"
export PKR_VAR_image_version="${PKR_VAR_image_version:-$(date -u +%Y.%m%d.%H%M)}"
if [[ -z "${PKR_VAR_location:-}" ]]; then
  PKR_VAR_location="$(az group show --name "${PKR_VAR_resource_group_name}" --query location --output tsv)"
fi
export PKR_VAR_location
log() { printf 'packer/build.sh: %s\n' "$*" >&2; }

case "${ubuntu}" in
  22.04) tag="${RUNNER_IMAGES_TAG_UBUNTU_2204}" template="ubuntu-22.04" ;;
  24.04) tag="${RUNNER_IMAGES_TAG_UBUNTU_2404}" template="ubuntu-24.04" ;;
  *) log "UBUNTU_VERSION must be 22.04 or 24.04 (20.04 is end of life)"; exit 1 ;;
esac

case "${kind}" in
  minimal)
    export PKR_VAR_ubuntu_version="${ubuntu}"
    packer init "${repo_root}/packer/minimal"
    packer build -color=false "${repo_root}/packer/minimal"
    ;;
  full)
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
    base="runner-images-${template}-${tag##*/}"
    log "building actions/runner-images ${tag} (${template}) into managed image ${base}; about 2 hours"
    git clone --quiet --depth 1 --branch "${tag}" https://github.com/actions/runner-images.git "${work}/runner-images"
    # runner-images' own template and variable names at that release (images/ubuntu/templates).
    packer init "${work}/runner-images/images/ubuntu/templates"
    packer build -color=false -only "build_${template//[.-]/_}.azure-arm.image" \
      -var "use_azure_cli_auth=true" \
      -var "subscription_id=$(az account show --query id --output tsv)" \
      -var "location=${PKR_VAR_location}" \
      -var "managed_image_name=${base}" \
      -var "managed_image_resource_group_name=${PKR_VAR_resource_group_name}" \
      "${work}/runner-images/images/ubuntu/templates"
    export PKR_VAR_base_image_name="${base}" PKR_VAR_base_image_resource_group="${PKR_VAR_resource_group_name}"
    packer init "${repo_root}/packer/full"
    packer build -color=false "${repo_root}/packer/full"
    ;;
  *) log "unknown image kind '${kind}' (full or minimal)"; exit 1 ;;
esac

# Check the result: the gallery now holds the version we built.
az sig image-version show --resource-group "${PKR_VAR_resource_group_name}" \
  --gallery-name "${PKR_VAR_gallery_name}" --gallery-image-definition "${PKR_VAR_image_name}" \
  --gallery-image-version "${PKR_VAR_image_version}" --query provisioningState --output tsv
log "published ${PKR_VAR_gallery_name}/${PKR_VAR_image_name}/${PKR_VAR_image_version}"
