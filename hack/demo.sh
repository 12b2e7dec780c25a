#!/usr/bin/env bash
# demo.sh: the whole pipeline on one machine, with progress, idempotently.
#
#   local (default)    starts the local single-node cluster (hack/cluster-up.sh), builds and loads
#                      the image, runs a redis-server on the host (on the cluster bridge's address,
#                      which pods reach and nothing outside the machine does).
#   existing cluster   when KUBE_CONTEXT is set, or KUBECONFIG names another cluster: IMAGE must
#                      name an image that cluster can pull; Redis runs in the cluster (REDIS_IMAGE)
#                      and the host reaches the Services through kubectl port-forward.
#
# Then: install the chart, apply a RedisTraceExporter, send spans with the OpenTelemetry SDK
# (examples/sendspans), read part of them with a consumer group (examples/consumer), and show
# what a user wants to see. hack/demo-down.sh undoes it.
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"

if [ "$DEMO_MODE" = existing ] && [ -z "${IMAGE:-}" ]; then
	die "with KUBECONFIG/KUBE_CONTEXT pointing at an existing cluster, set IMAGE= to a Tracestream image that cluster can pull (for example IMAGE=registry.example/tracestream:$VERSION after make image and a push)"
fi
SPANS="${SPANS:-300}"
step_no=0
STEPS=8
step() { step_no=$((step_no + 1)); printf '\n\033[1m[%d/%d] %s\033[0m\n' "$step_no" "$STEPS" "$*" >&2; }
started=$SECONDS

step "Cluster ($([ "$DEMO_MODE" = local ] && echo "local single-node cluster" || echo "existing cluster: $(kubectl config current-context)"))"
if [ "$DEMO_MODE" = local ]; then
	"$REPO_ROOT/hack/cluster-up.sh"
fi
kubectl get nodes -o wide

step "Image"
if [ "$DEMO_MODE" = local ]; then
	make -C "$REPO_ROOT" --no-print-directory image VERSION="$VERSION" >/dev/null
	"$REPO_ROOT/hack/cluster-load-image.sh" "$REPO_ROOT/bin/tracestream-image.tar"
	image_id="$(sha256sum "$REPO_ROOT/bin/tracestream-image.tar" | cut -c1-16)"
else
	image_id="$IMAGE"
fi
log "image $IMAGE"

step "Operator (Helm chart charts/tracestream into $OPERATOR_NS)"
kubectl apply --server-side --force-conflicts -f "$REPO_ROOT/charts/tracestream/crds/" >/dev/null
"$HELM" upgrade --install tracestream "$REPO_ROOT/charts/tracestream" ${KUBE_CONTEXT:+--kube-context "$KUBE_CONTEXT"} \
	--namespace "$OPERATOR_NS" --create-namespace --wait --timeout 5m \
	--set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
	--set-string "podAnnotations.tracestream\.io/image-id=${image_id//[^a-zA-Z0-9._-]/-}" >/dev/null
kubectl -n "$OPERATOR_NS" get deploy tracestream-manager

step "Redis"
kubectl create namespace "$DEMO_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
if [ "$DEMO_MODE" = local ]; then
	start_host_redis
	REDIS_IN_CLUSTER="$REDIS_BRIDGE_IP:$REDIS_PORT"
else
	kubectl -n "$DEMO_NS" apply --server-side -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, labels: {app: redis}}
spec:
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 999, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: redis
        image: $REDIS_IMAGE
        args: ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        ports: [{containerPort: 6379}]
        readinessProbe: {exec: {command: ["redis-cli", "ping"]}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: redis}
spec: {selector: {app: redis}, ports: [{port: 6379}]}
EOF
	kubectl -n "$DEMO_NS" rollout status deploy/redis --timeout=3m
	# The Service's ClusterIP rather than its DNS name: works without cluster DNS too.
	REDIS_IN_CLUSTER="$(kubectl -n "$DEMO_NS" get svc redis -o jsonpath='{.spec.clusterIP}'):6379"
	# Forward to the one running Redis pod, not to one that a rollout is terminating.
	for _ in $(seq 1 120); do
		redis_pods="$(kubectl -n "$DEMO_NS" get pods -l app=redis -o name)"
		[ "$(wc -w <<<"$redis_pods")" -eq 1 ] && break
		sleep 1
	done
	port_forward "$redis_pods" 6379 REDIS_PORT
