package pipeline

import (
	"fmt"
	"log/slog"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/entry"
)

// SpanEncoder is the pipeline's Encoder: it validates a request, applies the service filter and encodes each remaining span.
type SpanEncoder struct {
	enc      *encode.Encoder
	maxBytes int
	include  map[string]bool
	exclude  map[string]bool
	filter   func(service []byte) bool // keep, when there is a filter: made once, not per request

	template, overflowKey string
	log                   *writeErrorLog
}

// MaxEntryBytesPerRequestByte bounds the encoded entries of a request at this multiple of
// receivers.maxRequestBytes: entries repeat their resource and scope, so encoding amplifies.
const MaxEntryBytesPerRequestByte = 8

// NewSpanEncoder returns the Encoder for a stream and filter configuration; a request whose
// entries outgrow maxBytes is refused as invalid (0: no bound).
func NewSpanEncoder(stream config.Stream, filter config.Filter, maxBytes int, log *slog.Logger) (*SpanEncoder, error) {
	enc, err := encode.New(stream)
	if err != nil {
		return nil, err
	}
	e := &SpanEncoder{enc: enc, maxBytes: maxBytes, template: stream.KeyTemplate, overflowKey: encode.OverflowKey(stream), log: newWriteErrorLog(log)}
	if len(filter.IncludeServices) > 0 {
		e.include = set(filter.IncludeServices)
	}
	if len(filter.ExcludeServices) > 0 {
		e.exclude = set(filter.ExcludeServices)
	}
	if e.include != nil || e.exclude != nil {
		e.filter = e.keep
	}
	return e, nil
}

// KeyStats are the live stream keys and the spans written to the overflow key so far.
func (e *SpanEncoder) KeyStats() (live int, overflowed int64) { return e.enc.KeyStats() }

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// keep applies the service filter to a resource's service.name. Map lookups with a string(bytes)
// conversion do not allocate.
func (e *SpanEncoder) keep(service []byte) bool {
	if e.include != nil && !e.include[string(service)] {
		return false
	}
	if e.exclude != nil && e.exclude[string(service)] {
		return false
	}
	return true
}

// Encode validates the request while it encodes it (encode.Encoder.EncodeRequest): a malformed
// request is refused as a whole (INVALID_ARGUMENT) with nothing written, so that a client never
// sees half of a request it was told is invalid land in Redis.
func (e *SpanEncoder) Encode(req []byte, b *entry.Batch) (EncodeStats, error) {
	r, err := e.enc.EncodeRequest(b, req, e.filter, e.maxBytes)
	if err != nil {
		return EncodeStats{}, err
	}
	if r.TooLarge {
		return EncodeStats{}, fmt.Errorf("the request's entries exceed %d bytes once encoded (each entry repeats its span's resource and scope): send fewer spans per request", e.maxBytes)
	}
	if r.Overflowed > 0 {
		e.log.overflowed(e.template, e.overflowKey, r.Overflowed)
	}
	st := EncodeStats{Spans: r.Spans, Filtered: r.Filtered, Invalid: r.Rejected}
	if r.FirstRejection != nil {
		st.InvalidMessage = r.FirstRejection.Error()
	}
	return st, nil
}
