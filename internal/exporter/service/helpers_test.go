package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/service"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// exporter is a running in-process exporter and the addresses it listens on.
type exporter struct {
	svc               *service.Service
	grpc, http, admin string
	shutdownOnce      atomic.Bool
}

// baseConfig is the default configuration with every endpoint on a free loopback port.
func baseConfig() config.Config {
	cfg := config.Default()
	cfg.Receivers.GRPC.Endpoint = "127.0.0.1:0"
	cfg.Receivers.HTTP.Endpoint = "127.0.0.1:0"
	cfg.Admin.Endpoint = "127.0.0.1:0"
	cfg.Delivery.RetryInitialInterval = config.Duration{Duration: 20 * time.Millisecond}
	cfg.Delivery.RetryMaxInterval = config.Duration{Duration: 500 * time.Millisecond}
	return cfg
}

func standaloneConfig(s *redistest.Server) config.Config {
	cfg := baseConfig()
	cfg.Redis.Addresses = []string{s.Addr()}
	withTLSAndACL(&cfg, s.TLS(), s.ACL())
	return cfg
}

func withTLSAndACL(cfg *config.Config, t *redistest.TLS, a *redistest.ACL) {
	if t != nil {
		cfg.Redis.TLS.Enabled = true
		cfg.Redis.TLS.CAFile = t.CAFile()
		if t.Mutual() {
			cfg.Redis.TLS.CertFile = t.ClientCertFile()
			cfg.Redis.TLS.KeyFile = t.ClientKeyFile()
		}
	}
	if a != nil {
		cfg.Redis.UsernameFile = a.UsernameFile()
		cfg.Redis.PasswordFile = a.PasswordFile()
	}
}

// startB is start for benchmarks.
func startB(b *testing.B, cfg config.Config) *exporter {
	b.Helper()
	svc, err := service.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	e := &exporter{svc: svc}
	e.grpc, e.http, e.admin = svc.Addrs()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return e
}

// start runs an exporter with cfg until the test ends.
func start(t *testing.T, cfg config.Config) *exporter {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration is invalid: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := service.New(cfg, log)
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	e := &exporter{svc: svc}
	e.grpc, e.http, e.admin = svc.Addrs()
	t.Cleanup(func() { e.shutdown(t) })
	return e
}

func (e *exporter) shutdown(t *testing.T) {
	if e.shutdownOnce.Swap(true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.svc.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// grpcClient is a raw OTLP/gRPC client: unlike an SDK exporter it tells us exactly which request
// was acknowledged, which the loss tests need.
func grpcClient(t *testing.T, addr string) coltracepb.TraceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return coltracepb.NewTraceServiceClient(conn)
}

var spanSeq atomic.Uint64

// request builds an OTLP request of n spans of service svc with unique span ids; it returns the
// span ids as the hex the entries carry.
func request(svc string, n int) (*coltracepb.ExportTraceServiceRequest, []string) {
	var traceID [16]byte
	_, _ = rand.Read(traceID[:])
	spans := make([]*tracepb.Span, n)
	ids := make([]string, n)
	now := uint64(time.Now().UnixNano())
	for i := range spans {
		var sid [8]byte
		binary.BigEndian.PutUint64(sid[:], spanSeq.Add(1)|1<<63)
		spans[i] = &tracepb.Span{
			TraceId: traceID[:], SpanId: sid[:], Name: fmt.Sprintf("op-%d", i),
			Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: now, EndTimeUnixNano: now + 1000,
			Attributes: []*commonpb.KeyValue{{Key: "i", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(i)}}}},
		}
		ids[i] = fmt.Sprintf("%x", sid)
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: svc}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}, ids
}

// spanIDs reads a stream and returns the span_id of every entry, from the json data field.
func spanIDs(t *testing.T, c redis.Cmdable, key string) map[string]int {
	t.Helper()
	msgs, err := c.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	ids := make(map[string]int, len(msgs))
	for _, m := range msgs {
		var d struct {
			SpanID string `json:"span_id"`
		}
		data, _ := m.Values["data"].(string)
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			t.Fatalf("entry %s of %s: data is not JSON: %v", m.ID, key, err)
		}
		ids[d.SpanID]++
	}
	return ids
}

// pauseWrites makes Redis hold every write (CLIENT PAUSE WRITE) until unpause is called or the
// test ends.
func pauseWrites(t *testing.T, s *redistest.Server) (unpause func()) {
	t.Helper()
	rdb := s.Client(t)
	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	unpause = func() { rdb.Do(context.Background(), "CLIENT", "UNPAUSE") }
	t.Cleanup(unpause)
	return unpause
}

// retryInfo is the RetryInfo detail of a gRPC error, nil when it has none.
func retryInfo(err error) *errdetails.RetryInfo {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri
		}
	}
	return nil
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// exportHTTP sends req over OTLP/HTTP on a connection of its own (closed afterwards) and fails
// unless it is answered 200.
func exportHTTP(ctx context.Context, addr string, req *coltracepb.ExportTraceServiceRequest) error {
	body, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(hr)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
