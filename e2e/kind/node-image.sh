#!/usr/bin/env bash
# CI machine only: kind itself and a kind node image, built here from pinned parts and Debian's
# packages, for a machine that reaches no image registry. kind's own `kind build node-image`
# cannot: it pulls its base image and fetches CoreDNS, kindnetd, the storage provisioner and more
# with `ctr content fetch` (kind v0.33.0, pkg/build/nodeimage/buildcontext.go and imageimporter.go).
#
#   e2e/kind/node-image.sh tools        builds kind and crictl; prints their directory
#   e2e/kind/node-image.sh image [1.37] builds the node image unless it exists; prints its name
#
# The node image has kindest/node's layout, from these parts:
# - Debian trixie, kind's base (.ci/debootstrap.sh), with the packages kind's
#   images/base/Dockerfile installs for the node to run (not those for storage tests or rootless
#   nodes), and Debian's CNI plugins;
# - kind's own files (entrypoint, systemd units, containerd and kubelet settings) from the
#   sigs.k8s.io/kind module download pinned by e2e/kind/go.mod, never copied into this repository;
# - containerd, runc, kubeadm, kubelet, kubectl, the control plane and etcd from e2e/build.sh (the
#   binaries make e2e-node runs), crictl from e2e/crictl;
# - in containerd's store, the images kubeadm runs, built from those binaries on scratch, under
#   the names kubeadm and kind's containerd settings ask for. Not kube-proxy, CoreDNS, kindnetd or
#   the storage provisioner: make e2e-kind's cluster turns off kube-proxy and kind's CNI
#   (tests/e2e_kind/kind_support.py), a CNI bridge of ours stands in, and CoreDNS never starts
#   (ImagePullBackOff; docs/e2e-kind.md).
#
# Cached by its inputs: the image's tag is a hash of this script, the wrapper modules and the
# binaries' directory, whose name is e2e/build.sh's key. E2E_CACHE: e2e/build.sh's.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
e2e=$(dirname "$here")
root=$(dirname "$e2e")
cache=$root/.cache/kind
say() { echo "node-image: $*" >&2; }
die() { say "$*"; exit 1; }
digest() { sha256sum | cut -c1-16; }

