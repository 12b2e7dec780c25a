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
	"sync"

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
	keyAttrs []string // the template's attribute keys
	fallback string
	keys     *keyLimit // nil when the template has no placeholder: one key only
	requests sync.Pool // *requestEncoder, for EncodeRequest
}

// New returns the encoder for a stream configuration: its keyTemplate (required), fallback
// (default DefaultFallback) and format (config.FormatJSON, FormatFlat or FormatOTLP; default
// json). The error names the configuration field at fault.
func New(cfg config.Stream) (*Encoder, error) {
	key, err := Parse(cfg.KeyTemplate)
	if err != nil {
		return nil, fmt.Errorf("stream.keyTemplate: %w", err)
	}
	e := &Encoder{format: cfg.Format, key: key, keyAttrs: key.Attributes(), fallback: cfg.Fallback}
	e.requests.New = func() any { return new(requestEncoder) }
	if e.fallback == "" {
		e.fallback = DefaultFallback
	}
	if len(e.keyAttrs) > 0 {
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
	first := b.Len()
	if err := e.encode(b, rs, ss, sp, nil); err != nil {
		return err
	}
	e.admitKeys(b, first)
	return nil
}

// encode appends the entry of span sp; its key is admitted under stream.maxKeys afterwards
// (admitKeys).
func (e *Encoder) encode(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span, c *scopeCache) error {
	var traceID [16]byte
	var spanID [8]byte
	if !validID(traceID[:], sp.TraceID()) {
		return ErrInvalidTraceID
	}
	if !validID(spanID[:], sp.SpanID()) {
		return ErrInvalidSpanID
	}
	keyStart := e.appendKey(b, rs, ss, sp, c)
	b.Begin(keyStart, traceID, spanID)

	n := len(b.Buf)
	b.Buf = append(b.Buf, "traceparent"...)
	v := len(b.Buf)
	b.Buf = appendTraceparent(b.Buf, traceID[:], spanID[:], sp.Flags())
	b.Field(n, v)

	switch e.format {
	case config.FormatFlat:
		encodeFlat(b, rs, ss, sp, traceID[:], spanID[:], c)
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
// the template's attributes, its key is the scope's, rendered once and copied (c).
func (e *Encoder) appendKey(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span, c *scopeCache) int {
	keyStart := len(b.Buf)
	if c == nil || !e.scopeOnly(sp) {
		b.Buf = e.key.Append(b.Buf, sp, rs.Resource(), ss.Scope(), e.fallback)
		return keyStart
	}
	if c.scopeKeyEnd > 0 {
		b.Buf = append(b.Buf, b.Buf[c.scopeKeyStart:c.scopeKeyEnd]...)
		return keyStart
	}
	b.Buf = e.key.Append(b.Buf, sp, rs.Resource(), ss.Scope(), e.fallback)
	c.scopeKeyStart, c.scopeKeyEnd = keyStart, len(b.Buf)
	return keyStart
}

// scopeOnly reports whether sp carries none of the key template's attributes (Template.ScopeOnly),
// from what the Walker noted of its attribute keys while it validated them when it did.
func (e *Encoder) scopeOnly(sp *otlpwire.Span) bool {
	if seen, known := sp.Watched(); known {
		return !seen
	}
	return e.key.ScopeOnly(sp)
}

// admitKeys applies stream.maxKeys to the keys of the entries of b from first on: an entry whose
// key would be one live key too many gets the overflow key instead, and is counted. It runs once
// the entries are known to be written (a request that turns out invalid takes no key), and does
// not look up again a key equal to the last one admitted (the spans of a request usually share
// theirs).
func (e *Encoder) admitKeys(b *entry.Batch, first int) (overflowed int) {
	if e.keys == nil {
		return 0
	}
	var last []byte
	overflow := entry.Range{Start: -1}
	for i := first; i < b.Len(); i++ {
		key := b.Key(i)
		if last != nil && bytes.Equal(key, last) {
			continue
		}
		if e.keys.admit(key) {
			last = key
			continue
		}
		if overflow.Start < 0 {
			overflow.Start = len(b.Buf)
			b.Buf = append(b.Buf, e.keys.overflow...)
			overflow.End = len(b.Buf)
		}
		b.Entries[i].Key = overflow
		overflowed++
	}
	return overflowed
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
