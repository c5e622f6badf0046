#!/usr/bin/env bash
# deploy.yml: the workflow inputs that are not plain strings, as Terraform values
# (printed as a .auto.tfvars.json document): the comma-separated runner labels as a
# list, the operator package as an object, an empty runner image version as null.
# Inputs in the environment: RUNNER_LABELS, RUNNER_IMAGE_VERSION, OPERATOR_PACKAGE_URL,
# OPERATOR_PACKAGE_SHA256.
set -euo pipefail

: "${OPERATOR_PACKAGE_URL:?set the repository variable OPERATOR_PACKAGE_URL (docs/deploy.md)}"
: "${OPERATOR_PACKAGE_SHA256:?set the repository variable OPERATOR_PACKAGE_SHA256 (docs/deploy.md)}"
jq -n \
  --arg labels "${RUNNER_LABELS:-}" \
  --arg image "${RUNNER_IMAGE_VERSION:-}" \
  --arg url "${OPERATOR_PACKAGE_URL}" \
  --arg sha256 "${OPERATOR_PACKAGE_SHA256}" \
  '{
    runner_labels: ($labels | split(",") | map(gsub("^\\s+|\\s+$"; "")) | map(select(length > 0))),
    runner_image_version: (if $image == "" then null else $image end),
    operator_package: {url: $url, sha256: $sha256}
  }'
