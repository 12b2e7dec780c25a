package encode

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracestream/tracestream/internal/exporter/encode/otlpjson"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// appendJSONData appends the json format's data field: the span as one JSON object, in the
// layout of docs/stream-entries.md. Ids are lowercase hex, enums integers (as in OTLP/JSON),
// times and counts JSON numbers.
func appendJSONData(dst []byte, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span, traceID, spanID []byte, c *scopeCache) []byte {
	res, st := rs.Resource(), sp.Status()
	dst = appendJSONIDs(dst, traceID, spanID)
	dst = append(dst, `","parent_span_id":"`...)
	dst = otlpjson.AppendHex(dst, sp.ParentSpanID())
	dst = appendJSONState(dst, sp.TraceState(), sp.Flags())
	dst = append(dst, `,"name":`...)
	dst = otlpjson.AppendString(dst, sp.Name())
	dst = append(dst, `,"kind":`...)
	dst = strconv.AppendInt(dst, int64(sp.Kind()), 10)
	dst = append(dst, `,"start_time_unix_nano":`...)
	dst = strconv.AppendUint(dst, sp.StartTimeUnixNano(), 10)
	dst = append(dst, `,"end_time_unix_nano":`...)
	dst = strconv.AppendUint(dst, sp.EndTimeUnixNano(), 10)
	dst = append(dst, `,"duration_ns":`...)
	dst = appendDuration(dst, sp.StartTimeUnixNano(), sp.EndTimeUnixNano())
	dst = append(dst, `,"status":{"code":`...)
	dst = strconv.AppendInt(dst, int64(st.Code()), 10)
	dst = append(dst, `,"message":`...)
	dst = otlpjson.AppendString(dst, st.Message())
	dst = append(dst, `},"attributes":`...)
	dst = otlpjson.AppendObject(dst, sp.Attributes())
	if c != nil && c.end > c.start {
		dst = append(dst, dst[c.start:c.end]...)
	} else {
		start := len(dst)
		dst = appendResourceAndScope(dst, res, ss.Scope())
		if c != nil {
			c.start, c.end = start, len(dst)
		}
	}
	dst = appendJSONEvents(dst, sp)
	dst = appendJSONLinks(dst, sp)
	dst = append(dst, `,"dropped_attributes_count":`...)
	dst = strconv.AppendUint(dst, uint64(sp.DroppedAttributesCount()), 10)
	dst = append(dst, `,"dropped_events_count":`...)
	dst = strconv.AppendUint(dst, uint64(sp.DroppedEventsCount()), 10)
	dst = append(dst, `,"dropped_links_count":`...)
	dst = strconv.AppendUint(dst, uint64(sp.DroppedLinksCount()), 10)
	dst = append(dst, `,"service_name":`...)
	dst = otlpjson.AppendString(dst, res.ServiceName())
	return append(dst, '}')
}

// appendJSONIDs opens a span's or a link's object with its trace_id and span_id, leaving the
// span_id's string open.
func appendJSONIDs(dst, traceID, spanID []byte) []byte {
	dst = append(dst, `{"trace_id":"`...)
	dst = otlpjson.AppendHex(dst, traceID)
	dst = append(dst, `","span_id":"`...)
	return otlpjson.AppendHex(dst, spanID)
}

// appendJSONState closes the last id's string and appends a span's or a link's trace_state and
// flags.
func appendJSONState(dst, traceState []byte, flags uint32) []byte {
	dst = append(dst, `","trace_state":`...)
	dst = otlpjson.AppendString(dst, traceState)
	dst = append(dst, `,"flags":`...)
	return strconv.AppendUint(dst, uint64(flags), 10)
}

