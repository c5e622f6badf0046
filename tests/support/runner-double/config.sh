#!/usr/bin/env bash
# Test double of the GitHub runner's config.sh, for tests/e2e_scripts.rs: the one part
# of a runner VM the end-to-end test replaces (the real agent needs github.com). It
# takes the real flags, insists on the ones an autoscaled runner needs (--ephemeral,
# --unattended), registers with the fake GitHub's runner side (/_fake/runner/register)
# and writes .runner, as the real one writes its settings file.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "${here}/.double.env"   # FAKE_GITHUB_URL, written by the test

url="" token="" name="" labels="" ephemeral=false unattended=false
while (($#)); do
  case "$1" in
    --url) url="$2"; shift 2 ;;
    --token) token="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --labels) labels="$2"; shift 2 ;;
    --runnergroup | --work) shift 2 ;;
    --ephemeral) ephemeral=true; shift ;;
    --unattended) unattended=true; shift ;;
    --disableupdate | --replace | --no-default-labels) shift ;;
    *) echo "config.sh (double): unknown argument $1" >&2; exit 64 ;;
  esac
done
if [[ "${ephemeral}" != true || "${unattended}" != true || -z "${url}${token}${name}" ]]; then
  echo "config.sh (double): --url, --token, --name, --ephemeral and --unattended are required" >&2
  exit 64
fi

body="$(jq -cn --arg url "${url}" --arg token "${token}" --arg name "${name}" --arg labels "${labels}" \
  '{url: $url, token: $token, name: $name, labels: ($labels | split(",")), ephemeral: true}')"
curl --fail --silent --show-error --max-time 10 --header 'content-type: application/json' \
  --data "${body}" "${FAKE_GITHUB_URL}/_fake/runner/register" > "${here}/.runner"
echo "config.sh (double): registered ${name} as runner $(jq -r .runner_id "${here}/.runner")"
