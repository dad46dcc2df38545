#!/usr/bin/env bash
# Offline stand-in for the Dockerfile's builder image (docker.io/library/rust:*-slim-bookworm),
# for machines that reach Debian's packages but no container registry. The host's toolchain
# needs the images' musl target: scripts/static-target.sh adds it with rustup if it is missing,
# which downloads it from static.rust-lang.org once.
#
#   scripts/builder-base.sh            # base only: Debian bookworm minbase + gcc, libc6-dev,
#                                      # ca-certificates, and a `rustup` that only checks
#                                      # (scripts/lib/rustup-standin); the build bind-mounts
#                                      # the host toolchain at /usr/local/rust (podman build -v).
#   scripts/builder-base.sh toolchain  # base + a copy of the host toolchain, for
#                                      # `docker build`, which has no -v.
#
# Prints the image name on stdout. The debootstrapped root file system is cached as a tar under
# .cache/builder-base/, so only the first run downloads anything. Needs root, debootstrap, podman.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$repo/.cache/builder-base"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=gcc,libc6-dev,ca-certificates
rootfs_image="localhost/k8s-native-sidecar-job/builder-rootfs:$suite"
base_image="localhost/k8s-native-sidecar-job/builder-base:$suite"
mode="${1:-base}"

log() { printf 'builder-base: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $mode == base || $mode == toolchain ]] || die "usage: $0 [base|toolchain]"
[[ $(id -u) == 0 ]] || die "needs root (debootstrap and rootful podman)"
command -v podman >/dev/null || die "podman not found: run scripts/install-container-tools.sh"

# The same variables as the official rust images, so the Dockerfile cannot tell them apart.
# /usr/local/rust holds the toolchain: bind-mounted for podman, copied in for docker.
changes=(
  --change 'ENV RUSTUP_HOME=/usr/local/rustup'
  --change 'ENV CARGO_HOME=/usr/local/cargo'
  --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'CMD ["bash"]'
)

# The mounted or copied toolchain must already hold the images' target.
triple="$("$repo/scripts/static-target.sh")"

if ! podman image exists "$rootfs_image"; then
  tarball="$cache/$suite-minbase.tar"
  if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || die "debootstrap not found: run scripts/install-container-tools.sh"
    mkdir -p "$cache"
    rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap $suite ($packages) from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
    # Downloaded .debs and package lists only make the image bigger.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$rootfs/usr/local/cargo" "$rootfs/usr/local/rust"
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  log "importing $tarball as $rootfs_image"
  podman import --quiet "${changes[@]}" "$tarball" "$rootfs_image" >/dev/null
fi
# A layer on top, rebuilt from podman's cache unless the stand-in changed.
podman build --quiet --tag "$base_image" --file - "$repo/scripts/lib" >/dev/null <<DOCKERFILE
FROM $rootfs_image
COPY rustup-standin /usr/local/cargo/bin/rustup
DOCKERFILE

if [[ $mode == base ]]; then
  printf '%s\n' "$base_image"
  exit 0
fi

sysroot="$(rustc --print sysroot)"
release="$(rustc -vV | sed -n 's/^release: //p')"
toolchain_image="localhost/k8s-native-sidecar-job/rust:$release-$suite"
# Rebuilt when missing, or made before the target was added or the stand-in rustup existed.
if ! podman image exists "$toolchain_image" \
    || ! podman run --rm "$toolchain_image" rustup target add "$triple" >/dev/null 2>&1; then
  log "copying the toolchain in $sysroot into $toolchain_image"
  # share/ (docs, man pages) is most of the toolchain's size and not needed to build.
  podman build --quiet --tag "$toolchain_image" --file - "$sysroot" >/dev/null <<DOCKERFILE
FROM $base_image
COPY bin /usr/local/rust/bin
COPY lib /usr/local/rust/lib
COPY libexec /usr/local/rust/libexec
DOCKERFILE
fi
printf '%s\n' "$toolchain_image"
