// Package encode turns spans into Redis Stream entries: it renders the stream key from the key
// template and writes the entry's fields in one of three formats (docs/stream-entries.md is the
// contract with consumers):
//
//   - json: traceparent, and data, the whole span as one JSON object;
//   - flat: one field per value (trace_id, name, attr.<key>, ...), for consumers that read single
//     fields or filter with XRANGE/XREAD without parsing;
//   - otlp: traceparent, and otlp, a TracesData protobuf holding exactly that span with its
//     resource and scope, lossless, for consumers that speak OTLP.
//
// Spans are read with otlpwire straight from the request bytes and written straight into an
// entry.Batch arena: once the batch has grown to size, encoding allocates nothing per span.
package encode

import (
	"bytes"
	"fmt"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode/otlpjson"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// InvalidSpanError is returned for a span that cannot become a stream entry because it has no
// valid trace or span id: every entry carries a W3C traceparent, and consumers deduplicate by the
// ids. Such a span is the client's fault and must not make the whole request fail or be retried:
// the pipeline counts it as rejected in the OTLP partial success, with this message, and goes on.
type InvalidSpanError struct {
	// Field is "trace_id" or "span_id".
	Field string
}

// Error explains why the span was rejected.
func (e *InvalidSpanError) Error() string {
	return "span rejected: its " + e.Field + " is missing, all zero or of the wrong length, so it has no W3C traceparent"
}

// The InvalidSpanErrors that Encode returns. They are values, not built per span, so that a
// request full of invalid spans costs no allocation either; test for either with errors.As into
// an *InvalidSpanError, or errors.Is against one of these.
var (
	ErrInvalidTraceID = &InvalidSpanError{Field: "trace_id"}
	ErrInvalidSpanID  = &InvalidSpanError{Field: "span_id"}
)

// Encoder writes spans as stream entries of one format. It holds no per-span state: one Encoder
// may serve many goroutines, each with its own entry.Batch.
type Encoder struct {
	format   string
	key      *Template
	fallback string
	keys     *keyLimit // nil when the template has no placeholder: one key only
}

// New returns the encoder for a stream configuration: its keyTemplate (required), fallback
// (default DefaultFallback) and format (config.FormatJSON, FormatFlat or FormatOTLP; default
// json). The error names the configuration field at fault.
func New(cfg config.Stream) (*Encoder, error) {
	key, err := Parse(cfg.KeyTemplate)
	if err != nil {
		return nil, fmt.Errorf("stream.keyTemplate: %w", err)
	}
	e := &Encoder{format: cfg.Format, key: key, fallback: cfg.Fallback}
	if e.fallback == "" {
		e.fallback = DefaultFallback
	}
	if len(key.Attributes()) > 0 {
		max := cfg.MaxKeys
		if max <= 0 { // an Encoder built from a Stream that did not come from config.Default
			max = config.DefaultMaxKeys
		}
		// A key stays live for the stream's TTL, after which Redis drops the stream too; without
		// a TTL the stream is never dropped, so the key is never forgotten either (window 0).
		e.keys = newKeyLimit(max, OverflowKey(cfg), cfg.TTL.Duration)
	}
	switch e.format {
	case "":
		e.format = config.FormatJSON
	case config.FormatJSON, config.FormatFlat, config.FormatOTLP:
	default:
		return nil, fmt.Errorf("stream.format: unknown format %q (want %s, %s or %s)",
			cfg.Format, config.FormatJSON, config.FormatFlat, config.FormatOTLP)
	}
	return e, nil
}

// OverflowKey is the stream that takes spans past stream.maxKeys: stream.overflowKey, or by
// default the key template with every placeholder rendered as "overflow" (traces:{service.name}
// gives traces:overflow).
func OverflowKey(cfg config.Stream) string {
	if cfg.OverflowKey != "" {
		return cfg.OverflowKey
	}
	t, err := Parse(cfg.KeyTemplate)
	if err != nil {
		return "overflow"
	}
	return string(t.Append(nil, &otlpwire.Span{}, otlpwire.Resource{}, otlpwire.Scope{}, "overflow"))
}

// KeyStats are the live stream keys and the spans written to the overflow key so far.
func (e *Encoder) KeyStats() (live int, overflowed int64) {
	if e.keys == nil {
		return 1, 0
	}
	return e.keys.live(), e.keys.overflowed.Load()
}

// Format returns the format the encoder writes.
func (e *Encoder) Format() string { return e.format }

// Encode appends the entry of span sp, of scope ss of resource rs, to b: the key, then the
// fields. A span without a valid trace or span id gets no entry and an *InvalidSpanError. Encode
// does not allocate unless b has to grow.
func (e *Encoder) Encode(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span) error {
	return e.encode(b, rs, ss, sp, nil, nil)
}

func (e *Encoder) encode(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span, c *scopeCache, overflowed *int) error {
	var traceID [16]byte
	var spanID [8]byte
	if !validID(traceID[:], sp.TraceID()) {
		return ErrInvalidTraceID
	}
	if !validID(spanID[:], sp.SpanID()) {
		return ErrInvalidSpanID
	}
	keyStart := e.appendKey(b, rs, ss, sp, c, overflowed)
	b.Begin(keyStart, traceID, spanID)

	n := len(b.Buf)
	b.Buf = append(b.Buf, "traceparent"...)
	v := len(b.Buf)
	b.Buf = appendTraceparent(b.Buf, traceID[:], spanID[:], sp.Flags())
	b.Field(n, v)

	switch e.format {
	case config.FormatFlat:
		encodeFlat(b, rs, ss, sp, traceID[:], spanID[:])
	case config.FormatOTLP:
		encodeOTLP(b, rs, ss, sp)
	default:
		n := len(b.Buf)
		b.Buf = append(b.Buf, "data"...)
		v := len(b.Buf)
		b.Buf = appendJSONData(b.Buf, rs, ss, sp, traceID[:], spanID[:], c)
		b.Field(n, v)
	}
	return nil
}

// appendKey appends the stream key of span sp to b and returns where it starts. Spans of one
// scope usually share their key, and usually take it from the resource: when sp carries none of
// the template's attributes, its key is the scope's, rendered once and copied (c), and a key
// equal to the last one admitted under stream.maxKeys is not looked up again.
func (e *Encoder) appendKey(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span, c *scopeCache, overflowed *int) int {
	keyStart := len(b.Buf)
	scoped := c != nil && e.key.ScopeOnly(sp)
	if scoped && c.scopeKeyEnd > 0 {
		b.Buf = append(b.Buf, b.Buf[c.scopeKeyStart:c.scopeKeyEnd]...)
	} else {
		b.Buf = e.key.Append(b.Buf, sp, rs.Resource(), ss.Scope(), e.fallback)
	}
	key := b.Buf[keyStart:]
	switch {
	case e.keys == nil:
	case c != nil && c.keyEnd > 0 && bytes.Equal(b.Buf[c.keyStart:c.keyEnd], key):
	case e.keys.admit(key):
		if c != nil {
			c.keyStart, c.keyEnd = keyStart, len(b.Buf)
		}
	default:
		b.Buf = append(b.Buf[:keyStart], e.keys.overflow...)
		if overflowed != nil {
			*overflowed++
		}
		return keyStart // not the rendered key: not one to copy
	}
	if scoped && c.scopeKeyEnd == 0 {
		c.scopeKeyStart, c.scopeKeyEnd = keyStart, len(b.Buf)
	}
	return keyStart
}

// Result counts what EncodeTraces did with the spans of a request.
type Result struct {
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
	// TooLarge is set when the entries outgrew the maxBytes given to EncodeTraces; encoding
	// stopped there and the batch holds a partial request.
	TooLarge bool
}

// EncodeTraces appends an entry to b for every span of t, except the spans of resources whose
// service.name keep returns false for (a nil keep keeps every span; the name is nil when the
// resource has no string service.name) and the spans that cannot be encoded, which it counts.
// It writes what Encode writes for each span, faster: the json format renders the resource and
// scope of a ScopeSpans once, not once per span.
//
// Every entry repeats its span's resource and scope, so a small request with a large resource
// and many spans can encode to far more bytes than it has: when maxBytes > 0 and the batch
// grows past it, EncodeTraces stops and sets TooLarge, bounding the memory one request takes.
func (e *Encoder) EncodeTraces(b *entry.Batch, t otlpwire.Traces, keep func(service []byte) bool, maxBytes int) Result {
	var r Result
	for rs := range t.ResourceSpans() {
		if keep != nil && !keep(rs.Resource().ServiceName()) {
			for ss := range rs.ScopeSpans() {
				r.Filtered += ss.SpanCount()
			}
			continue
		}
		for ss := range rs.ScopeSpans() {
			var c scopeCache
			for sp := range ss.Spans() {
				if err := e.encode(b, &rs, &ss, &sp, &c, &r.Overflowed); err != nil {
					if r.Rejected == 0 {
						r.FirstRejection = err
					}
					r.Rejected++
					continue
				}
				r.Encoded++
				if maxBytes > 0 && len(b.Buf) > maxBytes {
					r.TooLarge = true
					return r
				}
			}
		}
	}
	return r
}

// validID copies id into dst and reports whether it is a valid W3C id: the right length and not
// all zero (W3C Trace Context: an all-zero trace-id or parent-id is invalid).
func validID(dst, id []byte) bool {
	if len(id) != len(dst) {
		return false
	}
	copy(dst, id)
	for _, c := range id {
		if c != 0 {
			return true
		}
	}
	return false
}

// appendTraceparent appends the W3C traceparent header value "00-<trace id>-<span id>-<flags>".
// The trace flags are the low 8 bits of the OTLP span flags; the upper bits (OTLP's "parent is
// remote" bits) are not W3C flags.
func appendTraceparent(dst, traceID, spanID []byte, flags uint32) []byte {
	dst = append(dst, '0', '0', '-')
	dst = otlpjson.AppendHex(dst, traceID)
	dst = append(dst, '-')
	dst = otlpjson.AppendHex(dst, spanID)
	return otlpjson.AppendHex(append(dst, '-'), []byte{byte(flags)})
}
