package pipeline

import (
	"io"
	"log/slog"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// TestARequestInvalidAtItsLastSpanWritesNothing checks that the SpanEncoder, which validates
// while it encodes, refuses a request whose last span only is invalid with otlpwire.Validate's
// error and no entry.
func TestARequestInvalidAtItsLastSpanWritesNothing(t *testing.T) {
	req := otlpwiretest.Realistic(100)
	req.ResourceSpans[0].ScopeSpans[0].Spans[99].SpanId = []byte{1, 2, 3}
	b := otlpwiretest.Marshal(req)
	_, want := otlpwire.Validate(b)
	if want == nil {
		t.Fatal("Validate accepts the request (the test input is not what it should be)")
	}
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		cfg := config.Default()
		cfg.Stream.Format = format
		enc, err := NewSpanEncoder(cfg.Stream, cfg.Filter, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		var batch entry.Batch
		st, err := enc.Encode(b, &batch)
		if err == nil || err.Error() != want.Error() || batch.Len() != 0 || len(batch.Buf) != 0 || st != (EncodeStats{}) {
			t.Errorf("%s: %+v, %d entries, error %v; want none and %v", format, st, batch.Len(), err, want)
		}
	}
}
