package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tracestream/tracestream/test/bench/internal/proc"
	"github.com/tracestream/tracestream/test/bench/loadgen"
)

type runKey struct {
	format, protocol string
	size             int
}

type rbKey struct {
	format string
	size   int
}

// window is what one measured window cost, per span (µs) and in all.
type window struct {
	spansPerSec            float64
	serverCPU, redisCPU    float64 // µs per span
	loadgenCPU             float64 // µs per span
	allocs, allocBytes     float64 // exporter heap allocations and bytes per span
	pipeline               float64 // mean XADDs per Redis pipeline
	others                 float64 // cores used by other processes during the window
	noisy                  bool
	failed                 map[string]int
	delivery               loadgen.Delivery
	p50, p99, p999, maxLat time.Duration
	s50, s99, s999         time.Duration // the same, from each request's send (service time)
}

type rbRun struct {
	xaddPerSec float64
	redisCPU   float64 // µs per XADD
	others     float64
	noisy      bool
}

type memoryRun struct {
	rate             float64 // spans/s offered
	achieved         float64 // spans/s acknowledged
	maxRSS, startRSS int     // kB
	failed           map[string]int
	delivery         loadgen.Delivery
}

type report struct {
	machine    machine
	opts       options
	started    time.Time
	elapsed    time.Duration
	exporter   map[runKey][]window
	rb         map[rbKey][]rbRun
	collector  map[runKey][]window
	entryBytes map[string]int
	latency    *window
	latRate    float64
	memory     *memoryRun
	stall      *memoryRun
	micro      string
	operator   map[string]string
	lost       int
}

// noisyCores is how much CPU other processes may use during a window before it is marked noisy.
const noisyCores = 0.10

// snapshot is the counters a window is the difference of.
type snapshot struct {
	at                  time.Time
	server, redis, self float64
	busy                float64
	metrics             map[string]float64
}

func take(server *otlpServer, rs *redisServer) snapshot {
	s := snapshot{at: time.Now(), server: cpuSeconds(server.PID()), redis: cpuSeconds(rs.PID()),
		self: cpuSeconds(os.Getpid()), busy: proc.MachineBusySeconds()}
	if server.admin != "" {
		s.metrics, _ = server.metrics()
	}
	return s
}

