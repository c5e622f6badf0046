#!/usr/bin/env bash
# Packer provisioner: bake the runner VM's boot and hook scripts (uploaded from vm/, the
# same files cloud-init/runner.yaml writes) and the pinned runner agent into the image,
# and enable the boot unit so a VM boots straight into registration.
set -euo pipefail

src="${1:-/tmp/vm}"
dest=/opt/vmss-github-runner
install -d -m 0755 "${dest}"
for f in "${src}"/*; do
  case "${f}" in
    *.service) install -m 0644 "${f}" /etc/systemd/system/ ;;
    *.sh) install -m 0755 "${f}" "${dest}/" ;;
    *) install -m 0644 "${f}" "${dest}/" ;;
  esac
done
chmod 0644 "${dest}/lib.sh"
"${dest}/install-runner.sh"
systemctl daemon-reload
systemctl enable vmss-github-runner.service

# Check the result (runner-images habit): every script is in place and the unit is enabled.
for f in boot.sh job-started.sh job-completed.sh runner-exited.sh install-runner.sh; do
  test -x "${dest}/${f}"
done
test -r "${dest}/lib.sh" && test -r "${dest}/versions.env"
systemctl is-enabled --quiet vmss-github-runner.service
echo "install-vm-scripts: boot scripts and runner baked into ${dest}"
