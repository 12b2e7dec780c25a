package service_test

import (
	"context"
	"encoding/json"

	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// topology is a Redis deployment under test and how the exporter and the test reach it.
type topology struct {
	config func(t *testing.T) (config.Config, redis.Cmdable)
}

var topologies = map[string]topology{
	"standalone": {func(t *testing.T) (config.Config, redis.Cmdable) {
		s := redistest.Standalone(t)
		return standaloneConfig(s), s.Client(t)
	}},
	"standalone with TLS": {func(t *testing.T) (config.Config, redis.Cmdable) {
		s := redistest.Standalone(t, redistest.WithTLS())
		return standaloneConfig(s), s.Client(t)
	}},
	"standalone with mutual TLS": {func(t *testing.T) (config.Config, redis.Cmdable) {
		s := redistest.Standalone(t, redistest.WithMutualTLS())
		return standaloneConfig(s), s.Client(t)
	}},
	"standalone with an ACL user": {func(t *testing.T) (config.Config, redis.Cmdable) {
		s := redistest.Standalone(t, redistest.WithACL(""))
		return standaloneConfig(s), s.Client(t)
	}},
	"cluster": {func(t *testing.T) (config.Config, redis.Cmdable) {
		c := redistest.Cluster(t)
		cfg := baseConfig()
		cfg.Redis.Mode = config.ModeCluster
		for _, m := range c.Masters() {
			cfg.Redis.Addresses = append(cfg.Redis.Addresses, m.Addr())
		}
		return cfg, c.Client(t)
	}},
	"sentinel": {func(t *testing.T) (config.Config, redis.Cmdable) {
		st := redistest.Sentinel(t)
		cfg := baseConfig()
		cfg.Redis.Mode = config.ModeSentinel
		cfg.Redis.Addresses = st.SentinelAddrs()
		cfg.Redis.Sentinel.MasterName = st.MasterName()
		return cfg, st.Client(t)
	}},
}

// TestSDKExportersWriteEverySpan sends spans with the OpenTelemetry Go SDK's OTLP gRPC and HTTP
// exporters through the exporter into every Redis topology, and reads each one back.
func TestSDKExportersWriteEverySpan(t *testing.T) {
	for name, topo := range topologies {
		t.Run(name, func(t *testing.T) {
			cfg, rdb := topo.config(t)
			e := start(t, cfg)
			for _, protocol := range []string{"grpc", "http"} {
				t.Run(protocol, func(t *testing.T) {
					ctx := context.Background()
					var exp sdktrace.SpanExporter
					var err error
					if protocol == "grpc" {
						exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(e.grpc), otlptracegrpc.WithInsecure())
					} else {
						exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(e.http), otlptracehttp.WithInsecure())
					}
					if err != nil {
						t.Fatal(err)
					}
					// Three services: in cluster mode their streams land on different masters.
					sent := map[string][]trace.SpanContext{}
					for _, svc := range []string{"checkout-" + protocol, "cart-" + protocol, "payment-" + protocol} {
						tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
							sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", svc))))
						tr := tp.Tracer("tracestream.test", trace.WithInstrumentationVersion("1.2.3"))
						for i := range 20 {
							_, sp := tr.Start(ctx, fmt.Sprintf("GET /item/%d", i), trace.WithSpanKind(trace.SpanKindServer),
								trace.WithAttributes(attribute.Int("i", i), attribute.Bool("even", i%2 == 0),
									attribute.Float64("ratio", float64(i)/3), attribute.StringSlice("tags", []string{"a", "b"})))
							sp.AddEvent("cache miss", trace.WithAttributes(attribute.String("key", "k")))
							sp.End()
							sent[svc] = append(sent[svc], sp.SpanContext())
						}
						// WithSyncer exports span by span and reports the export's error here.
						if err := tp.ForceFlush(ctx); err != nil {
							t.Fatalf("exporting: %v", err)
						}
					}
					if err := exp.Shutdown(ctx); err != nil {
						t.Fatalf("exporter shutdown: %v", err)
					}
					for svc, scs := range sent {
						assertEntries(t, rdb, "traces:"+svc, svc, scs)
					}
				})
			}
		})
	}
}