// appendJSONEvents appends the json format's events member.
func appendJSONEvents(dst []byte, sp *otlpwire.Span) []byte {
	dst = append(dst, `,"events":[`...)
	first := true
	for ev := range sp.Events() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"time_unix_nano":`...)
		dst = strconv.AppendUint(dst, ev.TimeUnixNano(), 10)
		dst = append(dst, `,"name":`...)
		dst = otlpjson.AppendString(dst, ev.Name())
		dst = append(dst, `,"attributes":`...)
		dst = otlpjson.AppendObject(dst, ev.Attributes())
		dst = append(dst, `,"dropped_attributes_count":`...)
		dst = strconv.AppendUint(dst, uint64(ev.DroppedAttributesCount()), 10)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendJSONLinks appends the json format's links member.
func appendJSONLinks(dst []byte, sp *otlpwire.Span) []byte {
	dst = append(dst, `,"links":[`...)
	first := true
	for l := range sp.Links() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONIDs(dst, l.TraceID(), l.SpanID())
		dst = appendJSONState(dst, l.TraceState(), l.Flags())
		dst = append(dst, `,"attributes":`...)
		dst = otlpjson.AppendObject(dst, l.Attributes())
		dst = append(dst, `,"dropped_attributes_count":`...)
		dst = strconv.AppendUint(dst, uint64(l.DroppedAttributesCount()), 10)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendResourceAndScope appends the json format's resource and scope members, which are the
// same for every span of a ScopeSpans.
func appendResourceAndScope(dst []byte, res otlpwire.Resource, scope otlpwire.Scope) []byte {
	dst = append(dst, `,"resource":{"attributes":`...)
	dst = otlpjson.AppendObject(dst, res.Attributes())
	dst = append(dst, `},"scope":{"name":`...)
	dst = otlpjson.AppendString(dst, scope.Name())
	dst = append(dst, `,"version":`...)
	dst = otlpjson.AppendString(dst, scope.Version())
	dst = append(dst, `,"attributes":`...)
	dst = otlpjson.AppendObject(dst, scope.Attributes())
	return append(dst, '}')
}

// scopeCache remembers where in the batch what the spans of the current ScopeSpans share was
// written: the json format's resource and scope members, the flat format's resource and scope
// attribute fields, the key. The scope's other spans copy those bytes instead of rendering the
// same attributes again (a fifth of the work for a span of ten attributes under a resource of
// five). It is valid while the batch only grows: within one request.
type scopeCache struct {
	start, end int
	// scopeKeyStart:scopeKeyEnd is the key rendered from the scope's resource and scope alone,
	// which every span without the template's attributes of its own shares.
	scopeKeyStart, scopeKeyEnd int
	// flat is the flat format's resource.* and scope.attr.* fields of the scope's first span,
	// which the other spans repeat (when flatShared).
	flat       entry.FieldRun
	flatShared bool
}

// encodeFlat adds the flat format's fields (after traceparent): one field per value, named as in
// docs/stream-entries.md. Strings are written as they are, everything else as its JSON text.
func encodeFlat(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span, traceID, spanID []byte, c *scopeCache) {
	res, scope, st := rs.Resource(), ss.Scope(), sp.Status()
	n, v := begin(b, "trace_id")
	b.Buf = otlpjson.AppendHex(b.Buf, traceID)
	b.Field(n, v)
	n, v = begin(b, "span_id")
	b.Buf = otlpjson.AppendHex(b.Buf, spanID)
	b.Field(n, v)
	n, v = begin(b, "parent_span_id")
	b.Buf = otlpjson.AppendHex(b.Buf, sp.ParentSpanID())
	b.Field(n, v)
	b.AddField("trace_state", sp.TraceState())
	addUint(b, "flags", uint64(sp.Flags()))
	b.AddField("name", sp.Name())
	n, v = begin(b, "kind")
	b.Buf = strconv.AppendInt(b.Buf, int64(sp.Kind()), 10)
	b.Field(n, v)
	addUint(b, "start_time_unix_nano", sp.StartTimeUnixNano())
	addUint(b, "end_time_unix_nano", sp.EndTimeUnixNano())
	n, v = begin(b, "duration_ns")
	b.Buf = appendDuration(b.Buf, sp.StartTimeUnixNano(), sp.EndTimeUnixNano())
	b.Field(n, v)
	n, v = begin(b, "status_code")
	b.Buf = strconv.AppendInt(b.Buf, int64(st.Code()), 10)
	b.Field(n, v)
	b.AddField("status_message", st.Message())
	b.AddField("service_name", res.ServiceName())
	b.AddField("scope_name", scope.Name())
	b.AddField("scope_version", scope.Version())
	// Dropped counts are almost always zero, and every field costs Redis time and memory.
	if c := sp.DroppedAttributesCount(); c != 0 {
		addUint(b, "dropped_attributes_count", uint64(c))
	}
	if c := sp.DroppedEventsCount(); c != 0 {
		addUint(b, "dropped_events_count", uint64(c))
	}
	if c := sp.DroppedLinksCount(); c != 0 {
		addUint(b, "dropped_links_count", uint64(c))
	}
	addAttrs(b, "attr.", -1, sp.Attributes())
	if c != nil && c.flatShared {
		b.RepeatFields(c.flat)
	} else {
		m := b.FieldMark()
		addAttrs(b, "resource.", -1, res.Attributes())
		addAttrs(b, "scope.attr.", -1, scope.Attributes())
		if c != nil {
			c.flat, c.flatShared = b.FieldsSince(m), true
		}
	}
	addFlatEvents(b, sp)
	addFlatLinks(b, sp)
}

// addFlatEvents adds the flat format's fields of each event, "event.<i>.<field>".
func addFlatEvents(b *entry.Batch, sp *otlpwire.Span) {
	i := 0
	for ev := range sp.Events() {
		prefix := func(field string) (int, int) { return beginIndexed(b, "event.", i, field) }
		n, v := prefix("name")
		b.Buf = append(b.Buf, ev.Name()...)
		b.Field(n, v)
		n, v = prefix("time_unix_nano")
		b.Buf = strconv.AppendUint(b.Buf, ev.TimeUnixNano(), 10)
		b.Field(n, v)
		if c := ev.DroppedAttributesCount(); c != 0 {
			n, v = prefix("dropped_attributes_count")
			b.Buf = strconv.AppendUint(b.Buf, uint64(c), 10)
			b.Field(n, v)
		}
		addAttrs(b, "event.", i, ev.Attributes())
		i++
	}
}

// addFlatLinks adds the flat format's fields of each link, "link.<i>.<field>".
func addFlatLinks(b *entry.Batch, sp *otlpwire.Span) {
	i := 0
	for l := range sp.Links() {
		prefix := func(field string) (int, int) { return beginIndexed(b, "link.", i, field) }
		n, v := prefix("trace_id")
		b.Buf = otlpjson.AppendHex(b.Buf, l.TraceID())
		b.Field(n, v)
		n, v = prefix("span_id")
		b.Buf = otlpjson.AppendHex(b.Buf, l.SpanID())
		b.Field(n, v)
		n, v = prefix("trace_state")
		b.Buf = append(b.Buf, l.TraceState()...)
		b.Field(n, v)
		n, v = prefix("flags")
		b.Buf = strconv.AppendUint(b.Buf, uint64(l.Flags()), 10)
		b.Field(n, v)
		if c := l.DroppedAttributesCount(); c != 0 {
			n, v = prefix("dropped_attributes_count")
			b.Buf = strconv.AppendUint(b.Buf, uint64(c), 10)
			b.Field(n, v)
		}
		addAttrs(b, "link.", i, l.Attributes())
		i++
	}
}

// begin appends a field name and returns the offsets that entry.Batch.Field takes once the value
// has been appended.
func begin(b *entry.Batch, name string) (nameStart, valueStart int) {
	n := len(b.Buf)
	b.Buf = append(b.Buf, name...)
	return n, len(b.Buf)
}

func addUint(b *entry.Batch, name string, u uint64) {
	n, v := begin(b, name)
	b.Buf = strconv.AppendUint(b.Buf, u, 10)
	b.Field(n, v)
}

// beginIndexed appends the name of a field of event or link i, "<prefix><i>.<field>", and
// returns the offsets that entry.Batch.Field takes.
func beginIndexed(b *entry.Batch, prefix string, i int, field string) (nameStart, valueStart int) {
	n := len(b.Buf)
	b.Buf = append(b.Buf, prefix...)
	b.Buf = strconv.AppendInt(b.Buf, int64(i), 10)
	b.Buf = append(b.Buf, '.')
	b.Buf = append(b.Buf, field...)
	return n, len(b.Buf)
}

// addAttrs adds one field per attribute, named prefix+key, or with index >= 0 (events and links)
// prefix+index+".attr."+key. Strings are written as they are, other values as their JSON text.
func addAttrs(b *entry.Batch, prefix string, index int, a otlpwire.Attributes) {
	for kv := range a.All() {
		n := len(b.Buf)
		b.Buf = append(b.Buf, prefix...)
		if index >= 0 {
			b.Buf = strconv.AppendInt(b.Buf, int64(index), 10)
			b.Buf = append(b.Buf, ".attr."...)
		}
		b.Buf = append(b.Buf, kv.Key...)
		v := len(b.Buf)
		if kv.Value.Type() == otlpwire.ValueString {
			b.Buf = append(b.Buf, kv.Value.Str()...)
		} else {
			b.Buf = otlpjson.AppendValue(b.Buf, kv.Value)
		}
		b.Field(n, v)
	}
}

// encodeOTLP adds the otlp format's field: a TracesData with one ResourceSpans holding one
// ScopeSpans holding the span. Every other field of the ResourceSpans and ScopeSpans (resource,
// scope, schema urls, unknown fields) is copied as received, so the entry is lossless; the
// lengths are known in advance, so it is written in one pass with no intermediate buffer.
func encodeOTLP(b *entry.Batch, rs *otlpwire.ResourceSpans, ss *otlpwire.ScopeSpans, sp *otlpwire.Span) {
	const (
		fieldResourceSpans = 1 // TracesData.resource_spans
		fieldScopeSpans    = 2 // ResourceSpans.scope_spans
		fieldSpans         = 2 // ScopeSpans.spans
	)
	n, v := begin(b, "otlp")
	span := sp.Raw()
	ssLen := ss.HeaderLen() + protowire.SizeTag(fieldSpans) + protowire.SizeBytes(len(span))
	rsLen := rs.HeaderLen() + protowire.SizeTag(fieldScopeSpans) + protowire.SizeBytes(ssLen)
	b.Buf = protowire.AppendTag(b.Buf, fieldResourceSpans, protowire.BytesType)
	b.Buf = protowire.AppendVarint(b.Buf, uint64(rsLen))
	b.Buf = rs.AppendHeader(b.Buf)
	b.Buf = protowire.AppendTag(b.Buf, fieldScopeSpans, protowire.BytesType)
	b.Buf = protowire.AppendVarint(b.Buf, uint64(ssLen))
	b.Buf = ss.AppendHeader(b.Buf)
	b.Buf = protowire.AppendTag(b.Buf, fieldSpans, protowire.BytesType)
	b.Buf = protowire.AppendBytes(b.Buf, span)
	b.Field(n, v)
}

// appendDuration appends end-start in nanoseconds, negative when the producer's end precedes its
// start (a clock step, or a span that never ended), rather than wrapping around, and clamped to
// the int64 range (about ±292 years), so that every consumer can read it as a signed 64-bit
// integer whatever times a producer sends.
func appendDuration(dst []byte, start, end uint64) []byte {
	if end >= start {
		return strconv.AppendUint(dst, min(end-start, math.MaxInt64), 10)
	}
	dst = append(dst, '-')
	return strconv.AppendUint(dst, min(start-end, 1<<63), 10) // down to math.MinInt64
}
