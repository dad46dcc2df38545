#!/usr/bin/env bash
# CI machine only: the podman settings this project's CI machine needs, as exports to eval:
#
#   eval "$(.ci/podman-env.sh)"            # CONTAINERS_CONF=.ci/containers.conf
#   eval "$(.ci/podman-env.sh --service)"  # also a Docker API for the docker CLI: starts
#                                          # `podman system service` if it is not running,
#                                          # and exports DOCKER_HOST
#   .ci/podman-env.sh --stop               # stops the service that --service started
#
# Nothing under /etc is changed. The service's pid, socket and log live in $PODMAN_RUN_DIR.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="${PODMAN_RUN_DIR:-/run/k8s-native-sidecar-job}"
socket="$run_dir/podman.sock"
pidfile="$run_dir/podman-service.pid"
log="$run_dir/podman-service.log"

export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/.ci/containers.conf}"

say() { printf 'podman-env: %s\n' "$*" >&2; }

api_up() { curl --silent --fail --max-time 2 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; }

start_service() {
  command -v podman >/dev/null || { say "podman not found: run .ci/install-container-tools.sh"; exit 1; }
  api_up && return 0
  mkdir -p "$run_dir"
  rm -f "$socket"
  # setsid: the service outlives this script and is not hit by the caller's Ctrl-C.
  setsid podman system service --time=0 "unix://$socket" </dev/null >"$log" 2>&1 &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + 30))
  until api_up; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      say "podman system service exited; its log:"; cat "$log" >&2; exit 1
    fi
    ((SECONDS < deadline)) || { say "no API on $socket after 30 s; log: $log"; exit 1; }
    sleep 0.1
  done
  say "podman system service (pid $(cat "$pidfile")) on unix://$socket"
}

stop_service() {
  [[ -s $pidfile ]] || return 0
  local pid
  pid="$(cat "$pidfile")"
  # Only the process this script started, by its id.
  if kill "$pid" 2>/dev/null; then
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$pidfile" "$socket"
}

case "${1:-}" in
  "") ;;
  --service) start_service ;;
  --stop) stop_service; exit 0 ;;
  *) say "usage: $0 [--service|--stop]"; exit 2 ;;
esac

printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF"
if [[ ${1:-} == --service ]]; then
  printf 'export DOCKER_HOST=%q\n' "unix://$socket"
fi
