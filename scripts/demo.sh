#!/usr/bin/env bash
# `make demo`: the Job's lifecycle on the most real runtime this machine has.
#
#   kind    a kind cluster runs job.yaml: needs kind, kubectl and a container engine;
#   pod     two containers sharing one network namespace, as in a Pod: needs kubectl (it reads
#           job.yaml) and an engine that can start a container;
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

# Whether the engine can start a container, asked before the images take minutes to build:
# an image imported from an empty tar, run with make pod's hardening flags and a program it
# does not hold, fails with 127 ("not found") only once the engine has set the container up
# (namespaces, cgroups, mounts, limits); 125 or 126 mean it could not. Detached, because
# podman's Docker API refuses to attach to a container that never started. Prints why not.
can_run() {
  local probe=localhost/native-sidecar-engine-probe name=native-sidecar-engine-probe-$$ code=0 out
  "$engine" import - "$probe" < <(head -c 1024 /dev/zero) >/dev/null 2>&1 || { echo "cannot import an image"; return 1; }
  out=$("$engine" run --detach --name "$name" --read-only --cap-drop=ALL --security-opt=no-new-privileges \
    "$probe" /absent 2>&1) || code=$?
  "$engine" rm --force "$name" >/dev/null 2>&1 || true
  "$engine" rmi "$probe" >/dev/null 2>&1 || true
  ((code == 127)) || { grep Error <<<"$out" | tail -n1; return 1; }
}

# shellcheck source=SCRIPTDIR/lib/engine.sh
source "$repo/scripts/lib/engine.sh"
find_engine
if [[ -z $engine ]]; then
  say "no container engine answers either: running the lifecycle with plain processes (make local)"
elif ! command -v kubectl >/dev/null; then
  # make pod reads every container setting from job.yaml through kubectl, offline.
  say "make pod needs kubectl to read job.yaml: running the lifecycle with plain processes instead (make local)"
elif why=$(can_run); then
  say "running the lifecycle in containers with $engine instead (make pod)"
  exec "${make_[@]}" pod CONTAINER_TOOL="$engine"
else
  say "$engine cannot start a container here ($why): running the lifecycle with plain processes instead (make local)"
  case $engine in
    podman) say "to fix podman: \`podman info\`, and https://github.com/containers/podman/blob/main/troubleshooting.md" ;;
    *) say "to fix docker: \`docker info\`, and https://docs.docker.com/engine/daemon/troubleshoot/" ;;
  esac
fi
command -v cargo >/dev/null || { say "no cargo either: install Docker or podman (or Rust) to see the demo"; exit 3; }
exec "${make_[@]}" local