func assertEntries(t *testing.T, rdb redis.Cmdable, key, svc string, sent []trace.SpanContext) {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	if len(msgs) != len(sent) {
		t.Fatalf("%s has %d entries, want %d", key, len(msgs), len(sent))
	}
	want := map[string]trace.SpanContext{}
	for _, sc := range sent {
		want[sc.SpanID().String()] = sc
	}
	for _, m := range msgs {
		var d struct {
			TraceID     string         `json:"trace_id"`
			SpanID      string         `json:"span_id"`
			Kind        int            `json:"kind"`
			ServiceName string         `json:"service_name"`
			Attributes  map[string]any `json:"attributes"`
			Scope       struct {
				Name, Version string
			} `json:"scope"`
			Events []struct {
				Name string `json:"name"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(m.Values["data"].(string)), &d); err != nil {
			t.Fatalf("%s %s: data: %v", key, m.ID, err)
		}
		sc, ok := want[d.SpanID]
		if !ok {
			t.Fatalf("%s %s: span %s was not sent (or came twice)", key, m.ID, d.SpanID)
		}
		delete(want, d.SpanID)
		tp := fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
		if m.Values["traceparent"] != tp {
			t.Errorf("%s %s: traceparent %v, want %s", key, m.ID, m.Values["traceparent"], tp)
		}
		if d.TraceID != sc.TraceID().String() || d.ServiceName != svc || d.Kind != 2 {
			t.Errorf("%s %s: trace_id %s service %s kind %d, want %s %s 2", key, m.ID, d.TraceID, d.ServiceName, d.Kind, sc.TraceID(), svc)
		}
		if d.Scope.Name != "tracestream.test" || d.Scope.Version != "1.2.3" {
			t.Errorf("%s %s: scope %+v", key, m.ID, d.Scope)
		}
		if _, isNum := d.Attributes["i"].(float64); !isNum || d.Attributes["even"] == nil || len(d.Events) != 1 || d.Events[0].Name != "cache miss" {
			t.Errorf("%s %s: attributes %v events %v: types or events lost", key, m.ID, d.Attributes, d.Events)
		}
	}
}

// TestRedisRestartLosesNoAcknowledgedSpan stops Redis in the middle of a load and starts it
// again: every span whose request was acknowledged must be in Redis, and clients must have seen
// only retryable errors.
func TestRedisRestartLosesNoAcknowledgedSpan(t *testing.T) {
	s := redistest.Standalone(t, redistest.WithConfig("appendonly", "yes"), redistest.WithConfig("appendfsync", "always"))
	cfg := standaloneConfig(s)
	cfg.Delivery.RequestTimeout = config.Duration{Duration: 2 * time.Second}
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		failures = map[codes.Code]int{}
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, ids := request("restart", 50)
				_, err := client.Export(context.Background(), req)
				mu.Lock()
				if err == nil {
					for _, id := range ids {
						acked[id] = true
					}
				} else {
					failures[status.Code(err)]++
				}
				mu.Unlock()
			}
		}()
	}
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, v := range failures {
			n += v
		}
		return len(acked), n
	}
	wait.For(t, 10*time.Second, "load running", func() error {
		if a, _ := count(); a < 500 {
			return fmt.Errorf("%d spans acknowledged", a)
		}
		return nil
	})
	s.Stop()
	wait.For(t, 20*time.Second, "clients told to retry while Redis is down", func() error {
		if _, f := count(); f < 4 {
			return fmt.Errorf("%d failed requests", f)
		}
		return nil
	})
	s.Start()
	before, _ := count()
	wait.For(t, 20*time.Second, "writes resume after Redis restarts", func() error {
		if a, _ := count(); a < before+500 {
			return fmt.Errorf("%d spans acknowledged since the restart", a-before)
		}
		return nil
	})
	cancel()
	wg.Wait()

	got := spanIDs(t, s.Client(t), "traces:restart")
	lost := 0
	for id := range acked {
		if got[id] == 0 {
			lost++
		}
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("acknowledged %d spans, %d entries in Redis, %d duplicates, failures by code %v", len(acked), len(got), dups, failures)
	if lost > 0 {
		t.Errorf("%d acknowledged spans are missing from Redis", lost)
	}
	for code := range failures {
		if code != codes.Unavailable && code != codes.ResourceExhausted {
			t.Errorf("clients saw %s, which OTLP clients do not retry", code)
		}
	}
}

// TestWrongPasswordFailsClearlyWithoutReconnectStorm starts the exporter with a wrong password:
// it must say so (readiness, /status, the client's error) without dialling Redis for every
// request, and recover by itself once the password file is right.
func TestWrongPasswordFailsClearlyWithoutReconnectStorm(t *testing.T) {
	s := redistest.Standalone(t, redistest.WithACL(""))
	cfg := standaloneConfig(s)
	pwFile := t.TempDir() + "/password"
	writeFile(t, pwFile, "not-the-password")
	cfg.Redis.PasswordFile = pwFile
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	admin := s.Client(t)

	wait.For(t, 10*time.Second, "readiness reports Redis unreachable", func() error {
		code, body, err := get("http://" + e.admin + "/readyz")
		if err != nil || code != 503 {
			return fmt.Errorf("readyz %d %q: %w", code, body, err)
		}
		return nil
	})
	_, body, _ := get("http://" + e.admin + "/status")
	var st struct {
		LastErrorClass string `json:"lastErrorClass"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.LastErrorClass != "auth" {
		t.Errorf("/status = %s, want lastErrorClass auth", body)
	}

	conns := func() int64 {
		v, err := admin.InfoMap(context.Background(), "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		_, _ = fmt.Sscan(v["Stats"]["total_connections_received"], &n)
		return n
	}
	before := conns()
	const requests = 200
	for range requests {
		req, _ := request("auth", 5)
		_, err := client.Export(context.Background(), req)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("export with a wrong password: %v, want UNAVAILABLE", err)
		}
	}
	dialled := conns() - before
	t.Logf("%d requests refused, %d connections dialled meanwhile", requests, dialled)
	if dialled > requests/10 {
		t.Errorf("%d connections for %d requests: the exporter redials per request", dialled, requests)
	}

	writeFile(t, pwFile, s.ACL().Password())
	wait.For(t, 15*time.Second, "writes succeed once the password file is fixed", func() error {
		req, _ := request("auth", 5)
		_, err := client.Export(context.Background(), req)
		return err
	})
}

// TestClusterMasterKilledWritesResume kills a master under the exporter: once its replica takes
// over, writes to every slot succeed again without restarting the exporter.
func TestClusterMasterKilledWritesResume(t *testing.T) {
	c := redistest.Cluster(t)
	cfg := baseConfig()
	cfg.Redis.Mode = config.ModeCluster
	for _, m := range c.Masters() {
		cfg.Redis.Addresses = append(cfg.Redis.Addresses, m.Addr())
	}
	cfg.Delivery.RequestTimeout = config.Duration{Duration: 3 * time.Second}
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	send := func() error {
		for i := range 12 { // twelve services: streams on every master
			req, _ := request(fmt.Sprintf("svc-%d", i), 5)
			if _, err := client.Export(context.Background(), req); err != nil {
				return err
			}
		}
		return nil
	}
	if err := send(); err != nil {
		t.Fatalf("before the failover: %v", err)
	}
	c.Masters()[1].Kill()
	start := time.Now()
	wait.For(t, 60*time.Second, "writes to every slot after the failover", send)
	t.Logf("writes resumed %s after the master was killed", time.Since(start).Round(100*time.Millisecond))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := writeFileAtomic(path, content); err != nil {
		t.Fatal(err)
	}
}
