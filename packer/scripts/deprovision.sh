#!/usr/bin/env bash
# Packer provisioner, last step: wait for nothing else to run, clear cloud-init's state
# so every VM from this image runs cloud-init (and so cloud-init/runner.yaml) afresh,
# and deprovision the Azure agent (removes the build user and machine identity).
set -euo pipefail

cloud-init clean --logs
rm -rf /tmp/vm
/usr/sbin/waagent -force -deprovision+user
export HISTSIZE=0
sync

# Check the result: no cloud-init instance state survives into the image.
test ! -e /var/lib/cloud/instance
