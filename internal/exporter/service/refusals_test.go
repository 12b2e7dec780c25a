package service_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestRefusedRequestsAreVisible sends requests each transport refuses for a different reason:
// every one is counted in tracestream_exporter_requests_refused_total by protocol and reason,
// and summarised in /status, so that a client losing everything does not look like no traffic.
func TestRefusedRequestsAreVisible(t *testing.T) {
	s := redistest.Standalone(t)
	e := start(t, standaloneConfig(s))
	req, _ := request("refused", 1)
	body, _ := proto.Marshal(req)
	url := "http://" + e.http + "/v1/traces"
	for _, c := range []struct{ contentType, encoding string }{
		{"text/plain", ""},               // content_type
		{"application/x-protobuf", "br"}, // encoding
		{"application/x-protobuf", "br"},
		{"application/json", ""}, // malformed: protobuf labelled JSON
	} {
		if resp, _ := post(t, url, c.contentType, c.encoding, body); resp.StatusCode < 400 {
			t.Fatalf("%s %q: %d, want a refusal", c.contentType, c.encoding, resp.StatusCode)
		}
	}
	conn, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	err = conn.Invoke(context.Background(), "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", req, &coltracepb.ExportTraceServiceResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("a metrics export over gRPC: %v, want UNIMPLEMENTED", err)
	}
	bad := []byte{0x0a, 0x05, 0x12, 0x03, 0x1a, 0x01} // a truncated nested message
	err = conn.Invoke(context.Background(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &bad, &coltracepb.ExportTraceServiceResponse{}, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a malformed gRPC request: %v, want INVALID_ARGUMENT", err)
	}

	want := map[string]int64{"http/content_type": 1, "http/encoding": 2, "http/malformed": 1, "grpc/method": 1, "grpc/malformed": 1}
	for key, n := range want {
		protocol, reason, _ := strings.Cut(key, "/")
		if got := e.metric(t, `tracestream_exporter_requests_refused_total{protocol="`+protocol+`",reason="`+reason+`"}`); got != float64(n) {
			t.Errorf("requests_refused_total{%s} = %v, want %d", key, got, n)
		}
	}
	code, text, err := get("http://" + e.admin + "/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/status: %d %v", code, err)
	}
	var st telemetry.Status
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		t.Fatal(err)
	}
	for key, n := range want {
		if st.RequestsRefused[key] != n {
			t.Errorf("/status requestsRefused[%s] = %d, want %d (all: %v)", key, st.RequestsRefused[key], n, st.RequestsRefused)
		}
	}
}
