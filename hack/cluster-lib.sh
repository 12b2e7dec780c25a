# shellcheck shell=bash
# Settings shared by hack/cluster-up.sh and hack/cluster-down.sh. Sourced, never executed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# All cluster state lives under CLUSTER_DIR; cluster-down removes it.
CLUSTER_DIR="${TRACESTREAM_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
NODE_NAME="tracestream-node"
POD_CIDR="10.88.0.0/16"
SERVICE_CIDR="10.96.0.0/16"
API_SERVICE_IP="10.96.0.1"
BRIDGE="tsbr0"
# The bridge's own address, the pods' gateway: the first address of POD_CIDR.
BRIDGE_IP="${POD_CIDR%.*/*}.1"
API_PORT=6443
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
PAUSE_IMAGE="tracestream.local/pause:1"

# Storage: rancher's local-path-provisioner runs on the host and makes each volume a directory
# under LOCAL_PATH_VOLUMES (inside CLUSTER_DIR, so cluster-down removes them all). Its helper pods
# run hack/local-path-helper from this image; its settings live in LOCAL_PATH_DIR.
LOCAL_PATH_DIR="$CLUSTER_DIR/local-path"
LOCAL_PATH_VOLUMES="$CLUSTER_DIR/volumes"
LOCAL_PATH_HELPER_IMAGE="tracestream.local/local-path-helper:1"

# The demo (hack/demo.sh) runs a redis-server on this host for the cluster's pods; its files live
# in DEMO_DIR, and cluster-down stops it with the cluster.
DEMO_DIR="$REPO_ROOT/.demo"
DEMO_REDIS_PIDFILE="$DEMO_DIR/redis.pid"

# Components in start order; cluster-down stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy local-path-provisioner)

# Sysctls that the kubelet, kube-proxy or the bridge CNI plugin change; saved at cluster-up and
# restored at cluster-down.
SAVED_SYSCTLS=(
	net.ipv4.ip_forward
	net.ipv4.conf.all.route_localnet
	kernel.panic kernel.panic_on_oops
	vm.overcommit_memory vm.panic_on_oom
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes
	net.netfilter.nf_conntrack_max
	net.netfilter.nf_conntrack_tcp_timeout_established
	net.netfilter.nf_conntrack_tcp_timeout_close_wait
)

# Host paths the kubelet and containerd use whatever their configured roots are; cluster-down
# removes the ones that did not exist before cluster-up.
HOST_PATHS=(/run/containerd /var/run/netns /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/cni)

# Prefixes of the iptables chains Kubernetes, CNI plugins and we create.
CHAIN_PREFIXES='KUBE-|CNI-|TRACESTREAM-'

node_ip() {
	local dev
	dev=$(ip -4 route show default | awk '{for (i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}')
	[ -n "$dev" ] || dev=$(ip -4 -o addr show scope global | awk '{print $2; exit}')
	[ -n "$dev" ] || die "no global IPv4 address to run the node on"
	ip -4 -o addr show dev "$dev" scope global | awk '{split($4,a,"/"); print a[1]; exit}'
}

pid_of() {
	local f="$CLUSTER_DIR/pids/$1"
	[ -f "$f" ] && cat "$f"
}

alive() {
	local pid
	pid=$(pid_of "$1") || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
