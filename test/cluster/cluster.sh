#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, in the spirit of kubernetes'
# hack/local-up-cluster.sh: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy built from Go modules, containerd + runc + CNI plugins from Debian, CoreDNS built from its
# Go module, and a local-path provisioner of our own for the default StorageClass.
#
#   test/cluster/cluster.sh up            bring the cluster up (idempotent); prints the kubeconfig path
#   test/cluster/cluster.sh down          stop everything and undo every change it made, then verify
#   test/cluster/cluster.sh status        exit 0 when the cluster is up and healthy
#   test/cluster/cluster.sh verify-clean  fail when anything of the cluster is left on the machine
#   test/cluster/cluster.sh kubeconfig    print the kubeconfig path
#   test/cluster/cluster.sh packages      install the Debian packages `up` needs
#   test/cluster/cluster.sh binaries      build the programs `up` needs, without starting anything
#
# Pods use 198.18.0.0/24 on the bridge datafleet0, Services 198.19.0.0/16; nothing leaves the machine.
# Three nodes run on the same machine: datafleet-node, and datafleet-node-2 and -3, each with its own
# containerd, kubelet, cgroup parent, pod log directory, volume directory, bridge (datafleet1, datafleet2)
# and pod range (198.18.1.0/24, 198.18.2.0/24); DATAFLEET_NODES=1 or 2 runs fewer.
# Everything runs as host processes started by this script (there is no init system here). State lives
# in $CLUSTER_DIR and $RUN_DIR and is removed by `down`; the image store of containerd lives in the cache
# so that images imported once survive a down/up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.37.1}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
CACHE="${DATAFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/datafleet}"
CLUSTER_DIR="${CACHE}/cluster"
LOG_DIR="${CACHE}/cluster-logs"
RUN_DIR="/run/datafleet-cluster"
CONTAINERD_ROOT="${CACHE}/containerd"
CONTAINERD_SOCK="${RUN_DIR}/containerd/containerd.sock"
KUBECONFIG_PATH="${CLUSTER_DIR}/kubeconfig"

NODE_NAME="datafleet-node"
BRIDGE="datafleet0"
POD_CIDR="198.18.0.0/24"
POD_GATEWAY="198.18.0.1"
CLUSTER_CIDR="198.18.0.0/16"
SERVICE_CIDR="198.19.0.0/16"
API_SERVICE_IP="198.19.0.1"
DNS_SERVICE_IP="198.19.0.10"
API_PORT="${DATAFLEET_API_PORT:-6443}"
ETCD_PORT="${DATAFLEET_ETCD_PORT:-32379}"
PAUSE_IMAGE="datafleet.local/pause:3.10"
STORAGE_CLASS="datafleet-local"

# The other nodes (DATAFLEET_NODES, 3 by default). They share the machine's network namespace (one
# kube-proxy programs the Services for all), and each has on its own what a kubelet keeps to itself: a
# containerd (a kubelet removes the pod sandboxes of its runtime that it does not know), a bridge and
# pod range, a kubelet root, ports and cgroup parent, a pod log directory (a kubelet removes the log
# directories of pods it does not know), and a local-path provisioner for its volumes. Node N (2 or 3):
NODES="${DATAFLEET_NODES:-3}"
MAX_NODES=3
node_name() { echo "${NODE_NAME}-$1"; }
node_bridge() { echo "datafleet$(($1 - 1))"; }
node_cidr() { echo "198.18.$(($1 - 1)).0/24"; }
node_gateway() { echo "198.18.$(($1 - 1)).1"; }
node_sock() { echo "${RUN_DIR}/containerd-$1/containerd.sock"; }
node_cgroup() { echo "datafleet-node-$1"; } # under every cgroup hierarchy's root
extra_nodes() { [ "$NODES" -lt 2 ] || seq 2 "$NODES"; }
all_extra_nodes() { seq 2 "$MAX_NODES"; } # what down removes, whatever up ran

# Sysctls this script or the kubelet/kube-proxy change; their values are recorded on up and put back on down.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Start order; `down` stops them in reverse (kube-apiserver before etcd, or it hangs).
COMPONENTS=(etcd kube-apiserver containerd coredns kube-controller-manager kube-scheduler kubelet kube-proxy localpath netpol)
case "$NODES" in
  1|2|3) ;;
  *) echo "cluster: error: DATAFLEET_NODES=$NODES: 1, 2 or 3 nodes" >&2; exit 1 ;;
