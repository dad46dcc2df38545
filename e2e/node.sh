#!/usr/bin/env bash
# One node of real parts, as kubernetes' hack/local-up-cluster.sh runs one: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd and the kubelet, built from
# upstream's Go modules (e2e/build.sh), as root processes on 127.0.0.1. Everything they write
# goes under one directory; what they create outside it (a bridge, mounts, cgroups, the
# kubelet's sysctls and iptables chains) is recorded there and undone by `down`.
#
#   e2e/node.sh check              root, Linux and the tools, named in one line; starts nothing
#   e2e/node.sh up DIR             builds what is missing, starts the node in DIR (empty or new),
#                                  loads the pause image and job.yaml's images, waits for Ready;
#                                  prints the environment to reach it (KUBECONFIG, ...)
#   e2e/node.sh down DIR           stops every process by PID, unmounts, undoes, removes DIR;
#                                  refuses a DIR that `up` did not make
#   e2e/node.sh logs DIR           the last lines of each component's log
#   e2e/node.sh stop-kubelet DIR   stops the kubelet alone (its containers keep running)
#   e2e/node.sh start-kubelet DIR  starts it again, as `up` did
#
# K8S: a release of e2e/releases, 1.37 by default. FEATURE_GATES: gates every component gets
# (NAME=BOOL,...), as the article's cluster file gave SidecarContainers=true to 1.28's.
# CONTAINER_TOOL: the engine make images used (docker or podman).
# Exit status: 0 done, 1 failed (after `up` fails, run `down`), 2 usage, 3 not runnable here.
set -euo pipefail

