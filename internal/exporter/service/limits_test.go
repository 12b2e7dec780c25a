package service_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// metric reads one sample of the exporter's /metrics: name with its labels, as exposed.
func (e *exporter) metric(t *testing.T, series string) float64 {
	t.Helper()
	_, text, err := get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("/metrics has no %s", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// sizedRequest is a request of about size bytes: spans with a 1 KiB attribute each.
func sizedRequest(svc string, size int) *coltracepb.ExportTraceServiceRequest {
	req, _ := request(svc, max(size/1100, 1))
	pad := strings.Repeat("x", 1024)
	for _, s := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		s.Attributes = append(s.Attributes, &commonpb.KeyValue{Key: "pad", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: pad}}})
	}
	return req
}

// TestMemoryBudgetRefusesWhatItCannotHold holds one request in flight (Redis pauses writes) and
// sends another that the rest of delivery.maxInFlightBytes cannot hold: it is refused at once
// with RESOURCE_EXHAUSTED and RetryInfo (gRPC) or 429 with Retry-After (HTTP), and admitted once
// the first is answered. A request larger than the whole budget still goes through alone, and
// every claimed byte comes back.
func TestMemoryBudgetRefusesWhatItCannotHold(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Receivers.MaxRequestBytes = 1 << 20
	cfg.Delivery.MaxInFlightBytes = 1 << 20
	cfg.Delivery.StallTimeout = config.Duration{Duration: time.Hour} // Redis is paused on purpose
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	unpause := pauseWrites(t, s)

	first := sizedRequest("memory", 200<<10)
	firstBytes := proto.Size(first)
	done := make(chan error, 1)
	go func() {
		_, err := client.Export(context.Background(), first)
		done <- err
	}()
	wait.For(t, 10*time.Second, "the first request waiting for Redis", func() error {
		if n := e.metric(t, "tracestream_exporter_inflight_spans"); n != float64(len(first.ResourceSpans[0].ScopeSpans[0].Spans)) {
			return fmt.Errorf("%v spans in flight", n)
		}
		return nil
	})
	held := int(e.metric(t, "tracestream_exporter_inflight_bytes"))
	if held >= int(cfg.Delivery.MaxInFlightBytes) {
		t.Fatalf("the first request holds the whole budget (%d bytes): make it smaller, so that the second is refused for what is left", held)
	}
	if held <= firstBytes {
		t.Fatalf("the first request holds %d bytes of the budget, want more than its %d-byte body (its entries count too)", held, firstBytes)
	}
	second := sizedRequest("memory", int(cfg.Delivery.MaxInFlightBytes)-held+(64<<10))
	t.Logf("first request: %d bytes, holds %d; second request: %d bytes, budget %d", firstBytes, held, proto.Size(second), cfg.Delivery.MaxInFlightBytes)

	_, err := client.Export(context.Background(), second)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "delivery.maxInFlightBytes") {
		t.Fatalf("gRPC request past the memory budget: %v, want RESOURCE_EXHAUSTED naming delivery.maxInFlightBytes", err)
	}
	if retryInfo(err) == nil {
		t.Errorf("RESOURCE_EXHAUSTED without RetryInfo, which OTLP clients need to retry")
	}
	body, _ := proto.Marshal(second)
	resp, text := post(t, "http://"+e.http+"/v1/traces", "application/x-protobuf", "", body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(text, "delivery.maxInFlightBytes") {
		t.Errorf("HTTP request past the memory budget: %d Retry-After=%q %q, want 429 with Retry-After naming delivery.maxInFlightBytes", resp.StatusCode, resp.Header.Get("Retry-After"), text)
	}
	if n := e.metric(t, "tracestream_exporter_memory_refused_requests_total"); n < 2 {
		t.Errorf("memory_refused_requests_total %v, want at least the 2 refusals", n)
	}
	if n := e.metric(t, "tracestream_exporter_inflight_bytes"); int(n) != held {
		t.Errorf("inflight_bytes %v after the refusals, want the first request's %d: a refused request kept part of its claim", n, held)
	}

	unpause()
	if err := <-done; err != nil {
		t.Fatalf("the request that held the budget: %v", err)
	}
	if _, err := client.Export(context.Background(), second); err != nil {
		t.Errorf("the refused request, sent again once the budget was free: %v", err)
	}
	// Its entries outgrow the budget; alone it is admitted.
	if _, err := client.Export(context.Background(), sizedRequest("memory", 900<<10)); err != nil {
		t.Errorf("a request larger than the budget, alone: %v", err)
	}
	if n := e.metric(t, "tracestream_exporter_inflight_bytes"); n != 0 {
		t.Errorf("inflight_bytes %v with nothing in flight", n)
	}
}

