package encode_test

import (
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// BenchmarkDecodeEncode is the exporter's per-request CPU work before Redis: validate a
// 100-span request (ten attributes per span, five resource attributes) and encode every span
// into a warm batch. It reports wall and CPU ns/span, and the entry size in bytes per span.
func BenchmarkDecodeEncode(b *testing.B) {
	const spans = 100
	req := Marshal(Realistic(spans))
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		b.Run(format, func(b *testing.B) {
			e := newEncoder(b, format)
			var batch entry.Batch
			b.ReportAllocs()
			cpu := CPUTime()
			for b.Loop() {
				batch.Reset()
				if _, err := otlpwire.Validate(req); err != nil {
					b.Fatal(err)
				}
				if r := e.EncodeTraces(&batch, otlpwire.NewTraces(req), nil, 0); r.Rejected != 0 || r.Filtered != 0 {
					b.Fatal(r.FirstRejection)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
			b.ReportMetric(float64(CPUTime()-cpu)/float64(b.N*spans), "cpu-ns/span")
			b.ReportMetric(float64(len(batch.Buf))/spans, "entry-B/span")
		})
	}
}

// BenchmarkEncodePerSpan is BenchmarkDecodeEncode/json through the per-span Encode, which
// renders the resource and scope of every span instead of once per scope.
func BenchmarkEncodePerSpan(b *testing.B) {
	const spans = 100
	req := Marshal(Realistic(spans))
	e := newEncoder(b, config.FormatJSON)
	var batch entry.Batch
	b.ReportAllocs()
	cpu := CPUTime()
	for b.Loop() {
		batch.Reset()
		if _, err := otlpwire.Validate(req); err != nil {
			b.Fatal(err)
		}
		for rs := range otlpwire.NewTraces(req).ResourceSpans() {
			for ss := range rs.ScopeSpans() {
				for sp := range ss.Spans() {
					if err := e.Encode(&batch, &rs, &ss, &sp); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	b.ReportMetric(float64(CPUTime()-cpu)/float64(b.N*spans), "cpu-ns/span")
}