func run(ctx context.Context, o options) (*report, error) {
	rep := &report{opts: o, started: time.Now(), machine: describeMachine(),
		exporter: map[runKey][]window{}, rb: map[rbKey][]rbRun{}, collector: map[runKey][]window{},
		entryBytes: map[string]int{}}
	dir, err := os.MkdirTemp("", "tracestream-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	redisCPUs, _ := cores()
	rs, err := startRedis(dir, redisCPUs)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	defer func() { _ = rs.rdb.Close() }()

	templates := map[int]*loadgen.Template{}
	for _, n := range o.sizes {
		if templates[n], err = loadgen.NewTemplate(loadgen.DefaultShape(n)); err != nil {
			return nil, err
		}
	}
	for _, format := range o.formats {
		if err := measureFormat(ctx, rep, dir, rs, templates, format); err != nil {
			return nil, err
		}
	}
	if !o.skipLatency && len(rep.exporter[runKey{"json", "grpc", 100}]) > 0 {
		if err := measureLatency(ctx, rep, dir, rs, o); err != nil {
			return nil, err
		}
	}
	if !o.skipMemory {
		if err := measureMemory(ctx, rep, dir, rs, o); err != nil {
			return nil, err
		}
	}
	if err := rep.readInputs(); err != nil {
		return nil, err
	}
	rep.elapsed = time.Since(rep.started)
	return rep, nil
}

// measureFormat starts an exporter writing format and runs every round against it: redis-benchmark,
// then the exporter over each protocol, then (for the first format) the Collector.
func measureFormat(ctx context.Context, rep *report, dir string, rs *redisServer, templates map[int]*loadgen.Template, format string) error {
	o := rep.opts
	var extra []string
	if o.profileDir != "" {
		extra = append(extra, "--admin.debug")
	}
	exp, err := startExporter(dir, "", o.exporter, rs.addr, format, extra...)
	if err != nil {
		return err
	}
	defer exp.stop()
	args, size, err := sampleEntry(ctx, rs, exp, templates[o.sizes[0]])
	if err != nil {
		return fmt.Errorf("%s: %w", format, err)
	}
	rep.entryBytes[format] = size
	fr := formatRun{rep: rep, rs: rs, exp: exp, format: format, args: args}
	for round := range o.rounds {
		for _, n := range o.sizes {
			if err := fr.measureSize(ctx, templates[n], n, round); err != nil {
				return err
			}
		}
		if o.otelcol != "" && format == o.formats[0] {
			if err := measureCollector(ctx, rep, dir, rs, templates, o, round); err != nil {
				return err
			}
		}
	}
	return nil
}

// formatRun is what the runs of one format share: the exporter writing it and the XADD that
// redis-benchmark replays.
type formatRun struct {
	rep    *report
	rs     *redisServer
	exp    *otlpServer
	format string
	args   []string
}

// measureSize is one round at n spans per request (template t): redis-benchmark, then the
// exporter over each protocol.
func (fr formatRun) measureSize(ctx context.Context, t *loadgen.Template, n, round int) error {
	rep, rs, exp, format, o := fr.rep, fr.rs, fr.exp, fr.format, fr.rep.opts
	r, err := redisBenchmark(ctx, rs, fr.args, n)
	if err != nil {
		return err
	}
	rep.rb[rbKey{format, n}] = append(rep.rb[rbKey{format, n}], r)
	logf("%s round %d: redis-benchmark P=%d: %.0f XADD/s, others %.2f cores", format, round+1, n, r.xaddPerSec, r.others)
	for _, proto := range o.protocols {
		profile := ""
		if o.profileDir != "" && round == 0 {
			profile = fmt.Sprintf("%s/exporter-%s-%s-%d.pprof", o.profileDir, format, proto, n)
		}
		w, err := measure(ctx, rs, exp, t, proto, o, profile)
		if err != nil {
			return fmt.Errorf("%s/%s/%d: %w", format, proto, n, err)
		}
		rep.lost += w.delivery.Lost
		k := runKey{format, proto, n}
		rep.exporter[k] = append(rep.exporter[k], w)
		logf("%s round %d: exporter %s %d spans/request: %.0f spans/s, %.2f µs CPU/span, others %.2f cores (%s)",
			format, round+1, proto, n, w.spansPerSec, w.serverCPU, w.others, w.delivery)
	}
	return nil
}

// readInputs includes what other programs measured: the micro-benchmarks' output and
// operatorscale's BENCH line.
func (rep *report) readInputs() error {
	if rep.opts.micro != "" {
		b, err := os.ReadFile(rep.opts.micro)
		if err != nil {
			return err
		}
		rep.micro = string(b)
	}
	if rep.opts.operator != "" {
		b, err := os.ReadFile(rep.opts.operator)
		if err != nil {
			return err
		}
		rep.operator = parseBenchLine(string(b), "operatorscale")
	}
	return nil
}

// sampleEntry sends a few requests and reads one entry back: redis-benchmark replays its exact
// XADD (same key, MAXLEN, fields and values; NUL bytes, which a command line cannot carry, become
// 0x01 in binary values).
func sampleEntry(ctx context.Context, rs *redisServer, exp *otlpServer, t *loadgen.Template) ([]string, int, error) {
	if err := rs.flush(ctx); err != nil {
		return nil, 0, err
	}
	res, err := loadgen.Run(ctx, t, loadgen.Options{Protocol: loadgen.GRPC, Endpoint: exp.grpc,
		Connections: 1, Workers: 2, Duration: 500 * time.Millisecond})
	if err != nil {
		return nil, 0, err
	}
	if len(res.Acked) == 0 {
		return nil, 0, fmt.Errorf("no request acknowledged while sampling (failures: %v)", res.Failed)
	}
	reply, err := rs.rdb.Do(ctx, "XRANGE", "traces:orders", "-", "+", "COUNT", 1).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("reading a sample entry: %w", err)
	}
	if len(reply) != 1 {
		return nil, 0, fmt.Errorf("no entry in traces:orders after %d acknowledged requests", len(res.Acked))
	}
	fields, _ := reply[0].([]any)[1].([]any)
	args := []string{"XADD", "traces:orders", "MAXLEN", "~", strconv.Itoa(benchMaxLen), "*"}
	size := 0
	for _, f := range fields {
		s := strings.ReplaceAll(f.(string), "\x00", "\x01")
		size += len(s)
		args = append(args, s)
	}
	return args, size, nil
}