esac
for n in $(extra_nodes); do COMPONENTS+=("containerd-$n" "kubelet-$n" "localpath-$n"); done

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it starts containerd and the kubelet and changes iptables)"
}

# --- dependencies -----------------------------------------------------------------------------------

DEBIAN_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack openssl gcc libc6-dev curl procps
  iproute2 umoci skopeo)

install_packages() { "$ROOT/hack/host-packages.sh" "${DEBIAN_PACKAGES[@]}"; }

build_binaries() {
  ASSETS="$(K8S_VERSION="$K8S_VERSION" "$ROOT/hack/k8s-binaries.sh" etcd kube-apiserver kube-controller-manager \
    kube-scheduler kubelet kube-proxy kubectl | tail -n1)"
  COREDNS="$("$ROOT/hack/go-tool.sh" github.com/coredns/coredns "$COREDNS_VERSION")"
  # Built from this checkout on every up: it is small and must match the repository.
  LOCALPATH="${CACHE}/bin/datafleet-localpath"
  ( cd "$ROOT" && go build -o "$LOCALPATH" ./test/cluster/localpath )
  NETPOL="${CACHE}/bin/datafleet-netpol"
  ( cd "$ROOT" && go build -o "$NETPOL" ./test/cluster/netpol )
  PAUSE_TAR="$(build_pause)"
}

# The pause binary ships as C source inside the kubernetes module; the image holds only that binary.
build_pause() {
  local out="${CACHE}/images/pause-3.10.tar"
  if [ -s "$out" ]; then echo "$out"; return; fi
  local src; src="$(GOFLAGS=-mod=mod go env GOMODCACHE)/k8s.io/kubernetes@v${K8S_VERSION}/build/pause/linux/pause.c"
  [ -f "$src" ] || ( cd "${CACHE}/src/kubernetes-${K8S_VERSION}" && go mod download "k8s.io/kubernetes@v${K8S_VERSION}" )
  local tmp; tmp="$(mktemp -d)"
  gcc -Os -static -o "$tmp/pause" "$src" -DVERSION=3.10
  strip "$tmp/pause"
  "$ROOT/hack/oci-image.sh" --file "$tmp/pause:/pause" \
    --entrypoint /pause --user 65535:65535 --ref "$PAUSE_IMAGE" --out "$out" >&2
  rm -rf "$tmp"
  echo "$out"
}

# --- processes --------------------------------------------------------------------------------------

pidfile() { echo "${CLUSTER_DIR}/pids/$1.pid"; }

# alive PID: the process exists and is not a zombie (PID 1 here reaps orphans only now and then).
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" && [ "${state:0:1}" != Z ]
}

running() {
  local f; f="$(pidfile "$1")"
  [ -f "$f" ] && alive "$(cat "$f")"
}

