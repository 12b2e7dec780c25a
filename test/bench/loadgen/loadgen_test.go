package loadgen_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/service"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/test/bench/loadgen"
)

func TestFillNumbersEverySpan(t *testing.T) {
	tmpl, err := loadgen.NewTemplate(loadgen.Shape{SpansPerRequest: 50, Attributes: 3, AttributeBytes: 40})
	if err != nil {
		t.Fatal(err)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(tmpl.Fill(nil, 1000), &req); err != nil {
		t.Fatalf("a filled request does not unmarshal: %v", err)
	}
	spans := req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()
	if len(spans) != 50 {
		t.Fatalf("%d spans, want 50", len(spans))
	}
	for i, sp := range spans {
		seq, ok := loadgen.Seq(binary.BigEndian.Uint64(sp.GetSpanId()))
		if !ok || seq != 1000+uint64(i) {
			t.Errorf("span %d has id %x (seq %d, ok %v), want seq %d", i, sp.GetSpanId(), seq, ok, 1000+i)
		}
		if got := len(sp.GetAttributes()); got != 13 {
			t.Errorf("span %d has %d attributes, want 13", i, got)
		}
	}
}

// TestRunAndVerifyAgainstTheExporter drives a real exporter and Redis with both protocols,
// checks every span arrived once, then removes one entry and checks Verify notices.
func TestRunAndVerifyAgainstTheExporter(t *testing.T) {
	srv := redistest.Standalone(t)
	cfg := config.Default()
	cfg.Receivers.GRPC.Endpoint = "127.0.0.1:0"
	cfg.Receivers.HTTP.Endpoint = "127.0.0.1:0"
	cfg.Admin.Endpoint = "127.0.0.1:0"
	cfg.Redis.Addresses = []string{srv.Addr()}
	svc, err := service.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	grpcAddr, httpAddr, _ := svc.Addrs()
	rdb := srv.Client(t)
	tmpl, err := loadgen.NewTemplate(loadgen.DefaultShape(20))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ protocol, endpoint string }{
		{loadgen.GRPC, grpcAddr},
		{loadgen.HTTP, httpAddr},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			ctx := context.Background()
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			windowCalls := 0
			res, err := loadgen.Run(ctx, tmpl, loadgen.Options{
				Protocol: tc.protocol, Endpoint: tc.endpoint, Connections: 2, Workers: 4,
				Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond,
				WindowStart: func() { windowCalls++ }, WindowEnd: func() { windowCalls++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failed) != 0 || res.Spans == 0 || windowCalls != 2 {
				t.Fatalf("failed %v, %d spans in the window, %d window calls", res.Failed, res.Spans, windowCalls)
			}
			if res.Spans%20 != 0 || res.Spans > len(res.Acked)*20 || len(res.Latencies) != res.Requests {
				t.Fatalf("%d spans in the window from %d requests, %d acked in all, %d latencies",
					res.Spans, res.Requests, len(res.Acked), len(res.Latencies))
			}
			d, err := loadgen.Verify(ctx, rdb, res, "traces:orders")
			if err != nil {
				t.Fatal(err)
			}
			if d.Lost != 0 || d.Duplicates != 0 || d.Stray != 0 || d.Acked != len(res.Acked)*20 || d.Found < d.Acked {
				t.Fatalf("delivery: %v", d)
			}
			first := rdb.XRangeN(ctx, "traces:orders", "-", "+", 1).Val()
			rdb.XDel(ctx, "traces:orders", first[0].ID)
			rdb.XAdd(ctx, &redis.XAddArgs{Stream: "traces:orders", Values: []string{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
			if d, _ = loadgen.Verify(ctx, rdb, res, "traces:orders"); d.Lost != 1 || d.Stray != 1 {
				t.Fatalf("after deleting one entry and adding a foreign one: %v, want 1 lost and 1 stray", d)
			}
		})
	}
}
