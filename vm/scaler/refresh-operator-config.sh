#!/usr/bin/env bash
# Scaler: apply the configuration Terraform puts in the VM's user data, without
# replacing the VM. The user data (updatable in place: azurerm's `user_data` is not
# ForceNew, unlike `custom_data`) is one JSON object:
#   {"operator_config_b64": "<base64 of operator.json>",
#    "operator_package": {"url": "https://...", "sha256": "<64 hex>"}}
# This script reads it from the Instance Metadata Service, writes
# /etc/vmss-github-runner/operator.json and operator-package.env when they differ, and
# then restarts the operator if it runs (its ExecStartPre installs a new binary first).
# Run by vmss-github-runner-config.service at boot (before the operator) and every
# minute by its timer. Prints "unchanged" or what changed.
#
# Overridable for tests: USER_DATA_FILE (read this file instead of IMDS), CONFIG_DIR,
# RESTART_COMMAND (default: systemctl try-restart of the operator).
set -euo pipefail

config_dir="${CONFIG_DIR:-/etc/vmss-github-runner}"
imds="http://169.254.169.254/metadata/instance/compute/userData?api-version=2021-01-01&format=text"
log() { printf 'vmss-scaler[refresh-config] %s\n' "$*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
if [[ -n "${USER_DATA_FILE:-}" ]]; then
  cp "${USER_DATA_FILE}" "${work}/user-data.b64"
else
  curl --fail --silent --show-error --noproxy '*' -H 'Metadata: true' \
    --retry 10 --retry-delay 3 --retry-all-errors --max-time 10 \
    --output "${work}/user-data.b64" "${imds}"
fi
# Validate everything before writing anything: a broken user data leaves the last good
# configuration in place.
python3 - "${work}" <<'PY'
import base64, json, re, sys
from pathlib import Path
work = Path(sys.argv[1])
data = json.loads(base64.b64decode((work / "user-data.b64").read_bytes(), validate=True))
config = base64.b64decode(data["operator_config_b64"], validate=True)
json.loads(config)  # the operator config must be JSON
package = data["operator_package"]
if not package["url"].startswith("https://") or not re.fullmatch(r"[0-9a-f]{64}", package["sha256"]):
    sys.exit("operator_package needs an https:// url and a 64-hex sha256")
if "'" in package["url"]:
    sys.exit("operator_package.url must not contain a single quote")
(work / "operator.json").write_bytes(config)
(work / "operator-package.env").write_text(
    f"OPERATOR_URL='{package['url']}'\nOPERATOR_SHA256='{package['sha256']}'\n")
PY

install -d -m 0755 "${config_dir}"
changed=()
for name in operator.json operator-package.env; do
  if ! cmp -s "${work}/${name}" "${config_dir}/${name}"; then
    install -m 0644 "${work}/${name}" "${config_dir}/${name}.new"
    mv -f "${config_dir}/${name}.new" "${config_dir}/${name}"
    changed+=("${name}")
  fi
done

# Check the result: what is on disk is what the user data says.
cmp -s "${work}/operator.json" "${config_dir}/operator.json"
cmp -s "${work}/operator-package.env" "${config_dir}/operator-package.env"
if ((${#changed[@]} == 0)); then
  echo unchanged
  exit 0
fi
echo "changed: ${changed[*]}"
log "new ${changed[*]}; restarting the operator if it runs"
${RESTART_COMMAND:-systemctl try-restart --no-block vmss-github-runner-operator.service}
