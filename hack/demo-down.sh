#!/usr/bin/env bash
# demo-down.sh: removes what hack/demo.sh created (the demo namespace, the operator release and
# the local demo Redis). The cluster itself stays; make cluster-down stops the local one.
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"

if [ "$DEMO_MODE" = local ] && [ ! -f "$KUBECONFIG" ]; then
	log "the local cluster is not up: nothing to remove there"
else
	kubectl delete namespace "$DEMO_NS" --ignore-not-found --wait --timeout=3m
	if "$HELM" status tracestream -n "$OPERATOR_NS" ${KUBE_CONTEXT:+--kube-context "$KUBE_CONTEXT"} >/dev/null 2>&1; then
		"$HELM" uninstall tracestream -n "$OPERATOR_NS" ${KUBE_CONTEXT:+--kube-context "$KUBE_CONTEXT"} --wait
	fi
	kubectl delete namespace "$OPERATOR_NS" --ignore-not-found --wait --timeout=3m
	# helm never deletes CRDs. On the local cluster the demo installed it, so the demo removes it;
	# on a cluster of yours it stays, because deleting it would delete every RedisTraceExporter.
	if [ "$DEMO_MODE" = local ]; then
		kubectl delete -f "$REPO_ROOT/charts/tracestream/crds/" --ignore-not-found
	else
		log "kept the RedisTraceExporter CRD (kubectl delete crd redistraceexporters.tracestream.io removes it and every RedisTraceExporter)"
	fi
fi
pidfile="$DEMO_DIR/redis.pid"
if [ -f "$pidfile" ]; then
	pid="$(cat "$pidfile")"
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		log "stopped the demo redis-server (pid $pid)"
	fi
fi
rm -rf "$DEMO_DIR"
log "demo removed"