start() {
  local name="$1"; shift
  if running "$name"; then return; fi
  mkdir -p "${CLUSTER_DIR}/pids" "$LOG_DIR"
  log "starting $name"
  setsid "$@" >"${LOG_DIR}/${name}.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

stop() {
  local name="$1" f pid
  f="$(pidfile "$name")"
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if alive "$pid"; then
    log "stopping $name"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

wait_for() {
  local what="$1" tries="$2"; shift 2
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timed out waiting for $what; last lines of the logs:"
  tail -n 20 "$LOG_DIR"/*.log >&2 || true
  return 1
}

kubectl_() { "$ASSETS/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# --- configuration ----------------------------------------------------------------------------------

node_ip() {
  ip -4 -o addr show dev "$(ip -4 route show default | awk '{print $5; exit}')" | awk '{print $4}' | cut -d/ -f1 | head -n1
}

gen_certs() {
  local d="${CLUSTER_DIR}/pki"
  [ -f "$d/.done" ] && return
  mkdir -p "$d"; chmod 700 "$d"
  log "generating certificates"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=datafleet-local-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  cert apiserver "kube-apiserver" "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:${API_SERVICE_IP},IP:${NODE_IP},IP:${POD_GATEWAY}"
  cert kubelet "system:node:${NODE_NAME}" "" "DNS:${NODE_NAME},DNS:localhost,IP:127.0.0.1,IP:${NODE_IP}"
  cert admin "datafleet-admin" "system:masters"
  cert apiserver-kubelet-client "kube-apiserver-kubelet-client" "system:masters"
  cert node "system:node:${NODE_NAME}" "system:nodes"
  cert controller-manager "system:kube-controller-manager"
  cert scheduler "system:kube-scheduler"
  cert kube-proxy "system:kube-proxy"
  cert coredns "datafleet:coredns"
  cert localpath "datafleet:localpath"
  cert netpol "datafleet:netpol"
  local n
  for n in $(extra_nodes); do
    cert "kubelet-$n" "system:node:$(node_name "$n")" "" "DNS:$(node_name "$n"),DNS:localhost,IP:127.0.0.1,IP:${NODE_IP}"
    cert "node-$n" "system:node:$(node_name "$n")" "system:nodes"
  done
  touch "$d/.done"
}

# cert NAME CN [O] [SANs]: a key pair signed by the cluster CA.
cert() {
  local d="${CLUSTER_DIR}/pki" name="$1" cn="$2" o="${3:-}" san="${4:-}" subj ext
  subj="/CN=${cn}"; [ -n "$o" ] && subj="/O=${o}${subj}"
  ext="$d/$name.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } > "$ext"
  openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
    -extfile "$ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$ext"
}

# kubeconfig NAME SERVER: a kubeconfig using the client certificate NAME.
kubeconfig() {
  local d="${CLUSTER_DIR}/pki" name="$1" server="$2" out="${CLUSTER_DIR}/$1.kubeconfig"
  cat > "$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: datafleet
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 < "$d/ca.crt")
users:
- name: ${name}
  user:
    client-certificate-data: $(base64 -w0 < "$d/${name}.crt")
    client-key-data: $(base64 -w0 < "$d/${name}.key")
contexts:
- name: datafleet
  context: {cluster: datafleet, user: ${name}}
current-context: datafleet
EOF
  chmod 600 "$out"
}

# containerd_config FILE ROOT STATE SOCKET CNI_DIR
containerd_config() {
  mkdir -p "$5"
  cat > "$1" <<EOF
version = 2
root = "$2/root"
state = "$3"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$4"
[plugins."io.containerd.internal.v1.opt"]
  path = "$2/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE every sandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$5"
EOF
}

# cni_config DIR BRIDGE CIDR GATEWAY IPAM_DIR
cni_config() {
  cat > "$1/10-datafleet.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "datafleet", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$5",
            "ranges": [[{"subnet": "$3", "gateway": "$4"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
}

# kubelet_config FILE CONTAINERD_SOCKET CERT POD_LOGS PORT HEALTHZ_PORT CGROUP_ROOT
kubelet_config() {
  cat > "$1" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false # this machine has cgroups v1 only
cgroupDriver: cgroupfs
cgroupRoot: $7
containerRuntimeEndpoint: unix://$2
address: ${NODE_IP}
port: $5
healthzBindAddress: 127.0.0.1
healthzPort: $6
readOnlyPort: 0
tlsCertFile: ${CLUSTER_DIR}/pki/$3.crt
tlsPrivateKeyFile: ${CLUSTER_DIR}/pki/$3.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${CLUSTER_DIR}/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [${DNS_SERVICE_IP}]
resolvConf: ${CLUSTER_DIR}/resolv.conf
podLogsDir: $4
failSwapOn: false
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
maxPods: 200
EOF
}

write_configs() {
  local api="https://127.0.0.1:${API_PORT}"
  for n in admin node controller-manager scheduler kube-proxy coredns localpath netpol; do kubeconfig "$n" "$api"; done
  for n in $(extra_nodes); do kubeconfig "node-$n" "$api"; done
  mv "${CLUSTER_DIR}/admin.kubeconfig" "$KUBECONFIG_PATH"
  mkdir -p "${CLUSTER_DIR}/cni" "${CLUSTER_DIR}/pod-logs" "${CLUSTER_DIR}/volumes" "$RUN_DIR/containerd"
  : > "${CLUSTER_DIR}/resolv.conf" # pods get only cluster DNS: there is no upstream to forward to

  containerd_config "${CLUSTER_DIR}/containerd.toml" "$CONTAINERD_ROOT" "${RUN_DIR}/containerd" "$CONTAINERD_SOCK" "${CLUSTER_DIR}/cni"
  cni_config "${CLUSTER_DIR}/cni" "$BRIDGE" "$POD_CIDR" "$POD_GATEWAY" "${CLUSTER_DIR}/cni-ipam"
  kubelet_config "${CLUSTER_DIR}/kubelet.yaml" "$CONTAINERD_SOCK" kubelet "${CLUSTER_DIR}/pod-logs" 10250 10248 /
  for n in $(extra_nodes); do
    mkdir -p "${CLUSTER_DIR}/pod-logs-$n" "${CLUSTER_DIR}/volumes-$n" "$RUN_DIR/containerd-$n"
    containerd_config "${CLUSTER_DIR}/containerd-$n.toml" "${CACHE}/containerd-$n" "${RUN_DIR}/containerd-$n" "$(node_sock "$n")" "${CLUSTER_DIR}/cni-$n"
    cni_config "${CLUSTER_DIR}/cni-$n" "$(node_bridge "$n")" "$(node_cidr "$n")" "$(node_gateway "$n")" "${CLUSTER_DIR}/cni-ipam-$n"
    # Node N's kubelet listens on 10250 + 10 (N - 1), its health on 10248 + 10 (N - 1).
    kubelet_config "${CLUSTER_DIR}/kubelet-$n.yaml" "$(node_sock "$n")" "kubelet-$n" "${CLUSTER_DIR}/pod-logs-$n" \
      $((10250 + 10 * (n - 1))) $((10248 + 10 * (n - 1))) "/$(node_cgroup "$n")"
  done

  cat > "${CLUSTER_DIR}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${CLUSTER_DIR}/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: ${CLUSTER_CIDR}
hostnameOverride: ${NODE_NAME}
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [primary]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF

  # No upstream forwarder: names outside cluster.local fail, so nothing leaves the machine.
  cat > "${CLUSTER_DIR}/Corefile" <<EOF
.:53 {
    bind ${POD_GATEWAY}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${CLUSTER_DIR}/coredns.kubeconfig datafleet
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# What the machine looked like before the cluster: sysctl values, directories the kubelet and CNI create
# outside our own, nftables tables. Kept outside $CLUSTER_DIR so verify-clean can compare after down.
HOST_BASELINE="${CACHE}/cluster-host-baseline.env"
HOST_DIRS=(/var/log/pods /var/log/containers /run/netns /var/lib/cni)

record_host_state() {
  [ -d "$RUN_DIR" ] && [ -f "$HOST_BASELINE" ] && return # recorded by the run that is still up
  local f="$HOST_BASELINE"
  : > "$f.tmp"
  for s in "${SYSCTLS[@]}"; do echo "sysctl:$s=$(sysctl -n "$s" 2>/dev/null || echo)" >> "$f.tmp"; done
  for d in "${HOST_DIRS[@]}"; do [ -e "$d" ] && echo "dir:$d" >> "$f.tmp"; done
  if command -v nft >/dev/null; then nft list tables 2>/dev/null | sed 's/^/nft:/' >> "$f.tmp"; fi
  mv "$f.tmp" "$f"
}

bridge_up() {
  ip link show "$1" >/dev/null 2>&1 || ip link add "$1" type bridge
  # A bridge whose address nobody set takes the lowest of its ports' addresses, so it changes
  # whenever a pod comes or goes; its pods keep the old one for their gateway until their ARP
  # entry expires, and the replies they send the machine (a Service reached from the host, the
  # other nodes' pods) are lost for seconds. A fixed, locally administered address made from the
  # gateway's never changes.
  # shellcheck disable=SC2086
  ip link set dev "$1" address "$(printf '02:df:%02x:%02x:%02x:%02x' ${2//./ })"
  ip addr replace "$2/24" dev "$1"
  ip link set "$1" up
}

setup_network() {
  sysctl -qw net.ipv4.ip_forward=1
  # Pod-to-Service-to-pod on one bridge needs bridged traffic to pass iptables.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "warning: br_netfilter is not loaded"
  # Created before CNI does so that CoreDNS can bind the gateway address before the first pod exists.
  bridge_up "$BRIDGE" "$POD_GATEWAY"
  # The other nodes' pods reach the first's (and CoreDNS) through the machine: every bridge is its.
  local n
  for n in $(extra_nodes); do bridge_up "$(node_bridge "$n")" "$(node_gateway "$n")"; done
  # Without a route, a ClusterIP kube-proxy has not programmed yet would follow the default route off
  # the machine; on the bridge it goes nowhere. The route goes away with the bridge.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$POD_GATEWAY"
}

# --- up ---------------------------------------------------------------------------------------------

apply_addons() {
  kubectl_ apply -f - >/dev/null <<EOF
# The host components CoreDNS and localpath authenticate with their own certificates (CN below).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "datafleet:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "datafleet:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "datafleet:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "datafleet:coredns"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "datafleet:localpath"}
rules:
- {apiGroups: [""], resources: [persistentvolumeclaims], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [persistentvolumeclaims/status], verbs: [update, patch]}
- {apiGroups: [""], resources: [persistentvolumes], verbs: [get, list, watch, create, update, delete]}
- {apiGroups: [storage.k8s.io], resources: [storageclasses], verbs: [get, list, watch]}
- {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "datafleet:localpath"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "datafleet:localpath"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "datafleet:localpath"}]
---
# The NetworkPolicy enforcer (test/cluster/netpol) reads what the policies select.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "datafleet:netpol"}
rules:
- {apiGroups: [""], resources: [pods, namespaces], verbs: [list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "datafleet:netpol"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "datafleet:netpol"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "datafleet:netpol"}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, datafleet.dev/cluster-addon: "true"}
spec:
  clusterIP: ${DNS_SERVICE_IP}
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
# CoreDNS runs on the host, bound to the bridge gateway; this selector-less Service points at it.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: datafleet-cluster}
addressType: IPv4
endpoints:
- addresses: ["${POD_GATEWAY}"]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${STORAGE_CLASS}
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: datafleet.dev/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
EOF
}

api_ready() {
  curl -fsk --max-time 2 "https://127.0.0.1:${API_PORT}/readyz" \
    --cert "${CLUSTER_DIR}/pki/admin.crt" --key "${CLUSTER_DIR}/pki/admin.key" >/dev/null 2>&1
}

healthy() {
  for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
  api_ready
}

# start_containerd NAME CONFIG SOCKET: containerd, its CRI serving, and the pause image in it.
start_containerd() {
  start "$1" /usr/bin/containerd --config "$2"
  wait_for "$1" 60 ctr --address "$3" version
  # The CRI service starts after the socket answers; a kubelet started before it exits with
  # "server is not initialized yet". containerd 1.6 logs this line once the CRI serves.
  wait_for "$1's CRI service" 60 grep -q "Start streaming server" "${LOG_DIR}/$1.log" || true
  if ! ctr --address "$3" -n k8s.io images ls -q | grep -qx "$PAUSE_IMAGE"; then
    ctr --address "$3" -n k8s.io images import "$PAUSE_TAR" >/dev/null
  fi
}

# up_node N starts node N's containerd, kubelet and volume provisioner. Its kubelet puts its pods'
# cgroups under their own parent in every hierarchy, which must exist first.
up_node() {
  local n="$1" h cg; cg="$(node_cgroup "$1")"
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h" ] && [ ! -L "${h%/}" ] && mkdir -p "${h}${cg}"
  done
  # A v1 cpuset cgroup admits no task until it has CPUs and memory nodes: those of the machine.
  local cs=/sys/fs/cgroup/cpuset
  if [ -f "$cs/cpuset.cpus" ]; then
    cat "$cs/cpuset.cpus" > "$cs/${cg}/cpuset.cpus"
    cat "$cs/cpuset.mems" > "$cs/${cg}/cpuset.mems"
  fi
  start_containerd "containerd-$n" "${CLUSTER_DIR}/containerd-$n.toml" "$(node_sock "$n")"
  start "kubelet-$n" "$ASSETS/kubelet" --config "${CLUSTER_DIR}/kubelet-$n.yaml" \
    --kubeconfig "${CLUSTER_DIR}/node-$n.kubeconfig" --root-dir "${CLUSTER_DIR}/kubelet-$n" \
    --cert-dir "${CLUSTER_DIR}/kubelet-$n-pki" --node-ip "$NODE_IP" --hostname-override "$(node_name "$n")"
  start "localpath-$n" "$LOCALPATH" --kubeconfig "${CLUSTER_DIR}/localpath.kubeconfig" \
    --node "$(node_name "$n")" --dir "${CLUSTER_DIR}/volumes-$n"
}

up() {
  need_root
  install_packages
  if [ -f "$KUBECONFIG_PATH" ] && healthy; then
    log "already up"
    ASSETS="$("$ROOT/hack/k8s-binaries.sh" kubectl | tail -n1)"
    apply_addons
    echo "$KUBECONFIG_PATH"; return
  fi
  if [ -d "$CLUSTER_DIR" ]; then log "a previous cluster is partly running: tearing it down first"; down; fi
  build_binaries
  local t0=$SECONDS
  NODE_IP="$(node_ip)"; [ -n "$NODE_IP" ] || die "no IPv4 address on the default-route interface"
  mkdir -p "$CLUSTER_DIR" "$LOG_DIR"; chmod 700 "$CLUSTER_DIR"
  record_host_state
  gen_certs
  write_configs
  setup_network
  local p="${CLUSTER_DIR}/pki"

  start etcd "$ASSETS/etcd" --name default --data-dir "${CLUSTER_DIR}/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))"
  wait_for etcd 60 curl -fs "http://127.0.0.1:${ETCD_PORT}/health"

  start kube-apiserver "$ASSETS/kube-apiserver" --etcd-servers "http://127.0.0.1:${ETCD_PORT}" \
    --secure-port "$API_PORT" --bind-address 0.0.0.0 --advertise-address "$NODE_IP" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --kubelet-client-certificate "$p/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$p/apiserver-kubelet-client.key" --kubelet-certificate-authority "$p/ca.crt" \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction --allow-privileged=true --profiling=false \
    --kubelet-preferred-address-types InternalIP  # the node name resolves nowhere: no DNS lookup leaves the machine
  wait_for kube-apiserver 120 api_ready

  start_containerd containerd "${CLUSTER_DIR}/containerd.toml" "$CONTAINERD_SOCK"

  start coredns "$COREDNS" -conf "${CLUSTER_DIR}/Corefile"
  start kube-controller-manager "$ASSETS/kube-controller-manager" \
    --kubeconfig "${CLUSTER_DIR}/controller-manager.kubeconfig" \
    --authentication-kubeconfig "${CLUSTER_DIR}/controller-manager.kubeconfig" \
    --authorization-kubeconfig "${CLUSTER_DIR}/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" --allocate-node-cidrs=false
  start kube-scheduler "$ASSETS/kube-scheduler" --kubeconfig "${CLUSTER_DIR}/scheduler.kubeconfig" \
    --authentication-kubeconfig "${CLUSTER_DIR}/scheduler.kubeconfig" \
    --authorization-kubeconfig "${CLUSTER_DIR}/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false
  start kubelet "$ASSETS/kubelet" --config "${CLUSTER_DIR}/kubelet.yaml" \
    --kubeconfig "${CLUSTER_DIR}/node.kubeconfig" --root-dir "${CLUSTER_DIR}/kubelet" \
    --cert-dir "${CLUSTER_DIR}/kubelet-pki" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
  start kube-proxy "$ASSETS/kube-proxy" --config "${CLUSTER_DIR}/kube-proxy.yaml"
  start localpath "$LOCALPATH" --kubeconfig "${CLUSTER_DIR}/localpath.kubeconfig" \
    --node "$NODE_NAME" --dir "${CLUSTER_DIR}/volumes"
  start netpol "$NETPOL" --kubeconfig "${CLUSTER_DIR}/netpol.kubeconfig"
  for n in $(extra_nodes); do up_node "$n"; done

  wait_for "node ${NODE_NAME} Ready" 240 kubectl_ wait --for=condition=Ready "node/${NODE_NAME}" --timeout=1s
  for n in $(extra_nodes); do
    wait_for "node $(node_name "$n") Ready" 240 kubectl_ wait --for=condition=Ready "node/$(node_name "$n")" --timeout=1s
  done
  apply_addons
  wait_for "default service account" 120 kubectl_ get serviceaccount default -n default
  for c in "${COMPONENTS[@]}"; do running "$c" || die "$c exited; see ${LOG_DIR}/$c.log"; done
  log "up in $((SECONDS - t0)) s; logs in ${LOG_DIR}"
  log "kubeconfig: export KUBECONFIG=${KUBECONFIG_PATH}"
  echo "$KUBECONFIG_PATH"
}

# --- down -------------------------------------------------------------------------------------------

# Mount points under our directories and the CNI network namespaces, deepest first.
our_mounts() {
  awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | \
    grep -E "^(${CLUSTER_DIR}|${RUN_DIR}|${CONTAINERD_ROOT}|/run/netns/cni-|/var/run/netns/cni-)" | sort -r || true
}

kill_pod_processes() {
  # Every process a kubelet started lives in a kubepods cgroup.
  local pids
  pids="$(find /sys/fs/cgroup/pids/kubepods $(for n in $(all_extra_nodes); do echo "/sys/fs/cgroup/pids/$(node_cgroup "$n")"; done) \
    -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)"
  [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
}

# remove_containers NAME SOCKET
remove_containers() {
  [ -S "$2" ] && running "$1" || return 0
  local c=(ctr --address "$2" -n k8s.io)
  for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  for _ in $(seq 1 50); do
    [ -z "$("${c[@]}" tasks ls -q 2>/dev/null | while read -r t; do "${c[@]}" tasks delete "$t" >/dev/null 2>&1 || echo "$t"; done)" ] && break
    sleep 0.2
  done
  for ct in $("${c[@]}" containers ls -q 2>/dev/null); do "${c[@]}" containers delete "$ct" >/dev/null 2>&1 || true; done
}

remove_cgroups() {
  local d
  for ctl in /sys/fs/cgroup/*/; do
    for d in "${ctl}kubepods" "${ctl}kubepods.slice" $(for n in $(all_extra_nodes); do echo "${ctl}$(node_cgroup "$n")"; done); do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  done
}

# Deletes every chain named KUBE-*, CNI-* or DATAFLEET-* (and the rules jumping to them) from every table.
remove_iptables() {
  local t
  for t in iptables ip6tables; do
    command -v "$t-save" >/dev/null || continue
    if "$t-save" 2>/dev/null | grep -qE 'KUBE-|CNI-|DATAFLEET-'; then
      "$t-save" | grep -vE 'KUBE-|CNI-|DATAFLEET-' | "$t-restore"
    fi
  done
}

restore_host_state() {
  local f="$HOST_BASELINE" line d
  [ -f "$f" ] || return 0
  while IFS= read -r line; do
    case "$line" in sysctl:*=?*) sysctl -qw "${line#sysctl:}" 2>/dev/null || true ;; esac
  done < "$f"
  for d in "${HOST_DIRS[@]}"; do grep -qx "dir:$d" "$f" || rm -rf "$d"; done
  # iptables-nft creates its tables on first use; drop the ones that were not there before.
  if command -v nft >/dev/null; then
    nft list tables 2>/dev/null | while read -r t; do
      grep -qxF "nft:$t" "$f" || nft delete ${t} 2>/dev/null || true
    done
  fi
}

down() {
  need_root
  log "tearing down"
  stop netpol
  stop localpath
  local n
  for n in $(all_extra_nodes); do stop "localpath-$n"; done
  stop kube-proxy
  stop kubelet
  for n in $(all_extra_nodes); do stop "kubelet-$n"; done
  remove_containers containerd "$CONTAINERD_SOCK"
  for n in $(all_extra_nodes); do remove_containers "containerd-$n" "$(node_sock "$n")"; done
  kill_pod_processes
  stop containerd
  for n in $(all_extra_nodes); do stop "containerd-$n"; done
  # containerd's shims outlive it; they are ours when they talk to our sockets.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address ${CONTAINERD_SOCK}" 2>/dev/null || true
  for n in $(all_extra_nodes); do pkill -KILL -f "containerd-shim-runc-v2 .*-address $(node_sock "$n")" 2>/dev/null || true; done
  kill_pod_processes
  for c in kube-scheduler kube-controller-manager coredns kube-apiserver etcd; do stop "$c"; done
  local m
  for m in $(our_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for n in /run/netns/cni-* /var/run/netns/cni-*; do [ -e "$n" ] && rm -f "$n"; done
  ip link del "$BRIDGE" 2>/dev/null || true
  for n in $(all_extra_nodes); do ip link del "$(node_bridge "$n")" 2>/dev/null || true; done
  remove_cgroups
  remove_iptables
  restore_host_state
  rm -rf "$CLUSTER_DIR" "$RUN_DIR"
  # A pod's network namespace goes once its last process has, and the kernel destroys the pod's
  # veth pair after that, from a work queue: a pod killed a moment ago can leave its host end
  # listed for a second or two (CI's teardown once saw one). Bounded: a veth that stays is left.
  for _ in $(seq 50); do [ -n "$(ip -o link show type veth 2>/dev/null)" ] || break; sleep 0.2; done
  verify_clean
}

# --- verify -----------------------------------------------------------------------------------------

verify_clean() {
  local bad=()
  local procs
  procs="$(pgrep -a -f "${CACHE}/(k8s|bin)/|containerd --config ${CLUSTER_DIR}|containerd-shim-runc-v2 .*${RUN_DIR}" || true)"
  [ -z "$procs" ] || bad+=("processes still running:"$'\n'"$procs")
  [ -z "$(our_mounts)" ] || bad+=("mounts left: $(our_mounts | tr '\n' ' ')")
  ip link show "$BRIDGE" >/dev/null 2>&1 && bad+=("interface $BRIDGE still exists")
  local n
  for n in $(all_extra_nodes); do
    ip link show "$(node_bridge "$n")" >/dev/null 2>&1 && bad+=("interface $(node_bridge "$n") still exists")
  done
  [ -z "$(ip route show "$SERVICE_CIDR")" ] || bad+=("route to $SERVICE_CIDR still exists")
  [ -z "$(ip -o link show type veth 2>/dev/null)" ] || bad+=("veth interfaces left: $(ip -o link show type veth | awk -F': ' '{print $2}')")
  local t
  for t in iptables ip6tables; do
    command -v "$t-save" >/dev/null || continue
    if "$t-save" 2>/dev/null | grep -qE 'KUBE-|CNI-|DATAFLEET-'; then bad+=("$t chains left: $("$t-save" | grep -oE '^:(KUBE|CNI|DATAFLEET)-[^ ]+' | tr '\n' ' ')"); fi
  done
  local cgroups; cgroups="$(ls -d /sys/fs/cgroup/*/kubepods $(for n in $(all_extra_nodes); do echo "/sys/fs/cgroup/*/$(node_cgroup "$n")"; done) 2>/dev/null || true)"
  [ -z "$cgroups" ] || bad+=("cgroups left: $(echo $cgroups)")
  [ ! -e "$RUN_DIR" ] || bad+=("$RUN_DIR still exists")
  [ ! -e "$CLUSTER_DIR" ] || bad+=("$CLUSTER_DIR still exists")
  [ -z "$(ls /run/netns/cni-* 2>/dev/null)" ] || bad+=("network namespaces left")
  if [ -f "$HOST_BASELINE" ]; then
    local line d
    while IFS= read -r line; do
      case "$line" in sysctl:*=?*)
        local k="${line#sysctl:}"; k="${k%%=*}"
        [ "$(sysctl -n "$k" 2>/dev/null)" = "${line#*=}" ] || bad+=("sysctl $k is $(sysctl -n "$k"), was ${line#*=}") ;;
      esac
    done < "$HOST_BASELINE"
    for d in "${HOST_DIRS[@]}"; do
      [ ! -e "$d" ] || grep -qx "dir:$d" "$HOST_BASELINE" || bad+=("$d was created and is still there")
    done
    if command -v nft >/dev/null; then
      local extra; extra="$(nft list tables 2>/dev/null | while read -r t; do grep -qxF "nft:$t" "$HOST_BASELINE" || echo "$t"; done)"
      [ -z "$extra" ] || bad+=("nftables tables left: $(echo "$extra" | tr '\n' ' ')")
    fi
  fi
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'cluster: not clean: %s\n' "${bad[@]}" >&2
    return 1
  fi
  log "clean: no processes, mounts, interfaces, cgroups or iptables chains of the cluster are left"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) [ -f "$KUBECONFIG_PATH" ] && healthy ;;
  verify-clean) verify_clean ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  packages) need_root; install_packages ;;
  binaries) build_binaries ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
