# shellcheck shell=bash
# Settings shared by hack/demo.sh and hack/demo-down.sh. Sourced, never executed.
# The local cluster's settings (its kubeconfig, the bridge address, where the demo's files go).
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

VERSION="${VERSION:-0.1.0-dev}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
OPERATOR_NS="${OPERATOR_NS:-tracestream-system}"
DEMO_NS="${DEMO_NS:-tracestream-demo}"
REDIS_IMAGE="${REDIS_IMAGE:-redis:7.4-alpine}"
LOCAL_KUBECONFIG="$KUBECONFIG_PATH"
DEMO_BIN="$REPO_ROOT/bin/demo"
# The local demo's Redis listens on the cluster bridge (pods reach it, the network outside does not).
REDIS_BRIDGE_IP="$BRIDGE_IP"
REDIS_PORT="${DEMO_REDIS_PORT:-16379}"
REDIS_HOST=127.0.0.1

# An existing cluster when KUBE_CONTEXT is set or KUBECONFIG names another cluster's config.
if [ -n "${KUBE_CONTEXT:-}" ] || { [ -n "${KUBECONFIG:-}" ] && [ "$KUBECONFIG" != "$LOCAL_KUBECONFIG" ]; }; then
	DEMO_MODE=existing
	KUBECTL_BIN="$(command -v kubectl || true)"
else
	DEMO_MODE=local
	export KUBECONFIG="$LOCAL_KUBECONFIG"
	IMAGE="${IMG:-ghcr.io/tracestream/tracestream:$VERSION}"
	KUBECTL_BIN=""
fi
mkdir -p "$DEMO_DIR" "$DEMO_BIN"

# Tools: redis-cli (Debian's redis-tools), helm and kubectl (cached builds), the two examples.
"$REPO_ROOT/hack/install-debs.sh" redis >/dev/null
HELM="$("$REPO_ROOT/hack/install-tool.sh" helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION")"
[ -n "$KUBECTL_BIN" ] || KUBECTL_BIN="$("$REPO_ROOT/hack/build-kube.sh" kubectl)/kubectl"
kubectl() { "$KUBECTL_BIN" ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} "$@"; }
(cd "$REPO_ROOT" && go build -o "$DEMO_BIN/" ./examples/sendspans ./examples/consumer)

# start_host_redis runs the local demo's redis-server unless it already runs.
start_host_redis() {
	local pidfile="$DEMO_REDIS_PIDFILE"
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		log "redis-server already running (pid $(cat "$pidfile"))"
		return
	fi
	if redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1; then
		die "port $REDIS_PORT is taken by a server this demo did not start; set DEMO_REDIS_PORT"
	fi
	redis-server --bind "$REDIS_BRIDGE_IP" 127.0.0.1 --port "$REDIS_PORT" --protected-mode no \
		--save "" --appendonly no --dir "$DEMO_DIR" --daemonize yes --pidfile "$pidfile" \
		--logfile "$DEMO_DIR/redis.log"
	for _ in $(seq 1 50); do
		redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null || die "redis-server did not start: see $DEMO_DIR/redis.log"
	log "redis-server started on $REDIS_BRIDGE_IP:$REDIS_PORT (pid $(cat "$pidfile"))"
}

# port_forward TARGET PORT VAR: kubectl port-forward in the background (stopped when the script
# exits) and the chosen local port in VAR.
PORT_FORWARDS=()
port_forward() {
	local out="$DEMO_DIR/port-forward-${1//\//-}.out"
	# The binary itself, not the kubectl function: $! must be kubectl's PID for the trap to stop it.
	"$KUBECTL_BIN" ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} -n "$DEMO_NS" port-forward "$1" ":$2" >"$out" 2>&1 &
	PORT_FORWARDS+=("$!")
	trap 'kill "${PORT_FORWARDS[@]}" 2>/dev/null || true' EXIT
	local port=""
	for _ in $(seq 1 100); do
		port="$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$out" | head -n1)"
		[ -n "$port" ] && break
		sleep 0.1
	done
	[ -n "$port" ] || die "kubectl port-forward $1 failed: $(cat "$out")"
	printf -v "$3" '%s' "$port"
}
