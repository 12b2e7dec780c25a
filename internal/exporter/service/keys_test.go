package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestStreamKeysAreBoundedByMaxKeys sends spans of 20 services to an exporter limited to 5
// stream keys: the first 5 services get their streams, the other spans all land in the overflow
// stream (none lost), and the metrics say so; the known services keep their streams.
func TestStreamKeysAreBoundedByMaxKeys(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Stream.MaxKeys = 5
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	ctx := context.Background()
	for i := range 20 {
		req, _ := request(fmt.Sprintf("svc-%02d", i), 3)
		if _, err := client.Export(ctx, req); err != nil {
			t.Fatalf("service %d: %v", i, err)
		}
	}
	again, _ := request("svc-00", 3)
	if _, err := client.Export(ctx, again); err != nil {
		t.Fatal(err)
	}
	rdb := s.Client(t)
	keys, err := rdb.Keys(ctx, "traces:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 {
		t.Fatalf("streams %v, want the first 5 services' and traces:overflow", keys)
	}
	if n := rdb.XLen(ctx, "traces:overflow").Val(); n != 15*3 {
		t.Fatalf("traces:overflow holds %d entries, want the 45 spans of the 15 services past the bound", n)
	}
	if n := rdb.XLen(ctx, "traces:svc-00").Val(); n != 6 {
		t.Fatalf("traces:svc-00 holds %d entries, want 6: a known key stays its own stream at the bound", n)
	}
	if n := e.metric(t, "tracestream_exporter_stream_key_overflow_spans_total"); n != 45 {
		t.Errorf("stream_key_overflow_spans_total %v, want 45", n)
	}
	if n := e.metric(t, "tracestream_exporter_stream_keys"); n != 5 {
		t.Errorf("stream_keys %v, want 5", n)
	}
}
