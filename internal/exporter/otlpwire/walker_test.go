package otlpwire_test

import (
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// watchRecorder records what the Walker noted of each span's watched keys.
type watchRecorder struct{ seen, known []bool }

func (r *watchRecorder) VisitSpan(_ int, _ *otlpwire.ResourceSpans, _ *otlpwire.ScopeSpans, sp *otlpwire.Span) {
	seen, known := sp.Watched()
	r.seen, r.known = append(r.seen, seen), append(r.known, known)
}

// A Walker that watches keys notes, span by span, whether one of its attributes has one of them,
// whatever the attribute's layout (the usual short one, a long value, an array, a repeated key),
// and only the span's own attributes count (not its events', links' or nested values' keys).
// Without watched keys nothing is noted, and the caller looks for itself.
func TestWalkerNotesWatchedKeys(t *testing.T) {
	kv := otlpwiretest.KV
	str := otlpwiretest.Str
	spans := []struct {
		attrs  []*commonpb.KeyValue
		events []*tracepb.Span_Event
		want   bool
	}{
		{nil, nil, false},
		{[]*commonpb.KeyValue{kv("http.method", str("GET"))}, nil, false},
		{[]*commonpb.KeyValue{kv("http.method", str("GET")), kv("tenant", str("a"))}, nil, true},
		{[]*commonpb.KeyValue{kv("tenant", str(strings.Repeat("x", 300)))}, nil, true}, // two-byte lengths
		{[]*commonpb.KeyValue{kv("tenant", otlpwiretest.Array(str("a")))}, nil, true},
		{[]*commonpb.KeyValue{kv("tenant", str(""))}, nil, true}, // present, even empty
		{[]*commonpb.KeyValue{kv("other", otlpwiretest.KVList(kv("tenant", str("a"))))}, nil, false},
		{nil, []*tracepb.Span_Event{{Name: "e", Attributes: []*commonpb.KeyValue{kv("tenant", str("a"))}}}, false},
		{[]*commonpb.KeyValue{kv("region", otlpwiretest.Int(3))}, nil, true},
		{[]*commonpb.KeyValue{kv("tenants", str("a")), kv("tenan", str("b"))}, nil, false},
	}
	ss := &tracepb.ScopeSpans{}
	for i, s := range spans {
		ss.Spans = append(ss.Spans, &tracepb.Span{
			TraceId: []byte("0123456789abcdef"), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i + 1)},
			Name: "s", Attributes: s.attrs, Events: s.events,
		})
	}
	req := otlpwiretest.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{ss}}}})

	var w otlpwire.Walker
	w.Watch([]string{"tenant", "region"})
	for run := range 2 { // the keys stay watched from one walk to the next
		var r watchRecorder
		if _, err := w.Walk(req, &r); err != nil {
			t.Fatal(err)
		}
		for i, s := range spans {
			if r.seen[i] != s.want || !r.known[i] {
				t.Errorf("walk %d, span %d: seen %v known %v, want seen %v known", run, i, r.seen[i], r.known[i], s.want)
			}
		}
	}

	w.Watch(nil)
	var r watchRecorder
	if _, err := w.Walk(req, &r); err != nil {
		t.Fatal(err)
	}
	for i := range spans {
		if r.known[i] || r.seen[i] {
			t.Errorf("span %d noted as seen %v known %v with no key watched", i, r.seen[i], r.known[i])
		}
	}
	if sp := otlpwire.ParseSpan(otlpwiretest.Marshal(ss.Spans[2])); func() bool { _, known := sp.Watched(); return known }() {
		t.Error("a span from ParseSpan says whether it has watched keys")
	}
}
