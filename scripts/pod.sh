#!/usr/bin/env bash
# The Job's Pod as the kubelet runs it, in two containers, with every setting read from the
# manifest by kubectl, offline (image, command, args, env, securityContext, limits, the sidecar's
# postStart hook and probes, terminationGracePeriodSeconds); a setting it cannot run stops it.
# The sidecar starts first and its hook, run with exec, holds the app back; the app joins the
# sidecar's network namespace (they share 127.0.0.1) and runs to completion while the probes
# run; then the sidecar gets SIGTERM. The verdict follows the timeline: the hook, every probe
# and both exit codes must pass.
#
#   scripts/pod.sh [JOB_YAML]          # job.yaml; docker if an engine answers, else podman
#   CONTAINER_TOOL=podman APP_SLEEP=1s scripts/pod.sh   # APP_SLEEP (2s) replaces the manifest's
#
# Exit status: 0 the Pod passed, 1 it did not, 3 the engine cannot start a container at all.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
job="${1:-$repo/job.yaml}"
say() { printf 'pod: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=SCRIPTDIR/lib/engine.sh
source "$repo/scripts/lib/engine.sh"
find_engine
tool="$engine"
missing=()
for command in kubectl timeout curl; do command -v "$command" >/dev/null || missing+=("$command"); done
[[ -n $tool ]] || missing+=("a container engine: Docker or podman (\`${CONTAINER_TOOL:-docker} info\` must work)")
((${#missing[@]} == 0)) || die "missing: ${missing[*]}"

# kubectl prints one "FIELD VALUE" line per field that is set (a list: one per item), and
# before each container's fields an "init NAME" or "main NAME" line.
fields() { local from=$1 f; shift; for f; do printf '{range %s.%s}%s {@}{"\\n"}{end}' "$from" "$f" "${f%'[*]'}"; done; }
each="$(fields '' image restartPolicy 'command[*]' 'args[*]' workingDir 'lifecycle.postStart.exec.command[*]' \
  'envFrom[*]' 'env[*].valueFrom' 'volumeMounts[*]' \
  securityContext.{runAsUser,runAsGroup,readOnlyRootFilesystem,allowPrivilegeEscalation} \
  'securityContext.capabilities.drop[*]' 'securityContext.capabilities.add[*]' \
  resources.limits.{memory,cpu} {startup,readiness,liveness}Probe.{'exec.command[*]',httpGet.path,httpGet.port,periodSeconds,timeoutSeconds})"
each+='{range .env[*]}env {.name}={.value}{"\n"}{end}{range .ports[*]}port.{.name} {.containerPort}{"\n"}{end}'
pod=.spec.template.spec
template="$(fields .spec activeDeadlineSeconds)$(fields $pod terminationGracePeriodSeconds securityContext.{runAsUser,runAsGroup})"
template+="{range $pod.initContainers[*]}init {.name}{\"\\n\"}$each{end}{range $pod.containers[*]}main {.name}{\"\\n\"}$each{end}"
fields="$(kubectl patch --local -f "$job" -p '{}' --type merge -o jsonpath="$template")" ||
  die "kubectl cannot read $job (its error is above)"
declare -A spec=()
c=pod inits=() mains=()
while read -r field value; do
  case $field in
    init) c=$value inits+=("$value") ;;
    main) c=$value mains+=("$value") ;;
    *) spec[$c.$field]+="${spec[$c.$field]+$'\n'}$value" ;;
  esac
done <<<"$fields"
[[ ${#inits[@]} == 1 && ${#mains[@]} == 1 && ${spec[${inits[0]}.restartPolicy]:-} == Always ]] ||
  die "$job: pod.sh runs one native sidecar (an init container with restartPolicy: Always) and one main container"
side="${inits[0]}" main="${mains[0]}"
get() { printf '%s' "${spec[$1]:-${2:-}}"; }
list() { mapfile -t "$1" < <(get "$2"); }

# Kubernetes quantities as the engines take them: memory with k, m or g (binary), CPU in cores.
memory() {
  [[ $1 =~ ^([0-9]+)([KMG]i)?$ ]] || die "$job: memory limit $1: pod.sh reads a whole number of bytes, Ki, Mi or Gi"
  local unit=${BASH_REMATCH[2]%i} && echo "${BASH_REMATCH[1]}${unit,,}"
}
cores() { if [[ $1 == *m ]]; then printf '%d.%03d' $((${1%m} / 1000)) $((${1%m} % 1000)); else echo "$1"; fi; }

# Container $1's run flags (into flags) and arguments after the entrypoint (into argv).
# A program whose --help names the variables it reads (clap's "[env: NAME=]") must read every
# one the manifest sets: a misspelt name is ignored by the program and the kubelet alike.
# RUST_LOG is the one its logging reads itself, so --help shows it only in prose.
settings() {
  local name=$1 user group item items command args help
  user="$(get "$name.securityContext.runAsUser" "$(get pod.securityContext.runAsUser)")"
  group="$(get "$name.securityContext.runAsGroup" "$(get pod.securityContext.runAsGroup)")"
  flags=(${user:+--user "$user${group:+:$group}"})
  [[ $(get "$name.securityContext.readOnlyRootFilesystem") != true ]] || flags+=(--read-only)
  [[ $(get "$name.securityContext.allowPrivilegeEscalation") != false ]] || flags+=(--security-opt=no-new-privileges)
  list items "$name.securityContext.capabilities.drop" && flags+=("${items[@]/#/--cap-drop=}")
  list items "$name.securityContext.capabilities.add" && flags+=("${items[@]/#/--cap-add=}")
  item="$(get "$name.resources.limits.memory")" && [[ -z $item ]] || flags+=(--memory "$(memory "$item")")
  item="$(get "$name.resources.limits.cpu")" && [[ -z $item ]] || flags+=(--cpus "$(cores "$item")")
  for item in envFrom 'env[*].valueFrom' volumeMounts; do
    [[ -z $(get "$name.$item") ]] || die "$job: $name sets $item, which pod.sh cannot run"
  done
  item="$(get "$name.workingDir")" && [[ -z $item ]] || flags+=(--workdir "$item")
  list command "$name.command" && list args "$name.args" && argv=("${command[@]:1}" "${args[@]}")
  [[ ${#command[@]} == 0 ]] || flags+=(--entrypoint "${command[0]}")
  "$tool" image inspect "$(get "$name.image")" >/dev/null 2>&1 || die "$tool has no image $(get "$name.image"): run 'make images' first"
  # With none of the manifest's settings, 125 or 126 means the engine cannot run a container.
  help="$("$tool" run --rm ${command[0]:+--entrypoint "${command[0]}"} "$(get "$name.image")" --help 2>&1)" ||
    [[ $? != 12[56] ]] || { say "$tool cannot start a container here: $help"; exit 3; }
  list items "$name.env"
  for item in "${items[@]}"; do
    [[ $help != *"[env: "* || $help == *"[env: ${item%%=*}="* || ${item%%=*} == RUST_LOG ]] ||
      die "$job sets ${item%%=*} on $name, which it does not read (its --help names$(grep -o '\[env: [A-Z0-9_]*' <<<"$help" | cut -c6- | tr '\n' ' '))"
    [[ ${item%%=*} != APP_SLEEP ]] || item="APP_SLEEP=${APP_SLEEP:-2s}"
    flags+=(--env "$item")
  done
}
settings "$main"
app_flags=("${flags[@]}") app_argv=("${argv[@]}")
settings "$side"

# The sidecar's probes as the kubelet runs them: exec in the container, or GET through a port
# published on loopback, within timeoutSeconds (plus 5 s for the engine's own exec start-up).
probes=() publish=()
for name in {startup,readiness,liveness}Probe; do
  port="$(get "$side.$name.httpGet.port")"
  [[ -z $port ]] || publish+=(--publish "127.0.0.1::$(get "$side.port.$port" "$port")")
  [[ -z $port && -z $(get "$side.$name.exec.command") ]] || probes+=("$name")
done
probe() {
  local p="$side.$1" seconds port command
  seconds=$(($(get "$p.timeoutSeconds" 1) + 5)) port="$(get "$p.httpGet.port")"
  list command "$p.exec.command"
  if [[ -z $port ]]; then timeout "$seconds" "$tool" exec "$sidecar" "${command[@]}" 2>&1; return; fi
  port="$("$tool" port "$sidecar" "$(get "$side.port.$port" "$port")/tcp" | head -1)"
  curl --silent --show-error --fail --max-time "$seconds" -o /dev/null "http://$port$(get "$p.httpGet.path" /)" 2>&1
}

# POD_ID tells runs apart (the tests set it to find what a run left behind).
sidecar="k8s-native-sidecar-job-$side-${POD_ID:-$$}" app="k8s-native-sidecar-job-$main-${POD_ID:-$$}"
# App first: podman refuses to remove a container whose network namespace another one uses.
cleanup() { "$tool" rm --force "$app" >/dev/null 2>&1 || true; "$tool" rm --force "$sidecar" >/dev/null 2>&1 || true; }
trap cleanup EXIT
sidecar_logs() { printf -- '--- %s logs ---\n' "$side"; "$tool" logs "$sidecar" 2>&1 || true; printf -- '---\n'; }

# shellcheck source=SCRIPTDIR/lib/timeline.bash
source "$repo/scripts/lib/timeline.bash"
timeline_start
title="pod ($tool): ${job#"$PWD/"}"
if ! "$tool" run --detach --name "$sidecar" "${publish[@]}" "${flags[@]}" "$(get "$side.image")" "${argv[@]}" >/dev/null; then
  fail "the $side container did not start with the settings in $job (the engine's error is above)"
  finish "$title"
fi
mark "$side started" "its network namespace is the pod's"

list command "$side.lifecycle.postStart.exec.command"
if ((${#command[@]})); then
  # The hook's own timeout should end it; the Job's activeDeadlineSeconds bounds it anyway.
  deadline="$(get pod.activeDeadlineSeconds 600)"
  output="$(timeout "$deadline" "$tool" exec "$sidecar" "${command[@]}" 2>&1)" ||
    { fail "the postStart hook failed: ${command[*]}: ${output:-no answer within ${deadline}s}"; sidecar_logs; finish "$title"; }
  mark "postStart done" "${command[*]}"
fi

# Every probe once before the app starts, then every periodSeconds while it runs. Stricter than
# the kubelet's failureThreshold: once postStart has returned, no probe of this Pod should fail.
declare -A due=()
run_probes() {
  local name output
  for name in "${probes[@]}"; do
    ((SECONDS >= ${due[$name]:-0})) || continue
    due[$name]=$((SECONDS + $(get "$side.$name.periodSeconds" 10)))
    output="$(probe "$name")" || { mark "probe failed" "$name: $output"; fail "the $side's $name failed: $output"; }
  done
}
run_probes
((${#probes[@]} == 0 || ${#failures[@]})) || mark "$side ready" "${probes[*]} passed"

mark "$main started" "joins the $side's network namespace"
"$tool" run --name "$app" --network "container:$sidecar" "${app_flags[@]}" "$(get "$main.image")" "${app_argv[@]}" &
app_pid=$! code=0
while kill -0 "$app_pid" 2>/dev/null; do run_probes; sleep 0.1; done
wait "$app_pid" || code=$?
mark "$main exited" "exit code $code"
((code == 0)) || fail "the $main exited with code $code"

[[ $("$tool" inspect --format '{{.State.Running}}' "$sidecar") == true ]] || fail "the $side exited before the $main"
grace="$(get pod.terminationGracePeriodSeconds 30)"
mark "$side SIGTERM" "$tool stop, SIGKILL after ${grace}s"
"$tool" stop --time "$grace" "$sidecar" >/dev/null
read -r code oom < <("$tool" inspect --format '{{.State.ExitCode}} {{.State.OOMKilled}}' "$sidecar")
mark "$side exited" "exit code $code"
((code == 0)) || fail "the $side exited with code $code (137: killed at the grace period; OOMKilled: $oom)"

sidecar_logs
finish "$title" "$main and $side both exited 0"
