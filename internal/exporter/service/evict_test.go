package service_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestReceiversCloseIdleConnectionsToMakeRoom: with receivers.maxConnections taken by
// connections that send nothing, a client's export succeeds at once (every timeout is an hour
// away), and each receiver counts the connections it closed to make room.
func TestReceiversCloseIdleConnectionsToMakeRoom(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Receivers.MaxConnections = 2
	hour := config.Duration{Duration: time.Hour}
	cfg.Receivers.HTTP.ReadHeaderTimeout, cfg.Receivers.HTTP.IdleTimeout, cfg.Receivers.GRPC.IdleTimeout = hour, hour, hour
	e := start(t, cfg)
	sends := map[string]struct {
		addr string
		send func(context.Context) error
	}{
		"grpc": {e.grpc, func(ctx context.Context) error {
			req, _ := request("evictions", 2)
			_, err := grpcClient(t, e.grpc).Export(ctx, req)
			return err
		}},
		"http": {e.http, func(ctx context.Context) error {
			req, _ := request("evictions", 2)
			return exportHTTP(ctx, e.http, req)
		}},
	}
	for protocol, tc := range sends {
		t.Run(protocol, func(t *testing.T) {
			open := fmt.Sprintf(`tracestream_exporter_receiver_connections{protocol=%q}`, protocol)
			evicted := fmt.Sprintf(`tracestream_exporter_receiver_connections_evicted_total{protocol=%q}`, protocol)
			for i := range 2 {
				silent, err := net.Dial("tcp", tc.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = silent.Close() })
				wait.For(t, 10*time.Second, "the silent connection accepted", func() error {
					if n := e.metric(t, open) + e.metric(t, evicted); n != float64(i+1) {
						return fmt.Errorf("%v connections open or closed to make room, want %d", n, i+1)
					}
					return nil
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // an OTel SDK's default
			defer cancel()
			if err := tc.send(ctx); err != nil {
				t.Fatalf("a client behind %d silent connections: %v", cfg.Receivers.MaxConnections, err)
			}
			if n := e.metric(t, evicted); n != 2 {
				t.Errorf("%s = %v, want 2: one when the second silent connection took the last slot, one for the client", evicted, n)
			}
		})
	}
}
