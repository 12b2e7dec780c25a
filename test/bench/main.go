// Command bench is the end-to-end benchmark harness behind `make bench`: it measures the exporter
// (OTLP client -> exporter -> redis-server, every span checked in Redis afterwards) side by side
// with redis-benchmark XADD of the same entries in the same run, and writes docs/performance.md.
//
// Layout on a machine with two or more cores: redis-server is pinned alone to core 1, so it has a
// whole core in both measurements; the harness (which is the load generator), the exporter,
// redis-benchmark and the Collector run on core 0. hack/bench.sh starts the harness under
// `taskset -c 0`, so everything it starts inherits that core, and it pins redis-server itself.
//
// Runs are interleaved (redis-benchmark, then the exporter over each protocol, round after round)
// and the table shows medians; a run during which other processes used more than a tenth of a
// core is marked noisy.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchMaxLen is the MAXLEN ~ of every XADD: the production command shape, never reached, so
// that every span stays in Redis to be checked.
const benchMaxLen = 100_000_000

type options struct {
	exporter, otelcol       string
	micro, operator         string
	out                     string
	formats, protocols      []string
	sizes                   []int
	rounds                  int
	warmup, duration        time.Duration
	workers, connections    int
	fixedRate               float64
	stall                   time.Duration
	skipLatency, skipMemory bool
	latencyCPUs             string
	latencyRate             float64
	profileDir              string
}

func main() {
	var o options
	var formats, protocols, sizes string
	flag.StringVar(&o.exporter, "exporter", "bin/exporter", "exporter binary")
	flag.StringVar(&o.otelcol, "otelcol", "", "OpenTelemetry Collector binary (otlp receiver, batch processor, nop exporter); empty skips the comparison")
	flag.StringVar(&o.micro, "micro", "", "file with the output of the go test -bench micro-benchmarks, to include")
	flag.StringVar(&o.operator, "operator", "", "file with the output of test/bench/operatorscale, to include")
	flag.StringVar(&o.out, "out", "docs/performance.md", "document to write the results into (between its bench markers); empty prints only")
	flag.StringVar(&formats, "formats", "json,flat,otlp", "stream encodings to measure")
	flag.StringVar(&protocols, "protocols", "grpc,http", "OTLP protocols to measure")
	flag.StringVar(&sizes, "sizes", "100,1000", "spans per request to measure")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the table shows medians")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured start of each run")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured window of each run")
	flag.IntVar(&o.workers, "workers", 16, "requests in flight at once in throughput runs")
	flag.IntVar(&o.connections, "connections", 4, "client connections (gRPC; HTTP/1.1 uses one per request in flight)")
	flag.Float64Var(&o.fixedRate, "fixed-rate", 100_000, "spans/s of the memory measurement")
	flag.DurationVar(&o.stall, "stall", 4*time.Second, "how long redis-server is stopped (SIGSTOP) in the stall measurement")
	flag.StringVar(&o.profileDir, "profile-dir", "", "save a CPU profile of the exporter (admin.debug's /debug/pprof) for the first run of each format, protocol and size here")
	flag.StringVar(&o.latencyCPUs, "latency-cpus", "", "CPUs of the exporter in the latency measurement (taskset -c, e.g. 1 or 0,1); empty keeps it on core 0 with the load generator, as in the throughput runs")
	flag.Float64Var(&o.latencyRate, "latency-rate", 0, "spans/s of the latency measurement; 0 is half the measured maximum")
	flag.BoolVar(&o.skipLatency, "skip-latency", false, "skip the latency measurement")
	flag.BoolVar(&o.skipMemory, "skip-memory", false, "skip the memory measurements")
	flag.Parse()
	o.formats, o.protocols = strings.Split(formats, ","), strings.Split(protocols, ",")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail(fmt.Errorf("-sizes: %q is not a positive number", s))
		}
		o.sizes = append(o.sizes, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if err != nil {
		fail(err)
	}
	doc := rep.markdown()
	fmt.Println(doc)
	if o.out != "" {
		if err := writeBetweenMarkers(o.out, doc); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", o.out)
	}
	if rep.lost > 0 {
		fail(fmt.Errorf("%d acknowledged spans were not found in Redis", rep.lost))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// cores says where things run: redis on its own core when the machine has two.
func cores() (redisCPUs string, pinned bool) {
	if machineCores() >= 2 {
		return "1", true
	}
	return "", false
}

// machineCores counts the machine's CPUs; runtime.NumCPU would count only those of the harness's
// own affinity mask (core 0).
func machineCores() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return max(1, n)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
