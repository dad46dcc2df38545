#!/usr/bin/env bash
# The Job's lifecycle with plain processes, in the order the kubelet runs a native sidecar:
# start the sidecar (the init container with restartPolicy: Always); wait until it answers
# /readyz, as job.yaml's postStart hook does (the sidecar binary's own `wait-ready`); run the
# app (the main container) to its exit; SIGTERM the sidecar, SIGKILL at the grace period; print the timeline, and fail unless
# both exit codes are 0.
#
#   scripts/local.sh                      # what `make local` runs, after `cargo build --release`
#   APP_SLEEP=5s scripts/local.sh
#
# Needs only the two binaries (BIN_DIR, default target/release), no Docker or kind. The sidecar
# listens on a free loopback port, so nothing else is disturbed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib/timeline.bash
source "$repo/scripts/lib/timeline.bash"

bin="${BIN_DIR:-$repo/target/release}"
app_sleep="${APP_SLEEP:-2s}"
# terminationGracePeriodSeconds in job.yaml: above the sidecar's own 5 s shutdown timeout.
grace_seconds="${GRACE_SECONDS:-15}"

die() { printf 'local: %s\n' "$*" >&2; exit 1; }
for binary in sidecar app; do
  [[ -x $bin/$binary ]] || die "no $bin/$binary: run 'cargo build --release' (or 'make local') first"
done

logs="$(mktemp -d)"
sidecar_pid=
cleanup() {
  [[ -z $sidecar_pid ]] || { kill -KILL "$sidecar_pid" 2>/dev/null; wait "$sidecar_pid" 2>/dev/null; } || true
  rm -rf "$logs"
}
trap cleanup EXIT

# Indents a program's output under its name, so the programs' lines interleave readably.
label() { sed -u "s/^/  $1 | /"; }
# Runs a command with its output labelled; returns the command's own exit code.
labelled() { "${@:2}" 2>&1 | label "$1"; return "${PIPESTATUS[0]}"; }

timeline_start
# Text logs whatever the caller's LOG_FORMAT: the address is read from them below.
LOG_FORMAT=text "$bin/sidecar" --listen 127.0.0.1:0 2>"$logs/sidecar.log" &
sidecar_pid=$!
mark "sidecar started" "pid $sidecar_pid"

# The port is the kernel's choice: read it from the sidecar's first log line.
address=
deadline=$((SECONDS + 10))
until address="$(grep -o -m1 'address=[0-9.:]*' "$logs/sidecar.log" 2>/dev/null)"; do
  kill -0 "$sidecar_pid" 2>/dev/null || fail "the sidecar exited at start-up"
  ((SECONDS < deadline)) || fail "the sidecar did not log its address within 10s"
  ((${#failures[@]} == 0)) || { label sidecar <"$logs/sidecar.log"; finish "local (processes)" ""; }
  sleep 0.01
done
address="${address#address=}"

if ! labelled wait-ready "$bin/sidecar" wait-ready --url "http://$address/readyz" --timeout 10s; then
  fail "the sidecar did not answer /readyz within 10s"
  finish "local (processes): sidecar on $address" ""
fi
mark "sidecar ready" "/readyz answered 200 on $address"

mark "app started" "APP_SLEEP=$app_sleep"
app_code=0
labelled app env APP_SLEEP="$app_sleep" APP_SIDECAR_URL="http://$address/" "$bin/app" || app_code=$?
mark "app exited" "exit code $app_code"
((app_code == 0)) || fail "the app exited with code $app_code"

kill -0 "$sidecar_pid" 2>/dev/null || fail "the sidecar exited before the app"
kill -TERM "$sidecar_pid" 2>/dev/null || true
mark "sidecar SIGTERM" "SIGKILL after ${grace_seconds}s"
deadline=$((SECONDS + grace_seconds))
while kill -0 "$sidecar_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.001; done
kill -KILL "$sidecar_pid" 2>/dev/null || true
sidecar_code=0
wait "$sidecar_pid" || sidecar_code=$?
sidecar_pid=
mark "sidecar exited" "exit code $sidecar_code"
((sidecar_code == 0)) || fail "the sidecar exited with code $sidecar_code (137: killed at the grace period)"

label sidecar <"$logs/sidecar.log"
finish "local (processes): sidecar on $address" "app and sidecar both exited 0"
