package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// collector is an in-process OTLP receiver that keeps every span it gets, by service. It serves
// OTLP/gRPC (as a TraceServiceServer) and OTLP/HTTP protobuf (as an http.Handler).
type collector struct {
	collectortrace.UnimplementedTraceServiceServer

	// reject makes every request fail (INVALID_ARGUMENT / 400) when set; rejectFirst makes
	// the first requests fail.
	reject      bool
	rejectFirst int
	// partial is the partial success returned for every request when set.
	partial *collectortrace.ExportTracePartialSuccess

	mu       sync.Mutex
	requests int
	spans    map[string][]*tracepb.Span
}

// rejects counts a request and reports whether to reject it.
func (c *collector) rejects() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	return c.reject || c.requests <= c.rejectFirst
}

func (c *collector) record(req *collectortrace.ExportTraceServiceRequest) *collectortrace.ExportTraceServiceResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spans == nil {
		c.spans = map[string][]*tracepb.Span{}
	}
	for _, rs := range req.GetResourceSpans() {
		service := "(none)"
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans[service] = append(c.spans[service], ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{PartialSuccess: c.partial}
}

// Export implements collectortrace.TraceServiceServer.
func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	if c.rejects() {
		return nil, status.Error(grpccodes.InvalidArgument, "rejected by the test collector")
	}
	return c.record(req), nil
}

// ServeHTTP implements OTLP/HTTP with protobuf bodies, the encoding otlptracehttp sends.
func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	if c.rejects() {
		http.Error(w, "rejected by the test collector", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := proto.Marshal(c.record(&req))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

func (c *collector) received() map[string][]*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]*tracepb.Span{}
	for k, v := range c.spans {
		out[k] = slices.Clone(v)
	}
	return out
}

