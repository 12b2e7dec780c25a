package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/wait"
	"github.com/tracestream/tracestream/test/bench/internal/proc"
)

// process is a child the harness started, with its log; stop ends it by its PID.
type process struct {
	*child.Process
	name string
	log  string
}

// start runs argv with its output in dir/name.log. A non-empty cpus ("1", "0,1") pins it to
// those CPUs with taskset; otherwise it inherits the harness's.
func start(dir, name, cpus string, argv ...string) (*process, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cp, err := child.Run(cmd) // dies with the harness even if it is killed
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &process{Process: cp, name: name, log: logPath}, nil
}

// stopGrace is how long stop waits after SIGTERM before SIGKILL.
const stopGrace = 20 * time.Second

// stop resumes the process first (the memory run pauses redis-server with SIGSTOP, and a
// stopped process acts on SIGTERM only once continued), then terminates it.
func (p *process) stop() {
	if p == nil || p.Exited() {
		return
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Terminate(stopGrace)
}

// tail is the end of the process's log, for error messages.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// cpuSeconds is proc.CPUSeconds, 0 once the process is gone: a snapshot of a process that has
// exited is discarded with the run it belongs to.
func cpuSeconds(pid int) float64 {
	s, _ := proc.CPUSeconds(pid)
	return s
}

// rssKB is the process's VmRSS in kB, 0 once it is gone.
func rssKB(pid int) int {
	rss, _, _ := proc.Memory(pid)
	return int(rss / 1024)
}

// redisServer is the sink: one redis-server, pinned alone to its core.
type redisServer struct {
	*process
	addr string
	rdb  *redis.Client
}

func startRedis(dir, cpus string) (*redisServer, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := start(dir, "redis", cpus, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "yes")
	if err != nil {
		return nil, err
	}
	r := &redisServer{process: p, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.rdb = redis.NewClient(&redis.Options{Addr: r.addr, ReadTimeout: time.Minute})
	if err := wait.Until(10*time.Second, func() error { return r.rdb.Ping(context.Background()).Err() }); err != nil {
		p.stop()
		return nil, fmt.Errorf("redis-server did not answer: %w\n%s", err, p.tail())
	}
	return r, nil
}

func (r *redisServer) flush(ctx context.Context) error {
	return r.rdb.FlushAll(ctx).Err()
}

// otlpServer is the exporter or the Collector: something that receives OTLP.
type otlpServer struct {
	*process
	grpc, http, admin string
}

func startExporter(dir, cpus, bin, redisAddr, format string, extra ...string) (*otlpServer, error) {
	var ports [3]int
	for i := range ports {
		var err error
		if ports[i], err = proc.FreePort(); err != nil {
			return nil, err
		}
	}
	s := &otlpServer{
		grpc:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		http:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
		admin: fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
	argv := append([]string{bin,
		"--receivers.grpc.endpoint=" + s.grpc, "--receivers.http.endpoint=" + s.http, "--admin.endpoint=" + s.admin,
		"--redis.addresses=" + redisAddr, "--stream.format=" + format, "--stream.maxLen=" + strconv.Itoa(benchMaxLen),
	}, extra...)
	p, err := start(dir, "exporter-"+format, cpus, argv...)
	if err != nil {
		return nil, err
	}
	s.process = p
	if err := wait.Until(20*time.Second, func() error { return httpOK("http://" + s.admin + "/readyz") }); err != nil {
		p.stop()
		return nil, fmt.Errorf("the exporter did not become ready: %w\n%s", err, p.tail())
	}
	return s, nil
}

// startCollector runs an OpenTelemetry Collector with otlp receiver -> batch -> nop.
func startCollector(dir, bin string) (*otlpServer, error) {
	var ports [2]int
	for i := range ports {
		var err error
		if ports[i], err = proc.FreePort(); err != nil {
			return nil, err
		}
	}
	s := &otlpServer{grpc: fmt.Sprintf("127.0.0.1:%d", ports[0]), http: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
      http: {endpoint: %q}
processors:
  batch: {}
exporters:
  nop: {}
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [nop]}
`, s.grpc, s.http)
	path := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := start(dir, "otelcol", "", bin, "--config", path)
	if err != nil {
		return nil, err
	}
	s.process = p
	err = wait.Until(30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", s.grpc, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("the collector did not listen: %w\n%s", err, p.tail())
	}
	return s, nil
}

func httpOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// metrics reads the exporter's Prometheus metrics as name{labels} -> value.
func (s *otlpServer) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}
