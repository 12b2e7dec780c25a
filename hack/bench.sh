#!/usr/bin/env bash
# make bench: every performance figure we quote, measured in one run, written into
# docs/performance.md (between its bench markers) and printed.
#   1. micro-benchmarks with -benchmem: OTLP decode, encode, the RESP write to a real redis-server;
#   2. test/bench/operatorscale: the manager with BENCH_CRS (500) RedisTraceExporters on envtest;
#   3. test/bench (the harness, under `taskset -c 0`; it pins redis-server to core 1): the exporter
#      end to end next to redis-benchmark XADD of the same entries, the OpenTelemetry Collector
#      measured the same way, latency at half load, memory at a fixed rate and with Redis stalled.
# Knobs: BENCH_ROUNDS (3), BENCH_DURATION (3s), BENCH_CRS (500), BENCH_COLLECTOR=0 skips the
# Collector (its first build takes minutes), BENCH_OUT (docs/performance.md; empty prints only).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/hack/install-debs.sh" redis
cd "$REPO_ROOT"

rounds="${BENCH_ROUNDS:-3}"
duration="${BENCH_DURATION:-3s}"
crs="${BENCH_CRS:-500}"
out="${BENCH_OUT-docs/performance.md}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

otelcol=""
if [ "${BENCH_COLLECTOR:-1}" != 0 ]; then
	otelcol=$(hack/otelcol.sh)
fi
kubebuilder_assets=$(hack/envtest-assets.sh)

log "building the exporter and the harness"
CGO_ENABLED=0 go build -trimpath -o "$work/exporter" ./cmd/exporter
go build -o "$work/bench" ./test/bench
go build -o "$work/operatorscale" ./test/bench/operatorscale

log "micro-benchmarks (-benchmem)"
go test -run '^$' -bench . -benchmem -benchtime 1s -count 1 \
	./internal/exporter/otlpwire/ ./internal/exporter/encode/ ./internal/exporter/pipeline/ ./internal/exporter/sink/ \
	| grep -E '^Benchmark' | tee "$work/micro.txt"

log "operator at scale: $crs RedisTraceExporters"
KUBEBUILDER_ASSETS="$kubebuilder_assets" "$work/operatorscale" -crs "$crs" | tee "$work/operator.txt"

load=$(cut -d' ' -f1-3 /proc/loadavg)
log "end to end (load average $load)"
taskset -c 0 "$work/bench" -exporter "$work/exporter" -otelcol "$otelcol" \
	-micro "$work/micro.txt" -operator "$work/operator.txt" \
	-rounds "$rounds" -duration "$duration" -out "$out"
