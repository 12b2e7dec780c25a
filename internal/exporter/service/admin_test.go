package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestAdminEndpointTellsTheTruth checks health, readiness, metrics, /status and the debug /spans
// view against what was actually sent.
func TestAdminEndpointTellsTheTruth(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Admin.Debug = true
	cfg.Filter.ExcludeServices = []string{"noisy"}
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	for _, svc := range []string{"shop", "shop", "noisy"} {
		req, _ := request(svc, 10)
		if _, err := client.Export(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	admin := "http://" + e.admin
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body, err := get(admin + path); err != nil || code != 200 {
			t.Errorf("%s: %d %q %v", path, code, body, err)
		}
	}
	_, metrics, _ := get(admin + "/metrics")
	for _, want := range []string{
		`tracestream_exporter_spans_received_total{protocol="grpc"} 30`,
		`tracestream_exporter_spans_exported_total 20`,
		`tracestream_exporter_spans_dropped_total{reason="filtered"} 10`,
		`tracestream_exporter_build_info{version=`,
		`tracestream_exporter_pipeline_duration_seconds_bucket`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, body, _ := get(admin + "/status")
	var st struct {
		Ready                        bool
		SpansReceived, SpansExported int64
		SpansDropped                 int64
		LastSuccessfulWrite          string
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v: %s", err, body)
	}
	if !st.Ready || st.SpansReceived != 30 || st.SpansExported != 20 || st.SpansDropped != 10 || st.LastSuccessfulWrite == "" {
		t.Errorf("/status = %s", body)
	}
	_, body, _ = get(admin + "/spans?stream=traces:shop&limit=3")
	var entries []struct {
		ID     string
		Fields struct {
			Traceparent string
			Data        struct {
				ServiceName string `json:"service_name"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &entries); err != nil || len(entries) != 3 || entries[0].Fields.Data.ServiceName != "shop" || entries[0].Fields.Traceparent == "" {
		t.Errorf("/spans = %s (%v)", body, err)
	}
	if code, _, _ := get(admin + "/spans?stream=traces:shop&limit=100000"); code != 400 {
		t.Errorf("/spans with a huge limit: %d, want 400", code)
	}
}
