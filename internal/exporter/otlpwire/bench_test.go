package otlpwire_test

import (
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// benchSpans is the size of the benchmark request: 100 spans of ten attributes each, one
// resource of five attributes (what an SDK's batch span processor sends from an HTTP service).
const benchSpans = 100

func reportPerSpan(b *testing.B, spans int, cpuStart time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	b.ReportMetric(float64(CPUTime()-cpuStart)/float64(b.N*spans), "cpu-ns/span")
}

func BenchmarkValidate(b *testing.B) {
	req := Marshal(Realistic(benchSpans))
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	cpu := CPUTime()
	for b.Loop() {
		if _, err := otlpwire.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSpan(b, benchSpans, cpu)
}

// BenchmarkDecode is Validate plus reading every field of every span and of its resource, as an
// encoder does.
func BenchmarkDecode(b *testing.B) {
	req := Marshal(Realistic(benchSpans))
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	var sink int
	cpu := CPUTime()
	for b.Loop() {
		if _, err := otlpwire.Validate(req); err != nil {
			b.Fatal(err)
		}
		sink += readAll(otlpwire.NewTraces(req))
	}
	reportPerSpan(b, benchSpans, cpu)
	_ = sink
}

// BenchmarkDecodeGenerated is the same request decoded into the generated golang/protobuf types,
// for comparison.
func BenchmarkDecodeGenerated(b *testing.B) {
	req := Marshal(Realistic(benchSpans))
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	cpu := CPUTime()
	for b.Loop() {
		var m coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(req, &m); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSpan(b, benchSpans, cpu)
}

// BenchmarkFromJSON converts the request's OTLP/JSON encoding to protobuf into a reused buffer.
func BenchmarkFromJSON(b *testing.B) {
	// protojson writes ids in base64, which FromJSON rejects; the benchmark leaves them out
	// rather than rewrite them, since it measures the JSON scanning and hex ids cost the same.
	req := Realistic(benchSpans)
	for _, s := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		s.TraceId, s.SpanId, s.ParentSpanId = nil, nil, nil
	}
	opts := protojson.MarshalOptions{UseEnumNumbers: true}
	body, err := opts.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var buf []byte
	cpu := CPUTime()
	for b.Loop() {
		if buf, err = otlpwire.AppendFromJSON(buf[:0], body); err != nil {
			b.Fatal(err)
		}
	}
	reportPerSpan(b, benchSpans, cpu)
}

// readAll reads every field of every span once, as an encoder does.
func readAll(t otlpwire.Traces) int {
	n := 0
	for rs := range t.ResourceSpans() {
		res := rs.Resource()
		n += len(res.ServiceName())
		for ss := range rs.ScopeSpans() {
			sc := ss.Scope()
			n += len(sc.Name()) + len(sc.Version())
			for sp := range ss.Spans() {
				n += len(sp.TraceID()) + len(sp.SpanID()) + len(sp.ParentSpanID()) + len(sp.TraceState()) +
					len(sp.Name()) + int(sp.Kind()) + int(sp.Flags()) + int(sp.EndTimeUnixNano()-sp.StartTimeUnixNano()) +
					int(sp.Status().Code()) + len(sp.Status().Message())
				for kv := range sp.Attributes().All() {
					n += len(kv.Key) + len(kv.Value.Str()) + int(kv.Value.Int())
				}
				for kv := range res.Attributes().All() {
					n += len(kv.Key) + len(kv.Value.Str())
				}
				for e := range sp.Events() {
					n += len(e.Name())
				}
				for l := range sp.Links() {
					n += len(l.SpanID())
				}
			}
		}
	}
	return n
}
