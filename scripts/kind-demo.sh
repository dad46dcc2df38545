#!/bin/sh
# The kind path of `make demo`: a local cluster, the images loaded into it, a Job run to its
# end, and its timeline checked. Needs only kind, kubectl and Docker or podman.
#
#   scripts/kind-demo.sh check         the tools are there and new enough (exit 3 if not)
#   scripts/kind-demo.sh up | down     create or delete the cluster; both are idempotent
#   scripts/kind-demo.sh load          copy the two images into the cluster's node
#   scripts/kind-demo.sh deploy [FILE] (re)create the Job in FILE (default job.yaml)
#   scripts/kind-demo.sh logs [FILE]   logs of both containers of that Job's Pod
#   scripts/kind-demo.sh demo          up, load, run job.yaml, check it completed cleanly
#   scripts/kind-demo.sh demo-legacy   up, load, run job-legacy.yaml, check it ran into its deadline
#
# Settings, from the environment (the Makefile passes them on):
#   KIND_CLUSTER    cluster name (default: native-sidecar)
#   K8S             1.37 (default, cluster.yaml) or 1.28 (cluster-1.28.yaml)
#   CONTAINER_TOOL  docker or podman (default: the first whose engine answers)
#   APP_IMAGE, SIDECAR_IMAGE
#                   the images `make images` built (default: the names in images.env);
#                   they must be the ones job.yaml runs
#   JOB_TIMEOUT     seconds to wait for a Job to finish (default: 180)
#
# Every kubectl call names the cluster's context, so a different current context is never
# touched. Exit status: 0 the demo passed, 1 it did not, 2 usage or input error, 3 tools missing.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-native-sidecar}
context=kind-$cluster
job_timeout=${JOB_TIMEOUT:-180}
# Oldest kubectl accepted: the oldest cluster this demo runs, 1.28, within kubectl's skew.
kubectl_min=1.28.0

say() {
	echo "kind-demo: $*" >&2
}

die() {
	say "error: $*"
	exit 1
}

usage() {
	sed -n '5,11s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

# True when version $1 (v1.2.3, optionally with a -suffix) is at least $2.
version_ge() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		sub(/^v/, "", a); sub(/[-+].*$/, "", a); split(a, x, ".")
		sub(/^v/, "", b); sub(/[-+].*$/, "", b); split(b, y, ".")
		for (i = 1; i <= 3; i++) {
			if (x[i] + 0 > y[i] + 0) exit 0
			if (x[i] + 0 < y[i] + 0) exit 1
		}
		exit 0
	}'
}

# Picks the cluster config for K8S, and the kind release that published its node image.
case ${K8S:-} in
	"" | 1.37 | 1.37.0)
		config=$root/cluster.yaml
		kind_min=0.33.0
		;;
	1.28 | 1.28.15)
		config=$root/cluster-1.28.yaml
		kind_min=0.25.0
		;;
	*)
		say "error: K8S=$K8S is not a tested version; use 1.37 (cluster.yaml) or 1.28 (cluster-1.28.yaml)"
		exit 2
		;;