fi
log "Redis for the exporter: $REDIS_IN_CLUSTER; for this script: $REDIS_HOST:$REDIS_PORT"

step "RedisTraceExporter $DEMO_NS/demo"
kubectl -n "$DEMO_NS" apply --server-side -f - >/dev/null <<EOF
apiVersion: tracestream.io/v1alpha1
kind: RedisTraceExporter
metadata:
  name: demo
spec:
  replicas: 2
  redis:
    mode: standalone
    addresses: ["$REDIS_IN_CLUSTER"]
  stream:
    keyTemplate: "traces:{service.name}"
    format: json
    maxLen: 100000
  lag:
    refreshInterval: 2s
EOF
kubectl -n "$DEMO_NS" wait rte/demo --for=condition=Ready --timeout=5m >/dev/null
kubectl -n "$DEMO_NS" get rte demo

step "Sending $SPANS spans with the OpenTelemetry Go SDK (examples/sendspans)"
if [ "$DEMO_MODE" = local ]; then
	otlp="$(kubectl -n "$DEMO_NS" get svc demo -o jsonpath='{.spec.clusterIP}'):4317"
else
	port_forward svc/demo 4317 OTLP_PORT
	otlp="127.0.0.1:$OTLP_PORT"
fi
"$DEMO_BIN/sendspans" --endpoint "$otlp" --spans "$SPANS" --services checkout,payment

step "A consumer group reads part of traces:checkout (examples/consumer)"
timeout 120 "$DEMO_BIN/consumer" --redis "$REDIS_HOST:$REDIS_PORT" --stream traces:checkout --group demo-readers \
	--consumer demo-1 --count 40 >"$DEMO_DIR/consumer.out"
head -n 3 "$DEMO_DIR/consumer.out"
echo "..."
tail -n 1 "$DEMO_DIR/consumer.out"

step "What the operator reports"
# Wait for a status refresh (refreshInterval 2s) that saw the stream as it is now, group included.
want_len="$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" XLEN traces:checkout)"
for _ in $(seq 1 60); do
	seen="$(kubectl -n "$DEMO_NS" get rte demo -o jsonpath='{range .status.streams[?(@.name=="traces:checkout")]}{.length}{range .groups[*]} {.name}{end}{end}')"
	[[ "$seen" == "$want_len "*demo-readers* ]] && break
	sleep 1
done
echo "\$ kubectl get rte -n $DEMO_NS"
kubectl -n "$DEMO_NS" get rte
echo
echo "\$ kubectl get rte demo -n $DEMO_NS -o jsonpath='{range .status.streams[*]}...'"
kubectl -n "$DEMO_NS" get rte demo -o jsonpath='{range .status.streams[*]}{.name}{"\tlength "}{.length}{range .groups[*]}{"\tgroup "}{.name}{" lag "}{.lag}{" pending "}{.pending}{end}{"\n"}{end}'
echo
echo "\$ kubectl get rte demo -n $DEMO_NS -o jsonpath='{.status.exporter}'"
kubectl -n "$DEMO_NS" get rte demo -o jsonpath='{.status.exporter}'
echo
echo
echo "\$ redis-cli XREVRANGE traces:checkout + - COUNT 2"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" XREVRANGE traces:checkout + - COUNT 2

cat <<EOF

Done in $((SECONDS - started))s. Tracestream runs in $OPERATOR_NS; the demo exporter in $DEMO_NS.
$([ "$DEMO_MODE" = existing ] && echo "(The port-forwards end with this script: kubectl -n $DEMO_NS port-forward svc/demo 4317 for more.)")
  send more:      $DEMO_BIN/sendspans --endpoint $otlp
  read more:      $DEMO_BIN/consumer --redis $REDIS_HOST:$REDIS_PORT --stream traces:payment --group demo-readers --count 10
  watch:          kubectl get rte -A -w$([ "$DEMO_MODE" = local ] && echo "   (KUBECONFIG=$KUBECONFIG)")
Tear down:
  make demo-down      removes the demo, the operator and the demo Redis (the cluster stays up)
$([ "$DEMO_MODE" = local ] && echo "  make cluster-down   stops the local cluster and restores the host")
EOF
