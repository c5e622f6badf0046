#!/usr/bin/env bash
# Packer provisioner: bake the runner VM's boot and hook scripts (uploaded from vm/, the
# same files cloud-init/runner.yaml writes) and the pinned runner agent into the image,
# and enable the boot unit so a VM boots straight into registration.
#
# Overridable for tests/static/test_image_install.py, which runs this script into a
# temporary root laid out the way Packer leaves the build VM:
#   DESTDIR           root prefix of every path written (default: empty, the real root);
#                     with it set, units are enabled with `systemctl --root`, no reload
#   RUNNER_INSTALLER  what installs the runner agent (default: the baked install-runner.sh,
#                     which downloads the pinned release)
set -euo pipefail

root="${DESTDIR:-}"
src="${1:-${root}/tmp/vm}"
dest="${root}/opt/vmss-github-runner"
units="${root}/etc/systemd/system"
install -d -m 0755 "${dest}" "${units}"
for f in "${src}"/*; do
  # Files only: vm/scaler/ holds the scaler's unit and installer, not a runner's.
  [[ -f "${f}" ]] || continue
  case "${f}" in
    *.service) install -m 0644 "${f}" "${units}/" ;;
    *.sh) install -m 0755 "${f}" "${dest}/" ;;
    *) install -m 0644 "${f}" "${dest}/" ;;
  esac
done
chmod 0644 "${dest}/lib.sh"
"${RUNNER_INSTALLER:-${dest}/install-runner.sh}"
if [[ -n "${root}" ]]; then
  systemctl --root="${root}" enable vmss-github-runner.service
else
  systemctl daemon-reload
  systemctl enable vmss-github-runner.service
fi

# Check the result (runner-images habit): every script is in place and the unit is enabled.
for f in boot.sh job-started.sh job-completed.sh runner-exited.sh install-runner.sh; do
  test -x "${dest}/${f}"
done
test -r "${dest}/lib.sh" && test -r "${dest}/versions.env"
systemctl ${root:+--root="${root}"} is-enabled --quiet vmss-github-runner.service
echo "install-vm-scripts: boot scripts and runner baked into ${dest}"