e2e=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$e2e/.." && pwd)
minor=${K8S:-1.37}
# The minor's number, for what changed between releases: 34 for 1.34.0.
number=${minor#1.} number=${number%%.*}
gates=${FEATURE_GATES:-}
# Its containerd line, from its row in e2e/releases (empty if it has none).
read -r _ containerd _ <<<"$(awk -v r="$minor" '$1 == r { print; exit }' "$e2e/releases")"
cluster='e2e-node'
# The node's name is its address, as in hack/local-up-cluster.sh: the kubelet then reports
# 127.0.0.1 as its InternalIP (a --node-ip on loopback is refused), which the API server uses.
node=127.0.0.1
bridge=e2enode0
cgroup_root=/e2e-node
# Written by `up` into its directory, first: the proof `down` asks for before it kills or removes.
marker=.e2e-node
say() { echo "e2e-node: $*" >&2; }
die() { say "$*"; exit 1; }

check() {
  local missing=()
  [[ $(uname -s) == Linux ]] || { say "needs Linux (the kubelet and containerd run as root processes here)"; exit 3; }
  ((EUID == 0)) || { say "needs root: sudo make e2e-node (it starts containerd and the kubelet)"; exit 3; }
  [[ -n $containerd ]] ||
    { say "K8S must be a release of e2e/releases ($(awk '/^[0-9]/ && !seen[$1]++ { printf "%s%s", sep, $1; sep = ", " }' "$e2e/releases")), not '$minor'"; exit 2; }
  command -v go >/dev/null || missing+=("Go 1.26+ (https://go.dev/doc/install)")
  command -v cc >/dev/null || missing+=("a C compiler, for runc (apt-get install gcc)")
  pkg-config --exists libseccomp 2>/dev/null || missing+=("libseccomp, for runc (apt-get install libseccomp-dev pkg-config)")
  [[ -x /usr/lib/cni/bridge || -x /opt/cni/bin/bridge ]] || missing+=("the CNI plugins (apt-get install containernetworking-plugins)")
  for tool in ip iptables-save findmnt curl; do
    command -v $tool >/dev/null || missing+=("$tool")
  done
  # shellcheck source=SCRIPTDIR/../scripts/lib/engine.sh
  source "$root/scripts/lib/engine.sh"
  find_engine
  [[ -n $engine ]] || missing+=("Docker or podman with a running engine, for make images")
  local list
  printf -v list '%s; ' "${missing[@]}"
  ((${#missing[@]} == 0)) || { say "needs: ${list%; }"; exit 3; }
}

# --- up -----------------------------------------------------------------------------------

# Starts NAME in the background with its log and PID file under $dir.
start() {
  local name=$1; shift
  say "starting $name"
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

# Polls COMMAND until it succeeds, for at most SECONDS, or fails naming WHAT; at once if WHAT
# is a component that has exited.
await() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [[ ! -e $dir/pids/$what ]] || alive "$(cat "$dir/pids/$what")" || die "$what exited: $(tail -n 1 "$dir/logs/$what.log")"
    ((SECONDS < deadline)) || die "$what: not ready after ${seconds}s"
    sleep 0.2  # the polling interval
  done
  say "$what: ready"
}

# Remembers what undoes a change outside $dir: `down` runs these lines, last first.
undo() { printf '%s\n' "$*" >>"$dir/undo"; }

# Creates PATH if it is missing, and has `down` remove it again.
own_dir() { [[ -e $1 ]] || { mkdir -p "$1" && undo rm -rf "$1"; }; }

certs() {
  local kubeconfig
  # kubeadm writes the certificates and kubeconfigs it would write for a control-plane node,
  # into this run's directory: a CA, serving certificates for 127.0.0.1, client certificates
  # per component (the kubelet's as system:node:$node), the service-account key pair, etcd's.
  # kubeadm refuses a loopback advertiseAddress; everything is reached at controlPlaneEndpoint,
  # 127.0.0.1, so a documentation address (RFC 5737) stands in, only ever in the certificates.
  # v1beta4 from 1.31 on; the fields used here are the same in v1beta3.
  local api=v1beta4
  ((number >= 31)) || api=v1beta3
  cat >"$dir/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/$api
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 192.0.2.1, bindPort: 6443}
nodeRegistration: {name: $node}
---
apiVersion: kubeadm.k8s.io/$api
kind: ClusterConfiguration
clusterName: $cluster
kubernetesVersion: $("$bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p')
certificatesDir: $dir/pki
controlPlaneEndpoint: 127.0.0.1:6443
apiServer: {certSANs: [127.0.0.1, localhost]}
EOF
  "$bin/kubeadm" init phase certs all --config "$dir/kubeadm.yaml" >"$dir/logs/kubeadm.log" 2>&1
  "$bin/kubeadm" init phase kubeconfig all --config "$dir/kubeadm.yaml" --kubeconfig-dir "$dir/kubeconfig" >>"$dir/logs/kubeadm.log" 2>&1
  # kubeadm points the controller manager's and the scheduler's at the advertise address.
  for kubeconfig in "$dir"/kubeconfig/*.conf; do
    "$bin/kubectl" config set-cluster "$cluster" --server https://127.0.0.1:6443 --kubeconfig "$kubeconfig" >/dev/null
  done
  ! grep -l 192.0.2.1 "$dir"/kubeconfig/*.conf || die "a kubeconfig still names 192.0.2.1"
}

control_plane() {
  local pki=$dir/pki kc=$dir/kubeconfig admin
  # The same feature gates for every component, if any.
  local gate_flags=()
  [[ -z $gates ]] || gate_flags=(--feature-gates "$gates")
  start etcd "$bin/etcd" --name "$cluster" --data-dir "$dir/etcd" \
    --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
    --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
    --initial-cluster "$cluster=https://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --client-cert-auth --trusted-ca-file "$pki/etcd/ca.crt" --cert-file "$pki/etcd/server.crt" --key-file "$pki/etcd/server.key" \
    --peer-client-cert-auth --peer-trusted-ca-file "$pki/etcd/ca.crt" --peer-cert-file "$pki/etcd/peer.crt" --peer-key-file "$pki/etcd/peer.key"
  await etcd 60 curl -sf http://127.0.0.1:2381/health

  # No anonymous requests and no AlwaysAllow: every client shows a certificate, and Node,RBAC
  # decide. The kubelet is reached at its InternalIP, 127.0.0.1. A loopback advertise address
  # cannot back the kubernetes Service's endpoints, which nothing here uses, so none are kept.
  start kube-apiserver "$bin/kube-apiserver" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port 6443 \
    --anonymous-auth=false --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$pki/etcd/ca.crt" \
    --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP --endpoint-reconciler-type none \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --profiling=false "${gate_flags[@]}"
  # kubeadm writes super-admin.conf (group system:masters) from 1.29 on; before, admin.conf is that.
  admin=$kc/super-admin.conf
  [[ -e $admin ]] || admin=$kc/admin.conf
  await kube-apiserver 120 "$bin/kubectl" --kubeconfig "$admin" get --raw /readyz
  # The bindings kubeadm's init and hack/local-up-cluster.sh make: admin.conf's group is
  # cluster-admin, and the API server's client certificate may use the kubelet's API (logs, exec).
  "$bin/kubectl" --kubeconfig "$admin" create clusterrolebinding kubeadm:cluster-admins \
    --clusterrole cluster-admin --group kubeadm:cluster-admins >/dev/null
  "$bin/kubectl" --kubeconfig "$admin" create clusterrolebinding kube-apiserver-kubelet-api-admin \
    --clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null

  start kube-controller-manager "$bin/kube-controller-manager" --bind-address 127.0.0.1 --leader-elect=false \
    --kubeconfig "$kc/controller-manager.conf" --authentication-kubeconfig "$kc/controller-manager.conf" \
    --authorization-kubeconfig "$kc/controller-manager.conf" --use-service-account-credentials \
    --client-ca-file "$pki/ca.crt" --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" "${gate_flags[@]}"
  start kube-scheduler "$bin/kube-scheduler" --bind-address 127.0.0.1 --leader-elect=false \
    --kubeconfig "$kc/scheduler.conf" --authentication-kubeconfig "$kc/scheduler.conf" --authorization-kubeconfig "$kc/scheduler.conf" \
    "${gate_flags[@]}"
  await kube-controller-manager 60 curl -sfk https://127.0.0.1:10257/healthz
  await kube-scheduler 60 curl -sfk https://127.0.0.1:10259/healthz
}

containerd_up() {
  local cni_bin=/opt/cni/bin
  # Debian and Ubuntu's containernetworking-plugins install there; upstream's archive here.
  [[ -x $cni_bin/bridge ]] || cni_bin=/usr/lib/cni
  mkdir -p "$dir/cni/net.d"
  # A bridge of this run's own. It holds the range's first address (isGateway), so the kubelet
  # reaches the Pods' IPs, as httpGet and tcpSocket probes need (docs/adapting.md's example); the
  # Pods get no default route and no masquerade, so nothing a Pod sends can leave the machine.
  cat >"$dir/cni/net.d/10-e2e-node.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "e2e-node", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "isDefaultGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam", "ranges": [[{"subnet": "10.244.0.0/24"}]]}},
  {"type": "loopback"}]}
EOF
  undo ip link delete "$bridge"
  # The shims' sockets and the CNI plugins' cache have fixed places (/run/containerd/s,
  # /var/lib/cni); the rest is configured into $dir.
  own_dir /run/containerd
  own_dir /var/lib/cni
  # A root without CAP_SYS_RESOURCE (in a container; this repository's CI machine) cannot lower
  # an OOM score, which the kubelet asks for its Pods' sandboxes (-998): containerd then keeps
  # scores at or above its own instead, as kind does for rootless nodes.
  local restrict_oom=false
  (((0x$(sed -n 's/^CapEff:\t//p' /proc/self/status) >> 24) & 1)) || restrict_oom=true  # bit 24: CAP_SYS_RESOURCE
  if [[ $containerd == 1.* ]]; then
    containerd_1_config "$cni_bin" "$restrict_oom" >"$dir/containerd/config.toml"
  else
    containerd_2_config "$cni_bin" "$restrict_oom" >"$dir/containerd/config.toml"
  fi
  # containerd finds its shim on PATH.
  # Trace: the tests read the order of its CRI calls from this log (ExecSync returns at trace).
  start containerd env PATH="$bin:$PATH" "$bin/containerd" --config "$dir/containerd/config.toml" --log-level trace
  await containerd 60 "$bin/ctr" --address "$dir/containerd/containerd.sock" version
}

# What both configurations say first: where containerd keeps its files, its socket, no NRI.
containerd_config_head() {
  cat <<EOF
version = $1
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
EOF
}

# containerd 2's configuration (version 3), for CNI_BIN and RESTRICT_OOM.
containerd_2_config() {
  containerd_config_head 3
  cat <<EOF
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$pause_image'
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = $2
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = false
      BinaryName = "$bin/runc"
      Root = "$dir/containerd/runc"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['$1']
    conf_dir = '$dir/cni/net.d'
EOF
}

# The same for containerd 1.7 (version 2: one CRI plugin, older names).
containerd_1_config() {
  containerd_config_head 2
  cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = $2
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$bin/runc"
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$1"
    conf_dir = "$dir/cni/net.d"
EOF
}

# The images, as `kind load image-archive` puts them on a kind node: the single-platform archive
# scripts/kind-demo.sh writes, imported with the command kind runs on the node
# (kind v0.33.0, pkg/cluster/nodeutils/util.go: LoadImageArchive).
load_images() {
  local archive
  # K8S picks kind's cluster file there, which this node has none of.
  env -u K8S PATH="$bin:$PATH" KUBECONFIG="$dir/kubeconfig/admin.conf" KUBE_CONTEXT="$context" \
    "$root/scripts/kind-demo.sh" archives "$dir/images" "$pause_image"
  for archive in "$dir/images"/*.tar; do
    say "importing $(basename "$archive")"
    "$bin/ctr" --address "$dir/containerd/containerd.sock" --namespace=k8s.io images import \
      --all-platforms --digests --snapshotter=overlayfs - <"$archive" >>"$dir/logs/ctr.log"
  done
  # Pinned as the CRI pins its sandbox image, so the kubelet's image GC never removes it.
  "$bin/ctr" --address "$dir/containerd/containerd.sock" --namespace=k8s.io images label "$pause_image" io.cri-containerd.pinned=pinned >/dev/null
}

pause_image_build() {
  local context
  context=$(mktemp -d)
  cp "$e2e/pause/Dockerfile" "$bin/pause" "$context/"
  "$engine" build --quiet -t "$pause_image" "$context" >/dev/null
  rm -rf "$context"
}

kubelet_up() {
  local name value family hierarchy
  # The kubelet sets these on the host (setupKernelTunables); they are put back.
  local restore=()
  for name in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    value=$(cat "/proc/sys/$name")
    undo "echo $value >/proc/sys/$name"
    restore+=("${name//\//.}=$value")
  done
  # `down` puts them back; a run killed before it leaves them changed.
  say "the kubelet changes host sysctls; if this run is killed before 'e2e/node.sh down $dir', restore them with: sysctl -w ${restore[*]}"
  # The kubelet's iptables chains, those that were not there already.
  for family in iptables ip6tables; do
    command -v "$family-save" >/dev/null || continue
    "$family-save" 2>/dev/null | awk -v f="$family" '/^\*/ { t = substr($1, 2) } /^:KUBE-/ { print f, t, substr($1, 2) }'
  done >"$dir/chains.before"
  undo drop_kubelet_chains
  # Its Pods' cgroups, under a root of their own in every hierarchy (v1: one per controller).
  for hierarchy in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do
    [[ ! -e $hierarchy$cgroup_root ]] || die "$hierarchy$cgroup_root exists: another e2e node runs, or one was not taken down"
    mkdir "$hierarchy$cgroup_root"
    undo remove_cgroup "$hierarchy$cgroup_root"
    # A v1 cpuset starts empty, and a cgroup without CPUs or memory nodes takes no process.
    if [[ -e $hierarchy/cpuset.cpus && -e $hierarchy/cpuset.mems ]]; then
      cat "$hierarchy/cpuset.cpus" >"$hierarchy$cgroup_root/cpuset.cpus"
      cat "$hierarchy/cpuset.mems" >"$hierarchy$cgroup_root/cpuset.mems"
    fi
  done
  own_dir /var/log/containers
  # Before 1.30 the Pods' logs go to /var/log/pods, with links in /var/log/containers: this run
  # must own that directory, so that `down` removes them all.
  if ((number < 30)); then
    [[ ! -e /var/log/pods ]] || die "/var/log/pods exists; Kubernetes $minor writes its Pods' logs there: remove it, or run 1.30 or newer"
    own_dir /var/log/pods
    undo "find /var/log/containers -lname '/var/log/pods/*' -delete"
  fi
  undo "find /var/log/containers -lname '$dir/*' -delete"

  cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
# cgroupfs, as there is no systemd to delegate to, and containerd's runc is set the same way.
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
$(release_specific_kubelet_config)
# Only what this run loads is on the node, and it must stay there: no image GC, and no eviction
# on a CI disk that is fuller than the defaults allow.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
EOF
  kubelet_start
  await "the node's registration" 120 "${kubectl[@]}" get node "$node"
  "${kubectl[@]}" wait --for=condition=Ready "node/$node" --timeout=120s >/dev/null
  say "node $node: Ready"
  # Pods need the namespace's service account, which the controller manager creates.
  await "the default service account" 60 "${kubectl[@]}" get serviceaccount default
}

# What a release knows of: older kubelets decode a field they do not know leniently, with a
# warning (pkg/kubelet/kubeletconfig/util/codec), so the fields are left out instead.
release_specific_kubelet_config() {
  # cgroup v1 hosts: the kubelet refuses them unless told otherwise from 1.35 on (KEP-5573); the
  # field exists from 1.31 on.
  ((number < 31)) || echo "failCgroupV1: false"
  # From 1.30 on; before, the Pods' logs go to /var/log/pods, which `up` owns then.
  ((number < 30)) || echo "podLogsDir: $dir/kubelet/pod-logs"
  if [[ -n $gates ]]; then
    echo "featureGates: {${gates//=/: }}"
  fi
  # A release built with a stand-in for iptables-wrappers (1.38): the kubelet calls it only if
  # this is true (pkg/kubelet/kubelet.go), and the stand-in panics.
  if grep -q '^[[:space:]]*sigs\.k8s\.io/iptables-wrappers => \./' "$e2e/kube/$minor/go.mod"; then
    echo "makeIPTablesUtilChains: false"
  fi
}

# --vmodule: the file that runs containers' hooks logs each preStop hook's start and end at level 3
# (pkg/kubelet/kuberuntime/kuberuntime_container.go), which test_adapting.py reads.
kubelet_start() {
  start kubelet "$bin/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$dir/kubeconfig/kubelet.conf" \
    --root-dir "$dir/kubelet/root" --cert-dir "$dir/kubelet/pki" --hostname-override "$node" --v 2 \
    --vmodule kuberuntime_container=3
}

# A node's directory, as `up` made it: `down` and the kubelet's verbs act on nothing else.
node_dir() {
  dir=$(cd "$1" 2>/dev/null && pwd) || return 1
  [[ -f $dir/$marker ]] || { say "$dir was not made by 'e2e/node.sh up' (no $marker in it): refusing"; exit 1; }
  bin=$(cat "$dir/bin" 2>/dev/null) || bin=  # none if `up` failed before its build
}

up() {
  check
  dir=$1
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
  [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
  echo "made by e2e/node.sh up; removed by e2e/node.sh down" >"$dir/$marker"
  mkdir -p "$dir"/{logs,pids,containerd,kubelet,kubeconfig}
  : >"$dir/undo"
  step=build; bin=$("$e2e/build.sh" "$minor")
  echo "$bin" >"$dir/bin"
  pause_image=localhost/e2e-node/pause:$(basename "$bin")
  context=kubernetes-admin@$cluster
  kubectl=("$bin/kubectl" --kubeconfig "$dir/kubeconfig/admin.conf" --context "$context")
  step=certificates; certs
  step="control plane"; control_plane
  step="pause image"; pause_image_build
  step=containerd; containerd_up
  step=kubelet; kubelet_up
  step=images; load_images
  step=
  cat <<EOF
KUBECONFIG=$dir/kubeconfig/admin.conf
KUBE_CONTEXT=$context
E2E_NODE_BIN=$bin
E2E_NODE_DIR=$dir
CONTAINERD_ADDRESS=$dir/containerd/containerd.sock
EOF
}

# --- down ---------------------------------------------------------------------------------

# Sends TERM to PID, and KILL if it is still there after SECONDS; returns once it is gone (or
# a zombie: its parent, not this script, reaps it).
stop_pid() {
  local pid=$1 deadline=$((SECONDS + $2))
  kill "$pid" 2>/dev/null || return 0
  while alive "$pid"; do
    if ((SECONDS >= deadline + 5)); then say "could not stop $pid"; return 0; fi
    ((SECONDS < deadline)) || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.1  # the polling interval
  done
}
alive() { [[ -e /proc/$1 && $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# The chains the kubelet makes (pkg/kubelet/kubelet_network_linux.go), if they were not there:
# KUBE-IPTABLES-HINT and KUBE-KUBELET-CANARY for both families, and the IPv4 KUBE-FIREWALL that
# INPUT and OUTPUT jump to.
drop_kubelet_chains() {
  local family table chain
  for family in iptables ip6tables; do
    command -v "$family" >/dev/null || continue
    for chain in filter/KUBE-FIREWALL mangle/KUBE-IPTABLES-HINT mangle/KUBE-KUBELET-CANARY nat/KUBE-KUBELET-CANARY filter/KUBE-KUBELET-CANARY; do
      table=${chain%/*} chain=${chain#*/}
      "$family" -t "$table" -S "$chain" >/dev/null 2>&1 || continue
      grep -qx "$family $table $chain" "$dir/chains.before" && continue
      while "$family" -t "$table" -D INPUT -j "$chain" 2>/dev/null; do :; done
      while "$family" -t "$table" -D OUTPUT -j "$chain" 2>/dev/null; do :; done
      "$family" -t "$table" -F "$chain" && "$family" -t "$table" -X "$chain"
    done
  done
}

remove_cgroup() { [[ ! -d $1 ]] || find "$1" -depth -type d -exec rmdir {} +; }

down() {
  node_dir "$1" || exit 0
  local ctr pid name line
  # The kubelet first, so that it restarts nothing; then every container, through containerd,
  # so that no shim or container process outlives it.
  [[ ! -e $dir/pids/kubelet ]] || stop_pid "$(cat "$dir/pids/kubelet")" 20
  ctr=("$bin/ctr" --address "$dir/containerd/containerd.sock" --namespace k8s.io)
  if [[ -S $dir/containerd/containerd.sock && -x ${ctr[0]} ]]; then
    for task in $("${ctr[@]}" tasks list --quiet 2>/dev/null); do
      "${ctr[@]}" tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true
      "${ctr[@]}" tasks delete --force "$task" >/dev/null 2>&1 || true
    done
  fi
  for name in containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ ! -e $dir/pids/$name ]] || stop_pid "$(cat "$dir/pids/$name")" 20
  done
  # Anything else this run started names its directory (shims: -address DIR/...); and any
  # process still in the Pods' cgroups.
  for pid in $(pgrep -f -- "$dir/" || true) $(for hierarchy in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do
    [[ ! -d $hierarchy$cgroup_root ]] || find "$hierarchy$cgroup_root" -name cgroup.procs -exec cat {} +; done); do
    [[ $pid == "$$" ]] || stop_pid "$pid" 5
  done
  findmnt -rn -o TARGET | { grep -F "$dir/" || true; } | sort -r | while read -r line; do umount "$line" || umount -l "$line"; done
  if [[ -e $dir/undo ]]; then
    tac "$dir/undo" | while read -r line; do eval "$line" >/dev/null 2>&1 || say "could not undo: $line"; done
  fi
  rm -rf "$dir"
}

logs() {
  local log
  for log in "$1"/logs/*.log; do
    printf '\n--- %s (last 25 lines)\n' "$(basename "$log" .log)"
    tail -n 25 "$log"
  done
}

case ${1:-} in
  check) check; say "ready to run (K8S=$minor)" ;;
  up) [[ -n ${2:-} ]] || { sed -n 's/^#   e2e/e2e/p' "$0" >&2; exit 2; }
    trap '[[ -z ${step:-} ]] || say "failed at step: $step"' EXIT
    up "$2" ;;
  down) [[ -n ${2:-} ]] || exit 2; down "$2" ;;
  stop-kubelet) [[ -n ${2:-} ]] || exit 2; node_dir "$2" || die "no directory $2"; stop_pid "$(cat "$dir/pids/kubelet")" 20 ;;
  start-kubelet) [[ -n ${2:-} ]] || exit 2; node_dir "$2" || die "no directory $2"; kubelet_start
    await kubelet 60 curl -sf http://127.0.0.1:10248/healthz ;;
  logs) [[ -d ${2:-} ]] || exit 2; logs "$2" ;;
  *) sed -n 's/^#   e2e/e2e/p' "$0" >&2; exit 2 ;;
esac
