#!/usr/bin/env bash
# Build the local Azurite image the integration tests run through testcontainers, with
# no image registry: mmdebstrap makes a minimal Debian root file system with Node.js
# from Debian, the repository's node_modules (Azurite as package-lock.json pins it, from
# `npm ci`) go to /opt/azurite, and `docker import` turns the tarball into an image
# whose `azurite-queue` and `azurite-blob` are on PATH — the same command lines as the
# official image (the busy record's queue; the learned state's blob).
#
# Prints the image's name. The tag carries a hash of everything that goes into the
# image, so an unchanged input reuses the image instead of rebuilding it.
#
# Needs: a running Docker daemon, mmdebstrap (tools/apt-packages.txt), node_modules.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
# shellcheck source=tools/azurite-image.env
source tools/azurite-image.env

azurite_version="$(node -p 'require("./node_modules/azurite/package.json").version')"
inputs_hash="$(cat package-lock.json tools/azurite-image.env "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
image="${AZURITE_IMAGE_REPOSITORY}:${azurite_version}-${inputs_hash}"

if docker image inspect "${image}" > /dev/null 2>&1; then
  echo "azurite-image: ${image} is built already" >&2
  printf '%s\n' "${image}"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
echo "azurite-image: building ${image} (Debian ${AZURITE_IMAGE_SUITE}, nodejs ${AZURITE_IMAGE_NODEJS}, Azurite ${azurite_version})" >&2
# SOURCE_DATE_EPOCH makes mmdebstrap's own timestamps fixed; the package set is pinned
# by the nodejs version (its dependencies follow the suite).
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct -- package-lock.json tools/azurite-image.env 2> /dev/null || echo 0)" \
  mmdebstrap --quiet --variant=minbase --include="nodejs=${AZURITE_IMAGE_NODEJS}" --format=tar \
  "${AZURITE_IMAGE_SUITE}" "${work}/rootfs.tar" "${AZURITE_IMAGE_MIRROR}" >&2
mkdir -p "${work}/usr/local/bin"
for service in azurite-queue azurite-blob; do
  ln -s "/opt/azurite/node_modules/.bin/${service}" "${work}/usr/local/bin/${service}"
done
tar --append --file "${work}/rootfs.tar" --owner=0 --group=0 --transform 's,^,opt/azurite/,S' \
  node_modules package.json package-lock.json
tar --append --file "${work}/rootfs.tar" --owner=0 --group=0 -C "${work}" usr/local/bin/azurite-queue usr/local/bin/azurite-blob
docker import --change 'CMD ["azurite-queue", "--help"]' "${work}/rootfs.tar" "${image}" > /dev/null

# The image's own check: both services run and report the pinned version.
for service in azurite-queue azurite-blob; do
  got="$(docker run --rm "${image}" "${service}" --version)"
  if [[ "${got}" != "${azurite_version}" ]]; then
    echo "azurite-image: the image's ${service} reports '${got}', expected ${azurite_version}" >&2
    exit 1
  fi
done
printf '%s\n' "${image}"
