#!/usr/bin/env bash
# Builds both images from docker/Dockerfile under the names in images.env, or pushes them.
#
#   scripts/images.sh                                     # the engine's own platform, for kind
#   PLATFORMS=linux/amd64,linux/arm64 scripts/images.sh   # one multi-arch image (manifest list)
#   REGISTRY=host[:port]/path scripts/images.sh push      # push what was built, print digests
#   scripts/images.sh current                             # exit 0 if both are this commit's
#
# CONTAINER_TOOL=docker|podman picks the engine (default: the first that answers). docker needs
# the buildx plugin. RUST_IMAGE=<image> replaces the builder image, BUILD_OPTS adds build flags,
# PUSH_OPTS push flags (podman: --tls-verify=false for a plain-HTTP registry).
#
# Reproducible: SOURCE_DATE_EPOCH is the commit's time, the labels carry the commit's hash and
# date, and every timestamp in the image is that time, so one commit gives one image ID.
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
if [[ $tool == docker ]] && ! docker buildx version >/dev/null 2>&1; then
  # The legacy builder cannot run the Dockerfile's RUN --mount, and never builds multi-arch.
  die "docker has no buildx plugin: install it (docker-buildx-plugin, https://docs.docker.com/go/buildx/)"
fi

push() {
  [[ -n ${REGISTRY:-} ]] || die "push needs REGISTRY=host[:port]/path"
  # shellcheck disable=SC2206 # PUSH_OPTS is a list of flags on purpose.
  local opts=(${PUSH_OPTS:-}) image remote digest
  # Global, and removed on EXIT rather than RETURN: die exits without returning.
  digest_file="$(mktemp)"
  trap 'rm -f "$digest_file"' EXIT
  for image in "$SIDECAR_IMAGE" "$APP_IMAGE"; do
    remote="${REGISTRY%/}/${image##*/}"
    if [[ $tool == podman ]]; then
      # A manifest list (PLATFORMS=...) goes with every platform in it; one image as itself.
      if podman manifest inspect "$image" >/dev/null 2>&1; then
        podman manifest push "${opts[@]}" --all --digestfile "$digest_file" "$image" "docker://$remote" >&2
      else
        podman push "${opts[@]}" --digestfile "$digest_file" "$image" "docker://$remote" >&2
      fi
      digest="$(cat "$digest_file")"
    else
      docker tag "$image" "$remote"
      docker push "${opts[@]}" "$remote" >"$digest_file"
      digest="$(sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p' "$digest_file" | tail -n 1)"
    fi
    [[ $digest == sha256:* ]] || die "no digest for $remote"
    printf '%s@%s\n' "${remote%:*}" "$digest"
  done
}
# Exits 0 when both images exist for this machine's platform, built from this commit with no
# change to what the build reads (the .dockerignore list): `make pod` then needs no builder.
current() {
  local head image built native_arch
  head="$(git rev-parse HEAD)"
  git diff --quiet HEAD -- Cargo.toml Cargo.lock app sidecar lifecycle testkit docker images.env || return 1
  [[ -z $(git ls-files --others --exclude-standard -- app sidecar lifecycle testkit docker) ]] || return 1
  if [[ $tool == docker ]]; then native_arch="$(docker version --format '{{.Server.Arch}}')"
  else native_arch="$(podman info --format '{{.Host.Arch}}')"; fi
  for image in "$SIDECAR_IMAGE" "$APP_IMAGE"; do
    built="$("$tool" image inspect --format \
      '{{index .Config.Labels "org.opencontainers.image.revision"}} {{.Architecture}}' "$image" 2>/dev/null)" || return 1
    [[ $built == "$head $native_arch" ]] || return 1
  done
  printf 'images: %s and %s are current (commit %s); not rebuilt\n' "$SIDECAR_IMAGE" "$APP_IMAGE" "${head:0:12}" >&2
}
[[ ${1:-} == push ]] && { push; exit 0; }
[[ ${1:-} == current ]] && { current; exit; }
[[ -z ${1:-} ]] || die "usage: $0 [push|current]"

# The builder image: the Dockerfile's pinned default unless RUST_IMAGE names another. Never a
# stand-in picked here: if it cannot be had, say so and stop.
rust_image="${RUST_IMAGE:-$(sed -n 's/^ARG RUST_IMAGE=//p' docker/Dockerfile)}"
if ! "$tool" image inspect "$rust_image" >/dev/null 2>&1 \
    && ! "$tool" pull --quiet "$rust_image" >/dev/null 2>&1; then
  die "cannot pull the builder image $rust_image: check the registry, or name another with RUST_IMAGE=<image>"
fi

# The engine's own platform by default: what kind's node runs on this machine.
if [[ $tool == docker ]]; then
  native="linux/$(docker version --format '{{.Server.Arch}}')"
else
  native="linux/$(podman info --format '{{.Host.Arch}}')"
fi
platforms="${PLATFORMS:-$native}"

epoch="$(git log -1 --format=%ct)"
revision="$(git log -1 --format=%H)"
created="$(TZ=UTC0 git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd)"
args=(--platform "$platforms"
      --build-arg "RUST_IMAGE=$rust_image" --build-arg "VERSION=$VERSION"
      --build-arg "SOURCE_DATE_EPOCH=$epoch" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
# shellcheck disable=SC2206 # BUILD_OPTS is a list of flags on purpose.
[[ -n ${BUILD_OPTS:-} ]] && args+=(${BUILD_OPTS})
if [[ $tool == docker ]]; then
  # No attestations: an attestation manifest in the archive is a blob that `kind load` trips on.
  # rewrite-timestamp sets every file's time to SOURCE_DATE_EPOCH.
  args+=(--file docker/Dockerfile --provenance=false --sbom=false --output "type=docker,rewrite-timestamp=true")
else
  # podman 4.3's layer cache compares a step's text, not the ARG values it expands (ARG lines
  # it skips), so a new commit's build would reuse the last one's labels and binary layer, with
  # its file time. The commit's values written into the LABEL make it, and what follows, new.
  dockerfile="$(mktemp)"
  trap 'rm -f "$dockerfile"' EXIT
  sed -e "s|\${REVISION}|$revision|" -e "s|\${CREATED}|$created|" docker/Dockerfile >"$dockerfile"
  # It also leaves $BUILDPLATFORM in a FROM line unexpanded unless it is passed in.
  args+=(--file "$dockerfile" --build-arg "BUILDPLATFORM=$native" --timestamp "$epoch")
fi

for target in sidecar app; do
  image_var="${target^^}_IMAGE"
  image="${!image_var}"
  printf 'images: %s build --platform %s --target %s -t %s\n' "$tool" "$platforms" "$target" "$image" >&2
  if [[ $tool == docker ]]; then
    docker buildx build "${args[@]}" --target "$target" --tag "$image" .
  elif [[ $platforms == *,* ]]; then
    # --manifest adds to a list of that name: start from none, so nothing stale stays in it. Only
    # the name goes; images and their containers stay.
    podman manifest rm "$image" >/dev/null 2>&1 || podman untag "$image" >/dev/null 2>&1 || true
    podman build "${args[@]}" --target "$target" --manifest "$image" .
  else
    podman manifest rm "$image" >/dev/null 2>&1 || true
    podman build "${args[@]}" --target "$target" --tag "$image" .
  fi
done
printf 'images: built %s and %s for %s\n' "$SIDECAR_IMAGE" "$APP_IMAGE" "$platforms" >&2
