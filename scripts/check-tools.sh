#!/usr/bin/env bash
# What `make check` needs, checked before anything runs: one message names everything missing,
# then exit 3. Tools the image and bench tests use are listed as skipped when absent, and are
# required with CI=true, where those tests fail instead of skipping.
#
#   scripts/check-tools.sh      # what `make check` runs first
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
skipped=()
# CI=true turns a skip into a failure in the tests, so here it turns "skipped" into "missing".
optional() { if [[ ${CI:-} == true ]]; then missing+=("$1"); else skipped+=("$1"); fi; }
have() { command -v "$1" >/dev/null 2>&1; }
# At least MIN: `at_least 1.95 1.96.0`.
at_least() { [[ -n $2 && $(printf '%s\n' "$1" "$2" | sort -V | head -n1) == "$1" ]]; }

[[ $(uname -s) == Linux ]] || missing+=("Linux: the tests read /proc")
((BASH_VERSINFO[0] >= 5)) || missing+=("bash 5 or newer (found $BASH_VERSION; macOS: brew install bash)")
have git || missing+=("git: the tests read the commit (apt-get install git)")

rust_version="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$repo/Cargo.toml")"
if ! have cargo || ! have rustc; then
  missing+=("Rust $rust_version or newer with cargo: https://rustup.rs")
else
  found="$(rustc --version | cut -d' ' -f2)"
  at_least "$rust_version" "$found" || missing+=("Rust $rust_version or newer (found $found): rustup update")
  # test-arm64 builds for aarch64 musl, the bench and the SBOM test for this machine's musl
  # triple; rustup adds a missing target (a download), nothing else can.
  sysroot="$(rustc --print sysroot)"
  for triple in "$(uname -m)-unknown-linux-musl" aarch64-unknown-linux-musl; do
    [[ -d $sysroot/lib/rustlib/$triple/lib ]] || have rustup \
      || missing+=("the Rust target $triple, or rustup to add it")
  done
fi

if ! have python3; then
  missing+=("Python 3.11 or newer with venv (Debian: apt-get install python3-venv)")
elif ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  missing+=("Python 3.11 or newer with the venv module (found $(python3 --version 2>&1); Debian: apt-get install python3-venv)")
fi

# The timeline, kind-demo, pod and flood tests read manifests offline (`kubectl patch --local`).
found="$(kubectl version --client -o yaml 2>/dev/null | sed -n 's/^ *gitVersion: v//p')"
at_least 1.28.0 "$found" || missing+=("kubectl v1.28.0 or newer${found:+ (found v$found)}: https://kubernetes.io/docs/tasks/tools/")

# make test-arm64 runs the arm64 tests under qemu-user, named explicitly (never binfmt).
if [[ $(uname -m) != aarch64 ]] && ! have qemu-aarch64-static; then
  missing+=("qemu-aarch64-static for make test-arm64 (Debian, Ubuntu: apt-get install --no-install-recommends qemu-user-static)")
fi

# Skipped without these, with the reason shown; required with CI=true.
if ! have podman; then optional "podman, rootful: the image, pod and flood tests"
elif [[ $(id -u) != 0 ]]; then optional "root, for rootful podman: the image, pod and flood tests"
fi
# make pod's script, which the pod tests run wherever podman does.
if ! have curl; then
  if have podman; then missing+=("curl, for make pod's script (apt-get install curl)")
  else optional "curl, for make pod's script (apt-get install curl)"; fi
fi
have docker || optional "the docker CLI: the docker half of the image tests"
have wrk || optional "wrk: the bench's smoke test (apt-get install wrk)"
have docker-registry || optional "docker-registry: the push test (apt-get install docker-registry)"
have skopeo || optional "skopeo: the push test (apt-get install skopeo)"

if ((${#skipped[@]})); then
  printf 'check-tools: these tests will be skipped, for want of:\n' >&2
  printf '  - %s\n' "${skipped[@]}" >&2
fi
if ((${#missing[@]})); then
  printf 'check-tools: make check needs:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 3
fi