// serve starts c for protocol on a loopback port and returns its host:port.
func serve(t *testing.T, protocol string, c *collector) string {
	t.Helper()
	if protocol == protocolHTTP {
		srv := httptest.NewServer(c)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// testOptions are the settings of a test run: a short timeout and no retry, so that a failing
// run fails fast.
func testOptions(protocol, endpoint string, spans int, services ...string) options {
	return options{protocol: protocol, endpoint: endpoint, insecure: true, spans: spans, services: services,
		timeout: 5 * time.Second, retry: false}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The runs set the global error handler, so these tests do not run in parallel.

func TestRunSendsEverySpanToTheCollector(t *testing.T) {
	cases := map[string]struct {
		spans    int
		services []string
	}{
		"300 spans of two services":                     {spans: 300, services: []string{"checkout", "payment"}},
		"7 spans of one service end with a short trace": {spans: 7, services: []string{"checkout"}},
		"1 span is a lone root":                         {spans: 1, services: []string{"checkout"}},
		"more services than traces":                     {spans: 5, services: []string{"a", "b", "c"}},
	}
	for _, protocol := range []string{protocolGRPC, protocolHTTP} {
		for name, tc := range cases {
			t.Run(protocol+"/"+name, func(t *testing.T) {
				c := &collector{}
				opts := testOptions(protocol, serve(t, protocol, c), tc.spans, tc.services...)
				var out bytes.Buffer
				if err := run(ctxFor(t), opts, &out); err != nil {
					t.Fatalf("run: %v", err)
				}
				want := "sent " + strconv.Itoa(tc.spans) + " spans (services " + strings.Join(tc.services, ", ") + ") to " +
					opts.endpoint + " over " + protocol + "\n"
				if out.String() != want {
					t.Errorf("output %q, want %q", out.String(), want)
				}
				checkReceived(t, c.received(), tc.spans, tc.services)
			})
		}
	}
}

// checkReceived asserts that exactly n spans arrived, from the services expected (each of which
// sent at least one trace if there were enough), in traces of one root and its direct children,
// every trace from one service.
func checkReceived(t *testing.T, got map[string][]*tracepb.Span, n int, services []string) {
	t.Helper()
	total := 0
	traces := map[string][]*tracepb.Span{}
	traceService := map[string]string{}
	for service, spans := range got {
		if !slices.Contains(services, service) {
			t.Errorf("%d spans from unexpected service %q", len(spans), service)
		}
		total += len(spans)
		for _, sp := range spans {
			id := hex.EncodeToString(sp.GetTraceId())
			traces[id] = append(traces[id], sp)
			if s, ok := traceService[id]; ok && s != service {
				t.Errorf("trace %s has spans of %s and %s", id, s, service)
			}
			traceService[id] = service
		}
	}
	if total != n {
		t.Fatalf("the collector received %d spans, want %d", total, n)
	}
	wantTraces := (n + spansPerTrace - 1) / spansPerTrace
	if len(traces) != wantTraces {
		t.Errorf("%d traces, want %d of up to %d spans", len(traces), wantTraces, spansPerTrace)
	}
	for _, s := range services[:min(len(services), wantTraces)] {
		if len(got[s]) == 0 {
			t.Errorf("no span from service %q", s)
		}
	}
	for id, spans := range traces {
		var roots []*tracepb.Span
		for _, sp := range spans {
			if len(sp.GetParentSpanId()) == 0 {
				roots = append(roots, sp)
			}
		}
		if len(roots) != 1 {
			t.Errorf("trace %s has %d roots, want 1", id, len(roots))
			continue
		}
		root := roots[0]
		if root.GetKind() != tracepb.Span_SPAN_KIND_SERVER || !hasAttrs(root, "http.request.method", "http.route", "http.response.status_code") {
			t.Errorf("trace %s: root %q is not a server span with HTTP attributes: %v", id, root.GetName(), root)
		}
		for _, sp := range spans {
			if sp != root && !bytes.Equal(sp.GetParentSpanId(), root.GetSpanId()) {
				t.Errorf("trace %s: span %q is not a child of the root", id, sp.GetName())
			}
			if sp.GetEndTimeUnixNano() <= sp.GetStartTimeUnixNano() {
				t.Errorf("trace %s: span %q ends before it starts", id, sp.GetName())
			}
		}
	}
}

func hasAttrs(sp *tracepb.Span, keys ...string) bool {
	for _, k := range keys {
		if !slices.ContainsFunc(sp.GetAttributes(), func(kv *commonpb.KeyValue) bool { return kv.GetKey() == k }) {
			return false
		}
	}
	return true
}

func TestRunFailsWhenSpansAreNotAccepted(t *testing.T) {
	cases := map[string]struct {
		// endpoint returns the address to send to.
		endpoint func(t *testing.T, protocol string) string
		spans    int
		wantErr  string
	}{
		"an endpoint that nothing listens on": {
			endpoint: func(t *testing.T, _ string) string { return closedPort(t) },
			wantErr:  "connect", // "connection refused" (http) or "... while dialing: dial tcp ...: connect: connection refused" (grpc)
		},
		"a collector that rejects every request": {
			endpoint: func(t *testing.T, protocol string) string { return serve(t, protocol, &collector{reject: true}) },
			wantErr:  "rejected by the test collector",
		},
		"a collector that rejects some spans (partial success)": {
			endpoint: func(t *testing.T, protocol string) string {
				return serve(t, protocol, &collector{partial: &collectortrace.ExportTracePartialSuccess{
					RejectedSpans: 1, ErrorMessage: "span rejected: its trace_id is missing",
				}})
			},
			wantErr: "span rejected: its trace_id is missing",
		},
		// The batcher exports a full batch (512 spans) in the background, where the SDK
		// reports a failure only to the error handler; ForceFlush then sends the rest.
		"a collector that rejects a batch exported before the flush": {
			endpoint: func(t *testing.T, protocol string) string { return serve(t, protocol, &collector{rejectFirst: 1}) },
			spans:    600,
			wantErr:  "rejected by the test collector",
		},
	}
	for _, protocol := range []string{protocolGRPC, protocolHTTP} {
		for name, tc := range cases {
			t.Run(protocol+"/"+name, func(t *testing.T) {
				opts := testOptions(protocol, tc.endpoint(t, protocol), 10, "checkout", "payment")
				if tc.spans != 0 {
					opts.spans, opts.services = tc.spans, []string{"checkout"}
				}
				var out bytes.Buffer
				start := time.Now()
				err := run(ctxFor(t), opts, &out)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("run error = %v; want one containing %q", err, tc.wantErr)
				}
				t.Logf("run error: %v", err)
				if !strings.Contains(err.Error(), opts.endpoint) {
					t.Errorf("run error %q does not name the endpoint %s", err, opts.endpoint)
				}
				if out.Len() != 0 {
					t.Errorf("a failed run printed %q", out.String())
				}
				if d := time.Since(start); d > opts.timeout {
					t.Errorf("run took %s to fail, more than the export timeout %s", d, opts.timeout)
				}
			})
		}
	}
}

func TestParseFlags(t *testing.T) {
	cases := map[string]struct {
		args    []string
		want    options
		wantErr string
	}{
		"no flags gives the documented defaults": {
			want: options{protocol: "grpc", endpoint: "127.0.0.1:4317", insecure: true, spans: 300,
				services: []string{"checkout", "payment"}, timeout: 10 * time.Second, retry: true},
		},
		"http defaults to the OTLP/HTTP port": {
			args: []string{"--protocol", "http"},
			want: options{protocol: "http", endpoint: "127.0.0.1:4318", insecure: true, spans: 300,
				services: []string{"checkout", "payment"}, timeout: 10 * time.Second, retry: true},
		},
		"every flag is read": {
			args: []string{"--protocol", "http", "--endpoint", "collector:4000", "--insecure=false", "--spans", "7",
				"--services", " a, b ,,c", "--timeout", "1s", "--retry=false"},
			want: options{protocol: "http", endpoint: "collector:4000", insecure: false, spans: 7,
				services: []string{"a", "b", "c"}, timeout: time.Second, retry: false},
		},
		"an unknown protocol is refused": {args: []string{"--protocol", "udp"}, wantErr: `--protocol: "udp" is neither grpc nor http`},
		"zero spans are refused":         {args: []string{"--spans", "0"}, wantErr: "--spans: 0 is not a positive number"},
		"no service is refused":          {args: []string{"--services", " , "}, wantErr: "--services: name at least one service"},
		"arguments are refused":          {args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseFlags(tc.args, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags error = %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !equalOptions(got, tc.want) {
				t.Fatalf("parseFlags = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func equalOptions(a, b options) bool {
	return a.protocol == b.protocol && a.endpoint == b.endpoint && a.insecure == b.insecure && a.spans == b.spans &&
		slices.Equal(a.services, b.services) && a.timeout == b.timeout && a.retry == b.retry
}
