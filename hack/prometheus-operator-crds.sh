#!/usr/bin/env bash
# prometheus-operator-crds.sh: print a directory holding the prometheus-operator's CRDs at a
# pinned version, from the Go module proxy (the module cache keeps it by version), so that tests
# can apply the chart's ServiceMonitor and PrometheusRule and the operator's PodMonitor to a real
# API server.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
mod="github.com/prometheus-operator/prometheus-operator"
dir="$(GOFLAGS=-mod=mod GOWORK=off go mod download -json "$mod@$PROMETHEUS_OPERATOR_VERSION" \
	| sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
crds="$dir/example/prometheus-operator-crd"
for kind in servicemonitors prometheusrules podmonitors; do
	[ -f "$crds/monitoring.coreos.com_$kind.yaml" ] || die "no $kind CRD in $mod@$PROMETHEUS_OPERATOR_VERSION"
done
echo "$crds"
