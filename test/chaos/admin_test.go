//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestAdminPortFloodLeavesTheExporterServing keeps 3,000 idle connections open to the admin port
// of an exporter whose file descriptors are limited to 1,024, opening again at once every one the
// exporter closes, as an attacker would. (Before admin.maxConnections they all stayed open and
// new OTLP clients failed with "accept4: too many open files".) While the flood lasts, the same
// process must answer /healthz within the liveness probe's window and an OTLP/gRPC request from
// fresh clients, and hold no more admin connections than admin.maxConnections.
//
// /healthz and /metrics are read by curl, a process of its own as the kubelet and Prometheus are:
// a Go client in this process, behind the flood's thousands of goroutines, can take longer
// between connecting and sending its request than the exporter gives a connection that has sent
// nothing while others wait.
func TestAdminPortFloodLeavesTheExporterServing(t *testing.T) {
	const fdLimit, flood, bound = 1024, 3000, 64
	var self syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &self); err != nil || self.Cur < flood+200 {
		t.Fatalf("this test holds %d connections and needs as many descriptors; its limit is %d (%v)", flood, self.Cur, err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl reads the admin endpoint: %v", err)
	}
	srv := redistest.Standalone(t)
	e := startExporterUnder(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit), "--"}, srv.Addr(),
		"--admin.maxConnections="+strconv.Itoa(bound))
	pid := e.cmd.Process.Pid
	if got := openFilesLimit(t, pid); got != [2]int{fdLimit, fdLimit} {
		t.Fatalf("the exporter's open files limit is %v, want %d (soft and hard)", got, fdLimit)
	}
	baseline, err := openFiles(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The exporter's descriptors, all along: every admin connection it holds is one.
	var fds atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if n, err := openFiles(pid); err == nil {
				fds.Store(max(fds.Load(), int64(n)))
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(wait.Interval):
			}
		}
	})
	defer func() { close(stopSampling); sampler.Wait() }()

	f := startFlood(e.admin, flood)
	defer f.stop()
	wait.For(t, time.Minute, "the flood's connections open", func() error {
		if n := f.opened.Load(); n < flood {
			return fmt.Errorf("%d of %d opened (last error: %v)", n, flood, f.lastErr.Load())
		}
		return nil
	})

	began, attempts := time.Now(), 0
	// The kubelet restarts the pod after 3 failed liveness probes 10s apart.
	wait.For(t, 30*time.Second, "/healthz from a fresh client during the flood", func() error {
		attempts++
		code, body, err := curl(e.admin + "/healthz")
		if err == nil && (code != http.StatusOK || body != "ok\n") {
			err = fmt.Errorf("HTTP %d %q", code, body)
		}
		return err
	})
	t.Logf("/healthz answered %v into the flood, at attempt %d", time.Since(began).Round(time.Millisecond), attempts)
	var open float64
	wait.For(t, 30*time.Second, "/metrics during the flood", func() error {
		code, body, err := curl(e.admin + "/metrics")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("HTTP %d: %w", code, err)
		}
		open = sample(body, "tracestream_exporter_admin_connections")
		return nil
	})
	if open < bound-1 || open > bound {
		t.Errorf("admin_connections = %v during the flood, want admin.maxConnections (%d), or one less while making room", open, bound)
	}

	cc, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(valid("admin-flood"), &req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := coltracepb.NewTraceServiceClient(cc).Export(ctx, &req, grpc.WaitForReady(true)); err != nil {
		t.Errorf("an OTLP/gRPC request from a fresh client during the flood: %v", err)
	}
	if n := srv.Client(t).XLen(context.Background(), "traces:admin-flood").Val(); n != 1 {
		t.Errorf("%d entries in traces:admin-flood, want the 1 acknowledged", n)
	}
	if e.exited() {
		t.Fatalf("the exporter exited during the flood: %v", e.exitErr)
	}
	opened := f.stop()

	// Beside the admin connections: the receivers' connections of this test and Redis
	// connections opened as the load needs them.
	if n := fds.Load(); n > int64(baseline+bound+16) {
		t.Errorf("the exporter had up to %d descriptors open (%d before the flood) with admin.maxConnections %d", n, baseline, bound)
	}
	// Every flood connection but those held at the end was accepted and closed to make room.
	evicted := e.metric(t, "tracestream_exporter_admin_connections_evicted_total")
	if evicted < flood-bound {
		t.Errorf("admin_connections_evicted_total = %v, want at least %d of the %d flood connections", evicted, flood-bound, flood)
	}
	if b, _ := os.ReadFile(e.log); strings.Contains(string(b), "too many open files") {
		t.Errorf("the exporter ran out of file descriptors:\n%s", b)
	}
	t.Logf("%d flood connections opened in all, %v closed to make room; at most %d descriptors open in the exporter (%d before the flood, limit %d)",
		opened, evicted, fds.Load(), baseline, fdLimit)
}

// curl GETs http://addrPath from a process of its own.
func curl(addrPath string) (int, string, error) {
	out, err := exec.Command("curl", "--silent", "--show-error", "--max-time", "5", "--write-out", "\n%{http_code}", "http://"+addrPath).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return 0, "", fmt.Errorf("curl: %s", strings.TrimSpace(string(exit.Stderr)))
		}
		return 0, "", err
	}
	i := strings.LastIndexByte(string(out), '\n')
	code, _ := strconv.Atoi(string(out[i+1:]))
	return code, string(out[:i]), nil
}

// sample is the value of an unlabelled series in a Prometheus text body, -1 when absent.
func sample(body, name string) float64 {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// idleFlood keeps n connections to an address open, sending nothing, and opens one again as soon
// as the server closes it.
type idleFlood struct {
	opened  atomic.Int64
	lastErr atomic.Value // the last failure to connect, as a string
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	once    sync.Once
}

func startFlood(addr string, n int) *idleFlood {
	f := &idleFlood{done: make(chan struct{}), conns: make([]net.Conn, n)}
	for i := range n {
		f.wg.Go(func() {
			for {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					f.lastErr.Store(err.Error())
					select {
					case <-f.done:
						return
					case <-time.After(wait.Interval):
						continue
					}
				}
				f.mu.Lock()
				select {
				case <-f.done:
					f.mu.Unlock()
					_ = c.Close()
					return
				default:
				}
				f.conns[i] = c
				f.mu.Unlock()
				f.opened.Add(1)
				_, _ = c.Read(make([]byte, 1)) // until the server closes it, or stop does
				_ = c.Close()
			}
		})
	}
	return f
}

// stop closes the flood's connections and returns how many it opened in all.
func (f *idleFlood) stop() int64 {
	f.once.Do(func() {
		f.mu.Lock()
		close(f.done)
		for _, c := range f.conns {
			if c != nil {
				_ = c.Close()
			}
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f.opened.Load()
}

// openFilesLimit is the soft and hard RLIMIT_NOFILE of process pid.
func openFilesLimit(t *testing.T, pid int) [2]int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			soft, _ := strconv.Atoi(f[0])
			hard, _ := strconv.Atoi(f[1])
			return [2]int{soft, hard}
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits", pid)
	return [2]int{}
}

// openFiles is how many descriptors process pid has open.
func openFiles(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}
