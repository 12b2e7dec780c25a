#!/usr/bin/env bash
# otelcol.sh [--check]: builds a minimal OpenTelemetry Collector (otlp receiver, batch processor,
# nop, otlp and otlphttp exporters) from the Go module proxy with the OpenTelemetry Collector
# Builder, caches it by version and component set
# ($TRACESTREAM_CACHE/tools/otelcol-nop-otlp-VERSION/otelcol-bench) and prints its path. A warm
# call only checks that the file exists. make bench runs it next to our exporter to compare CPU per
# span (otlp -> batch -> nop); the chaos suite's TestCollector* cases run it as a real Collector
# forwarding to our exporter with each compression it offers (otlp and otlphttp exporters).
# --check also starts it on loopback ports, sends one OTLP/HTTP request and stops it.
#
# The config the harness should use (loopback only; metrics level none turns off the Collector's
# own Prometheus listener, by default on localhost:8888, so nothing else binds a port):
#
#   receivers:
#     otlp:
#       protocols:
#         grpc: {endpoint: "127.0.0.1:GRPC_PORT"}
#         http: {endpoint: "127.0.0.1:HTTP_PORT"}
#   processors: {batch: {}}
#   exporters: {nop: {}}
#   service:
#     telemetry: {metrics: {level: none}, logs: {level: warn}}
#     pipelines:
#       traces: {receivers: [otlp], processors: [batch], exporters: [nop]}
#
# (or exporters: {otlp: {endpoint: ..., compression: zstd, tls: {insecure: true}}} /
#  {otlphttp: {endpoint: http://..., compression: lz4}} to forward).
#
# run as: otelcol-bench --config=FILE
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Component modules (and the builder) are v0.x, confmap providers v1.x; both come out of the same
# release. v0.163.0 and v0.164.0 cannot be built from the proxy: their otlpreceiver needs
# go.opentelemetry.io/collector/internal/statusutil, whose zip the proxy refuses (403).
OTELCOL_VERSION="${OTELCOL_VERSION:-v0.162.0}"
OTELCOL_STABLE_VERSION="${OTELCOL_STABLE_VERSION:-v1.68.0}"

# The directory names the component set: a build without the otlp exporters is never reused.
dir="$TRACESTREAM_CACHE/tools/otelcol-nop-otlp-$OTELCOL_VERSION"
bin="$dir/otelcol-bench"

build() {
	[ -x "$bin" ] && return 0
	local builder tmp v="$OTELCOL_VERSION" s="$OTELCOL_STABLE_VERSION" m=go.opentelemetry.io/collector
	builder="$("$REPO_ROOT/hack/install-tool.sh" builder "$m/cmd/builder" "$v")"
	log "building otelcol-bench $v with the collector builder (a few minutes; cached afterwards)"
	tmp="$(mktemp -d "$TRACESTREAM_CACHE/tools/.otelcol-bench.XXXXXX")"
	cat >"$tmp/manifest.yaml" <<-EOF
		dist:
		  module: tracestream.local/otelcol-bench
		  name: otelcol-bench
		  description: otlp -> batch -> nop/otlp/otlphttp, for make bench and the chaos suite
		  version: ${v#v}
		  output_path: $tmp
		receivers: [{gomod: $m/receiver/otlpreceiver $v}]
		processors: [{gomod: $m/processor/batchprocessor $v}]
		exporters:
		  - gomod: $m/exporter/nopexporter $v
		  - gomod: $m/exporter/otlpexporter $v
		  - gomod: $m/exporter/otlphttpexporter $v
		providers:
		  - gomod: $m/confmap/provider/envprovider $s
		  - gomod: $m/confmap/provider/fileprovider $s
		  - gomod: $m/confmap/provider/yamlprovider $s
	EOF
	# The builder runs go get / mod tidy / mod download / build with this environment: the module
	# proxy only (no direct VCS fallback), our Go toolchain only.
	go_build_env
	export GOTOOLCHAIN=local GOPROXY
	GOPROXY="$(go env GOPROXY | tr ',|' '\n\n' | grep -vx -e direct -e off | paste -sd, -)"
	[ -n "$GOPROXY" ] || { rm -rf "$tmp"; die "GOPROXY names no module proxy"; }
	"$builder" --config "$tmp/manifest.yaml" >"$tmp/build.log" 2>&1 ||
		{ cat "$tmp/build.log" >&2; rm -rf "$tmp"; die "building otelcol-bench $v failed"; }
	[ -x "$tmp/otelcol-bench" ] || { rm -rf "$tmp"; die "the builder did not produce otelcol-bench"; }
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# check: run it for a couple of seconds on free loopback ports, POST one empty OTLP/HTTP JSON
# request (expect 200), make sure it listens on nothing but those ports, and stop it by its PID.
work="" pid=""
check() {
	local grpc http code listens
	work="$(mktemp -d)"
	trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
	read -r grpc http < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
	cat >"$work/config.yaml" <<-EOF
		receivers:
		  otlp:
		    protocols:
		      grpc: {endpoint: "127.0.0.1:$grpc"}
		      http: {endpoint: "127.0.0.1:$http"}
		processors: {batch: {}}
		exporters: {nop: {}}
		service:
		  telemetry: {metrics: {level: none}, logs: {level: warn}}
		  pipelines:
		    traces: {receivers: [otlp], processors: [batch], exporters: [nop]}
	EOF
	"$bin" --config="$work/config.yaml" >"$work/otelcol.log" 2>&1 &
	pid=$!
	sleep 2
	kill -0 "$pid" 2>/dev/null || { cat "$work/otelcol.log" >&2; die "otelcol-bench exited"; }
	code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		--data '{"resourceSpans":[]}' "http://127.0.0.1:$http/v1/traces")" || code=none
	[ "$code" = 200 ] || { cat "$work/otelcol.log" >&2; die "POST /v1/traces answered $code, not 200"; }
	listens="$(ss -Hltnp | grep "pid=$pid," | awk '{print $4}' | sort | paste -sd' ' -)"
	[ "$listens" = "$(printf '127.0.0.1:%s\n' "$grpc" "$http" | sort | paste -sd' ' -)" ] ||
		die "otelcol-bench listens on [$listens], expected only 127.0.0.1:$grpc and 127.0.0.1:$http"
	log "otelcol-bench $OTELCOL_VERSION ok: POST /v1/traces -> 200, listening on $listens only"
}

if [ ! -x "$bin" ]; then
	mkdir -p "$TRACESTREAM_CACHE/tools"
	with_lock "$TRACESTREAM_CACHE/tools/.otelcol-bench.lock" build
fi
[ "${1:-}" = --check ] && check
echo "$bin"