// TestHTTPCutsSlowBodiesAndIdleConnections: a body that trickles in is cut at
// receivers.http.readTimeout (408, then the connection closes), and a keep-alive connection that
// sends nothing is closed at receivers.http.idleTimeout; neither keeps a slot or a claim. Each
// case runs with the other timeout long, so that each is shown to be the one that acts.
func TestHTTPCutsSlowBodiesAndIdleConnections(t *testing.T) {
	s := redistest.Standalone(t)
	short, long := config.Duration{Duration: 300 * time.Millisecond}, config.Duration{Duration: time.Minute}
	t.Run("slow body", func(t *testing.T) {
		cfg := standaloneConfig(s)
		// Long enough to see the body's bytes claimed before the cut.
		cfg.Receivers.HTTP.ReadTimeout, cfg.Receivers.HTTP.IdleTimeout = config.Duration{Duration: 5 * time.Second}, long
		e := start(t, cfg)
		slow := dial(t, e.http)
		_, _ = fmt.Fprintf(slow, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n")
		if _, err := slow.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		// The memory budget holds what arrived, not what Content-Length announced: a client
		// that announces much and sends slowly must not hold the budget.
		var claimed float64
		wait.For(t, 4*time.Second, "the slow body's bytes claimed", func() error {
			if claimed = e.metric(t, "tracestream_exporter_inflight_bytes"); claimed == 0 {
				return errors.New("nothing claimed yet")
			}
			return nil
		})
		if claimed != 100 {
			t.Errorf("a slow body of 100 bytes so far (Content-Length 100000) holds %v bytes of the budget, want 100", claimed)
		}
		answer := readUntilClosed(t, slow)
		if !strings.HasPrefix(answer, "HTTP/1.1 408") || !strings.Contains(answer, "receivers.http.readTimeout") {
			t.Errorf("a slow body got %q, want 408 naming receivers.http.readTimeout and the connection closed", firstLine(answer))
		}
		e.released(t)
	})
	t.Run("idle connection", func(t *testing.T) {
		cfg := standaloneConfig(s)
		cfg.Receivers.HTTP.ReadTimeout, cfg.Receivers.HTTP.IdleTimeout = long, short
		e := start(t, cfg)
		idle := dial(t, e.http)
		req, _ := request("idle", 3)
		body, _ := proto.Marshal(req)
		_, _ = fmt.Fprintf(idle, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
		if err != nil {
			t.Fatalf("a request on a keep-alive connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("a request on a keep-alive connection: HTTP %d, close %v", resp.StatusCode, resp.Close)
		}
		if rest := readUntilClosed(t, idle); rest != "" {
			t.Errorf("the idle connection got %q before it was closed", rest)
		}
		e.released(t)
		if n := s.Client(t).XLen(context.Background(), "traces:idle").Val(); n != 3 {
			t.Errorf("%d entries in traces:idle, want the 3 acknowledged", n)
		}
	})
}

// released waits until the exporter holds no HTTP connection, and checks that it holds no
// memory for requests either.
func (e *exporter) released(t *testing.T) {
	t.Helper()
	wait.For(t, 10*time.Second, "the closed connections released", func() error {
		if n := e.metric(t, `tracestream_exporter_receiver_connections{protocol="http"}`); n != 0 {
			return fmt.Errorf("%v HTTP connections open", n)
		}
		return nil
	})
	if n := e.metric(t, "tracestream_exporter_inflight_bytes"); n != 0 {
		t.Errorf("inflight_bytes %v with no request in flight", n)
	}
}

// TestMaxConnectionsHoldsNewConnectionsUntilOneCloses fills receivers.maxConnections on the HTTP
// receiver with requests in progress (bodies half sent), which are never closed to make room: a
// real client's request then waits (it is not refused) and goes through as soon as one of them
// ends. (Idle connections at the bound are closed to make room instead: TestReceivers... in
// internal/exporter/receiver, for both receivers, and TestReceiversCloseIdleConnectionsToMakeRoom.)
func TestMaxConnectionsHoldsNewConnectionsUntilOneCloses(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Receivers.MaxConnections = 2
	cfg.Receivers.HTTP.ReadTimeout = config.Duration{Duration: time.Minute} // the half-sent bodies stay
	e := start(t, cfg)
	send := func() error {
		req, _ := request("connections", 2)
		return exportHTTP(context.Background(), e.http, req)
	}
	series := `tracestream_exporter_receiver_connections{protocol="http"}`
	var busy []net.Conn
	for range 2 {
		c := dial(t, e.http)
		if _, err := c.Write([]byte("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n\x0a")); err != nil {
			t.Fatal(err)
		}
		busy = append(busy, c)
	}
	wait.For(t, 10*time.Second, "both requests in progress accepted", func() error {
		if n := e.metric(t, series); n != 2 {
			return fmt.Errorf("%v connections open", n)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- send() }()
	select {
	case err := <-done:
		t.Fatalf("a request over a third connection was answered (%v) while two of two had requests in progress", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := e.metric(t, series); n != 2 {
		t.Errorf("%v connections open with the third waiting, want 2", n)
	}
	_ = busy[0].Close()
	if err := <-done; err != nil {
		t.Errorf("the waiting request, once a connection closed: %v", err)
	}
	_ = busy[1].Close()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readUntilClosed reads what the server sends until it closes the connection (bounded, so that a
// server that never closes fails the test instead of hanging it).
func readUntilClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection in 30 s (read %q)", b)
	}
	return string(b)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
