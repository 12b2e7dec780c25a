package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/wait"
	"github.com/tracestream/tracestream/test/bench/internal/proc"
)

const (
	// managerStopGrace covers controller-runtime's own 30 s graceful-shutdown timeout.
	managerStopGrace = 40 * time.Second
	redisStopGrace   = 10 * time.Second
	// logTailLines is how much of a process's log goes into an error.
	logTailLines = 20
)

// process is one child process with its log, stopped by its PID.
type process struct {
	*child.Process
	name    string
	logPath string

	stopOnce sync.Once
	stopped  time.Duration // how long it took to exit after SIGTERM
}

// start starts cmd with its output in logPath, in its own process group (so that a Ctrl-C in
// the terminal reaches only this program, which then stops it in order) and with Pdeathsig, so
// that it dies with this program even when this program is killed without cleaning up.
func start(name string, cmd *exec.Cmd, logPath string) (*process, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = out.Close() }() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = out, out
	cp, err := child.Run(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &process{Process: cp, name: name, logPath: logPath}, nil
}

// exitErr is non-nil once the process has exited, saying how, with the tail of its log.
func (p *process) exitErr() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("%s (pid %d) exited: %w\n%s", p.name, p.PID(), p.Err(), p.logTail())
}

// stop is child.Process.Terminate, timed, and returns cmd.Wait's result (nil for exit status 0).
// Only the first call signals; later ones wait for it.
func (p *process) stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		begin := time.Now()
		_ = p.Terminate(grace)
		p.stopped = time.Since(begin)
	})
	<-p.Done()
	return p.Err()
}

func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return "--- tail of " + p.logPath + " ---\n" + strings.Join(lines, "\n")
}

// poll is wait.Poll naming what it waited for: a check that returns wait.Stop (the process has
// exited) ends it at once, and an interrupt or -timeout ends it with check's last error.
func poll(ctx context.Context, interval time.Duration, what string, check func() error) error {
	err := wait.Poll(ctx, interval, check)
	switch {
	case err == nil:
		return nil
	case wait.Stopped(err):
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fmt.Errorf("%s: %w (last: %w)", what, ctx.Err(), err)
	}
}

// redisServer is a redis-server on a free loopback port, without persistence.
type redisServer struct {
	*process
	addr   string
	client *redis.Client
}

// startRedis starts redis-server in dir/redis and waits until it answers PING.
func startRedis(ctx context.Context, work string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: run hack/install-debs.sh redis (%w)", err)
	}
	dir := filepath.Join(work, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
		cmd.Dir = dir
		cmd.Env = []string{}
		p, err := start("redis-server", cmd, filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, err
		}
		s := &redisServer{process: p, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		s.client = redis.NewClient(&redis.Options{
			Addr: s.addr, PoolSize: 1, MaxRetries: -1, DisableIdentity: true,
			DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		})
		err = poll(ctx, 50*time.Millisecond, "waiting for redis-server to answer PING", func() error {
			if err := p.exitErr(); err != nil {
				return wait.Stop(err)
			}
			return s.client.Ping(ctx).Err()
		})
		if err == nil {
			return s, nil
		}
		s.stop()
		if attempt < 5 && strings.Contains(p.logTail(), "Address already in use") {
			continue
		}
		return nil, err
	}
}

func (s *redisServer) stop() {
	_ = s.client.Close()
	_ = s.process.stop(redisStopGrace)
}

// managerProcess is the manager binary, run the way it runs in a cluster but outside one.
type managerProcess struct {
	*process
	metricsURL, readyzURL string
}

// buildManager builds ./cmd/manager into work.
func buildManager(ctx context.Context, root, work string) (string, error) {
	bin := filepath.Join(work, "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/manager: %w\n%s", err, out)
	}
	return bin, nil
}

// startManager runs the manager against kubeconfig with metrics and health probes on free
// loopback ports and leader election off.
func startManager(bin, kubeconfig, work string) (*managerProcess, error) {
	metricsPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	probePort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort))
	probeAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(probePort))
	cmd := exec.Command(bin,
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr,
		"--leader-elect=false",
	)
	cmd.Dir = work
	// Nothing from the developer's environment (KUBECONFIG, GOMAXPROCS, GODEBUG...) changes what
	// is measured.
	cmd.Env = []string{"HOME=" + work, "PATH=" + os.Getenv("PATH")}
	p, err := start("manager", cmd, filepath.Join(work, "manager.log"))
	if err != nil {
		return nil, err
	}
	return &managerProcess{
		process:    p,
		metricsURL: "http://" + metricsAddr + "/metrics",
		readyzURL:  "http://" + probeAddr + "/readyz",
	}, nil
}

// awaitReady waits for /readyz and /metrics to answer.
func (m *managerProcess) awaitReady(ctx context.Context) error {
	return poll(ctx, 100*time.Millisecond, "waiting for the manager's /readyz and /metrics", func() error {
		if err := m.exitErr(); err != nil {
			return wait.Stop(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, m.readyzURL, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		_, err = scrape(ctx, m.metricsURL)
		return err
	})
}

// metrics scrapes the manager's metrics, failing at once when it has exited.
func (m *managerProcess) metrics(ctx context.Context) (metricSet, error) {
	if err := m.exitErr(); err != nil {
		return nil, wait.Stop(err)
	}
	return scrape(ctx, m.metricsURL)
}
