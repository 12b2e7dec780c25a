package pipeline

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
)

// okWriter acknowledges every entry at once.
type okWriter struct{}

func (okWriter) Write(context.Context, *entry.Batch, []error) {}
func (okWriter) Ping(context.Context) error                   { return nil }

var benchValue = bytes.Repeat([]byte{'x'}, 4096)

// copyingWriter acknowledges every entry at once, after copying its bytes into one buffer as
// the sink does into a connection's.
type copyingWriter struct{ bufs *sync.Pool } // *[]byte, one per concurrent Write

func (w copyingWriter) Write(_ context.Context, b *entry.Batch, _ []error) {
	p, _ := w.bufs.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	buf := (*p)[:0]
	for i := range b.Len() {
		buf = append(buf, b.Key(i)...)
		for j := range b.NumFields(i) {
			n, v := b.FieldPair(i, j)
			buf = append(buf, n...)
			buf = append(buf, v...)
		}
	}
	*p = buf
	w.bufs.Put(p)
}
func (copyingWriter) Ping(context.Context) error { return nil }

// spansEncoder encodes any request into n entries whose data is size bytes.
type spansEncoder struct{ n, size int }

func (e spansEncoder) Encode(_ []byte, b *entry.Batch) (EncodeStats, error) {
	for i := range e.n {
		start := len(b.Buf)
		b.Buf = append(b.Buf, "traces:bench"...)
		b.Begin(start, [16]byte{byte(i), 1}, [8]byte{byte(i), 2})
		b.AddField("data", benchValue[:e.size])
	}
	return EncodeStats{Spans: e.n}, nil
}

// BenchmarkExport measures the pipeline's own cost per span (Redis replaced by a writer that
// acknowledges at once): encode handoff, group commit, acknowledgement. The json-sized case
// (1,180-byte values, as make bench's span encodes) has the writer copy what it sends, as the
// sink does.
func BenchmarkExport(b *testing.B) {
	b.Run("small", func(b *testing.B) { benchmarkExport(b, spansEncoder{100, 32}, okWriter{}) })
	b.Run("json-sized", func(b *testing.B) {
		benchmarkExport(b, spansEncoder{100, 1180}, copyingWriter{new(sync.Pool)})
	})
}

func benchmarkExport(b *testing.B, enc spansEncoder, w Writer) {
	spans := enc.n
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := newBenchPipeline(Options{Writers: 2, PipelineSize: 1000, MaxInFlightSpans: 1 << 20}, enc, w, telemetry.New(), log)
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

// BenchmarkSpanEncoder is the exporter's CPU work per request before Redis, as the pipeline does
// it: the production SpanEncoder with the default stream configuration (key template
// traces:{service.name}) validates a 100-span request (ten attributes per span, five resource
// attributes) and encodes every span into a warm batch. It is the unit the exporter's CPU per
// span is made of besides transport and the Redis write: ns/span and allocs/op per format.
func BenchmarkSpanEncoder(b *testing.B) {
	const spans = 100
	req := otlpwiretest.Marshal(otlpwiretest.Realistic(spans))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		b.Run(format, func(b *testing.B) {
			cfg := config.Default()
			cfg.Stream.Format = format
			enc, err := NewSpanEncoder(cfg.Stream, cfg.Filter, int(cfg.Receivers.MaxRequestBytes)*MaxEntryBytesPerRequestByte, log)
			if err != nil {
				b.Fatal(err)
			}
			var batch entry.Batch
			b.ReportAllocs()
			cpu := otlpwiretest.CPUTime()
			for b.Loop() {
				batch.Reset()
				if st, err := enc.Encode(req, &batch); err != nil || st.Spans != spans || batch.Len() != spans {
					b.Fatalf("%+v, %d entries: %v", st, batch.Len(), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
			b.ReportMetric(float64(otlpwiretest.CPUTime()-cpu)/float64(b.N*spans), "cpu-ns/span")
		})
	}
}
