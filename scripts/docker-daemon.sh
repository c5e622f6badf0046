#!/usr/bin/env bash
# Start a Docker daemon for the Azurite tier when none answers, and stop the one this
# script started: `docker-daemon.sh start` / `docker-daemon.sh stop`.
#
# The daemon is started with --iptables=false and --ip-forward=false: by default dockerd
# sets the iptables FORWARD policy to DROP and turns on IP forwarding, which would cut the
# private bridge of the end-to-end test's network namespaces (vm/ scripts talking to the
# operator). The tests need none of Docker's NAT: they reach a container only through a
# port published on 127.0.0.1, which Docker's userland proxy serves without iptables.
set -euo pipefail

pidfile=/run/vmss-tests-dockerd.pid
log=/tmp/vmss-tests-dockerd.log

answers() {
  docker version --format '{{.Server.Version}}' > /dev/null 2>&1
}

case "${1:-}" in
  start)
    if answers; then
      echo "docker-daemon: a daemon answers already; using it"
      exit 0
    fi
    if ((EUID != 0)); then
      echo "docker-daemon: no daemon answers and starting one needs root" >&2
      exit 1
    fi
    echo "docker-daemon: starting dockerd (log: ${log})"
    setsid dockerd --iptables=false --ip-forward=false --pidfile "${pidfile}" > "${log}" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
      if answers; then
        echo "docker-daemon: ready"
        exit 0
      fi
      sleep 1
    done
    echo "docker-daemon: dockerd did not answer within 60 s; its log:" >&2
    tail -20 "${log}" >&2
    exit 1
    ;;
  stop)
    if [[ -f "${pidfile}" ]]; then
      pid="$(cat "${pidfile}")"
      echo "docker-daemon: stopping the dockerd this script started (pid ${pid})"
      kill "${pid}" 2> /dev/null || true
      for _ in $(seq 1 30); do
        kill -0 "${pid}" 2> /dev/null || exit 0
        sleep 1
      done
      kill -9 "${pid}" 2> /dev/null || true
    fi
    ;;
  *)
    echo "usage: docker-daemon.sh start|stop" >&2
    exit 2
    ;;
esac
