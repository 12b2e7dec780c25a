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

	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// Shape is what every request looks like: otlpwiretest.Realistic's typical HTTP server span (ten
// semantic-convention attributes, five resource attributes for service "orders", an
// instrumentation scope), with Attributes more string attributes of AttributeBytes each.
type Shape struct {
	// SpansPerRequest is the number of spans in one request.
	SpansPerRequest int
	// Attributes is the number of extra string attributes on each span.
	Attributes int
	// AttributeBytes is the length of each of those attributes' values.
	AttributeBytes int
}

// DefaultShape is Realistic's span as it is.
func DefaultShape(spansPerRequest int) Shape {
	return Shape{SpansPerRequest: spansPerRequest}
}

// Service is the service.name of every request, and so the stream "traces:{service.name}" puts
// the spans in.
const Service = "orders"

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
	req := otlpwiretest.Realistic(s.SpansPerRequest)
	spans := req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()
	extra := strings.Repeat("x", s.AttributeBytes)
	for i, sp := range spans {
		sp.SpanId = idMarker(i)
		for a := range s.Attributes {
			sp.Attributes = append(sp.Attributes, otlpwiretest.KV(fmt.Sprintf("bench.attr.%d", a), otlpwiretest.Str(extra)))
		}
	}
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
