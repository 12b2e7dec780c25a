package pipeline

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
)

// okWriter acknowledges every entry at once.
type okWriter struct{}

func (okWriter) Write(context.Context, *entry.Batch, []error) {}
func (okWriter) Ping(context.Context) error                   { return nil }

// spansEncoder encodes any request into n small entries.
type spansEncoder struct{ n int }

func (e spansEncoder) Encode(_ []byte, b *entry.Batch) (EncodeStats, error) {
	for i := range e.n {
		start := len(b.Buf)
		b.Buf = append(b.Buf, "traces:bench"...)
		b.Begin(start, [16]byte{byte(i), 1}, [8]byte{byte(i), 2})
		b.AddField("data", []byte("0123456789abcdef0123456789abcdef"))
	}
	return EncodeStats{Spans: e.n}, nil
}

// BenchmarkExport measures the pipeline's own cost per span (Redis replaced by a writer that
// acknowledges at once): encode handoff, group commit, acknowledgement.
func BenchmarkExport(b *testing.B) {
	const spans = 100
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := newBenchPipeline(Options{Writers: 2, PipelineSize: 1000, MaxInFlightSpans: 1 << 20}, spansEncoder{spans}, okWriter{}, telemetry.New(), log)
	p.Start()
	defer func() { _ = p.Shutdown(context.Background()) }()
	mem := admission.New(1 << 30)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := mem.Claim()
			if _, err := p.Export(context.Background(), nil, "grpc", &c); err != nil {
				b.Error(err)
			}
			c.Release()
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

func newBenchPipeline(opts Options, enc Encoder, w Writer, tel *telemetry.Telemetry, log *slog.Logger) *Pipeline {
	return New(opts, enc, w, tel, log)
}