# kind and crictl, built as their releases are (static, stripped, no build paths).
tools() {
  local out
  # Keyed by this function and the pins alone: the node image's steps below do not change them.
  out=$cache/tools-$({ declare -f tools; cat "$here"/go.{mod,sum} "$e2e"/crictl/go.{mod,sum}; } | digest)
  if [[ ! -e $out/.complete ]]; then
    rm -rf "$cache"/tools-* && mkdir -p "$out"
    say "kind $(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/kind), crictl"
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/kind" sigs.k8s.io/kind)
    (cd "$e2e/crictl" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(go list -m -f '{{.Version}}' sigs.k8s.io/cri-tools)" \
      -o "$out/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
    touch "$out/.complete"
  fi
  echo "$out"
}

# What kind's base image installs to run a node (images/base/Dockerfile), and the CNI plugins.
packages=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,containernetworking-plugins
suite=trixie

# Debian's packages as the mirror has them on the day (not pinned: debootstrap takes the suite's
# current packages), imported once; prints the image's name.
rootfs_image() {
  local key tarball image
  key=$({ echo "$suite $packages"; cat "$root/.ci/debootstrap.sh"; } | digest)
  tarball=$cache/rootfs-$key.tar image=localhost/e2e-kind/rootfs:$key
  if ! podman image exists "$image"; then
    if [[ ! -s $tarball ]]; then
      rm -f "$cache"/rootfs-*.tar
      "$root/.ci/debootstrap.sh" "$suite" "$packages" "$tarball"
    fi
    podman import --quiet "$tarball" "$image" >/dev/null
  fi
  echo "$image"
}

# DIR, built as image NAME and saved as a docker-archive into $ctx/images, then removed.
archive() {
  local dir=$1 name=$2
  podman build --quiet -t "$name" "$dir" >/dev/null
  podman save --quiet --format docker-archive -o "$ctx/images/$(basename "${name%%:*}").tar" "$name"
  podman rmi "$name" >/dev/null
}

# An image of one static binary of $bin on scratch, as kubeadm's static Pods run it.
binary_image() {
  local name=$1 file=$2 dir
  dir=$(mktemp -d "$ctx/image.XXXXXX")
  cp "$bin/$file" "$dir/"
  printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\nENV PATH=/usr/local/bin\n' "$file" "$file" >"$dir/Containerfile"
  archive "$dir" "$name"
}

image() {
  local minor=${1:-1.37} kind_mod k8s key ref sandbox name
  # A kubelet built with the stand-in for iptables-wrappers needs makeIPTablesUtilChains: false,
  # which kind's kubelet configuration does not set (e2e/kube/1.38/iptables-wrappers/README.md);
  # the same test as e2e/node.sh's, which sets it.
  if grep -q '^[[:space:]]*sigs\.k8s\.io/iptables-wrappers => \./' "$e2e/kube/$minor/go.mod" 2>/dev/null; then
    die "Kubernetes $minor is built with a stand-in module, which kind's kubelet would call"
  fi
  bin=$("$e2e/build.sh" "$minor")
  tools=$(tools)
  kind_mod=$(cd "$here" && go mod download -json sigs.k8s.io/kind | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $kind_mod/images/base/files ]] || die "no images/base/files in $kind_mod"
  k8s=$("$bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p')
  key=$(cat "${BASH_SOURCE[0]}" "$here"/go.{mod,sum} "$e2e"/crictl/go.{mod,sum} "$e2e"/pause/* | { cat; echo "${bin##*/}"; } | digest)
  ref=localhost/e2e-kind/node:$k8s-$key
  podman image exists "$ref" && { echo "$ref"; return; }
  # One image per minor: what an older pin built goes.
  podman images --filter "reference=localhost/e2e-kind/node:${k8s%.*}.*" --quiet | xargs -r podman rmi >/dev/null

  rootfs=$(rootfs_image)
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  # The modes kind's Dockerfile gives its files: scripts and directories 0755, the rest 0644
  # (the module cache holds them read-only).
  cp -r "$kind_mod/images/base/files" "$ctx/files"
  chmod -R u+w "$ctx/files"
  find "$ctx/files" -type d -exec chmod 0755 {} + && find "$ctx/files" -type f -exec chmod 0644 {} +
  chmod 0755 "$ctx"/files/usr/local/bin/* "$ctx"/files/kind/bin/*
  mkdir -p "$ctx"/bin/{usr/local/bin,usr/local/sbin,usr/bin} "$ctx/images"
  cp "$bin"/{containerd,containerd-shim-runc-v2,ctr} "$tools/crictl" "$ctx/bin/usr/local/bin/"
  cp "$bin/runc" "$ctx/bin/usr/local/sbin/"
  cp "$bin"/{kubeadm,kubelet,kubectl} "$ctx/bin/usr/bin/"

  # The images kubeadm lists for this version that these binaries make, and the sandbox image
  # kind's containerd config names; each is imported under our name and tagged with theirs.
  say "images for $k8s"
  local listed name ours pause_dir tags=()
  listed=$("$bin/kubeadm" config images list --kubernetes-version "$k8s")
  pause_dir=$(mktemp -d "$ctx/image.XXXXXX")
  cp "$e2e/pause/Dockerfile" "$bin/pause" "$pause_dir/"
  archive "$pause_dir" "localhost/e2e-kind/pause:$k8s"
  sandbox=$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$ctx/files/etc/containerd/config.toml")
  [[ -n $sandbox ]] || die "no sandbox_image in kind's containerd config"
  for name in $listed "$sandbox"; do
    ours=localhost/e2e-kind/$(basename "${name%%:*}"):$k8s
    case $name in
      */kube-apiserver:* | */kube-controller-manager:* | */kube-scheduler:* | */etcd:*)
        binary_image "$ours" "$(basename "${name%%:*}")" ;;
      */pause:*) ;;
      *) say "not built: $name"; continue ;;
    esac
    tags+=("$ours=$name")
  done

  # In place of kindnetd: a bridge with no gateway, no masquerade and no route, the same range on
  # every node, so nothing a Pod sends leaves its node (job.yaml needs only loopback, and its
  # probes are exec probes, which need no route from the kubelet to the Pod). Every pull
  # (CoreDNS's) goes to loopback and fails at once: no registry is reachable from here.
  mkdir -p "$ctx/files/etc/cni/net.d" "$ctx/files/etc/containerd/certs.d/_default"
  cat >"$ctx/files/etc/cni/net.d/10-e2e-kind.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "e2e-kind", "plugins": [
  {"type": "bridge", "bridge": "e2ekind0", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]]}},
  {"type": "loopback"}]}
