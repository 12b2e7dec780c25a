package pipeline

import (
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// spanEncoder validates a request, applies the service filter and encodes each remaining span.
type spanEncoder struct {
	enc     *encode.Encoder
	include map[string]bool
	exclude map[string]bool
}

// NewSpanEncoder returns the Encoder for a stream and filter configuration.
func NewSpanEncoder(stream config.Stream, filter config.Filter) (Encoder, error) {
	enc, err := encode.New(stream)
	if err != nil {
		return nil, err
	}
	e := &spanEncoder{enc: enc}
	if len(filter.IncludeServices) > 0 {
		e.include = set(filter.IncludeServices)
	}
	if len(filter.ExcludeServices) > 0 {
		e.exclude = set(filter.ExcludeServices)
	}
	return e, nil
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// keep applies the service filter to a resource's service.name. Map lookups with a string(bytes)
// conversion do not allocate.
func (e *spanEncoder) keep(service []byte) bool {
	if e.include != nil && !e.include[string(service)] {
		return false
	}
	if e.exclude != nil && e.exclude[string(service)] {
		return false
	}
	return true
}

// Encode validates the whole request first: a malformed request is refused as a whole
// (INVALID_ARGUMENT) before anything is written, so that a client never sees half of a request
// it was told is invalid land in Redis.
func (e *spanEncoder) Encode(req []byte, b *entry.Batch) (EncodeStats, error) {
	n, err := otlpwire.Validate(req)
	if err != nil {
		return EncodeStats{}, err
	}
	st := EncodeStats{Spans: n}
	for rs := range otlpwire.NewTraces(req).ResourceSpans() {
		res := rs.Resource()
		keep := e.keep(res.ServiceName())
		for ss := range rs.ScopeSpans() {
			for sp := range ss.Spans() {
				if !keep {
					st.Filtered++
					continue
				}
				if err := e.enc.Encode(b, &rs, &ss, &sp); err != nil {
					if st.Invalid == 0 {
						st.InvalidMessage = err.Error()
					}
					st.Invalid++
				}
			}
		}
	}
	return st, nil
}
