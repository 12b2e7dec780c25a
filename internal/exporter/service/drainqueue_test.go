package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/service"
	"github.com/tracestream/tracestream/internal/exporter/wal"
	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// drainRun is one `exporter --drain` process.
type drainRun struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once it exited; err is then its Wait error
	err   error
	admin chan string // the admin address, once it logged that it drains

	mu  sync.Mutex
	log strings.Builder
}

// startDrain runs bin --drain on the queue in dir against redisAddr, with its termination log
// in termLog.
func startDrain(t *testing.T, bin, redisAddr, dir, termLog string) *drainRun {
	t.Helper()
	d := &drainRun{done: make(chan struct{}), admin: make(chan string, 1)}
	d.cmd = exec.Command(bin, "--drain", "--termination-log="+termLog, "--redis.addresses="+redisAddr,
		"--admin.endpoint=127.0.0.1:0", "--delivery.persistentQueue.directory="+dir,
		"--delivery.persistentQueue.maxBytes="+strconv.Itoa(config.MinPersistentQueueBytes),
		"--delivery.retryMaxInterval=200ms")
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(d.cmd); err != nil {
		t.Fatal(err)
	}
	go d.read(stderr)
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("exporter --drain log:\n%s", d.logged())
		}
	})
	return d
}

// read keeps the process's log and reports its admin address; it ends when the process does.
func (d *drainRun) read(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		d.mu.Lock()
		d.log.WriteString(sc.Text() + "\n")
		d.mu.Unlock()
		var l struct{ Msg, Admin string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "Draining the persistent queue" {
			d.admin <- l.Admin
		}
	}
	d.err = d.cmd.Wait()
	close(d.done)
}

func (d *drainRun) logged() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// exitCode waits for the process to exit and returns its status.
func (d *drainRun) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatalf("exporter --drain did not exit within a minute:\n%s", d.logged())
	}
	var exit *exec.ExitError
	if errors.As(d.err, &exit) {
		return exit.ExitCode()
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	return 0
}

// termination reads the drain's termination message.
func termination(t *testing.T, path string) service.DrainResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r service.DrainResult
	if err := json.Unmarshal(b, &r); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("termination message %q is not one line of JSON: %v", b, err)
	}
	return r
}

// emptyFile creates an empty file, as Kubernetes creates the termination log.
func emptyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "termination-log")
	writeFile(t, p, "")
	return p
}

// queuedRecords opens the log (so no process may hold it) and returns its records and id.
func queuedRecords(t *testing.T, dir string) (int64, string) {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: dir, MaxBytes: config.MinPersistentQueueBytes}, nil)
	if err != nil {
		t.Fatalf("opening the log after the drain: %v", err)
	}
	defer func() { _ = l.Close() }()
	return l.Stats().Records, l.Producer()
}

// orphanedLog leaves acknowledged spans in a persistent queue in dir, as a pod scaled away while
// Redis was down would: an exporter named gone-pod takes them with Redis stopped and is shut down
// before it could write them. It returns the spans' ids and the log's producer id.
func orphanedLog(t *testing.T, s *redistest.Server, dir string) ([]string, string) {
	t.Helper()
	cfg := queueConfig(s, dir)
	cfg.Delivery.ProducerID = "gone-pod"
	e := start(t, cfg)
	want := exportAll(t, grpcClient(t, e.grpc), "orphan", 10, 20)
	id := statusProducer(t, e)
	e.shutdownOnce.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.svc.Shutdown(ctx); err == nil || !strings.Contains(err.Error(), "10 records left") {
		t.Fatalf("shutting down with Redis down should leave the 10 records in the queue, got %v", err)
	}
	return want, id
}

// TestDrainKeepsTheLogOnSIGTERMAndWritesItOnceRedisIsUp runs `exporter --drain` on an orphaned
// log: with Redis stopped it retries until SIGTERM, then exits 75 with every record kept; a
// second drain with Redis up writes every span once, exits 0 and says so in the termination log.
func TestDrainKeepsTheLogOnSIGTERMAndWritesItOnceRedisIsUp(t *testing.T) {
	bin := buildExporter(t)
	s := redistest.Standalone(t)
	s.Stop()
	dir := t.TempDir()
	want, id := orphanedLog(t, s, dir)

	termLog := emptyFile(t)
	d := startDrain(t, bin, s.Addr(), dir, termLog)
	admin := <-d.admin
	wait.For(t, 30*time.Second, "the drain to meet the stopped Redis", func() error {
		var st struct {
			Ready           bool
			LastErrorClass  string
			ProducerID      string
			PersistentQueue struct{ Records int64 }
		}
		_, body, err := get("http://" + admin + "/status")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return err
		}
		if st.LastErrorClass == "" || st.PersistentQueue.Records != 10 || st.ProducerID != id || st.Ready {
			return fmt.Errorf("/status %s, want 10 records, a Redis error, producerId %s, not ready", body, id)
		}
		return nil
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.exitCode(t); code != 75 {
		t.Fatalf("SIGTERM before the log was drained: exit %d, want 75", code)
	}
	if r := termination(t, termLog); r != (service.DrainResult{Records: 10, ProducerID: id}) {
		t.Fatalf("termination message after SIGTERM %+v, want 10 records of %s", r, id)
	}
	if n, got := queuedRecords(t, dir); n != 10 || got != id {
		t.Fatalf("after the interrupted drain the log holds %d records of %q, want 10 of %q", n, got, id)
	}

	s.Start()
	termLog = emptyFile(t)
	if code := startDrain(t, bin, s.Addr(), dir, termLog).exitCode(t); code != 0 {
		t.Fatalf("drain with Redis up: exit %d, want 0", code)
	}
	awaitStream(t, s, "traces:orphan", want)
	if r := termination(t, termLog); r != (service.DrainResult{Records: 0, ProducerID: id}) {
		t.Fatalf("termination message %+v, want 0 records of %s", r, id)
	}
	if n, _ := queuedRecords(t, dir); n != 0 {
		t.Fatalf("the drained log still holds %d records", n)
	}
}

// TestDrainRefusesWithoutAQueueOrOneInUse: --drain without delivery.persistentQueue exits 2
// naming the field; on a queue another exporter has open it exits 1 naming the lock.
func TestDrainRefusesWithoutAQueueOrOneInUse(t *testing.T) {
	bin := buildExporter(t)
	s := redistest.Standalone(t)
	out, err := exec.Command(bin, "--drain", "--redis.addresses="+s.Addr(), "--admin.endpoint=127.0.0.1:0").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "delivery.persistentQueue.directory") {
		t.Fatalf("--drain without a queue: %v, want exit 2 naming delivery.persistentQueue.directory:\n%s", err, out)
	}
	dir := t.TempDir()
	start(t, queueConfig(s, dir))
	d := startDrain(t, bin, s.Addr(), dir, emptyFile(t))
	if code := d.exitCode(t); code != 1 || !strings.Contains(d.logged(), `delivery.persistentQueue.directory \"`+dir+`\": persistent queue `+dir+` is in use by another process`) {
		t.Fatalf("--drain on a queue in use: exit %d, want 1 naming the field and the lock:\n%s", code, d.logged())
	}
}
