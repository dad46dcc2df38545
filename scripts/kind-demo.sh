#!/usr/bin/env bash
# The kind path of `make demo`, in one pass: the tools (one message names all that are missing),
# the cluster (created if missing), the images (built, loaded), the Job, its timeline, a verdict.
#
#   scripts/kind-demo.sh demo | demo-legacy | check | up | down | load
#   scripts/kind-demo.sh config                          prints the path of the cluster file K8S picks
#   scripts/kind-demo.sh deploy | logs [FILE]            FILE: a Job manifest (job.yaml)
#   scripts/kind-demo.sh run native|legacy FILE          deploy FILE, wait, timeline, verdict
#   scripts/kind-demo.sh archives DIR [IMAGE...]         the node's archives of job.yaml's images
#   scripts/kind-demo.sh timeline native|legacy FILE [LOGS]
#                                                        FILE: a Job and its Pod, as JSON; LOGS:
#                                                        its containers' `kubectl logs --timestamps`
#
# Settings: KIND_CLUSTER (native-sidecar); K8S 1.37 (cluster.yaml), 1.35 (cluster-1.35.yaml) or
# 1.28 (cluster-1.28.yaml); CONTAINER_TOOL docker or podman; JOB_TIMEOUT (seconds, 180).
# kind adds the cluster to your kubeconfig as kind-$KIND_CLUSTER and makes it the current
# context; this script puts your current context back, and names its own in every call.
# KUBE_CONTEXT names another context for `run` and `archives`, which need kubectl alone: make
# e2e-node runs the same deploy, wait, timeline and verdict on a node of upstream's parts.
# Exit status: 0 passed, 1 did not pass, 2 usage, 3 tools missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${KIND_CLUSTER:-native-sidecar}
kc=(kubectl --context "${KUBE_CONTEXT:-kind-$cluster}")
timeout=${JOB_TIMEOUT:-180}s
say() { echo "kind-demo: $*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n 's/^# \(  scripts\/\)/\1/p' "$0" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Each node image runs with the kind release that published it (the cluster files say which).
case ${K8S:-1.37} in
  1.37) config=cluster.yaml kind_min=0.33.0 ;;
  1.35) config=cluster-1.35.yaml kind_min=0.33.0 ;;
  1.28) config=cluster-1.28.yaml kind_min=0.25.0 ;;
  *) say "K8S must be 1.37, 1.35 or 1.28, not '$K8S'"; exit 2 ;;
esac

# Adds "NAME MIN or newer" to the missing tools unless FOUND (v1.2.3) is at least MIN.
need() {
  [[ $(printf '%s\n' "${2#v}" "${3#v}" | sort -V | head -n1) == "${2#v}" && -n $3 ]] ||
    missing+=("$1 $2 or newer${3:+ (found $3)}: $4")
}

