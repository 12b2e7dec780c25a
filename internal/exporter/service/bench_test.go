package service_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// BenchmarkEndToEndGRPC measures client -> exporter -> Redis over OTLP/gRPC with pre-marshalled
// 100-span requests on several connections, every request acknowledged only after Redis. It
// reports spans/s; with BENCH_SAMPLE_ENTRY set to a path it also writes one real entry's fields
// there, for redis-benchmark to replay the same payload shape (make bench compares the two).
func BenchmarkEndToEndGRPC(b *testing.B) {
	s := redistest.Standalone(b)
	cfg := standaloneConfig(s)
	e := startB(b, cfg)
	const spansPerRequest, conns = 100, 8
	req, _ := request("bench", spansPerRequest)
	payload, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	clients := make([]*grpc.ClientConn, conns)
	for i := range clients {
		if clients[i], err = grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = clients[i].Close() }()
	}
	var next atomic.Uint64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		cc := clients[next.Add(1)%conns]
		for pb.Next() {
			p := payload
			if err := cc.Invoke(context.Background(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
				&p, &coltracepb.ExportTraceServiceResponse{}, grpc.ForceCodecV2(rawCodec{})); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*spansPerRequest)/elapsed.Seconds(), "spans/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*spansPerRequest), "ns/span")
	rdb := s.Client(b)
	if n := rdb.XLen(context.Background(), "traces:bench").Val(); n != int64(b.N*spansPerRequest) {
		b.Fatalf("%d entries in Redis for %d spans acknowledged", n, b.N*spansPerRequest)
	}
	if path := os.Getenv("BENCH_SAMPLE_ENTRY"); path != "" {
		msgs := rdb.XRangeN(context.Background(), "traces:bench", "-", "+", 1).Val()
		if len(msgs) == 1 {
			_ = os.WriteFile(path, []byte(fmt.Sprintf("%s\n%s\n", msgs[0].Values["traceparent"], msgs[0].Values["data"])), 0o644)
		}
	}
}
