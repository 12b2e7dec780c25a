package encode

import (
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// Result counts what EncodeRequest or EncodeTraces did with the spans of a request.
type Result struct {
	// Spans is the number of spans in the request (EncodeRequest only).
	Spans int
	// Encoded is the number of entries appended.
	Encoded int
	// Filtered is the number of spans whose resource the keep function excluded.
	Filtered int
	// Rejected is the number of spans that cannot be written (*InvalidSpanError), for the OTLP
	// partial success; FirstRejection is the error of the first of them, for its message.
	Rejected       int
	FirstRejection error
	// Overflowed is the number of spans written to the overflow key (stream.maxKeys).
	Overflowed int
	// TooLarge is set when the entries outgrew the maxBytes given; encoding stopped there and
	// the batch holds a partial request.
	TooLarge bool
}

// EncodeRequest validates req, an OTLP protobuf ExportTraceServiceRequest (or TracesData), as
// otlpwire.Validate does and, in the same pass, appends an entry to b for every span as
// EncodeTraces does: each span is encoded right after it has been validated, so the request is
// walked once. An invalid request leaves b as it was and returns otlpwire.Validate's error,
// whatever was encoded before the invalid byte was found is dropped, and its keys take no place
// under stream.maxKeys (they are admitted once the request is known to be valid). Past maxBytes
// the rest of the request is only validated, and its keys take no place either (the caller
// refuses it). maxBytes counts the bytes the batch holds, the keys of spans that go to the
// overflow stream included. It does not allocate unless b has to grow.
func (e *Encoder) EncodeRequest(b *entry.Batch, req []byte, keep func(service []byte) bool, maxBytes int) (Result, error) {
	s := e.requests.Get().(*requestEncoder)
	defer e.requests.Put(s)
	*s = requestEncoder{e: e, b: b, keep: keep, maxBytes: maxBytes, scope: -1}
	defer func() { *s = requestEncoder{} }() // nothing of this request kept in the pool
	// appendKey asks of each span whether it carries a key attribute: the walk notes it.
	s.walker.Watch(e.keyAttrs)
	mark, first := b.Mark(), b.Len()
	n, err := s.walker.Walk(req, s)
	if err != nil {
		b.Truncate(mark)
		return Result{}, err
	}
	s.r.Spans = n
	if !s.r.TooLarge { // refused as a whole: its keys take no place either
		s.r.Overflowed = e.admitKeys(b, first)
	}
	return s.r, nil
}

// EncodeTraces appends an entry to b for every span of t, which should have passed
// otlpwire.Validate, except the spans of resources whose service.name keep returns false for (a
// nil keep keeps every span; the name is nil when the resource has no string service.name) and
// the spans that cannot be encoded, which it counts. It writes what Encode writes for each span,
// faster: the resource and scope of a ScopeSpans, and the key they give, are rendered once, not
// once per span.
//
// Every entry repeats its span's resource and scope, so a small request with a large resource
// and many spans can encode to far more bytes than it has: when maxBytes > 0 and the batch
// grows past it, EncodeTraces stops and sets TooLarge, bounding the memory one request takes.
func (e *Encoder) EncodeTraces(b *entry.Batch, t otlpwire.Traces, keep func(service []byte) bool, maxBytes int) Result {
	s := requestEncoder{e: e, b: b, keep: keep, maxBytes: maxBytes, scope: -1}
	first, scope := b.Len(), 0
spans:
	for rs := range t.ResourceSpans() {
		for ss := range rs.ScopeSpans() {
			for sp := range ss.Spans() {
				if s.VisitSpan(scope, &rs, &ss, &sp); s.r.TooLarge {
					break spans
				}
			}
			scope++
		}
	}
	s.r.Overflowed = e.admitKeys(b, first)
	return s.r
}

// requestEncoder is the state of encoding one request, and the otlpwire.Visitor that
// EncodeRequest walks it with.
type requestEncoder struct {
	walker   otlpwire.Walker
	e        *Encoder
	b        *entry.Batch
	keep     func(service []byte) bool
	maxBytes int
	r        Result

	scope int        // the ScopeSpans that c and kept are about
	c     scopeCache // what the spans of that scope share
	kept  bool       // keep's answer for its resource
}

// VisitSpan encodes span sp into the batch, or counts it as filtered or rejected.
func (s *requestEncoder) VisitSpan(scope int, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span) {
	if scope != s.scope {
		s.scope, s.c = scope, scopeCache{}
		s.kept = s.keep == nil || s.keep(rs.Resource().ServiceName())
	}
	switch {
	case !s.kept:
		s.r.Filtered++
	case s.r.TooLarge: // past maxBytes: the rest of the request is only validated
	default:
		if err := s.e.encode(s.b, rs, ss, sp, &s.c); err != nil {
			if s.r.Rejected == 0 {
				s.r.FirstRejection = err
			}
			s.r.Rejected++
			return
		}
		s.r.Encoded++
		s.r.TooLarge = s.maxBytes > 0 && len(s.b.Buf) > s.maxBytes
	}
}
