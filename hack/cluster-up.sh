#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this machine: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, kubelet, kube-proxy (iptables), the
# bridge CNI plugin, and rancher's local-path-provisioner behind a default StorageClass. Binaries
# are built from Go modules (cached by version), the rest comes from Debian's packages. All state
# lives under CLUSTER_DIR; hack/cluster-down.sh undoes everything.
#
# Idempotent: when the cluster is already up and healthy it only prints the kubeconfig path.
# Needs root (containerd, network namespaces, iptables).
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

[ "$(id -u)" -eq 0 ] || die "the local cluster needs root (containerd, iptables, network namespaces)"

kubectl_() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# wait_for DESCRIPTION SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
	local what="$1" timeout="$2"; shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			log "timed out after ${timeout}s waiting for $what; last log lines:"
			tail -n 30 "$CLUSTER_DIR"/logs/*.log >&2 || true
			die "cluster did not come up ($what)"
		fi
		sleep 0.5
	done
}

healthy() {
	for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
	kubectl_ get --raw /readyz >/dev/null 2>&1 || return 1
	kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True
}

start() {
	local name="$1"; shift
	log "starting $name"
	# setsid: an interrupted make must not take the cluster down with it; cluster-down stops it.
	setsid "$@" >"$CLUSTER_DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$CLUSTER_DIR/pids/$name"
}

# --- binaries and packages ---------------------------------------------------------------------
"$REPO_ROOT/hack/install-debs.sh" cluster
KUBE_BIN=$("$REPO_ROOT/hack/build-kube.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
ETCD_BIN=$("$REPO_ROOT/hack/build-etcd.sh")
LOCAL_PATH_BIN=$("$REPO_ROOT/hack/build-local-path.sh")

if [ -d "$CLUSTER_DIR/pids" ]; then
	if healthy; then
		log "cluster already up"
		echo "export KUBECONFIG=$KUBECONFIG_PATH"
		exit 0
	fi
	log "a previous cluster is partly running: tearing it down first"
	"$REPO_ROOT/hack/cluster-down.sh"
fi

NODE_IP=$(node_ip)
mkdir -p "$CLUSTER_DIR"/{pids,logs,pki,etcd,containerd,cni/net.d,cni/ipam,cni/cache,kubelet,images} "$LOCAL_PATH_DIR" "$LOCAL_PATH_VOLUMES"
chmod 700 "$CLUSTER_DIR"

# --- record host state that the cluster changes (restored by cluster-down) ---------------------
: >"$CLUSTER_DIR/sysctls.saved"
for s in "${SAVED_SYSCTLS[@]}"; do
	v=$(sysctl -n "$s" 2>/dev/null) && printf '%s=%s\n' "$s" "$v" >>"$CLUSTER_DIR/sysctls.saved"
done
: >"$CLUSTER_DIR/host-paths.created"
for p in "${HOST_PATHS[@]}"; do
	[ -e "$p" ] || echo "$p" >>"$CLUSTER_DIR/host-paths.created"
done
ip netns list 2>/dev/null | awk '{print $1}' >"$CLUSTER_DIR/netns.before" || true
nft list tables >"$CLUSTER_DIR/nft-tables.before"

# --- PKI ---------------------------------------------------------------------------------------
PKI="$CLUSTER_DIR/pki"
openssl_cert() { # NAME CN O SANS(openssl form or empty) USAGE(serverAuth|clientAuth|both)
	local name="$1" cn="$2" o="$3" sans="$4" usage="$5"
	local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o/CN=$cn"
	local eku="clientAuth"
	case "$usage" in server) eku="serverAuth" ;; both) eku="serverAuth,clientAuth" ;; esac
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[ -n "$sans" ] && echo "subjectAltName=$sans"
	} >"$PKI/$name.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 365 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
log "generating certificates"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
	-keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=tracestream-local-ca" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
openssl_cert apiserver kube-apiserver "" \
	"IP:$API_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" server
openssl_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
openssl_cert admin tracestream-admin system:masters "" client
openssl_cert controller-manager system:kube-controller-manager "" "" client
openssl_cert scheduler system:kube-scheduler "" "" client
openssl_cert kube-proxy system:kube-proxy "" "" client
openssl_cert kubelet "system:node:$NODE_NAME" system:nodes "IP:$NODE_IP,DNS:$NODE_NAME" both
openssl_cert local-path-provisioner tracestream:local-path-provisioner "" "" client
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 600 "$PKI"/*.key

kubeconfig() { # NAME SERVER
	cat >"$CLUSTER_DIR/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tracestream-local
  cluster:
    server: $2
    certificate-authority: $PKI/ca.crt
users:
- name: $1
  user:
    client-certificate: $PKI/$1.crt
    client-key: $PKI/$1.key
contexts:
- name: tracestream-local
  context: {cluster: tracestream-local, user: $1}
current-context: tracestream-local
KC
}
for n in controller-manager scheduler kube-proxy kubelet local-path-provisioner; do kubeconfig "$n" "https://$NODE_IP:$API_PORT"; done
kubeconfig admin "https://127.0.0.1:$API_PORT"
# The admin kubeconfig embeds its certificates so that it can be copied elsewhere.
KUBECONFIG="$CLUSTER_DIR/admin.kubeconfig" "$KUBE_BIN/kubectl" config view --flatten --raw >"$KUBECONFIG_PATH"
chmod 600 "$KUBECONFIG_PATH"

# --- control plane -----------------------------------------------------------------------------
start etcd "$ETCD_BIN/etcd" --name local --data-dir "$CLUSTER_DIR/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn

start kube-apiserver "$KUBE_BIN/kube-apiserver" \
	--bind-address 0.0.0.0 --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
	--etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
	--service-cluster-ip-range "$SERVICE_CIDR" \
	--client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
	--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
	--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
	--profiling=false
wait_for "kube-apiserver /readyz" 120 kubectl_ get --raw /readyz

start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
	--kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
	--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
	--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
	--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
	--service-cluster-ip-range "$SERVICE_CIDR" --profiling=false

start kube-scheduler "$KUBE_BIN/kube-scheduler" \
	--kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
	--authentication-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
	--authorization-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
	--bind-address 127.0.0.1 --leader-elect=false --profiling=false

# --- node: containerd, CNI, kubelet, kube-proxy ------------------------------------------------
CTRD="$CLUSTER_DIR/containerd"
cat >"$CTRD/config.toml" <<TOML
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CTRD/containerd.sock"

[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox has no CAP_SYS_RESOURCE: without this every pod sandbox fails to start.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
TOML

# The bridge keeps pods on a private range: no masquerading, and the isolation chain below drops
# anything from or to the pod range that would leave through another interface.
cat >"$CLUSTER_DIR/cni/net.d/10-tracestream.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "tracestream",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$CLUSTER_DIR/cni/ipam"
      }
    }
  ]
}
JSON

iptables -w -N TRACESTREAM-ISOLATION 2>/dev/null || iptables -w -F TRACESTREAM-ISOLATION
iptables -w -A TRACESTREAM-ISOLATION -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
iptables -w -A TRACESTREAM-ISOLATION -d "$POD_CIDR" ! -i "$BRIDGE" -j DROP
iptables -w -C FORWARD -j TRACESTREAM-ISOLATION 2>/dev/null || iptables -w -I FORWARD 1 -j TRACESTREAM-ISOLATION
# The host's own traffic to the pod and Service ranges must not follow the default route out of
# the machine either (a ClusterIP whose rules kube-proxy has not written yet, a pod IP before the
# first pod exists). So the bridge exists before any pod, and both ranges are routed into it; the
# bridge plugin adopts it and its gateway address.
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
	ip link add "$BRIDGE" type bridge
	ip addr add "$BRIDGE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
	ip link set "$BRIDGE" up
fi
ip route replace "$SERVICE_CIDR" dev "$BRIDGE"

start containerd containerd --config "$CTRD/config.toml"
wait_for "containerd socket" 60 ctr --address "$CTRD/containerd.sock" version

# import_program_image TAR TAG PACKAGE NAME: the image TAG holding only the static program PACKAGE
# (as /NAME, its entrypoint), built with hack/image into TAR unless it is already there, then
# imported into containerd. There is no registry here to pull such small images from.
import_program_image() {
	local tar="$1" tag="$2" pkg="$3" name="$4"
	if [ ! -f "$tar" ]; then
		log "building the $tag image"
		mkdir -p "$(dirname "$tar")"
		(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CLUSTER_DIR/images/$name" "$pkg" &&
			go run ./hack/image --tag "$tag" --out "$tar.tmp" --file "$CLUSTER_DIR/images/$name:/$name" --entrypoint "/$name" --ca-bundle /nonexistent)
		mv "$tar.tmp" "$tar"
	fi
	ctr --address "$CTRD/containerd.sock" -n k8s.io images import "$tar" >/dev/null
}
# The sandbox ("pause") image.
import_program_image "$TRACESTREAM_CACHE/images/pause.tar" "$PAUSE_IMAGE" ./hack/pause pause
# The local-path-provisioner's helper (setup and teardown of volume directories), cached by its source.
helper_sum=$(sha256sum <"$REPO_ROOT/hack/local-path-helper/main.go" | cut -c1-16)
import_program_image "$TRACESTREAM_CACHE/images/local-path-helper-$helper_sum.tar" "$LOCAL_PATH_HELPER_IMAGE" ./hack/local-path-helper helper

cat >"$CLUSTER_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CTRD/containerd.sock
# The host is cgroup v1 and containerd 1.6 does not report its cgroup driver.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
podLogsDir: $CLUSTER_DIR/kubelet/pod-logs
# A shared build machine's disk and memory are not this node's to guard: evict only when nearly out.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
start kubelet "$KUBE_BIN/kubelet" --config "$CLUSTER_DIR/kubelet/config.yaml" \
	--kubeconfig "$CLUSTER_DIR/kubelet.kubeconfig" --root-dir "$CLUSTER_DIR/kubelet/root" \
	--cert-dir "$CLUSTER_DIR/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"

cat >"$CLUSTER_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CLUSTER_DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Masquerade service traffic: return packets then always pass the host, which keeps pod -> Service
# -> pod on the same bridge working whatever br_netfilter does.
iptables: {masqueradeAll: true, localhostNodePorts: false}
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy "$KUBE_BIN/kube-proxy" --config "$CLUSTER_DIR/kube-proxy.yaml"

node_ready() { kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -q True; }
wait_for "node $NODE_NAME Ready" 180 node_ready
default_sa() { kubectl_ -n default get serviceaccount default; }
wait_for "the default ServiceAccount" 60 default_sa

# --- storage: local-path-provisioner and the default StorageClass ------------------------------
# The provisioner runs on the host like the other components (its own certificate, real RBAC). For
# each claim it runs a helper pod on the node that creates (or, once the claim is deleted, removes)
# a directory under LOCAL_PATH_VOLUMES, and makes a hostPath PersistentVolume of it. With
# setupCommand and teardownCommand set it needs no ConfigMap: the helper image has its program.
cat >"$LOCAL_PATH_DIR/config.json" <<JSON
{
  "nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$LOCAL_PATH_VOLUMES"]}],
  "setupCommand": "/helper",
  "teardownCommand": "/helper",
  "cmdTimeoutSeconds": 60
}
JSON
# The provisioner adds the command, its arguments, the volume's parent directory (hostPath, at the
# same path), the node and the ServiceAccount. Root, since the parent directory is root's; of
# root's privileges only those needed to remove what a pod's user left in its volume.
cat >"$LOCAL_PATH_DIR/helperPod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: helper-pod
spec:
  automountServiceAccountToken: false
  containers:
  - name: helper-pod
    image: $LOCAL_PATH_HELPER_IMAGE
    imagePullPolicy: Never
    env:
    - name: LOCAL_PATH_BASE
      value: $LOCAL_PATH_VOLUMES
    securityContext:
      runAsUser: 0
      runAsGroup: 0
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL], add: [DAC_OVERRIDE, FOWNER]}
YAML
kubectl_ apply -f "$REPO_ROOT/hack/local-path/namespace.yaml" -f "$REPO_ROOT/hack/local-path/rbac.yaml" \
	-f "$REPO_ROOT/hack/local-path/storageclass.yaml" >/dev/null
storage_sa() { kubectl_ -n local-path-storage get serviceaccount default; }
wait_for "the default ServiceAccount in local-path-storage" 60 storage_sa
start local-path-provisioner "$LOCAL_PATH_BIN/local-path-provisioner" start \
	--kubeconfig "$CLUSTER_DIR/local-path-provisioner.kubeconfig" \
	--config "$LOCAL_PATH_DIR/config.json" --helper-pod-file "$LOCAL_PATH_DIR/helperPod.yaml" \
	--namespace local-path-storage --service-account-name default
provisioner_started() { grep -q "Started provisioner controller" "$CLUSTER_DIR/logs/local-path-provisioner.log"; }
wait_for "local-path-provisioner to sync its caches" 60 provisioner_started

log "cluster up in ${SECONDS}s (node $NODE_NAME at $NODE_IP, pods $POD_CIDR, services $SERVICE_CIDR)"
echo "export KUBECONFIG=$KUBECONFIG_PATH"
