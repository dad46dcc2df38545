#!/usr/bin/env bash
# The Job's lifecycle with plain containers, as in a Pod: the app joins the sidecar's network
# namespace (`--network container:<sidecar>`, which docker and podman both have), so it reaches
# the sidecar on 127.0.0.1:8080 exactly as in job.yaml.
#
#   1. start the sidecar;
#   2. wait until it is ready, with the sidecar binary's own `wait-ready` run inside its
#      container (the image has no shell or curl; job.yaml's postStart hook does the same);
#   3. run the app to completion;
#   4. stop the sidecar with SIGTERM, as the kubelet does once the main container has exited;
#   5. print the timeline and fail unless every exit code is 0.
#
#   scripts/pod.sh                        # docker if an engine answers, else podman
#   CONTAINER_TOOL=podman APP_SLEEP=1s scripts/pod.sh
#
# Exit status: 0 the lifecycle passed, 1 it did not, 3 the engine cannot start a container.
#
# Both containers run as the images' non-root user with a read-only root file system, no
# capabilities and no privilege escalation: the settings job.yaml asks of the kubelet.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/../images.env
source "$repo/images.env"

say() { printf 'pod: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=SCRIPTDIR/lib/engine.sh
source "$repo/scripts/lib/engine.sh"
find_engine
tool="$engine"
[[ -n $tool ]] || die "no container engine answers: install Docker or podman (\`${CONTAINER_TOOL:-docker} info\` must work)"
for image in "$SIDECAR_IMAGE" "$APP_IMAGE"; do
  "$tool" image inspect "$image" >/dev/null 2>&1 || die "$tool has no image $image: run 'make images' first"
done

app_sleep="${APP_SLEEP:-2s}"
ready_timeout="${READY_TIMEOUT:-30s}"
# Above the sidecar's own shutdown timeout (5 s by default), as terminationGracePeriodSeconds is.
stop_timeout="${STOP_TIMEOUT:-10}"
# POD_ID tells runs apart (the tests set it to find what a run left behind).
pod_id="${POD_ID:-$$}"
sidecar="k8s-native-sidecar-job-sidecar-$pod_id"
app="k8s-native-sidecar-job-app-$pod_id"
hardening=(--read-only --cap-drop=ALL --security-opt=no-new-privileges)

# One at a time, app first: podman refuses to remove a container whose network namespace
# another container still uses, even in a single `rm` of both.
cleanup() {
  "$tool" rm --force "$app" >/dev/null 2>&1 || true
  "$tool" rm --force "$sidecar" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# shellcheck source=SCRIPTDIR/lib/timeline.bash
source "$repo/scripts/lib/timeline.bash"
timeline_start
sidecar_logs() { printf -- '--- sidecar logs ---\n'; "$tool" logs "$sidecar" 2>&1 || true; printf -- '---\n'; }

if ! "$tool" run --detach --name "$sidecar" "${hardening[@]}" "$SIDECAR_IMAGE" >/dev/null; then
  # The engine answers but cannot start a container: a runtime problem, not a lifecycle failure.
  # Exit 3 lets `make demo` fall back to plain processes.
  say "$tool cannot start a container here (its error is above). On this project's CI machines podman needs the settings in .ci/containers.conf: eval \"\$(scripts/podman-env.sh)\" (see CONTRIBUTING.md)"
  exit 3
fi
mark "sidecar started" "its network namespace is the pod's"

if ! "$tool" exec "$sidecar" /sidecar wait-ready --timeout "$ready_timeout"; then
  mark "sidecar not ready" "after $ready_timeout"
  sidecar_logs
  fail "the sidecar did not answer /readyz within $ready_timeout"
  finish "pod ($tool): $sidecar, $app" "app and sidecar both exited 0"
fi
mark "sidecar ready" "/readyz answered 200"

mark "app started" "joins the sidecar's network namespace"
app_code=0
"$tool" run --name "$app" --network "container:$sidecar" "${hardening[@]}" \
  --env "APP_SLEEP=$app_sleep" --env APP_SIDECAR_URL=http://127.0.0.1:8080/ \
  "$APP_IMAGE" || app_code=$?
mark "app exited" "exit code $app_code"
((app_code == 0)) || fail "the app exited with code $app_code"

if [[ $("$tool" inspect --format '{{.State.Running}}' "$sidecar") != true ]]; then
  fail "the sidecar exited before the app"
fi
mark "sidecar SIGTERM" "$tool stop, SIGKILL after ${stop_timeout}s"
"$tool" stop --time "$stop_timeout" "$sidecar" >/dev/null
sidecar_code="$("$tool" inspect --format '{{.State.ExitCode}}' "$sidecar")"
mark "sidecar exited" "exit code $sidecar_code"
((sidecar_code == 0)) || fail "the sidecar exited with code $sidecar_code (137: killed at the stop timeout)"

sidecar_logs
finish "pod ($tool): $sidecar, $app" "app and sidecar both exited 0"
