#!/usr/bin/env bash
# CI machine only. Installs what the image tests need on a Debian machine without a Docker
# engine: podman (with runc, which works on hybrid cgroup hosts where crun does not), its
# network stack, debootstrap for the offline builder image, wrk for the bench's smoke test, and
# a real registry (docker-registry) with skopeo for the push test, qemu-user-static for the
# arm64 tests, and for make e2e-node the CNI plugins and libseccomp (its runc is built with seccomp);
# and for make e2e-kind, /lib/modules if the machine has none. Idempotent: installs only what is missing.
# Root only; used by .ci/run. The docker CLI is not installed here: the tests use the one the
# machine has, against podman's Docker-compatible API.
set -euo pipefail

packages=(podman runc conmon catatonit netavark aardvark-dns iptables debootstrap tar curl wrk docker-registry skopeo
  containernetworking-plugins libseccomp-dev pkg-config)

if [[ $(id -u) != 0 ]]; then
  echo "install-container-tools: must run as root (apt-get)" >&2
  exit 1
fi

# kind mounts the host's /lib/modules into every node (kind v0.33.0's
# pkg/cluster/internal/providers/podman/provision.go), and podman refuses a missing source. A
# machine whose kernel has every module built in may have none (one here had none on 2026-12-06):
# an empty directory stands in for the modules it does not have.
[[ -e /lib/modules ]] || { mkdir /lib/modules && echo "install-container-tools: created an empty /lib/modules for kind"; }

missing=()
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ $status == "install ok installed" ]] || missing+=("$package")
done

# qemu-user for make check's arm64 tier (make test-arm64) and the arm64 image test, which call it
# explicitly. Without recommends: binfmt-support would register it with the kernel, for the whole
# machine.
no_recommends=(qemu-user-static)
missing_nr=()
for package in "${no_recommends[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ $status == "install ok installed" ]] || missing_nr+=("$package")
done

if ((${#missing[@]} + ${#missing_nr[@]} == 0)); then
  echo "install-container-tools: all present (${packages[*]} ${no_recommends[*]})"
  exit 0
fi

echo "install-container-tools: installing ${missing[*]} ${missing_nr[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
((${#missing[@]} == 0)) || apt-get install -y -qq "${missing[@]}" >/dev/null
((${#missing_nr[@]} == 0)) || apt-get install -y -qq --no-install-recommends "${missing_nr[@]}" >/dev/null
echo "install-container-tools: done"
