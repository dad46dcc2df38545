#!/usr/bin/env bash
# Builds both images from docker/Dockerfile under the names in images.env.
#
#   scripts/images.sh                          # docker if an engine answers, else podman
#   CONTAINER_TOOL=podman scripts/images.sh    # or pick one
#   BUILDER=standin scripts/images.sh          # offline: no registry, see below
#
# BUILDER picks the builder image:
#   official  the Dockerfile's default, the official rust image from the registry;
#   standin   scripts/builder-base.sh's local image, for machines without a registry: podman
#             bind-mounts the host's toolchain and CA bundle into the build; docker (which has
#             no `build -v`) gets an image holding a copy of both;
#   auto      (default) official if it can be pulled, else standin, saying so.
# RUST_IMAGE=<image> overrides the builder image outright; BUILD_OPTS adds build flags.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=SCRIPTDIR/../images.env
source images.env

die() { printf 'images: %s\n' "$*" >&2; exit 1; }

# shellcheck source=SCRIPTDIR/lib/engine.sh
source "$repo/scripts/lib/engine.sh"
find_engine
tool="$engine"
[[ -n $tool ]] || die "no container engine answers: install Docker or podman (\`${CONTAINER_TOOL:-docker} info\` must work)"

args=(--file docker/Dockerfile --build-arg "VERSION=$VERSION")
# shellcheck disable=SC2206 # BUILD_OPTS is a list of flags on purpose.
[[ -n ${BUILD_OPTS:-} ]] && args+=(${BUILD_OPTS})

builder="${BUILDER:-auto}"
official="$(sed -n 's/^ARG RUST_IMAGE=//p' docker/Dockerfile)"
if [[ $builder == auto ]]; then
  if [[ -n ${RUST_IMAGE:-} ]] || "$tool" image inspect "$official" >/dev/null 2>&1 \
      || "$tool" pull --quiet "$official" >/dev/null 2>&1; then
    builder=official
  else
    printf 'images: cannot pull %s; building with the offline stand-in (BUILDER=standin)\n' \
      "$official" >&2
    builder=standin
  fi
fi
case "$builder" in
  official) ;;
  standin)
    command -v rustc >/dev/null || die "BUILDER=standin uses the host's Rust toolchain: rustc not found"
    if [[ $tool == podman ]]; then
      args+=(--build-arg "RUST_IMAGE=$(scripts/builder-base.sh base)"
             --volume "$(rustc --print sysroot):/usr/local/rust:ro"
             --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
    else
      args+=(--build-arg "RUST_IMAGE=$(scripts/builder-base.sh toolchain)")
    fi
    ;;
  *) die "BUILDER must be auto, official or standin, not '$builder'" ;;
esac
[[ -n ${RUST_IMAGE:-} ]] && args+=(--build-arg "RUST_IMAGE=$RUST_IMAGE")

if [[ $tool == docker ]] && ! docker buildx version >/dev/null 2>&1; then
  # Without buildx the docker CLI can only use the legacy builder API, which podman's service
  # implements with BuildKit's RUN --mount; a real Docker engine needs buildx for it.
  export DOCKER_BUILDKIT=0
fi

for target in sidecar app; do
  image_var="${target^^}_IMAGE"
  image="${!image_var}"
  printf 'images: %s build --target %s -t %s\n' "$tool" "$target" "$image" >&2
  "$tool" build "${args[@]}" --target "$target" --tag "$image" .
done
printf 'images: built %s and %s\n' "$SIDECAR_IMAGE" "$APP_IMAGE" >&2
