package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type machine struct {
	cpu, kernel, goVersion, redis, memory, load string
	cores                                       int
}

func describeMachine() machine {
	m := machine{cores: machineCores(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		kb, _ := strconv.Atoi(strings.Fields(line)[1])
		m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		for f := range strings.FieldsSeq(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				m.redis = v
			}
		}
	}
	return m
}

const (
	beginMarker = "<!-- bench:begin (written by make bench; edit outside the markers) -->"
	endMarker   = "<!-- bench:end -->"
)

// writeBetweenMarkers replaces what lies between the bench markers of path with doc, keeping the
// hand-written text around them; a file without markers gets them appended.
func writeBetweenMarkers(path, doc string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	before, after := s, ""
	if i := strings.Index(s, beginMarker); i >= 0 {
		before = s[:i]
		if j := strings.Index(s[i:], endMarker); j >= 0 {
			after = s[i+j+len(endMarker):]
		}
	} else if s != "" && !strings.HasSuffix(s, "\n\n") {
		before += "\n"
	}
	return os.WriteFile(path, []byte(before+beginMarker+"\n"+doc+"\n"+endMarker+after), 0o644)
}

func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func thousands(v float64) string {
	s := f0(v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// medianOf applies median to one figure of each window.
func medianOf(ws []window, f func(window) float64) float64 {
	xs := make([]float64, len(ws))
	for i, w := range ws {
		xs[i] = f(w)
	}
	return median(xs)
}

// ratio is the median over rounds of exporter spans/s ÷ redis-benchmark XADD/s of the same round.
func (r *report) ratio(k runKey) float64 { return median(r.roundRatios(k)) }

// roundRatios are exporter spans/s ÷ redis-benchmark XADD/s, round by round.
func (r *report) roundRatios(k runKey) []float64 {
	ws, rbs := r.exporter[k], r.rb[rbKey{k.format, k.size}]
	var xs []float64
	for i := range min(len(ws), len(rbs)) {
		if rbs[i].xaddPerSec > 0 {
			xs = append(xs, ws[i].spansPerSec/rbs[i].xaddPerSec)
		}
	}
	return xs
}

func noisyRuns(ws []window) int {
	n := 0
	for _, w := range ws {
		if w.noisy {
			n++
		}
	}
	return n
}

// page is the markdown report being written; p appends one formatted piece.
type page struct{ strings.Builder }

func (d *page) p(format string, args ...any) { _, _ = fmt.Fprintf(d, format, args...) } // a strings.Builder never fails

// markdown is the report for docs/performance.md: one section per measurement that ran.
func (r *report) markdown() string {
	var d page
	r.writeHeader(&d)
	r.writeThroughput(&d)
	if len(r.collector) > 0 {
		r.writeCollector(&d)
	}
	if r.latency != nil {
		r.writeLatency(&d)
	}
	if r.memory != nil || r.stall != nil {
		r.writeMemory(&d)
	}
	if r.operator != nil {
		r.writeOperator(&d)
	}
	if r.micro != "" {
		d.p("### Micro-benchmarks (`go test -bench -benchmem`)\n\n```\n%s\n```\n", strings.TrimSpace(r.micro))
	}
	return d.String()
}

// writeHeader says where and how the figures were measured.
func (r *report) writeHeader(d *page) {
	m := r.machine
	_, pinned := cores()
	d.p("## Results of the last `make bench`\n\n")
	d.p("Run on %s: %d cores of %s, %s RAM, Linux %s, %s, Redis %s; load average %s at the start; %d interleaved rounds of %v (after %v of warm-up) per figure; took %v.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 UTC"), m.cores, m.cpu, m.memory, m.kernel, m.goVersion, m.redis, m.load,
		r.opts.rounds, r.opts.duration, r.opts.warmup, r.elapsed.Round(time.Second))
	if pinned {
		d.p("Layout: redis-server alone on core 1; the exporter (GOMAXPROCS 1), the load generator and redis-benchmark on core 0. A run is *noisy* when other processes, or the hypervisor (steal time), took more than %.2f of a core during it.\n\n", noisyCores)
	} else {
		d.p("Layout: **one core only, nothing pinned**: redis-server, the exporter and the load generator share it, so the ratios below understate what a second core gives.\n\n")
	}
}

// writeThroughput is the main table: the exporter next to redis-benchmark, per format, size and
// protocol.
func (r *report) writeThroughput(d *page) {
	d.p("### Throughput next to redis-benchmark\n\n")
	d.p("Spans acknowledged per second (medians), every one checked in Redis afterwards; `redis-benchmark` replays an entry sampled from the exporter's own output with the same `XADD` (key, `MAXLEN ~`, fields), 4 connections (the exporter's writers) and pipeline depth = spans per request, in the same round. CPU columns are µs of CPU per span; *pipeline* is the exporter's mean XADDs per Redis pipeline; *allocs* are the exporter process's heap allocations per span (whole process: gRPC/HTTP, decode, encode, Redis client).\n\n")
	d.p("| format | protocol | spans/req | entry B | spans/s | redis-benchmark XADD/s | ratio, median (rounds) | exporter CPU µs/span | Redis CPU µs/span (redis-benchmark) | load generator µs/span | pipeline | allocs/span | B/span | lost | dup | noisy runs |\n")
	d.p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, format := range r.opts.formats {
		for _, n := range r.opts.sizes {
			var rbRates, rbCPU []float64
			for _, x := range r.rb[rbKey{format, n}] {
				rbRates, rbCPU = append(rbRates, x.xaddPerSec), append(rbCPU, x.redisCPU)
			}
			for _, proto := range r.opts.protocols {
				if k := (runKey{format, proto, n}); len(r.exporter[k]) > 0 {
					r.writeThroughputRow(d, k, median(rbRates), median(rbCPU))
				}
			}
		}
	}
	d.p("\n")
}

// writeThroughputRow is one row of the throughput table; rbRate and rbCPU are redis-benchmark's
// medians for the same format and size.
func (r *report) writeThroughputRow(d *page, k runKey, rbRate, rbCPU float64) {
	ws := r.exporter[k]
	lost, dup := 0, 0
	for _, w := range ws {
		lost += w.delivery.Lost
		dup += w.delivery.Duplicates
	}
	d.p("| %s | %s | %d | %d | %s | %s | **%s** (%s) | %s | %s (%s) | %s | %s | %s | %s | %d | %d | %d/%d |\n",
		k.format, k.protocol, k.size, r.entryBytes[k.format],
		thousands(medianOf(ws, func(w window) float64 { return w.spansPerSec })), thousands(rbRate), f2(r.ratio(k)), rangeOf(r.roundRatios(k)),
		f2(medianOf(ws, func(w window) float64 { return w.serverCPU })),
		f2(medianOf(ws, func(w window) float64 { return w.redisCPU })), f2(rbCPU),
		f2(medianOf(ws, func(w window) float64 { return w.loadgenCPU })),
		f0(medianOf(ws, func(w window) float64 { return w.pipeline })),
		f2(medianOf(ws, func(w window) float64 { return w.allocs })),
		f0(medianOf(ws, func(w window) float64 { return w.allocBytes })),
		lost, dup, noisyRuns(ws), len(ws))
}

// writeCollector compares the Collector's CPU per span with the exporter's json runs.
func (r *report) writeCollector(d *page) {
	d.p("### The OpenTelemetry Collector, measured the same way\n\n")
	d.p("otlp receiver → batch processor → nop exporter, built from the module proxy by `hack/otelcol.sh`, on core 0 like the exporter; the exporter's figures are json from the table above.\n\n")
	d.p("| protocol | spans/req | Collector spans/s | Collector CPU µs/span | exporter CPU µs/span (json) | exporter ÷ Collector CPU, median of rounds (rounds) |\n|---|---|---|---|---|---|\n")
	for _, n := range r.opts.sizes {
		for _, proto := range r.opts.protocols {
			cs := r.collector[runKey{"", proto, n}]
			es := r.exporter[runKey{"json", proto, n}]
			if len(cs) == 0 {
				continue
			}
			cc := medianOf(cs, func(w window) float64 { return w.serverCPU })
			ec := medianOf(es, func(w window) float64 { return w.serverCPU })
			// The exporter's and the Collector's runs of a round follow each other: their
			// ratio is compared within the round, as the throughput ratio is, so that a slow
			// stretch of a shared machine does not count against one side only.
			var xs []float64
			for i := range min(len(cs), len(es)) {
				if cs[i].serverCPU > 0 {
					xs = append(xs, es[i].serverCPU/cs[i].serverCPU)
				}
			}
			d.p("| %s | %d | %s | %s | %s | **%s** (%s) |\n", proto, n, thousands(medianOf(cs, func(w window) float64 { return w.spansPerSec })),
				f2(cc), f2(ec), f2(median(xs)), rangeOf(xs))
		}
	}
	d.p("\n")
}

func (r *report) writeLatency(d *page) {
	w := r.latency
	d.p("### Latency at half of the maximum\n\n")
	where := "on core 0 with the load generator, as above"
	if r.opts.latencyCPUs != "" {
		where = "on CPUs " + r.opts.latencyCPUs
	}
	d.p("json over gRPC, 100 spans per request, sent at an even %s spans/s (half the median maximum above) by 64 clients, the exporter %s; latency is from when a request was due to its OK, so it includes the Redis write it waits for.\n\n", thousands(r.latRate), where)
	d.p("| achieved spans/s | p50 | p99 | p99.9 | max | p50 / p99 / p99.9 from the send | failed | lost |\n|---|---|---|---|---|---|---|---|\n")
	d.p("| %s | %s | %s | %s | %s | %s / %s / %s | %s | %d |\n\n", thousands(w.spansPerSec), ms(w.p50), ms(w.p99), ms(w.p999), ms(w.maxLat),
		ms(w.s50), ms(w.s99), ms(w.s999), failures(w.failed), w.delivery.Lost)
}

func (r *report) writeMemory(d *page) {
	d.p("### Memory\n\n")
	d.p("A fresh exporter, json over gRPC, 100 spans per request at a fixed rate; RSS sampled every 20 ms. In the stall run redis-server is stopped (SIGSTOP) for %v after the warm-up while 3,000 clients keep sending, more than the exporter's in-flight bound (`delivery.maxInFlightSpans`, 200,000 spans) admits.\n\n", r.opts.stall)
	d.p("| run | offered spans/s | acknowledged spans/s | RSS at start | max RSS | failed requests | delivery |\n|---|---|---|---|---|---|---|\n")
	for _, x := range []struct {
		name string
		m    *memoryRun
	}{{"steady", r.memory}, {fmt.Sprintf("Redis stalled %v", r.opts.stall), r.stall}} {
		if x.m == nil {
			continue
		}
		d.p("| %s | %s | %s | %.1f MB | **%.1f MB** | %s | %s |\n", x.name, thousands(x.m.rate), thousands(x.m.achieved),
			float64(x.m.startRSS)/1024, float64(x.m.maxRSS)/1024, failures(x.m.failed), x.m.delivery)
	}
	d.p("\n")
}

// writeOperator shows the BENCH operatorscale line that test/bench/operatorscale printed.
func (r *report) writeOperator(d *page) {
	o := r.operator
	d.p("### Operator at scale\n\n")
	d.p("`test/bench/operatorscale`: the real manager binary against envtest's kube-apiserver and etcd, %s RedisTraceExporters with lag reporting on, pointing at a real redis-server.\n\n", o["crs"])
	d.p("| CRs | all reconciled in | manager RSS (peak) | API requests per CR | manager CPU per CR | status refresh period | steady CPU per CR per minute | steady API requests per CR per minute | Redis commands per CR per minute |\n|---|---|---|---|---|---|---|---|---|\n")
	d.p("| %s | %s s | %s MB (%s MB) | %s | %s ms | %s s | %s ms | %s | %s |\n\n", o["crs"], o["reconcile_s"], o["manager_rss_mb"], o["manager_hwm_mb"],
		o["api_requests_per_cr"], o["cpu_ms_per_cr"], o["refresh_period_s"], o["steady_cpu_ms_per_cr_min"], o["steady_api_requests_per_cr_min"], o["redis_cmds_per_cr_min"])
}
func failures(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

// rangeOf is the lowest and highest of xs, as "0.91–1.05".
func rangeOf(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return f2(slices.Min(xs)) + "–" + f2(slices.Max(xs))
}
