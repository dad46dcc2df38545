#!/usr/bin/env bash
# `make demo`: the Job's lifecycle on the most real runtime this machine has.
#
#   kind    a kind cluster runs job.yaml: needs kind, kubectl and a container engine;
#   pod     two containers sharing one network namespace, as in a Pod: needs an engine;
#   local   two plain processes: needs only cargo.
#
# DEMO=kind|pod|local picks one; a forced choice fails clearly when its tools are missing.
# Without DEMO, the first whose tools are all present runs, after saying what the others lack.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
make_=("${MAKE:-make}" --no-print-directory -C "$repo")
say() { printf 'demo: %s\n' "$*" >&2; }

case "${DEMO:-}" in
  kind) exec "${make_[@]}" demo-kind ;;
  pod) exec "${make_[@]}" pod ;;
  local) exec "${make_[@]}" local ;;
  "") ;;
  *) say "DEMO must be kind, pod or local, not '$DEMO'"; exit 2 ;;
esac

# check names every missing tool itself and exits 3 when something is missing.
check=0
"$repo/scripts/kind-demo.sh" check || check=$?
case $check in
  0) exec "${make_[@]}" demo-kind ;;
  3) ;;
  *) exit "$check" ;;
esac

# shellcheck source=SCRIPTDIR/lib/engine.sh
source "$repo/scripts/lib/engine.sh"
find_engine
if [[ -n $engine ]]; then
  say "running the lifecycle in containers with $engine instead (make pod)"
  # make pod's steps, run here so that pod.sh's own exit code is seen: 3 means the engine
  # answers but cannot start a container, and the demo goes on with plain processes.
  "${make_[@]}" images CONTAINER_TOOL="$engine"
  pod=0
  CONTAINER_TOOL="$engine" "$repo/scripts/pod.sh" || pod=$?
  ((pod == 3)) || exit "$pod"
  say "$engine cannot run containers here: running the lifecycle with plain processes instead (make local)"
else
  say "no container engine answers either: running the lifecycle with plain processes (make local)"
fi
command -v cargo >/dev/null || { say "no cargo either: install Docker or podman (or Rust) to see the demo"; exit 3; }
exec "${make_[@]}" local
