#!/usr/bin/env bash
# Builds make e2e-node's programs for one Kubernetes release from upstream's Go modules, pinned
# by the wrapper modules beside this script (their go.sum is the supply-chain record; 1.38's
# one stand-in module is a directory of the wrapper, e2e/kube/1.38/iptables-wrappers), and
# prints the directory that holds them. A directory is keyed by what it was built from, so a
# warm run builds nothing.
#
#   e2e/build.sh RELEASE      a release of e2e/releases: 1.37, 1.35, 1.28, 1.34.0, ...
#                             E2E_CACHE: where the directories go (.cache/e2e)
set -euo pipefail

e2e=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "e2e/build.sh: $*" >&2; exit 1; }

minor=${1:-}
# e2e/releases: the containerd and etcd lines each release runs with.
row=$(awk -v r="$minor" '$1 == r { print; exit }' "$e2e/releases")
read -r _ containerd etcd _ <<<"$row"
[[ -n $containerd ]] || { echo "usage: e2e/build.sh RELEASE (one of: $(awk '/^[0-9]/ && !seen[$1]++ { printf "%s%s", sep, $1; sep = ", " }' "$e2e/releases"))" >&2; exit 2; }
modules=("$e2e/kube/$minor" "$e2e/containerd/$containerd" "$e2e/etcd/$etcd" "$e2e/runc")
command -v go >/dev/null || die "needs Go 1.26 or newer (https://go.dev/doc/install)"

# With the code of a stand-in module under the wrapper (e2e/kube/1.38/iptables-wrappers).
key=$({ cat "${BASH_SOURCE[0]}" "$e2e"/pause/* "${modules[@]/%//go.mod}" "${modules[@]/%//go.sum}"
  find "$e2e/kube/$minor" -mindepth 2 -type f \( -name '*.go' -o -name go.mod \) -print0 | sort -z | xargs -0r cat
} | sha256sum | cut -c1-16)
out=${E2E_CACHE:-$(dirname "$e2e")/.cache/e2e}/k8s-$minor-$key
if [[ -e $out/.complete ]]; then echo "$out"; exit 0; fi
# One directory per minor: what an older pin built goes.
rm -rf "${out%-*}"-* && mkdir -p "$out"

# Static and stripped (-s -w), like upstream's release binaries (hack/lib/golang.sh), and
# without build paths.
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
# A wrapper whose release needs a newer Go than this one (1.38: go 1.27.0, toolchain go1.27.3,
# e2e/kube/pin.sh) makes the go command fetch that Go from the module proxy, as Go does by
# default; a machine set to GOTOOLCHAIN=local would refuse to build it. The other modules' go
# lines are 1.26 or older.
export GOTOOLCHAIN=auto
# MODULE_DIR MODULE FIELD: a field of a required module, as `go list -m` reads it from go.mod.
version() { (cd "$1" && go list -m -f "{{.$3}}" "$2"); }

# The version stamps upstream's hack/lib/version.sh sets, so that the node and `kubectl
# version` report the release, not v0.0.0. The module proxy does not say which commit a tag
# is, so gitCommit stays empty; buildDate is the tag's time, which keeps the build reproducible.
k8s=$(version "$e2e/kube/$minor" k8s.io/kubernetes Version)
[[ $k8s =~ ^v1\.([0-9]+)\. ]] || die "cannot read k8s.io/kubernetes's version in e2e/kube/$minor/go.mod"
stamps=(gitVersion="$k8s" gitMajor=1 gitMinor="${BASH_REMATCH[1]}" gitTreeState=clean
  buildDate="$(version "$e2e/kube/$minor" k8s.io/kubernetes 'Time.UTC.Format "2006-01-02T15:04:05Z"')")
ldflags=(-s -w)
for stamp in "${stamps[@]}"; do
  ldflags+=("-X k8s.io/client-go/pkg/version.$stamp" "-X k8s.io/component-base/version.$stamp")
done
echo "e2e/build.sh: Kubernetes $k8s (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl, kubeadm)" >&2
(cd "$e2e/kube/$minor" && go build -ldflags "${ldflags[*]}" -o "$out/" tool)

# Without the snapshotters that need cgo or kernel modules this tier does not use (BUILDING.md).
# containerd 2's module path ends in /v2; 1.7's does not.
ctrd_module=github.com/containerd/containerd
[[ $containerd == 1.* ]] || ctrd_module+=/v2
ctrd=$(version "$e2e/containerd/$containerd" "$ctrd_module" Version)
echo "e2e/build.sh: containerd $ctrd (containerd, containerd-shim-runc-v2, ctr)" >&2
(cd "$e2e/containerd/$containerd" && go build -tags "no_btrfs no_devmapper no_zfs urfave_cli_no_docs" \
  -ldflags "-s -w -X $ctrd_module/version.Version=$ctrd -X $ctrd_module/version.Package=$ctrd_module" \
  -o "$out/" tool)

echo "e2e/build.sh: etcd $(version "$e2e/etcd/$etcd" go.etcd.io/etcd/server/v3 Version)" >&2
(cd "$e2e/etcd/$etcd" && go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)

# Debian bookworm's runc 1.1.5 cannot start containerd 2.4's sandboxes here ("can't get final
# child's PID from pipe: EOF"). runc needs cgo, and libseccomp for the seccomp profiles that
# job.yaml asks for (RuntimeDefault).
echo "e2e/build.sh: runc $(version "$e2e/runc" github.com/opencontainers/runc Version)" >&2
(cd "$e2e/runc" && CGO_ENABLED=1 go build -tags "seccomp urfave_cli_no_docs" -ldflags "-s -w" -o "$out/runc" github.com/opencontainers/runc)

(cd "$e2e/pause" && go build -ldflags "-s -w" -o "$out/pause" .)

touch "$out/.complete"
echo "$out"
