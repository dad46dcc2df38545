#!/bin/sh
# Prints the lifecycle of a Job's Pod from recorded status, and checks it.
#
#   scripts/timeline.sh native|legacy [FILE]
#
# FILE (default: standard input) holds the Job and its one Pod as JSON: either a List, as
# `kubectl get job/NAME pod/POD -o json` prints it, or the two objects one after the other.
# The containers must be named `app` and `sidecar`, as in job.yaml and job-legacy.yaml.
#
#   native  passes when the Job is Complete, the sidecar is a native sidecar (an init
#           container with restartPolicy: Always) that started no later than the app and
#           exited no earlier, and both exited 0.
#   legacy  passes when the app exited 0 and the Job still Failed with DeadlineExceeded,
#           because the sidecar, a regular container, kept the Pod running.
#
# Exit status: 0 passed, 1 did not pass, 2 the input or the usage is wrong.
#
# Needs only kubectl and a POSIX awk (AWK picks one; the tests run mawk, gawk --posix,
# BWK awk and busybox awk where installed). `kubectl patch --local` with an empty patch
# applies a go-template to JSON without contacting any cluster, so the same code reads a
# live cluster's status and the recorded fixtures in tests/fixtures/.
set -eu

usage() {
	echo "usage: $0 native|legacy [FILE]" >&2
	exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	usage
fi
mode=$1
case $mode in
	native | legacy) ;;
	*) usage ;;
esac
file=${2:--}

# One line per fact, fields separated by spaces (no field can contain one):
#   job NAME START COMPLETION
#   cond TYPE STATUS REASON TIME                    (one per Job condition)
#   pod NAME PHASE REASON
#   role NAME sidecar|init|main                     (from the Pod spec)
#   state NAME running|terminated|waiting START FINISH EXITCODE
# A missing value is "-". Anything not a Job or a Pod prints nothing.
template='{{- if eq .kind "Job" -}}
job {{.metadata.name}} {{or .status.startTime "-"}} {{or .status.completionTime "-"}}
{{with .status.conditions}}{{range .}}cond {{.type}} {{.status}} {{or .reason "-"}} {{or .lastTransitionTime "-"}}
{{end}}{{end}}
{{- else if eq .kind "Pod" -}}
pod {{.metadata.name}} {{or .status.phase "-"}} {{or .status.reason "-"}}
{{with .spec.initContainers}}{{range .}}role {{.name}} {{if eq (or .restartPolicy "") "Always"}}sidecar{{else}}init{{end}}
{{end}}{{end}}
{{- range .spec.containers}}role {{.name}} main
{{end}}
{{- with .status.initContainerStatuses}}{{range .}}state {{.name}} {{template "state" .state}}
{{end}}{{end}}
{{- with .status.containerStatuses}}{{range .}}state {{.name}} {{template "state" .state}}
{{end}}{{end}}
{{- end -}}
{{- define "state" -}}
{{- if .terminated}}terminated {{or .terminated.startedAt "-"}} {{or .terminated.finishedAt "-"}} {{.terminated.exitCode}}
{{- else if .running}}running {{or .running.startedAt "-"}} - -
{{- else}}waiting - - -
{{- end}}
{{- end -}}'

if [ "$file" = - ]; then
	facts=$(kubectl patch --local -f - --type merge -p '{}' -o go-template="$template") || exit 2
else
	[ -r "$file" ] || { echo "timeline: cannot read $file" >&2; exit 2; }
	facts=$(kubectl patch --local -f "$file" --type merge -p '{}' -o go-template="$template") || exit 2
fi

dir=$(dirname "$0")
printf '%s\n' "$facts" | ${AWK:-awk} -v mode="$mode" -f "$dir/timeline.awk"
