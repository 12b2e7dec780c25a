#!/usr/bin/env bash
# End-to-end throughput next to the sink's own limit, measured in the same run:
#   1. BenchmarkEndToEndGRPC: OTLP/gRPC client -> exporter -> redis-server, 100 spans per request,
#      every span acknowledged after Redis; it saves one real entry it wrote.
#   2. redis-benchmark XADD of that same entry (same fields, same size), pipeline depth 100, on a
#      fresh redis-server.
# Prints both and their ratio. The per-span micro-benchmarks (decode, encode, sink) run with
# -benchmem. A busy machine (load average above 1.5) is reported as noisy: compare ratios, not
# absolute figures. The full harness (taskset layout, HTTP, formats, latency, RSS) is the
# performance issue's.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO_ROOT/hack/install-debs.sh" redis
cd "$REPO_ROOT"

load=$(cut -d' ' -f1 /proc/loadavg)
noisy=""
awk -v l="$load" 'BEGIN { exit !(l > 1.5) }' && noisy=" (NOISY: load average $load)"

work=$(mktemp -d)
port=""
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log "micro-benchmarks (per span, -benchmem)"
go test -run '^$' -bench . -benchmem -benchtime 1s ./internal/exporter/encode/ ./internal/exporter/otlpwire/ | grep -E '^(Benchmark|ok)'

log "end to end: OTLP/gRPC -> exporter -> redis-server"
out=$(BENCH_SAMPLE_ENTRY="$work/entry" go test -run '^$' -bench EndToEndGRPC -benchtime 5s ./internal/exporter/service/)
echo "$out" | grep -E '^(Benchmark|ok)'
e2e=$(echo "$out" | awk '/spans\/s/ {for (i=1;i<NF;i++) if ($(i+1)=="spans/s") print $i}')
[ -s "$work/entry" ] || die "the end-to-end benchmark wrote no sample entry"
tp=$(sed -n 1p "$work/entry")
data=$(sed -n 2p "$work/entry")

log "redis-benchmark XADD of the same entry, pipeline 100, 8 connections"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pid=$!
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
rb=$(redis-benchmark -p "$port" -c 8 -P 100 -n 1000000 -q XADD bench '*' traceparent "$tp" data "$data" | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)

printf '\nend to end (json, gRPC, 100 spans/request): %s spans/s\nredis-benchmark XADD (same entry, P=100):   %s XADD/s\nratio: %s%s\n' \
	"$e2e" "$rb" "$(awk -v a="$e2e" -v b="$rb" 'BEGIN { printf "%.2f", a / b }')" "$noisy"
