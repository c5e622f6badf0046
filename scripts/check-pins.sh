#!/usr/bin/env bash
# Fail when a pin in vm/versions.env is about to go stale (.github/workflows/pins.yml,
# weekly; needs `gh` with a token and network, so not part of static-checks.sh):
#   RUNNER_VERSION  the runner runs with --disableupdate, and GitHub stops sending jobs to
#                   a runner more than 30 days behind the latest release: fail once the
#                   first release after ours is MAX_RUNNER_LAG_DAYS (default 21) old
#   RUNNER_IMAGES_TAG_UBUNTU_*  fail when the pinned runner-images release is older than
#                   MAX_IMAGE_AGE_DAYS (default 60) and a newer one exists
# Prints what to bump to; bump the runner's checksum with its version.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=vm/versions.env
source "${repo_root}/vm/versions.env"
now="$(date -u +%s)"
days() { echo $(((now - $(date -u -d "$1" +%s)) / 86400)); }
stale=0

releases="$(gh api 'repos/actions/runner/releases?per_page=50')"
next_after_ours="$(jq -r --arg ours "v${RUNNER_VERSION}" '
  [.[] | select(.draft == false and .prerelease == false)] | sort_by(.published_at)
  | (map(.tag_name) | index($ours)) as $i
  | if $i == null then "unknown" else (.[$i + 1].published_at // "none") end' <<< "${releases}")"
latest="$(jq -r '[.[] | select(.draft == false and .prerelease == false)] | max_by(.published_at) | .tag_name' <<< "${releases}")"
case "${next_after_ours}" in
  none) echo "runner ${RUNNER_VERSION} is the latest release" ;;
  unknown) echo "runner v${RUNNER_VERSION} is not among the last 50 releases; bump to ${latest}"; stale=1 ;;
  *)
    lag="$(days "${next_after_ours}")"
    echo "runner ${RUNNER_VERSION}: a newer release came out ${lag} days ago (latest ${latest})"
    if ((lag > ${MAX_RUNNER_LAG_DAYS:-21})); then
      echo "  bump RUNNER_VERSION to ${latest#v} and RUNNER_SHA256_LINUX_X64 (release notes) before GitHub stops sending jobs at 30 days"
      stale=1
    fi
    ;;
esac

tags="$(gh api 'repos/actions/runner-images/releases?per_page=100' --jq '.[].tag_name')"
for pinned in "${RUNNER_IMAGES_TAG_UBUNTU_2204}" "${RUNNER_IMAGES_TAG_UBUNTU_2404}"; do
  prefix="${pinned%%/*}"
  newest="$(grep "^${prefix}/" <<< "${tags}" | sort | tail -n 1 || true)"
  stamp="${pinned#*/}"
  age="$(days "${stamp:0:8}")"
  echo "${pinned}: ${age} days old; newest ${newest:-unknown}"
  if [[ -n "${newest}" && "${newest}" != "${pinned}" ]] && ((age > ${MAX_IMAGE_AGE_DAYS:-60})); then
    echo "  bump RUNNER_IMAGES_TAG_UBUNTU_${prefix#ubuntu}04 to ${newest}"
    stale=1
  fi
done
exit "${stale}"