# Names every missing tool in one message, with the version it needs, and exits 3.
check_tools() {
  local missing=()
  need kind "v$kind_min" "$(kind version 2>/dev/null | cut -d' ' -f2)" https://kind.sigs.k8s.io/docs/user/quick-start/#installation
  # 1.29: `kubectl wait --for=jsonpath` with a filter (`?(@.name=="app")`) came with it
  # (kubernetes#118748, CHANGELOG-1.29); 1.28's stops at "jsonpath wait format must be ...".
  need kubectl v1.29.0 "$(kubectl version --client -o yaml 2>/dev/null | sed -n 's/^ *gitVersion: //p')" https://kubernetes.io/docs/tasks/tools/
  # shellcheck source=SCRIPTDIR/lib/engine.sh
  source "$root/scripts/lib/engine.sh"
  find_engine
  [[ -n $engine ]] || missing+=("${CONTAINER_TOOL:-Docker or podman} with a running engine (\`${CONTAINER_TOOL:-docker} info\` must work): https://docs.docker.com/engine/install/ or https://podman.io/docs/installation")
  # `docker save --platform` came with API 1.48 (Docker 28.0); this APIVersion is the one the
  # CLI and the engine agreed on.
  [[ $engine != docker ]] || need "the Docker API" 1.48 "$(docker version -f '{{.Client.APIVersion}}' 2>/dev/null)" \
    "Docker 28.0 or newer (for \`docker save --platform\`): https://docs.docker.com/engine/install/"
  ((${#missing[@]} == 0)) || { say "the kind demo needs:"; printf '  - %s\n' "${missing[@]}" >&2; exit 3; }
  export KIND_EXPERIMENTAL_PROVIDER=$engine
}

cluster_up() {
  local want running current
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    want=$(sed -n 's|^ *image: kindest/node:\(v[^@]*\).*|\1|p' "$root/$config")
    running=$("${kc[@]}" get nodes -o jsonpath='{.items[0].status.nodeInfo.kubeletVersion}' 2>/dev/null) || true
    # The minor decides what the demo shows: a node of another patch release (a node image built
    # with `kind build node-image`, or given with `kind create cluster --image`) serves it too.
    [[ ${running%.*} == "${want%.*}" ]] ||
      die "cluster $cluster runs ${running:-an unknown version}, not Kubernetes ${want%.*} ($config); run 'make kind-down' or choose another KIND_CLUSTER"
    say "cluster $cluster is already up ($running)"
  else
    current=$(kubectl config current-context 2>/dev/null) || true
    kind create cluster --name "$cluster" --config "$root/$config" --wait 120s
    [[ -z $current ]] || kubectl config use-context "$current" >/dev/null
  fi
}

# A field of a manifest, read without a cluster.
field() { kubectl patch --local -f "$1" --type merge -p '{}' -o jsonpath="$2"; }

# An archive of the node's platform alone per image, for `kind load image-archive`: a plain
# `docker save` from the containerd image store names every platform's blobs but holds only the
# local ones, and the node's `ctr images import --all-platforms` stops at the first missing one
# (kubernetes-sigs/kind#3795). A docker-archive, podman's, holds one image by design.
# Writes DIR/1.tar, DIR/2.tar, ... for job.yaml's images and any IMAGE named after DIR.
archives() {
  local dir=$1 arch image n=0
  shift
  # shellcheck source=SCRIPTDIR/lib/engine.sh
  [[ -n ${engine:-} ]] || { source "$root/scripts/lib/engine.sh"; find_engine; }
  arch=$("${kc[@]}" get nodes -o jsonpath='{.items[0].status.nodeInfo.architecture}')
  mkdir -p "$dir"
  for image in $(field "$root/job.yaml" '{.spec.template.spec.initContainers[*].image} {.spec.template.spec.containers[*].image}') "$@"; do
    "$engine" image inspect "$image" >/dev/null 2>&1 || die "$engine has no image $image; run 'make images' first"
    n=$((n + 1))
    if [[ $engine == docker ]]; then
      docker save --platform "linux/$arch" -o "$dir/$n.tar" "$image"
    else
      podman save --format docker-archive -o "$dir/$n.tar" "$image"
    fi
  done
}

load_images() {
  local archive
  archives "$tmp/images"
  for archive in "$tmp/images"/*.tar; do
    kind load image-archive --name "$cluster" "$archive"
  done
}

# (Re)creates the Job in $1, so that what follows can only see this run.
deploy() {
  name=$(field "$1" '{.metadata.name}')
  "${kc[@]}" delete job "$name" --ignore-not-found --cascade=foreground --wait=true
  "${kc[@]}" apply -f "$1"
  pods=(pods -l "batch.kubernetes.io/controller-uid=$("${kc[@]}" get job "$name" -o jsonpath='{.metadata.uid}')")
}

# kubectl wait takes one condition (kubernetes#100248), so a wait for each end races, and
# the first to return ends the wait; the verdict reads the Job itself.
wait_job() {
  local complete failed left=2
  say "waiting up to $timeout for job/$name to complete or fail"
  "${kc[@]}" wait --for=condition=complete "job/$name" --timeout="$timeout" >/dev/null 2>&1 & complete=$!
  "${kc[@]}" wait --for=condition=failed "job/$name" --timeout="$timeout" >/dev/null 2>&1 & failed=$!
  # The first wait that succeeds ends both. One that fails (an API error, its timeout) leaves the
  # other waiting; the verdict reads the Job itself afterwards either way.
  while ((left-- > 0)); do wait -n && break; done
  kill "$complete" "$failed" 2>/dev/null || true
}

the_pod() { pod=$("${kc[@]}" get "${pods[@]}" -o name); [[ -n $pod ]] || die "job/$name has no Pod"; }

# The timeline, from kubectl's go-template output: a line "TIME<tab>RANK<tab>EVENT" per event,
# TIME as the API server recorded it, RANK the kubelet's order for events of the same second.
# shellcheck disable=SC2016 # the $ are go-template's
template='{{define "at"}}{{.}}{{"\t"}}{{end}}
{{- if eq .kind "Job"}}
  {{- with .status.startTime}}{{template "at" .}}0{{"\t"}}job/{{$.metadata.name}} started{{"\n"}}{{end}}
  {{- range .status.conditions}}{{if and (eq .status "True") (or (eq .type "Complete") (eq .type "Failed"))}}
    {{- template "at" .lastTransitionTime}}5{{"\t"}}{{$t := print "job " .type}}{{with .reason}}{{printf "%-16s %s" $t .}}{{else}}{{$t}}{{end}}{{"\n"}}
  {{- end}}{{end}}
{{- else}}{{$spec := .spec}}
  {{- with .status.startTime}}{{template "at" .}}1{{"\t"}}pod/{{$.metadata.name}} started{{"\n"}}{{end}}
  {{- range .status.initContainerStatuses}}{{$n := .name}}{{with or .state.running .state.terminated}}
    {{- template "at" .startedAt}}2{{"\t"}}{{printf "%-16s " (print $n " started")}}
    {{- range $spec.initContainers}}{{if eq .name $n}}{{if eq (or .restartPolicy "") "Always"}}native sidecar: init container, restartPolicy Always{{else}}plain init container{{end}}{{end}}{{end}}
    {{- if .finishedAt}}{{"\n"}}{{template "at" .finishedAt}}4{{"\t"}}{{printf "%-16s exit code %v (%s)" (print $n " exited") .exitCode .reason}}{{else}}, still running{{end}}{{"\n"}}
  {{- end}}{{end}}
  {{- range .status.containerStatuses}}{{$n := .name}}{{with or .state.running .state.terminated}}
    {{- template "at" .startedAt}}3{{"\t"}}{{printf "%-16s regular container" (print $n " started")}}
    {{- if .finishedAt}}{{"\n"}}{{template "at" .finishedAt}}3{{"\t"}}{{printf "%-16s exit code %v (%s)" (print $n " exited") .exitCode .reason}}{{else}}, still running{{end}}{{"\n"}}
  {{- end}}{{end}}
{{- end}}'

# Each container's first and last log line, "TIME CONTAINER first|last line", in time order, from
# `kubectl logs --all-containers --prefix --timestamps` ("[pod/NAME/CONTAINER] TIME TEXT"). The
# kubelet's RFC 3339 times drop trailing zeros; padded to nanoseconds, they sort as text.
log_order() {
  awk '{
    c = $1; sub(/.*\//, "", c); sub(/]$/, "", c)
    t = $2; f = ""
    if (match(t, /\.[0-9]+Z$/)) { f = substr(t, RSTART + 1, RLENGTH - 2); t = substr(t, 1, RSTART - 1) } else sub(/Z$/, "", t)
    t = t "." substr(f "000000000", 1, 9) "Z"
    if (!(c in first)) first[c] = t
    last[c] = t
  } END { for (c in first) { print first[c], c, "first line"; print last[c], c, "last line" } }' "$1" | sort
}

# Prints the timeline of the Job and the Pod in FILE (read without a cluster: `patch --local`),
# then the verdict, decided from those lines. The API's times have one-second resolution, so
# where LOGS is given the order of start and exit is read from the containers' own log lines.
timeline() {
  local mode=$1 events order_lines fails=()
  events=$(kubectl patch --local -f "$2" --type merge -p '{}' -o go-template="$template") || exit 2
  events=$(sort -s -t$'\t' -k1,1 -k2,2n <<<"$events" | cut -f1,3 | tr '\t' ' ')
  printf '%s\n' "$events"
  order_lines=$events
  if [[ -n ${3:-} ]]; then
    order_lines=$(log_order "$3")
    printf 'order, from the containers'"'"' own log lines:\n%s\n' "$order_lines"
  fi
  has() { [[ $events == *"$1"* ]]; }
  # A before B, in the log lines if given, else in the API's times (ties in the kubelet's order).
  order() { [[ $order_lines != *"$1"* || $order_lines != *"$2"* || $order_lines == *"$1"*"$2"* ]] || fails+=("$3"); }
  if [[ $mode == native ]]; then
    has "sidecar started  native sidecar" || fails+=("sidecar is not a native sidecar (an init container with restartPolicy: Always)")
    has "job Complete" || fails+=("job did not complete")
    has "app exited       exit code 0 " || fails+=("app did not exit 0")
    has "sidecar exited   exit code 0 " || fails+=("sidecar did not exit 0")
    if [[ -n ${3:-} ]]; then
      order "sidecar first line" "app first line" "app started before the sidecar"
      order "app last line" "sidecar last line" "sidecar exited before the app"
    else
      order "sidecar started" "app started" "app started before the sidecar"
      order "app exited" "sidecar exited" "sidecar exited before the app"
    fi
    pass="job Complete; app and sidecar both exited 0, the sidecar started before the app and exited after it"
  else
    has "sidecar started  regular container" || fails+=("sidecar is not a regular container")
    has "job Failed       DeadlineExceeded" || fails+=("job did not fail with DeadlineExceeded")
    has "app exited       exit code 0 " || fails+=("app did not exit 0")
    pass="app exited 0, yet the job Failed with DeadlineExceeded: the sidecar, a regular container, kept its Pod running"
  fi
  ((${#fails[@]} == 0)) || { printf 'FAIL: %s\n' "${fails[@]}"; exit 1; }
  echo "PASS: $pass"
}

# Deploys FILE, waits for its end, prints the Pod's events, then the timeline and the verdict.
run() {
  local mode=$1
  deploy "$2"
  # The Pod's name, while it exists: a Job that runs into its deadline has its Pod deleted.
  "${kc[@]}" wait --for=jsonpath='{.status.active}'=1 "job/$name" --timeout="$timeout" >/dev/null || true
  the_pod
  if [[ $mode == native ]]; then
    wait_job
    "${kc[@]}" get "job/$name" -o json >"$tmp/run.json"
    "${kc[@]}" get "$pod" -o json >>"$tmp/run.json" 2>/dev/null || say "$pod is gone: the Job deleted it"
  else
    # Its status is kept as soon as the app has exited, while the sidecar, a regular container,
    # still runs. The wait is on the app's own state: the Pod's Ready condition would also go
    # false for one slow probe.
    "${kc[@]}" wait --for=jsonpath='{.status.containerStatuses[?(@.name=="app")].state.terminated.reason}'=Completed \
      "$pod" --timeout="$timeout" >/dev/null || true
    "${kc[@]}" get "$pod" -o json >"$tmp/run.json" || die "$pod was gone before the app exited"
    wait_job
    "${kc[@]}" get "job/$name" -o json >>"$tmp/run.json"
  fi
  "${kc[@]}" get events --field-selector "involvedObject.name=${pod#pod/}" --sort-by=.lastTimestamp >&2 || true
  [[ -z ${RUN_JSON:-} ]] || cp "$tmp/run.json" "$RUN_JSON"
  if [[ $mode == native ]] && "${kc[@]}" logs --all-containers --prefix --timestamps "$pod" >"$tmp/run.logs" 2>/dev/null; then
    [[ -z ${RUN_LOGS:-} ]] || cp "$tmp/run.logs" "$RUN_LOGS"
    timeline "$mode" "$tmp/run.json" "$tmp/run.logs"
  else
    timeline "$mode" "$tmp/run.json"
  fi
}

case ${1:-} in
  check) check_tools; say "kind, kubectl and $engine are ready" ;;
  config) echo "$root/$config" ;;
  up) check_tools; cluster_up ;;
  # Deleting needs kind alone (any release), and the engine it runs on, whatever its version.
  down)
    command -v kind >/dev/null || die "kind is not installed, so there is no kind cluster to delete"
    source "$root/scripts/lib/engine.sh" && find_engine
    [[ -z $engine ]] || export KIND_EXPERIMENTAL_PROVIDER=$engine
    kind delete cluster --name "$cluster" ;;
  load) check_tools; load_images ;;
  deploy) check_tools; deploy "${2:-$root/job.yaml}" ;;
  logs) check_tools; "${kc[@]}" logs "job/$(field "${2:-$root/job.yaml}" '{.metadata.name}')" --all-containers --prefix ;;
  run) [[ ${2:-} =~ ^(native|legacy)$ && -r ${3:-} ]] || usage; run "$2" "$3" ;;
  archives) [[ -n ${2:-} ]] || usage; archives "${@:2}" ;;
  demo) check_tools; cluster_up; make -C "$root" images CONTAINER_TOOL="$engine"; load_images; run native "$root/job.yaml" ;;
  demo-legacy) check_tools; cluster_up; make -C "$root" images CONTAINER_TOOL="$engine"; load_images; run legacy "$root/job-legacy.yaml" ;;
  timeline) [[ ${2:-} =~ ^(native|legacy)$ && -r ${3:-} && (-z ${4:-} || -r ${4:-}) ]] || usage; timeline "$2" "$3" "${4:-}" ;;
  *) usage ;;
esac
