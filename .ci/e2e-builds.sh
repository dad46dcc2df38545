#!/usr/bin/env bash
# CI machine only: make e2e-node's Go builds for the minors .ci/run tests, the log shipper of
# test_adapting.py (e2e/otelcol/build.sh) and make e2e-kind's kind and node images
# (e2e/kind/node-image.sh), beside make check. Cold, the Go builds take about half an hour, kind
# and the node images a few minutes more; none needs anything make check makes. At the lowest
# priority (nice 19) they take only the CPU that make check's timed tests leave. make e2e-node
# and make e2e-kind then find them built (their caches). Started once podman is set up: the
# shipper's and the node images' last steps are image builds.
#
#   .ci/e2e-builds.sh start   starts them in the background; their output goes to a log
#   .ci/e2e-builds.sh wait    returns once they have ended: 0 if they succeeded, else 1 and the log
#   .ci/e2e-builds.sh stop    ends them if they still run (.ci/run's exit)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo/.cache/e2e-builds"
minors=(1.37 1.35)

case ${1:-} in
  start)
    mkdir -p "$dir" && rm -f "$dir/status"
    # In a session of its own, so that `stop` ends the whole group; it writes its status last, so
    # that `wait` works from any shell.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'status=0
      for minor in "${@:3}"; do nice -n 19 "$1/e2e/build.sh" "$minor" || { status=$?; break; }; done
      ((status)) || nice -n 19 "$1/e2e/otelcol/build.sh" >/dev/null || status=$?
      for minor in "${@:3}"; do
        ((status)) || nice -n 19 "$1/e2e/kind/node-image.sh" image "$minor" >/dev/null || status=$?
      done
      echo "$status" >"$2/status"' _ "$repo" "$dir" "${minors[@]}" >"$dir/log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    ;;
  wait)
    # Polled: the builds are not this shell's children.
    until [[ -e $dir/status ]] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; do sleep 2; done
    [[ $(cat "$dir/status" 2>/dev/null) == 0 ]] || { echo "e2e-builds: the builds failed:" >&2; cat "$dir/log" >&2; exit 1; }
    ;;
  stop) [[ ! -e $dir/pid ]] || kill -- -"$(cat "$dir/pid")" 2>/dev/null || true ;;
  *) sed -n 's/^#   \.ci/.ci/p' "$0" >&2; exit 2 ;;
esac
