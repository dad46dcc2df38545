#!/usr/bin/env bash
# Prints the Rust target that the images' binaries are built for on this machine, and makes sure
# the toolchain has it:
#
#   scripts/static-target.sh    # x86_64-unknown-linux-musl on amd64, aarch64-… on arm64
#
# musl rather than glibc: a musl binary is static by default and carries a C library of tens of
# KB instead of glibc's 750 KB (the app: 0.99 MiB against 1.62 MiB), and it resolves names from
# /etc/hosts and DNS itself, where a static glibc needs NSS modules it cannot load. The
# Dockerfile builds the same triple for this machine's TARGETARCH (and the other one when it
# cross-compiles); scripts/bench.py measures what it builds.
set -euo pipefail

triple="$(uname -m)-unknown-linux-musl"
sysroot="$(rustc --print sysroot)"
installed() { [[ -d $sysroot/lib/rustlib/$triple/lib ]]; }
if ! installed; then
  command -v rustup >/dev/null \
    || { printf 'static-target: the toolchain in %s lacks %s, and rustup is not here to add it\n' \
           "$sysroot" "$triple" >&2; exit 1; }
  printf 'static-target: rustup target add %s\n' "$triple" >&2
  rustup target add "$triple" >&2
  # A rustc that rustup does not manage would still lack it.
  installed || { printf 'static-target: rustup added %s, but not to the toolchain in %s\n' \
                   "$triple" "$sysroot" >&2; exit 1; }
fi
printf '%s\n' "$triple"
