package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// buildExporter builds the exporter binary for the test and returns its path.
func buildExporter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "exporter")
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/exporter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the exporter: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERMDrainsAndExitsZero runs the exporter binary under load with Redis holding writes
// (CLIENT PAUSE), sends SIGTERM, and checks the drain: readiness flips at once, the requests in
// flight are written and acknowledged when Redis resumes, the process exits 0, and every
// acknowledged span is in Redis.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	bin := buildExporter(t)
	s := redistest.Standalone(t)
	rdb := s.Client(t)

	cmd := exec.Command(bin, "--redis.addresses="+s.Addr(),
		"--receivers.grpc.endpoint=127.0.0.1:0", "--receivers.http.endpoint=127.0.0.1:0", "--admin.endpoint=127.0.0.1:0",
		"--delivery.drainTimeout=15s", "--delivery.requestTimeout=15s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	type logLine struct {
		Msg               string
		GRPC, HTTP, Admin string
	}
	lines := make(chan logLine, 100)
	var logged strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logged.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			var l struct {
				Msg   string `json:"msg"`
				GRPC  string `json:"grpc"`
				HTTP  string `json:"http"`
				Admin string `json:"admin"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- logLine{l.Msg, l.GRPC, l.HTTP, l.Admin}
			}
		}
		close(lines)
	}()
	var started logLine
	for l := range lines {
		if l.Msg == "Exporter started" {
			started = l
			break
		}
	}
	if started.GRPC == "" {
		t.Fatalf("the exporter did not start:\n%s", logged.String())
	}
	go func() {
		for range lines { //nolint:revive // drain the channel
		}
	}()
	client := grpcClient(t, started.GRPC)

	// Some spans acknowledged before the drain.
	var mu sync.Mutex
	acked := map[string]bool{}
	send := func() error {
		req, ids := request("drain", 20)
		_, err := client.Export(context.Background(), req)
		if err == nil {
			mu.Lock()
			for _, id := range ids {
				acked[id] = true
			}
			mu.Unlock()
		}
		return err
	}
	for range 10 {
		if err := send(); err != nil {
			t.Fatalf("before the drain: %v", err)
		}
	}
	// Hold Redis writes, start requests that will be in flight when SIGTERM arrives.
	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", "1500", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	inflightErrs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); inflightErrs <- send() }()
	}
	wait.For(t, 5*time.Second, "requests in flight", func() error {
		code, body, err := get("http://" + started.Admin + "/metrics")
		if err != nil || code != 200 {
			return fmt.Errorf("metrics: %d: %w", code, err)
		}
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "tracestream_exporter_inflight_spans ") && l != "tracestream_exporter_inflight_spans 0" {
				return nil
			}
		}
		return errors.New("no spans in flight yet")
	})
	sigterm := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Second, "readiness flips to not-ready", func() error {
		code, _, err := get("http://" + started.Admin + "/readyz")
		if err == nil && code == 200 {
			return errors.New("still ready")
		}
		return nil
	})
	wg.Wait()
	close(inflightErrs)
	for err := range inflightErrs {
		if err != nil {
			t.Errorf("a request in flight at SIGTERM failed: %v (it should have been drained)", err)
		}
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("exporter exit: %v, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the exporter did not exit within its drain timeout")
	}
	t.Logf("drained and exited %s after SIGTERM", time.Since(sigterm).Round(10*time.Millisecond))
	logMu.Lock()
	if !strings.Contains(logged.String(), "Exporter drained") {
		t.Errorf("no drain in the log:\n%s", logged.String())
	}
	logMu.Unlock()
	got := spanIDs(t, rdb, "traces:drain")
	for id := range acked {
		if got[id] == 0 {
			t.Errorf("acknowledged span %s is not in Redis", id)
		}
	}
	if len(acked) != 14*20 {
		t.Errorf("%d spans acknowledged, want %d (10 requests before, 4 drained)", len(acked), 14*20)
	}
}
