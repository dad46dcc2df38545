# shellcheck shell=sh
# Picks the container tool, for every script that runs one (POSIX sh, so kind-demo.sh can
# source it as well as the bash scripts). Source it, then call:
#
#   find_engine    sets engine to CONTAINER_TOOL if given, else to the first of docker and
#                  podman whose engine answers (`TOOL info` works); leaves it empty if none
#                  does. Exits 2 if CONTAINER_TOOL is neither docker nor podman.

find_engine() {
	engine=
	case ${CONTAINER_TOOL:-} in
		"") candidates="docker podman" ;;
		docker | podman) candidates=$CONTAINER_TOOL ;;
		*)
			echo "error: CONTAINER_TOOL must be docker or podman, not $CONTAINER_TOOL" >&2
			exit 2
			;;
	esac
	for candidate in $candidates; do
		if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
			# shellcheck disable=SC2034 # engine is what this library hands its callers.
			engine=$candidate
			return 0
		fi
	done
}