esac
node_image=$(awk '$1 == "image:" { print $2; exit }' "$config")
node_version=${node_image#*:}
node_version=${node_version%%@*}

# shellcheck source=scripts/lib/engine.sh
. "$root/scripts/lib/engine.sh"

# Checks every tool before anything runs, and names everything missing in one message.
check_tools() {
	missing=
	if command -v kind >/dev/null 2>&1; then
		have=$(kind version 2>/dev/null | awk '{ print $2; exit }')
		if ! version_ge "$have" "$kind_min"; then
			missing="$missing
  - kind v$kind_min or newer (found ${have:-an unreadable version}): https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
		fi
	else
		missing="$missing
  - kind v$kind_min or newer: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
	fi
	if command -v kubectl >/dev/null 2>&1; then
		have=$(kubectl version --client -o yaml 2>/dev/null | awk '$1 == "gitVersion:" { print $2; exit }')
		if ! version_ge "$have" "$kubectl_min"; then
			missing="$missing
  - kubectl v$kubectl_min or newer (found ${have:-an unreadable version}): https://kubernetes.io/docs/tasks/tools/"
		fi
	else
		missing="$missing
  - kubectl v$kubectl_min or newer: https://kubernetes.io/docs/tasks/tools/"
	fi
	find_engine
	if [ -z "$engine" ]; then
		missing="$missing
  - ${CONTAINER_TOOL:-Docker or podman} with a running engine (\`${CONTAINER_TOOL:-docker} info\` must work): https://docs.docker.com/engine/install/ or https://podman.io/docs/installation"
	fi
	if [ -n "$missing" ]; then
		say "the kind demo needs:$missing"
		exit 3
	fi
	# kind drives the same engine the images were built with.
	KIND_EXPERIMENTAL_PROVIDER=$engine
	export KIND_EXPERIMENTAL_PROVIDER
	if [ "$kind_min" = 0.25.0 ] && ! kind version | grep -q ' v0\.25\.'; then
		say "note: $(basename "$config")'s node image was published for kind v0.25.0, and kind only guarantees node images with the release that built them; if 'kind load' fails, use kind v0.25.0 (CI does)"
	fi
}

k() {
	kubectl --context "$context" "$@"
}

cluster_up() {
	if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
		running=$(k get nodes -o jsonpath='{.items[0].status.nodeInfo.kubeletVersion}' 2>/dev/null || true)
		if [ "$running" != "$node_version" ]; then
			die "cluster $cluster already exists and runs ${running:-an unknown version}, not $node_version; run 'make kind-down' or choose another KIND_CLUSTER"
		fi
		say "cluster $cluster is already up ($node_version)"
	else
		kind create cluster --name "$cluster" --config "$config" --wait 120s
	fi
}

cluster_down() {
	kind delete cluster --name "$cluster"
}

# Prints "NAME IMAGE" for every container of the Job in $1, read with kubectl alone.
manifest_images() {
	kubectl patch --local -f "$1" --type merge -p '{}' -o go-template='{{range .spec.template.spec.initContainers}}{{.name}} {{.image}}
{{end}}{{range .spec.template.spec.containers}}{{.name}} {{.image}}
{{end}}'
}

manifest_job_name() {
	kubectl patch --local -f "$1" --type merge -p '{}' -o go-template='{{.metadata.name}}'
}

load_images() {
	images=$(manifest_images "$root/job.yaml")
	want_app=$(printf '%s\n' "$images" | awk '$1 == "app" { print $2 }')
	want_sidecar=$(printf '%s\n' "$images" | awk '$1 == "sidecar" { print $2 }')
	app=${APP_IMAGE:-$(awk -F= '$1 == "APP_IMAGE" { print $2 }' "$root/images.env")}
	sidecar=${SIDECAR_IMAGE:-$(awk -F= '$1 == "SIDECAR_IMAGE" { print $2 }' "$root/images.env")}
	[ "$app" = "$want_app" ] || die "job.yaml runs $want_app, but the app image is $app (APP_IMAGE, images.env); the names must match"
	[ "$sidecar" = "$want_sidecar" ] || die "job.yaml runs $want_sidecar, but the sidecar image is $sidecar (SIDECAR_IMAGE, images.env); the names must match"
	for image in "$app" "$sidecar"; do
		"$engine" image inspect "$image" >/dev/null 2>&1 || die "$engine has no image $image; run 'make images' first"
	done
	if [ "$engine" = docker ]; then
		kind load docker-image --name "$cluster" "$app" "$sidecar"
	else
		# kind cannot read podman's image store; an archive works with both engines.
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		for image in "$app" "$sidecar"; do
			podman save --format docker-archive -o "$tmp/image.tar" "$image"
			kind load image-archive --name "$cluster" "$tmp/image.tar"
			rm -f "$tmp/image.tar"
		done
	fi
}

# Deletes any earlier run of the Job in $1 with its Pods, then creates it afresh, so the
# timeline can only show this run.
deploy() {
	name=$(manifest_job_name "$1")
	k delete job "$name" --ignore-not-found --cascade=foreground --wait=true
	k apply -f "$1"
	uid=$(k get job "$name" -o jsonpath='{.metadata.uid}')
}

# Polls until "$@" prints one of the words in $1 (or anything at all, for "*"), or until
# job_timeout passes. Prints what matched, or "timeout".
poll() {
	want=$1
	shift
	deadline=$(($(date +%s) + job_timeout))
	while :; do
		out=$("$@" 2>/dev/null || true)
		if [ "$want" = "*" ] && [ -n "$out" ]; then
			echo "$out"
			return 0
		fi
		for word in $want; do
			case " $out " in
				*" $word "*)
					echo "$word"
					return 0
					;;
			esac
		done
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo timeout
			return 0
		fi
		sleep 2
	done
}

job_conditions() {
	k get job "$1" -o go-template='{{range .status.conditions}}{{if eq .status "True"}}{{.type}} {{end}}{{end}}'
}

# The Job's Pods, as pod/NAME, selected by the Job's uid so that no earlier run can match.
job_pods() {
	k get pods -l "batch.kubernetes.io/controller-uid=$1" -o name
}

app_state() {
	k get "$1" -o go-template='{{range .status.containerStatuses}}{{if eq .name "app"}}{{if .state.terminated}}exited{{end}}{{end}}{{end}}'
}

demo() {
	file=$root/job.yaml
	deploy "$file"
	say "waiting up to ${job_timeout}s for job/$name to complete"
	ended=$(poll "Complete Failed" job_conditions "$name")
	[ "$ended" = Complete ] || say "job/$name did not complete ($ended)"
	pods=$(job_pods "$uid")
	# shellcheck disable=SC2086 # one word per Pod
	k get "job/$name" $pods -o json | "$root/scripts/timeline.sh" native
}

demo_legacy() {
	file=$root/job-legacy.yaml
	deploy "$file"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# The Pod is deleted once the deadline fails the Job, so its status is recorded as soon
	# as the app has exited, while the sidecar is still (needlessly) running.
	say "waiting up to ${job_timeout}s for the app in job/$name to exit"
	pod=$(poll "*" job_pods "$uid")
	[ "$pod" != timeout ] || die "job/$name created no Pod within ${job_timeout}s"
	poll exited app_state "$pod" >/dev/null
	k get "$pod" -o json >"$tmp/pod.json"
	say "waiting up to ${job_timeout}s for job/$name to end"
	ended=$(poll "Complete Failed" job_conditions "$name")
	say "job/$name ended: $ended"
	k get job "$name" -o json >"$tmp/job.json"
	cat "$tmp/pod.json" "$tmp/job.json" | "$root/scripts/timeline.sh" legacy
}

[ $# -ge 1 ] || usage
command=$1
shift
case $command in
	check)
		check_tools
		say "kind, kubectl and $engine are ready"
		;;
	up)
		check_tools
		cluster_up
		;;
	down)
		command -v kind >/dev/null 2>&1 || die "kind is not installed, so there is no kind cluster to delete"
		find_engine
		if [ -n "$engine" ]; then
			KIND_EXPERIMENTAL_PROVIDER=$engine
			export KIND_EXPERIMENTAL_PROVIDER
		fi
		cluster_down
		;;
	load)
		check_tools
		load_images
		;;
	deploy)
		check_tools
		deploy "${1:-$root/job.yaml}"
		;;
	logs)
		check_tools
		name=$(manifest_job_name "${1:-$root/job.yaml}")
		k logs "job/$name" --all-containers=true --prefix=true
		;;
	demo)
		check_tools
		cluster_up
		load_images
		demo
		;;
	demo-legacy)
		check_tools
		cluster_up
		load_images
		demo_legacy
		;;
	*) usage ;;
esac
