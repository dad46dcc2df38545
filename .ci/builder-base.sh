#!/usr/bin/env bash
# CI's machine only: an offline stand-in for the Dockerfile's builder image (the official
# docker.io/library/rust:*-slim-bookworm), for a machine that reaches Debian's packages and
# crates.io but no container registry. `make images` never picks it by itself; CI names it:
#
#   eval "$(.ci/builder-base.sh)"   # exports RUST_IMAGE=<this image> and BUILD_OPTS=<-v mounts>
#
# The image is Debian bookworm minbase + gcc, libc6-dev, ca-certificates, and a `rustup` that only
# checks (.ci/rustup-standin); podman's `build --volume` bind-mounts the host's toolchain at
# /usr/local/rust. That toolchain needs both musl targets of the images; they are added with
# rustup here if missing (a download from static.rust-lang.org, once).
#
# The root file system (.ci/debootstrap.sh) is cached as a tar under .cache/builder-base/, so only
# the first run downloads anything. Needs root, debootstrap, podman.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$repo/.cache/builder-base"
suite=bookworm
packages=gcc,libc6-dev,ca-certificates
rootfs_image="localhost/k8s-native-sidecar-job/builder-rootfs:$suite"
base_image="localhost/k8s-native-sidecar-job/builder-base:$suite"

log() { printf 'builder-base: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap and rootful podman)"
command -v podman >/dev/null || die "podman not found: run .ci/install-container-tools.sh"

# The same variables as the official rust images, so the Dockerfile cannot tell them apart.
# /usr/local/rust is where the host's toolchain is bind-mounted.
changes=(
  --change 'ENV RUSTUP_HOME=/usr/local/rustup'
  --change 'ENV CARGO_HOME=/usr/local/cargo'
  --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'CMD ["bash"]'
)

# The mounted toolchain must already hold the images' targets.
sysroot="$(rustc --print sysroot)"
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  [[ -d $sysroot/lib/rustlib/$triple/lib ]] || rustup target add "$triple" >&2
done

if ! podman image exists "$rootfs_image"; then
  tarball="$cache/$suite-minbase.tar"
  [[ -s $tarball ]] || "$repo/.ci/debootstrap.sh" "$suite" "$packages" "$tarball" /usr/local/cargo /usr/local/rust
  log "importing $tarball as $rootfs_image"
  podman import --quiet "${changes[@]}" "$tarball" "$rootfs_image" >/dev/null
fi
# A layer on top, rebuilt from podman's cache unless the stand-in changed.
podman build --quiet --tag "$base_image" --file - "$repo/.ci" >/dev/null <<DOCKERFILE
FROM $rootfs_image
COPY rustup-standin /usr/local/cargo/bin/rustup
DOCKERFILE

# The CA bundle too: `cargo install` and the registry fetch go to crates.io over TLS.
printf 'export RUST_IMAGE=%q\n' "$base_image"
printf 'export BUILD_OPTS=%q\n' "--volume $sysroot:/usr/local/rust:ro --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
