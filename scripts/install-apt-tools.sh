#!/usr/bin/env bash
# Install the Debian packages the tests need at the versions pinned in
# tools/apt-packages.txt (cloud-init for the schema check; jq, curl and iproute2 for
# the VM scripts and the network namespaces of the end-to-end test; docker.io and
# mmdebstrap for the Azurite container; chromium and chromium-driver for the
# simulation report's browser test).
#
# Idempotent: a package already at its pinned version is left alone, so a machine
# that has them all needs neither root nor the network. Otherwise it runs apt-get
# (as root: CI machines are fresh Debian 12 containers running as root).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
declare -a wanted=()
while read -r line; do
  line="${line%%#*}"
  line="${line//[[:space:]]/}"
  [[ -z "${line}" ]] && continue
  name="${line%%=*}" version="${line#*=}"
  installed="$(dpkg-query -W -f='${Version}' "${name}" 2> /dev/null || true)"
  if [[ "${installed}" != "${version}" ]]; then
    wanted+=("${name}=${version}")
  fi
done < "${repo_root}/tools/apt-packages.txt"

if ((${#wanted[@]} == 0)); then
  echo "install-apt-tools: every pinned package is installed"
else
  if ((EUID != 0)); then
    echo "install-apt-tools: need ${wanted[*]}; run as root (or: sudo apt-get install ${wanted[*]})" >&2
    exit 1
  fi
  echo "install-apt-tools: installing ${wanted[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends --allow-downgrades "${wanted[@]}" > /dev/null
fi

# Check the result: every tool runs.
cloud-init --version > /dev/null 2>&1
jq --version > /dev/null
curl --version > /dev/null
ip -V > /dev/null
dockerd --version > /dev/null
mmdebstrap --version > /dev/null
chromium --version > /dev/null 2>&1 # its wrapper script warns on stderr about the memory check
chromedriver --version > /dev/null
echo "install-apt-tools: ready"