EOF
  printf 'server = "http://127.0.0.1:1"\n' >"$ctx/files/etc/containerd/certs.d/_default/hosts.toml"

  say "building $ref"
  podman build --quiet -t "$ref" --volume "$ctx/images:/kind-images:ro" -f - "$ctx" >/dev/null <<EOF
FROM $rootfs
COPY files/ /
COPY bin/ /
# kind's images/base/Dockerfile: no services but those it enables, no kmsg in the journal, systemd
# as init, the runtime spec with its product-files hook, the manifests directory. Then this
# image's: Debian's CNI plugins where containerd looks for them; and containerd's
# restrict_oom_score_adj, which kind's entrypoint sets for rootless nodes: root on CI's machine
# lacks CAP_SYS_RESOURCE, so runc cannot lower an OOM score (without it: "runc init: failed to
# update /proc/self/oom_score_adj: Permission denied", and no Pod starts). And the registry
# settings' directory, named: containerd 2 reads it by default, 1.7 (1.28's) only when told.
RUN find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo ReadKMsg=no >>/etc/systemd/journald.conf \\
 && ln -s /usr/lib/systemd/systemd /sbin/init \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests /opt/cni/bin \\
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
      | jq 'del(.process.rlimits)' >/etc/containerd/cri-base.json \\
 && ln -s /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/portmap /usr/lib/cni/ptp /opt/cni/bin/ \\
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \\
 && printf '\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n' \\
      >>/etc/containerd/config.toml \\
 && echo $k8s >/kind/version
# kind's node-image build: containerd's store holds the images, pinned, not unpacked.
RUN (containerd >/tmp/containerd.log 2>&1 &) \\
 && i=0 && until ctr version >/dev/null 2>&1; do \\
      i=\$((i + 1)) && [ \$i -le 150 ] || { cat /tmp/containerd.log; exit 1; }; sleep 0.2; \\
    done \\
 && for archive in /kind-images/*.tar; do \\
      ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - <"\$archive" >/dev/null || exit 1; \\
    done \\
 && for pair in ${tags[*]}; do ctr --namespace=k8s.io images tag --force "\${pair%%=*}" "\${pair#*=}" >/dev/null || exit 1; done \\
 && ctr --namespace=k8s.io images list -q | grep '^localhost/e2e-kind/' | xargs ctr --namespace=k8s.io images rm >/dev/null \\
 && pkill containerd && while pgrep containerd >/dev/null; do sleep 0.2; done \\
 && rm -rf /tmp/* /run/containerd /run/nri
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
  echo "$ref"
}

case ${1:-} in
  tools) tools ;;
  image) image "${2:-1.37}" ;;
  *) sed -n 's/^#   e2e/e2e/p' "$0" >&2; exit 2 ;;
esac