// redisBenchmark runs redis-benchmark with args on a flushed Redis: 4 connections (the exporter's
// writers) and pipeline depth p.
func redisBenchmark(ctx context.Context, rs *redisServer, args []string, p int) (rbRun, error) {
	if err := rs.flush(ctx); err != nil {
		return rbRun{}, err
	}
	port := rs.addr[strings.LastIndexByte(rs.addr, ':')+1:]
	n := 400_000
	argv := append([]string{"-h", "127.0.0.1", "-p", port, "-c", "4", "-P", strconv.Itoa(p), "-n", strconv.Itoa(n), "--csv"}, args...)
	cmd := exec.CommandContext(ctx, "redis-benchmark", argv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	redis0, busy0, t0 := cpuSeconds(rs.PID()), proc.MachineBusySeconds(), time.Now()
	if err := cmd.Run(); err != nil {
		return rbRun{}, fmt.Errorf("redis-benchmark: %w\n%s", err, out.String())
	}
	elapsed := time.Since(t0).Seconds()
	redisCPU := cpuSeconds(rs.PID()) - redis0
	// --csv: a header line, then "test","rps" and six latency columns; the test name is the
	// command line, commas and all, so the columns are counted from the end.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := strings.Split(lines[len(lines)-1], ",")
	if len(last) < 8 {
		return rbRun{}, fmt.Errorf("redis-benchmark printed %q", out.String())
	}
	rps, err := strconv.ParseFloat(strings.Trim(last[len(last)-7], `"`), 64)
	if err != nil {
		return rbRun{}, fmt.Errorf("redis-benchmark printed %q", out.String())
	}
	if got := rs.rdb.XLen(ctx, "traces:orders").Val(); got != int64(n) {
		return rbRun{}, fmt.Errorf("redis-benchmark: %d entries in Redis after %d XADDs", got, n)
	}
	// redis-benchmark and Redis are the only expected users of the CPU here.
	rbCPU := (proc.MachineBusySeconds() - busy0) - redisCPU
	others := max(0, rbCPU-elapsed) / elapsed // redis-benchmark itself is one thread: at most a core
	return rbRun{xaddPerSec: rps, redisCPU: redisCPU / float64(n) * 1e6, others: others, noisy: others > noisyCores}, nil
}

// measure is one throughput run of the exporter: as fast as it answers, on a flushed Redis, then
// every span checked.
func measure(ctx context.Context, rs *redisServer, srv *otlpServer, t *loadgen.Template, proto string, o options, profile string) (window, error) {
	if err := rs.flush(ctx); err != nil {
		return window{}, err
	}
	endpoint := srv.grpc
	if proto == loadgen.HTTP {
		endpoint = srv.http
	}
	var a, b snapshot
	var profiled sync.WaitGroup
	res, err := loadgen.Run(ctx, t, loadgen.Options{Protocol: proto, Endpoint: endpoint,
		Connections: o.connections, Workers: o.workers, Warmup: o.warmup, Duration: o.duration,
		WindowStart: func() {
			a = take(srv, rs)
			if profile != "" {
				profiled.Go(func() { saveProfile(srv, profile, o.duration) })
			}
		},
		WindowEnd: func() { b = take(srv, rs) }})
	profiled.Wait()
	if err != nil {
		return window{}, err
	}
	w := summarize(a, b, res)
	if srv.admin != "" {
		if w.delivery, err = loadgen.Verify(ctx, rs.rdb, res, "traces:orders"); err != nil {
			return window{}, err
		}
	}
	return w, nil
}

func summarize(a, b snapshot, res *loadgen.Result) window {
	spans := float64(res.Spans)
	secs := b.at.Sub(a.at).Seconds()
	per := func(d float64) float64 {
		if spans == 0 {
			return 0
		}
		return d / spans * 1e6
	}
	w := window{
		spansPerSec: res.SpansPerSecond(),
		serverCPU:   per(b.server - a.server),
		redisCPU:    per(b.redis - a.redis),
		loadgenCPU:  per(b.self - a.self),
		failed:      res.Failed,
		p50:         res.Percentile(50), p99: res.Percentile(99), p999: res.Percentile(99.9),
		s50: res.ServicePercentile(50), s99: res.ServicePercentile(99), s999: res.ServicePercentile(99.9),
	}
	if n := len(res.Latencies); n > 0 {
		w.maxLat = res.Latencies[n-1]
	}
	others := (b.busy - a.busy) - (b.server - a.server) - (b.redis - a.redis) - (b.self - a.self)
	w.others = max(0, others) / secs
	w.noisy = w.others > noisyCores
	if a.metrics != nil && b.metrics != nil && spans > 0 {
		w.allocs = (b.metrics["go_memstats_mallocs_total"] - a.metrics["go_memstats_mallocs_total"]) / spans
		w.allocBytes = (b.metrics["go_memstats_alloc_bytes_total"] - a.metrics["go_memstats_alloc_bytes_total"]) / spans
		if n := b.metrics["tracestream_exporter_pipeline_entries_count"] - a.metrics["tracestream_exporter_pipeline_entries_count"]; n > 0 {
			w.pipeline = (b.metrics["tracestream_exporter_pipeline_entries_sum"] - a.metrics["tracestream_exporter_pipeline_entries_sum"]) / n
		}
	}
	return w
}

// measureCollector runs the Collector's otlp receiver -> batch -> nop the same way, as the
// reference for CPU per span on the receiving side.
func measureCollector(ctx context.Context, rep *report, dir string, rs *redisServer, templates map[int]*loadgen.Template, o options, round int) error {
	col, err := startCollector(dir, o.otelcol)
	if err != nil {
		return err
	}
	defer col.stop()
	for _, n := range o.sizes {
		for _, proto := range o.protocols {
			w, err := measure(ctx, rs, col, templates[n], proto, o, "")
			if err != nil {
				return fmt.Errorf("collector %s/%d: %w", proto, n, err)
			}
			k := runKey{"", proto, n}
			rep.collector[k] = append(rep.collector[k], w)
			logf("round %d: collector %s %d spans/request: %.0f spans/s, %.2f µs CPU/span", round+1, proto, n, w.spansPerSec, w.serverCPU)
		}
	}
	return nil
}

// measureLatency sends json over gRPC at half the measured maximum, at an even rate, and records
// each request's time from when it was due to its answer (the client's added latency).
func measureLatency(ctx context.Context, rep *report, dir string, rs *redisServer, o options) error {
	var rates []float64
	for _, w := range rep.exporter[runKey{"json", "grpc", 100}] {
		rates = append(rates, w.spansPerSec)
	}
	rep.latRate = median(rates) / 2
	if o.latencyRate > 0 {
		rep.latRate = o.latencyRate
	}
	latencyCPUs := o.latencyCPUs
	if _, pinned := cores(); !pinned {
		latencyCPUs = ""
	}
	exp, err := startExporter(dir, latencyCPUs, o.exporter, rs.addr, "json")
	if err != nil {
		return err
	}
	defer exp.stop()
	t, err := loadgen.NewTemplate(loadgen.DefaultShape(100))
	if err != nil {
		return err
	}
	if err := rs.flush(ctx); err != nil {
		return err
	}
	var a, b snapshot
	res, err := loadgen.Run(ctx, t, loadgen.Options{Protocol: loadgen.GRPC, Endpoint: exp.grpc,
		Connections: o.connections, Workers: 64, Rate: rep.latRate / 100, Warmup: o.warmup, Duration: 2 * o.duration,
		WindowStart: func() { a = take(exp, rs) }, WindowEnd: func() { b = take(exp, rs) }})
	if err != nil {
		return err
	}
	w := summarize(a, b, res)
	if w.delivery, err = loadgen.Verify(ctx, rs.rdb, res, "traces:orders"); err != nil {
		return err
	}
	rep.lost += w.delivery.Lost
	rep.latency = &w
	logf("latency at %.0f spans/s: p50 %v, p99 %v, max %v; from the send: p50 %v, p99 %v", rep.latRate, w.p50, w.p99, w.maxLat, w.s50, w.s99)
	return nil
}

// measureMemory runs a fresh exporter at a fixed rate and samples its RSS; then again with
// redis-server stopped (SIGSTOP) for a while in the middle, with enough clients in flight to fill
// the exporter's in-flight bound, and checks every acknowledged span arrived once it resumed.
func measureMemory(ctx context.Context, rep *report, dir string, rs *redisServer, o options) error {
	t, err := loadgen.NewTemplate(loadgen.DefaultShape(100))
	if err != nil {
		return err
	}
	for _, stall := range []bool{false, true} {
		if err := rs.flush(ctx); err != nil {
			return err
		}
		exp, err := startExporter(dir, "", o.exporter, rs.addr, "json")
		if err != nil {
			return err
		}
		startRSS := rssKB(exp.PID())
		m := &memoryRun{rate: o.fixedRate, startRSS: startRSS}
		sampleCtx, stopSampling := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for sampleCtx.Err() == nil {
				if rss := rssKB(exp.PID()); rss > m.maxRSS {
					m.maxRSS = rss
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		opts := loadgen.Options{Protocol: loadgen.GRPC, Endpoint: exp.grpc, Connections: o.connections,
			Workers: 64, Rate: o.fixedRate / 100, Warmup: o.warmup, Duration: 2 * o.duration}
		if stall {
			// In flight at once: more than the exporter's bound of 200,000 spans, so that its
			// backpressure (not the client's concurrency) is what limits memory.
			opts.Workers, opts.Connections, opts.Duration = 3000, 32, o.stall+2*o.duration
			opts.WindowStart = func() {
				_ = rs.Signal(syscall.SIGSTOP)
				time.AfterFunc(o.stall, func() { _ = rs.Signal(syscall.SIGCONT) })
			}
		}
		res, err := loadgen.Run(ctx, t, opts)
		_ = rs.Signal(syscall.SIGCONT)
		stopSampling()
		wg.Wait()
		if err != nil {
			exp.stop()
			return err
		}
		m.achieved, m.failed = res.SpansPerSecond(), res.Failed
		m.delivery, err = loadgen.Verify(ctx, rs.rdb, res, "traces:orders")
		exp.stop()
		if err != nil {
			return err
		}
		rep.lost += m.delivery.Lost
		if stall {
			rep.stall = m
		} else {
			rep.memory = m
		}
		logf("memory (stall %v): max RSS %d kB, failed %v, %s", stall, m.maxRSS, m.failed, m.delivery)
	}
	return nil
}

// saveProfile fetches a CPU profile of the exporter covering the window.
func saveProfile(srv *otlpServer, path string, d time.Duration) {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.admin, max(1, int(d.Seconds())))
	resp, err := http.Get(url)
	if err != nil {
		logf("profile: %v", err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	f, err := os.Create(path)
	if err != nil {
		logf("profile: %v", err)
		return
	}
	defer func() { _ = f.Close() }()
	_, _ = io.Copy(f, resp.Body)
}

// parseBenchLine finds "BENCH <name> k=v ..." in out.
func parseBenchLine(out, name string) map[string]string {
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "BENCH" || f[1] != name {
			continue
		}
		kv := map[string]string{}
		for _, p := range f[2:] {
			k, v, _ := strings.Cut(p, "=")
			kv[k] = v
		}
		return kv
	}
	return nil
}
