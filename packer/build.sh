#!/usr/bin/env bash
# packer/build.sh full|minimal|verify — build a runner image and publish it to the
# deployment's Azure Compute Gallery (`just image`, `just image-minimal`,
# .github/workflows/image.yml), or check that a published version exists (verify).
#
#   minimal  Ubuntu + Docker + the pinned runner + vm/ scripts (packer/minimal), minutes
#   full     actions/runner-images at the release pinned in vm/versions.env, built with
#            runner-images' own Ubuntu template into a managed image (about 2 hours),
#            then packer/full adds the pinned runner and vm/ scripts on top
#   verify   the gallery holds PKR_VAR_image_version (image.yml runs it after a fresh
#            login: a federated az login expires after about an hour)
#
# The gallery and its image definitions must exist: the first `terraform apply` creates
# them (docs/deploy.md, "Images"). Inputs, as environment variables (image.yml sets them
# from repository variables):
#   PKR_VAR_resource_group_name, PKR_VAR_gallery_name   the Terraform storage module's gallery;
#                             the build VM runs in that resource group too
#   PKR_VAR_location          region of the version (default: the resource group's)
#   PKR_VAR_image_name        image definition (default github-runner-ubuntu-<version>: the
#                             storage module creates one per supported Ubuntu release)
#   PKR_VAR_image_version     gallery version (default: YYYY.MMDD.HHMM, UTC, leading zeros dropped)
#   PKR_VAR_allowed_inbound_ip_addresses  JSON list of sources allowed to SSH to the build VM
#                             (default []: any; SSH takes only Packer's one-time key)
#   UBUNTU_VERSION            22.04 or 24.04 (default); 20.04 is end of life
# Authentication: in GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL set, id-token: write) the
# azure plugin's own OIDC with ARM_CLIENT_ID/ARM_TENANT_ID/ARM_SUBSCRIPTION_ID, which fetches
# a fresh federated token whenever it needs one; elsewhere the Azure CLI login.
set -euo pipefail

kind="${1:?usage: packer/build.sh full|minimal|verify}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=vm/versions.env
source "${repo_root}/vm/versions.env"
# The azure plugin for runner-images' templates, which declare no required_plugins (the
# same version packer/*/*.pkr.hcl pin; tests/static/test_packer.py keeps them equal).
AZURE_PLUGIN_VERSION=2.2.1
ubuntu="${UBUNTU_VERSION:-24.04}"
: "${PKR_VAR_resource_group_name:?set PKR_VAR_resource_group_name}"
: "${PKR_VAR_gallery_name:?set PKR_VAR_gallery_name}"
export PKR_VAR_image_name="${PKR_VAR_image_name:-github-runner-ubuntu-${ubuntu}}"
# Gallery versions are three integers: no leading zeros (2026.1201.830 for 08:30 on 1 December).
export PKR_VAR_image_version="${PKR_VAR_image_version:-$(date -u +%Y).$((10#$(date -u +%m%d))).$((10#$(date -u +%H%M)))}"
log() { printf 'packer/build.sh: %s\n' "$*" >&2; }

case "${ubuntu}" in
  22.04) tag="${RUNNER_IMAGES_TAG_UBUNTU_2204}" build="ubuntu-22_04" image_os=ubuntu22 ;;
  24.04) tag="${RUNNER_IMAGES_TAG_UBUNTU_2404}" build="ubuntu-24_04" image_os=ubuntu24 ;;
  *) log "UBUNTU_VERSION must be 22.04 or 24.04 (20.04 is end of life)"; exit 1 ;;
esac

verify() {
  local state
  state="$(az sig image-version show --resource-group "${PKR_VAR_resource_group_name}" \
    --gallery-name "${PKR_VAR_gallery_name}" --gallery-image-definition "${PKR_VAR_image_name}" \
    --gallery-image-version "${PKR_VAR_image_version}" --query provisioningState --output tsv)"
  if [[ "${state}" != Succeeded ]]; then
    log "${PKR_VAR_gallery_name}/${PKR_VAR_image_name}/${PKR_VAR_image_version} is ${state:-missing}"
    exit 1
  fi
  log "published ${PKR_VAR_gallery_name}/${PKR_VAR_image_name}/${PKR_VAR_image_version}"
}

