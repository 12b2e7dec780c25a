// Package loadgen is the benchmark's OTLP load generator: it replays pre-marshalled
// ExportTraceServiceRequests over gRPC or HTTP on several connections, as fast as the server
// answers or at a fixed rate, and gives every span a unique id so that a run can be checked span
// by span against what reached Redis.
//
// A request is marshalled once; before each send only the span ids are rewritten in place (8 bytes
// at known offsets), so the generator costs a fraction of a microsecond per span. telemetrygen,
// which builds every span with the SDK, costs more per span than the server it measures.
package loadgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Shape is what every request looks like.
type Shape struct {
	// SpansPerRequest is the number of spans in one request.
	SpansPerRequest int
	// Attributes is the number of string attributes on each span, besides the usual HTTP ones.
	Attributes int
	// AttributeBytes is the length of each of those attributes' values.
	AttributeBytes int
	// Service is the resource's service.name, and so the stream the spans go to.
	Service string
}

// DefaultShape is a typical HTTP server span: ten semantic-convention attributes, five resource
// attributes and an instrumentation scope.
func DefaultShape(spansPerRequest int) Shape {
	return Shape{SpansPerRequest: spansPerRequest, Service: "orders"}
}

// Template is one marshalled request and where its span ids are.
type Template struct {
	payload []byte
	ids     []int // offset of each span's 8-byte span id in payload
}

// idMarker makes span i's placeholder id, which the marshalled request is searched for.
func idMarker(i int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], 0xfeedc0de_00000000|uint64(i))
	return b[:]
}

// NewTemplate marshals a request of the given shape and finds its span ids.
func NewTemplate(s Shape) (*Template, error) {
	if s.SpansPerRequest < 1 {
		return nil, fmt.Errorf("spans per request must be at least 1, not %d", s.SpansPerRequest)
	}
	if s.Service == "" {
		s.Service = "orders"
	}
	spans := make([]*tracepb.Span, s.SpansPerRequest)
	traceID := []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	extra := strings.Repeat("x", s.AttributeBytes)
	for i := range spans {
		start := uint64(1_700_000_000_000_000_000) + uint64(i)*1000
		attrs := []*commonpb.KeyValue{
			kv("http.request.method", str("GET")),
			kv("http.route", str("/api/v1/orders/{id}")),
			kv("url.path", str(fmt.Sprintf("/api/v1/orders/%d", 10000+i))),
			kv("url.scheme", str("https")),
			kv("http.response.status_code", integer(200)),
			kv("server.address", str("orders.internal.example.com")),
			kv("server.port", integer(8443)),
			kv("client.address", str("10.1.2.3")),
			kv("user_agent.original", str("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")),
			kv("network.protocol.version", str("1.1")),
		}
		for a := range s.Attributes {
			attrs = append(attrs, kv(fmt.Sprintf("bench.attr.%d", a), str(extra)))
		}
		spans[i] = &tracepb.Span{
			TraceId: traceID, SpanId: idMarker(i), ParentSpanId: []byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
			Flags: 1, Name: "GET /api/v1/orders/{id}", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: start, EndTimeUnixNano: start + 1_250_000,
			Attributes: attrs, Status: &tracepb.Status{},
		}
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			kv("service.name", str(s.Service)),
			kv("service.version", str("4.2.0")),
			kv("deployment.environment.name", str("production")),
			kv("k8s.pod.name", str("orders-7d9f8c6b5-x2x9z")),
			kv("host.name", str("node-17")),
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.60.0"},
			Spans: spans,
		}},
	}}}
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	t := &Template{payload: payload, ids: make([]int, len(spans))}
	for i := range spans {
		at := bytes.Index(payload, idMarker(i))
		if at < 0 || bytes.Contains(payload[at+8:], idMarker(i)) {
			return nil, fmt.Errorf("span %d's id is not found exactly once in the marshalled request", i)
		}
		t.ids[i] = at
	}
	return t, nil
}

// Spans is the number of spans in each request.
func (t *Template) Spans() int { return len(t.ids) }

// Size is the marshalled request's length.
func (t *Template) Size() int { return len(t.payload) }

// Fill writes a copy of the request into dst, its spans numbered first, first+1, ..., and returns it.
func (t *Template) Fill(dst []byte, first uint64) []byte {
	dst = append(dst[:0], t.payload...)
	for i, at := range t.ids {
		binary.BigEndian.PutUint64(dst[at:], SpanID(first+uint64(i)))
	}
	return dst
}

// spanIDBase marks the generator's span ids, so that a span id read back from Redis can be
// mapped to its sequence number and a stray one noticed.
const spanIDBase = 0x7a5e_0000_0000_0000

// SpanID is the span id of span number seq.
func SpanID(seq uint64) uint64 { return spanIDBase | seq }

// Seq maps a span id back to its sequence number; ok is false for an id the generator never makes.
func Seq(spanID uint64) (seq uint64, ok bool) {
	if spanID&0xffff_0000_0000_0000 != spanIDBase {
		return 0, false
	}
	return spanID &^ spanIDBase, true
}

func kv(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func integer(i int64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
}
