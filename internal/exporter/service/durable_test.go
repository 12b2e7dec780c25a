package service_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// queueConfig is a standalone configuration with the persistent queue in dir.
func queueConfig(s *redistest.Server, dir string) config.Config {
	cfg := standaloneConfig(s)
	cfg.Delivery.PersistentQueue = config.PersistentQueue{Directory: dir, MaxBytes: config.MinPersistentQueueBytes}
	return cfg
}

func queueStats(t *testing.T, e *exporter) telemetry.QueueStats {
	t.Helper()
	q := e.svc.Telemetry().Snapshot().PersistentQueue
	if q == nil {
		t.Fatal("/status has no persistentQueue although it is configured")
	}
	return *q
}

// export sends one request and fails the test unless it is acknowledged.
func export(t *testing.T, c coltracepb.TraceServiceClient, req *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Export(ctx, req); err != nil {
		t.Fatalf("export: %v", err)
	}
}

// exportAll sends requests requests of n spans of service svc, each of which must be
// acknowledged, and returns their span ids.
func exportAll(t *testing.T, c coltracepb.TraceServiceClient, svc string, requests, n int) []string {
	t.Helper()
	var ids []string
	for range requests {
		req, more := request(svc, n)
		export(t, c, req)
		ids = append(ids, more...)
	}
	return ids
}

// awaitStream waits until key holds every id in want exactly once and nothing else.
func awaitStream(t *testing.T, s *redistest.Server, key string, want []string) {
	t.Helper()
	rdb := s.Client(t)
	wait.For(t, 30*time.Second, fmt.Sprintf("%d spans in %s", len(want), key), func() error {
		got := spanIDs(t, rdb, key)
		if len(got) != len(want) {
			return fmt.Errorf("%d distinct spans in the stream, want %d", len(got), len(want))
		}
		for _, id := range want {
			if got[id] != 1 {
				return fmt.Errorf("span %s is in the stream %d times", id, got[id])
			}
		}
		return nil
	})
}

func TestPersistentQueueAcknowledgesWhileRedisIsDownAndWritesLater(t *testing.T) {
	s := redistest.Standalone(t)
	s.Stop()
	e := start(t, queueConfig(s, t.TempDir()))
	want := exportAll(t, grpcClient(t, e.grpc), "queued", 20, 50)
	if q := queueStats(t, e); q.Records != 20 || q.Bytes == 0 {
		t.Fatalf("with Redis down, 20 acknowledged requests should wait in the queue; stats %+v", q)
	}
	// The pod stays ready: it takes requests into the log while Redis is away.
	if code, body, err := get("http://" + e.admin + "/readyz"); err != nil || code != 200 {
		t.Fatalf("/readyz with the queue on and Redis down: %d %s %v", code, body, err)
	}
	s.Start()
	awaitStream(t, s, "traces:queued", want)
	wait.For(t, 10*time.Second, "the queue drained", func() error {
		if q := queueStats(t, e); q.Records != 0 {
			return fmt.Errorf("%d records left", q.Records)
		}
		return nil
	})
}

// TestPersistentQueueSurvivesARestartAndATornTail acknowledges requests while Redis is down,
// stops the exporter before it could write them, tears the last record of the log as a crash
// mid-write would, and starts a new exporter on the same directory: the damage is skipped and
// counted, and every acknowledged span reaches Redis once.
func TestPersistentQueueSurvivesARestartAndATornTail(t *testing.T) {
	s := redistest.Standalone(t)
	s.Stop()
	dir := t.TempDir()
	first := start(t, queueConfig(s, dir))
	want := exportAll(t, grpcClient(t, first.grpc), "restarted", 10, 30)
	first.shutdownOnce.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := first.svc.Shutdown(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "10 records left") {
		t.Fatalf("shutting down with Redis down should leave the 10 records in the queue, got %v", err)
	}
	// A record the client was never told about, cut short (a crash while writing it).
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r', 't'}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	s.Start()
	second := start(t, queueConfig(s, dir))
	if q := queueStats(t, second); q.CorruptRecords != 1 || q.CorruptBytes != 12 {
		t.Fatalf("the torn record should be counted once (12 bytes); stats %+v", q)
	}
	awaitStream(t, s, "traces:restarted", want)
	_, metrics, err := get("http://" + second.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, "tracestream_exporter_queue_corrupt_records_total 1") {
		t.Fatal("/metrics does not count the damaged record")
	}
}

func TestAFullPersistentQueuePushesBackAndRecovers(t *testing.T) {
	s := redistest.Standalone(t)
	s.Stop()
	e := start(t, queueConfig(s, t.TempDir()))
	c := grpcClient(t, e.grpc)
	big := strings.Repeat("x", 6000)
	var (
		want []string
		last error
	)
	for range 400 {
		req, ids := request("full", 100)
		for _, sp := range req.ResourceSpans[0].ScopeSpans[0].Spans {
			sp.Attributes = append(sp.Attributes, &commonpb.KeyValue{Key: "payload", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: big}}})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, last = c.Export(ctx, req)
		cancel()
		if last != nil {
			break
		}
		want = append(want, ids...)
	}
	st, _ := status.FromError(last)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "persistent queue is full") {
		t.Fatalf("after %d spans, want RESOURCE_EXHAUSTED naming the full queue, got %v", len(want), last)
	}
	if retryInfo(last) == nil {
		t.Fatal("RESOURCE_EXHAUSTED without RetryInfo: OTLP clients would not retry it")
	}
	q := queueStats(t, e)
	if q.Bytes > q.CapacityBytes {
		t.Fatalf("queue holds %d bytes, over its bound of %d", q.Bytes, q.CapacityBytes)
	}
	t.Logf("%d spans (%d records, %d bytes) filled the %d-byte queue", len(want), q.Records, q.Bytes, q.CapacityBytes)

	s.Start()
	req, ids := request("full", 10)
	wait.For(t, 30*time.Second, "the queue to take requests again", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Export(ctx, req)
		return err
	})
	awaitStream(t, s, "traces:full", append(want, ids...))
}

// TestPersistentQueueWaitsForCredentialsInsteadOfDropping: with a wrong password, requests are
// still acknowledged into the log, and its records are retried, not dropped, until the password
// file is right; then every span lands once.
func TestPersistentQueueWaitsForCredentialsInsteadOfDropping(t *testing.T) {
	s := redistest.Standalone(t, redistest.WithACL(""))
	cfg := queueConfig(s, t.TempDir())
	pwFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, pwFile, "not-the-password")
	cfg.Redis.PasswordFile = pwFile
	e := start(t, cfg)
	want := exportAll(t, grpcClient(t, e.grpc), "credentials", 10, 20)
	wait.For(t, 10*time.Second, "Redis refusing the queue's writes", func() error {
		if n := e.svc.Telemetry().Snapshot().LastErrorClass; n != "auth" {
			return fmt.Errorf("last error class %q", n)
		}
		return nil
	})
	if q := queueStats(t, e); q.Records != 10 {
		t.Fatalf("records waiting in the queue: %d, want 10", q.Records)
	}
	password, err := os.ReadFile(s.ACL().PasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pwFile, string(password))
	awaitStream(t, s, "traces:credentials", want)
	if dropped := e.svc.Telemetry().Snapshot().SpansDropped; dropped != 0 {
		t.Fatalf("%d spans dropped while the credentials were wrong", dropped)
	}
}
