#!/usr/bin/env bash
# Packer provisioner (minimal image only; the runner-images image has Docker): Docker
# from the Ubuntu archive of the image's release, security-updated by Ubuntu, so no
# third-party repository key is trusted. The runner user joins the docker group in
# install-runner.sh, which runs after this.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker.io jq curl ca-certificates
systemctl enable docker.service

# Check the result.
docker --version
jq --version
systemctl is-enabled --quiet docker.service