if [[ "${kind}" == verify ]]; then
  verify
  exit 0
fi

if [[ -z "${PKR_VAR_location:-}" ]]; then
  PKR_VAR_location="$(az group show --name "${PKR_VAR_resource_group_name}" --query location --output tsv)"
fi
export PKR_VAR_location

# Check first that the definition exists (Terraform's first apply creates it), so a
# two-hour build does not end in "gallery image not found".
az sig image-definition show --resource-group "${PKR_VAR_resource_group_name}" \
  --gallery-name "${PKR_VAR_gallery_name}" --gallery-image-definition "${PKR_VAR_image_name}" \
  --query id --output tsv > /dev/null

case "${kind}" in
  minimal)
    export PKR_VAR_ubuntu_version="${ubuntu}"
    packer init "${repo_root}/packer/minimal"
    packer build -color=false "${repo_root}/packer/minimal"
    ;;
  full)
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
    base="runner-images-${build}-${tag##*/}"
    log "building actions/runner-images ${tag} (${build}) into managed image ${base}; about 2 hours"
    git clone --quiet --depth 1 --branch "${tag}" https://github.com/actions/runner-images.git "${work}/runner-images"
    templates="${work}/runner-images/images/ubuntu/templates"
    # runner-images builds Generation 1 images (server-gen1, 22_04-lts); the gallery
    # definition is Generation 2 with Trusted Launch, which the scale set needs (secure
    # boot, vTPM). Use Canonical's Gen2 SKUs of the same releases; fail if the text moved.
    locals_file="${templates}/locals.ubuntu.pkr.hcl"
    case "${image_os}" in
      ubuntu24) sed -i 's/"server-gen1"/"server"/' "${locals_file}" ;;
      ubuntu22) sed -i 's/"22_04-lts"/"22_04-lts-gen2"/' "${locals_file}" ;;
    esac
    if grep -q -e '"server-gen1"' -e '"22_04-lts"' "${locals_file}"; then
      log "${locals_file} still names a Generation 1 SKU; update packer/build.sh for ${tag}"
      exit 1
    fi
    # Those templates declare no required_plugins: `packer init` would install nothing.
    packer plugins install github.com/hashicorp/azure "${AZURE_PLUGIN_VERSION}"
    auth=(-var "use_azure_cli_auth=true")
    if [[ -n "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ]]; then
      # client_id, tenant_id and subscription_id default to ARM_* in runner-images' variables.
      auth=(-var "use_azure_cli_auth=false" -var "oidc_request_url=${ACTIONS_ID_TOKEN_REQUEST_URL}")
      export PKR_VAR_oidc_request_token="${ACTIONS_ID_TOKEN_REQUEST_TOKEN:?id-token: write is needed}"
    fi
    allowed_inbound="${PKR_VAR_allowed_inbound_ip_addresses:-[]}"
    # Our PKR_VAR_* would set runner-images' variables of the same names (gallery_name turns
    # on its own gallery destination, image_version its image metadata): not for this build.
    (
      for name in $(compgen -e | grep '^PKR_VAR_' | grep -v '^PKR_VAR_oidc_request_token$'); do
        unset "${name}"
      done
      packer build -color=false -only "${build}.azure-arm.image" \
        "${auth[@]}" \
        -var "image_os=${image_os}" \
        -var "allowed_inbound_ip_addresses=${allowed_inbound}" \
        -var "subscription_id=${ARM_SUBSCRIPTION_ID:-$(az account show --query id --output tsv)}" \
        -var "build_resource_group_name=${PKR_VAR_resource_group_name}" \
        -var "managed_image_name=${base}" \
        -var "managed_image_resource_group_name=${PKR_VAR_resource_group_name}" \
        "${templates}"
    )
    unset PKR_VAR_oidc_request_token
    export PKR_VAR_base_image_name="${base}" PKR_VAR_base_image_resource_group="${PKR_VAR_resource_group_name}"
    packer init "${repo_root}/packer/full"
    packer build -color=false "${repo_root}/packer/full"
    ;;
  *) log "unknown image kind '${kind}' (full, minimal or verify)"; exit 1 ;;
esac

# Check the result: the gallery now holds the version we built (in Actions after a long
# build the CLI login may have expired: image.yml logs in again and runs `verify`).
if [[ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ]]; then
  verify
fi
