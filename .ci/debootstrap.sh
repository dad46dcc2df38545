#!/usr/bin/env bash
# CI machine only: a Debian root file system from Debian's own packages, for images this machine
# cannot pull (no registry here), written as a tar that `podman import` takes:
#
#   .ci/debootstrap.sh SUITE PACKAGES TARBALL [DIR...]   PACKAGES: comma-separated, or ""
#
# minbase plus PACKAGES, without the downloaded .debs and package lists; each DIR is created
# inside (an absolute path in the image). Needs root and debootstrap. DEBIAN_MIRROR picks the
# mirror (deb.debian.org).
set -euo pipefail

log() { printf 'debootstrap: %s\n' "$*" >&2; }
(($# >= 3)) || { log "usage: $0 SUITE PACKAGES TARBALL [DIR...]"; exit 2; }
suite=$1 packages=$2 tarball=$3
shift 3
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

[[ $(id -u) == 0 ]] || { log "needs root"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap not found: run .ci/install-container-tools.sh"; exit 1; }
mkdir -p "$(dirname "$tarball")"
rootfs="$(mktemp -d "$(dirname "$tarball")/rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
log "$suite (${packages:-minbase}) from $mirror"
debootstrap --variant=minbase ${packages:+--include="$packages"} "$suite" "$rootfs" "$mirror" >&2
# Downloaded .debs and package lists only make the image bigger.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
for dir in "$@"; do mkdir -p "$rootfs/$dir"; done
tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
