// Package otlpwire reads OTLP trace requests straight from their protobuf bytes.
//
// The exporter turns every span into a Redis Stream entry and then forgets it, so building the
// generated Go structs (or pdata) for each request would allocate a few dozen objects per span
// only to throw them away. Instead, the views of this package (ResourceSpans, ScopeSpans, Span,
// Attributes, AnyValue, ...) are small values that point into the request bytes: iterating a
// request and reading every field of every span copies nothing and allocates nothing.
//
// The readers assume input that Validate accepted. On anything else they never panic, but they
// stop at the first malformed field, so values may be missing. Field semantics follow protobuf:
// unknown fields, and known fields that arrive with an unexpected wire type, are skipped, and
// of a singular field that occurs more than once the last occurrence wins. One difference is
// documented where it matters: protobuf merges repeated occurrences of a singular message field
// (a second "resource" or "status" adds to the first); the views use the last occurrence whole.
// Encoders never produce such input; the otlp stream format copies the bytes verbatim and so
// keeps protobuf's semantics for its consumers.
//
// Strings and bytes are returned as []byte aliasing the request: they are valid as long as the
// request buffer is, and must not be modified.
package otlpwire

import (
	"iter"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded field: its number and wire type, its varint or fixed value in u, its
// length-delimited value in b.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// next decodes the field at the start of b and returns how many bytes it used, or -1 on
// malformed input.
func next(b []byte) (f field, n int) {
	// One-byte varints (most tags, lengths and small values) are read without a call.
	var tag uint64
	if len(b) > 0 && b[0] < 0x80 {
		tag, n = uint64(b[0]), 1
	} else if tag, n = protowire.ConsumeVarint(b); n < 0 {
		return f, -1
	}
	f.num, f.typ = protowire.Number(tag>>3), protowire.Type(tag&7)
	if f.num < protowire.MinValidNumber || tag>>3 > uint64(protowire.MaxValidNumber) {
		return f, -1
	}
	var m int
	switch f.typ {
	case protowire.VarintType:
		if n < len(b) && b[n] < 0x80 {
			f.u = uint64(b[n])
			return f, n + 1
		}
		f.u, m = protowire.ConsumeVarint(b[n:])
	case protowire.BytesType:
		var l uint64
		if n < len(b) && b[n] < 0x80 {
			l, m = uint64(b[n]), 1
		} else if l, m = protowire.ConsumeVarint(b[n:]); m < 0 {
			return f, -1
		}
		if l > uint64(len(b)-n-m) {
			return f, -1
		}
		end := n + m + int(l)
		f.b = b[n+m : end : end]
		return f, end
	case protowire.Fixed64Type:
		f.u, m = protowire.ConsumeFixed64(b[n:])
	case protowire.Fixed32Type:
		var v uint32
		v, m = protowire.ConsumeFixed32(b[n:])
		f.u = uint64(v)
	case protowire.StartGroupType:
		m = protowire.ConsumeFieldValue(f.num, f.typ, b[n:])
	default:
		return f, -1
	}
	if m < 0 {
		return f, -1
	}
	return f, n + m
}

// isBytes reports whether f is a length-delimited field number num.
func (f *field) isBytes(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.BytesType
}

// isVarint reports whether f is a varint field number num.
func (f *field) isVarint(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.VarintType
}

// isFixed64 reports whether f is a fixed64 field number num.
func (f *field) isFixed64(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.Fixed64Type
}

// isFixed32 reports whether f is a fixed32 field number num.
func (f *field) isFixed32(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.Fixed32Type
}

// Traces is a view of an ExportTraceServiceRequest, or of a TracesData: both are a repeated
// ResourceSpans in field 1.
type Traces struct{ raw []byte }

// NewTraces returns a view of b, which should have passed Validate.
func NewTraces(b []byte) Traces { return Traces{raw: b} }

// Raw returns the request bytes.
func (t Traces) Raw() []byte { return t.raw }

// ResourceSpans iterates the request's ResourceSpans.
func (t Traces) ResourceSpans() iter.Seq[ResourceSpans] {
	return func(yield func(ResourceSpans) bool) {
		for b := t.raw; len(b) > 0; {
			f, n := next(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if f.isBytes(fieldResourceSpans) && !yield(parseResourceSpans(f.b)) {
				return
			}
		}
	}
}

// header locates every field of a message except its repeated children (the scope_spans of a
// ResourceSpans, the spans of a ScopeSpans): the otlp stream format needs those fields, verbatim,
// once per span. Encoders write children after the other fields, so the header is one or two
// contiguous runs (before the first child, after the last) and is copied without parsing; only
// when other fields sit between children is it re-scanned on every copy.
type header struct {
	pre, post []byte
	size      int
	raw       []byte           // the whole message, when interleaved
	child     protowire.Number // the field number of the children, when interleaved
}

func parseHeader(raw []byte, child protowire.Number) header {
	var h header
	first, lastEnd := -1, -1
	interleaved, afterChild := false, false
	for pos := 0; pos < len(raw); {
		f, n := next(raw[pos:])
		if n < 0 {
			break
		}
		if f.isBytes(child) {
			if first < 0 {
				first = pos
			} else if afterChild {
				interleaved = true
			}
			lastEnd = pos + n
		} else {
			h.size += n
			afterChild = first >= 0
		}
		pos += n
	}
	switch {
	case interleaved:
		h.raw, h.child = raw, child
	case first < 0:
		h.pre = raw
		h.size = len(raw)
	default:
		h.pre, h.post = raw[:first], raw[lastEnd:]
		h.size = len(h.pre) + len(h.post)
	}
	return h
}

func (h *header) append(dst []byte) []byte {
	if h.raw == nil {
		return append(append(dst, h.pre...), h.post...)
	}
	for pos := 0; pos < len(h.raw); {
		f, n := next(h.raw[pos:])
		if n < 0 {
			break
		}
		if !f.isBytes(h.child) {
			dst = append(dst, h.raw[pos:pos+n]...)
		}
		pos += n
	}
	return dst
}

// ResourceSpans is a view of one ResourceSpans: a resource and the spans it produced.
type ResourceSpans struct {
	raw       []byte
	resource  Resource
	schemaURL []byte
	header    header
}

func parseResourceSpans(raw []byte) ResourceSpans {
	rs := ResourceSpans{raw: raw}
	var res []byte
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isBytes(fieldRSResource):
			res = f.b
		case f.isBytes(fieldRSSchemaURL):
			rs.schemaURL = f.b
		}
	}
	rs.resource = parseResource(res)
	rs.header = parseHeader(raw, fieldRSScopeSpans)
	return rs
}

// Raw returns the ResourceSpans message bytes.
func (rs *ResourceSpans) Raw() []byte { return rs.raw }

// Resource returns the resource (empty when absent).
func (rs *ResourceSpans) Resource() Resource { return rs.resource }

// SchemaURL returns the schema_url of the resource.
func (rs *ResourceSpans) SchemaURL() []byte { return rs.schemaURL }

// HeaderLen is the size of what AppendHeader appends.
func (rs *ResourceSpans) HeaderLen() int { return rs.header.size }

// AppendHeader appends every field of the ResourceSpans except its scope_spans (the resource,
// the schema_url and any unknown fields), as encoded, in their order: followed by one ScopeSpans
// it is the ResourceSpans of that one scope, without loss.
func (rs *ResourceSpans) AppendHeader(dst []byte) []byte { return rs.header.append(dst) }

// ScopeSpans iterates the ScopeSpans of the resource.
func (rs *ResourceSpans) ScopeSpans() iter.Seq[ScopeSpans] {
	raw := rs.raw
	return func(yield func(ScopeSpans) bool) {
		for b := raw; len(b) > 0; {
			f, n := next(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if f.isBytes(fieldRSScopeSpans) && !yield(parseScopeSpans(f.b)) {
				return
			}
		}
	}
}

// Resource is a view of a Resource.
type Resource struct {
	raw     []byte
	dropped uint32
	service []byte
}

func parseResource(raw []byte) Resource {
	r := Resource{raw: raw}
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if f.isVarint(fieldResourceDropped) {
			r.dropped = uint32(f.u)
		}
	}
	if v, ok := r.Attributes().Get("service.name"); ok && v.Type() == ValueString {
		r.service = v.Str()
	}
	return r
}

// Raw returns the Resource message bytes.
func (r Resource) Raw() []byte { return r.raw }

// Attributes returns the resource attributes.
func (r Resource) Attributes() Attributes { return Attributes{b: r.raw, num: fieldResourceAttributes} }

// DroppedAttributesCount is the number of attributes the producer dropped.
func (r Resource) DroppedAttributesCount() uint32 { return r.dropped }

// ServiceName returns the string value of the service.name attribute, nil when it is missing or
// not a string. It is looked up once per resource because filters and key templates ask for it on
// every span.
func (r Resource) ServiceName() []byte { return r.service }

// ScopeSpans is a view of one ScopeSpans: an instrumentation scope and its spans.
type ScopeSpans struct {
	raw       []byte
	scope     Scope
	schemaURL []byte
	header    header
}

func parseScopeSpans(raw []byte) ScopeSpans {
	ss := ScopeSpans{raw: raw}
	var scope []byte
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isBytes(fieldSSScope):
			scope = f.b
		case f.isBytes(fieldSSSchemaURL):
			ss.schemaURL = f.b
		}
	}
	ss.scope = parseScope(scope)
	ss.header = parseHeader(raw, fieldSSSpans)
	return ss
}

// Raw returns the ScopeSpans message bytes.
func (ss *ScopeSpans) Raw() []byte { return ss.raw }

// Scope returns the instrumentation scope (empty when absent).
func (ss *ScopeSpans) Scope() Scope { return ss.scope }

// SchemaURL returns the schema_url of the scope's spans.
func (ss *ScopeSpans) SchemaURL() []byte { return ss.schemaURL }

// HeaderLen is the size of what AppendHeader appends.
func (ss *ScopeSpans) HeaderLen() int { return ss.header.size }

// AppendHeader appends every field of the ScopeSpans except its spans (the scope, the schema_url
// and any unknown fields), as encoded: followed by one span it is the ScopeSpans of that span,
// without loss.
func (ss *ScopeSpans) AppendHeader(dst []byte) []byte { return ss.header.append(dst) }

// SpanCount counts the spans of the scope without decoding them.
func (ss *ScopeSpans) SpanCount() int {
	n := 0
	for b := ss.raw; len(b) > 0; {
		f, m := next(b)
		if m < 0 {
			break
		}
		b = b[m:]
		if f.isBytes(fieldSSSpans) {
			n++
		}
	}
	return n
}

// Spans iterates the spans of the scope.
func (ss *ScopeSpans) Spans() iter.Seq[Span] {
	raw := ss.raw
	return func(yield func(Span) bool) {
		for b := raw; len(b) > 0; {
			f, n := next(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if f.isBytes(fieldSSSpans) && !yield(ParseSpan(f.b)) {
				return
			}
		}
	}
}

// Scope is a view of an InstrumentationScope.
type Scope struct {
	raw           []byte
	name, version []byte
	dropped       uint32
}

func parseScope(raw []byte) Scope {
	s := Scope{raw: raw}
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isBytes(fieldScopeName):
			s.name = f.b
		case f.isBytes(fieldScopeVersion):
			s.version = f.b
		case f.isVarint(fieldScopeDropped):
			s.dropped = uint32(f.u)
		}
	}
	return s
}

// Raw returns the InstrumentationScope message bytes.
func (s Scope) Raw() []byte { return s.raw }

// Name returns the scope name.
func (s Scope) Name() []byte { return s.name }

// Version returns the scope version.
func (s Scope) Version() []byte { return s.version }

// Attributes returns the scope attributes.
func (s Scope) Attributes() Attributes { return Attributes{b: s.raw, num: fieldScopeAttributes} }

// DroppedAttributesCount is the number of attributes the producer dropped.
func (s Scope) DroppedAttributesCount() uint32 { return s.dropped }

// Span is a view of one span. Its scalar fields are decoded once, when the span is parsed,
// because an encoder reads all of them; attributes, events and links are decoded as they are
// iterated.
type Span struct {
	raw                                       []byte
	traceID, spanID, parentSpanID             []byte
	traceState, name                          []byte
	start, end                                uint64
	flags                                     uint32
	kind                                      int32
	droppedAttrs, droppedEvents, droppedLinks uint32
	status                                    Status
	attrs, events, links                      []byte // from the first occurrence on, nil if none
	// watch is what a Walker with watched keys saw of the span's attribute keys (Watched).
	watch watchState
}

// watchState is whether a span has an attribute with one of a Walker's watched keys.
type watchState uint8

const (
	watchUnknown watchState = iota // not from a Walker that watches keys
	watchNone
	watchSeen
)

// Watched reports whether the span has an attribute whose key is one of the keys its Walker
// watches (Walker.Watch); known is false when nobody looked (a span from ParseSpan, or from a
// Walker that watches no key), and the caller looks for itself.
func (s *Span) Watched() (seen, known bool) {
	return s.watch == watchSeen, s.watch != watchUnknown
}

// ParseSpan returns a view of the Span message bytes raw.
func ParseSpan(raw []byte) Span {
	s := Span{raw: raw}
	for pos := 0; pos < len(raw); {
		f, n := next(raw[pos:])
		if n < 0 {
			break
		}
		s.set(&f, raw[pos:])
		pos += n
	}
	return s
}

// set records field f of the span, found at the start of rest (the span from f's tag on): the
// one place that says which field of a span goes where, for ParseSpan and for Walker, which
// fills a span's view as it validates the span.
func (s *Span) set(f *field, rest []byte) {
	switch f.typ {
	case protowire.BytesType:
		switch f.num {
		case fieldSpanTraceID:
			s.traceID = f.b
		case fieldSpanSpanID:
			s.spanID = f.b
		case fieldSpanTraceState:
			s.traceState = f.b
		case fieldSpanParentSpanID:
			s.parentSpanID = f.b
		case fieldSpanName:
			s.name = f.b
		case fieldSpanAttributes:
			s.attrs = firstFrom(s.attrs, rest)
		case fieldSpanEvents:
			s.events = firstFrom(s.events, rest)
		case fieldSpanLinks:
			s.links = firstFrom(s.links, rest)
		case fieldSpanStatus:
			s.status = parseStatus(f.b)
		}
	case protowire.VarintType:
		switch f.num {
		case fieldSpanKind:
			s.kind = int32(f.u)
		case fieldSpanDroppedAttrs:
			s.droppedAttrs = uint32(f.u)
		case fieldSpanDroppedEvents:
			s.droppedEvents = uint32(f.u)
		case fieldSpanDroppedLinks:
			s.droppedLinks = uint32(f.u)
		}
	case protowire.Fixed64Type:
		switch f.num {
		case fieldSpanStart:
			s.start = f.u
		case fieldSpanEnd:
			s.end = f.u
		}
	case protowire.Fixed32Type:
		if f.num == fieldSpanFlags {
			s.flags = uint32(f.u)
		}
	}
}

// firstFrom keeps where the first occurrence of a repeated field starts: cur, or rest when there
// was none before.
func firstFrom(cur, rest []byte) []byte {
	if cur == nil {
		return rest
	}
	return cur
}

// Raw returns the Span message bytes.
func (s *Span) Raw() []byte { return s.raw }

// TraceID returns the trace id: 16 bytes, or empty when the producer set none.
func (s *Span) TraceID() []byte { return s.traceID }

// SpanID returns the span id: 8 bytes, or empty when the producer set none.
func (s *Span) SpanID() []byte { return s.spanID }

// ParentSpanID returns the parent's span id, empty for a root span.
func (s *Span) ParentSpanID() []byte { return s.parentSpanID }

// TraceState returns the W3C tracestate header value.
func (s *Span) TraceState() []byte { return s.traceState }

// Flags returns the span flags: the W3C trace flags in bits 0-7, OTLP's "parent is remote" bits
// in 8-9.
func (s *Span) Flags() uint32 { return s.flags }

// Name returns the span name.
func (s *Span) Name() []byte { return s.name }

// Kind returns the SpanKind enum value (0 unspecified, 1 internal, 2 server, 3 client,
// 4 producer, 5 consumer; other values are possible, enums are open).
func (s *Span) Kind() int32 { return s.kind }

// StartTimeUnixNano returns the start time.
func (s *Span) StartTimeUnixNano() uint64 { return s.start }

// EndTimeUnixNano returns the end time.
func (s *Span) EndTimeUnixNano() uint64 { return s.end }

// Attributes returns the span attributes.
func (s *Span) Attributes() Attributes { return Attributes{b: s.attrs, num: fieldSpanAttributes} }

// DroppedAttributesCount is the number of attributes the producer dropped.
func (s *Span) DroppedAttributesCount() uint32 { return s.droppedAttrs }

// DroppedEventsCount is the number of events the producer dropped.
func (s *Span) DroppedEventsCount() uint32 { return s.droppedEvents }

// DroppedLinksCount is the number of links the producer dropped.
func (s *Span) DroppedLinksCount() uint32 { return s.droppedLinks }

// Status returns the span status.
func (s *Span) Status() Status { return s.status }

// HasEvents reports whether the span has at least one event.
func (s *Span) HasEvents() bool { return s.events != nil }

// HasLinks reports whether the span has at least one link.
func (s *Span) HasLinks() bool { return s.links != nil }

// Events iterates the span events.
func (s *Span) Events() iter.Seq[Event] {
	raw := s.events
	return func(yield func(Event) bool) {
		for b := raw; len(b) > 0; {
			f, n := next(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if f.isBytes(fieldSpanEvents) && !yield(parseEvent(f.b)) {
				return
			}
		}
	}
}

// Links iterates the span links.
func (s *Span) Links() iter.Seq[Link] {
	raw := s.links
	return func(yield func(Link) bool) {
		for b := raw; len(b) > 0; {
			f, n := next(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if f.isBytes(fieldSpanLinks) && !yield(parseLink(f.b)) {
				return
			}
		}
	}
}

// Status is a view of a span status.
type Status struct {
	message []byte
	code    int32
}

func parseStatus(raw []byte) Status {
	var s Status
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isBytes(fieldStatusMessage):
			s.message = f.b
		case f.isVarint(fieldStatusCode):
			s.code = int32(f.u)
		}
	}
	return s
}

// Message returns the status message.
func (s Status) Message() []byte { return s.message }

// Code returns the StatusCode enum value (0 unset, 1 ok, 2 error).
func (s Status) Code() int32 { return s.code }

// Event is a view of a span event.
type Event struct {
	raw     []byte
	time    uint64
	name    []byte
	dropped uint32
}

func parseEvent(raw []byte) Event {
	e := Event{raw: raw}
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isFixed64(fieldEventTime):
			e.time = f.u
		case f.isBytes(fieldEventName):
			e.name = f.b
		case f.isVarint(fieldEventDropped):
			e.dropped = uint32(f.u)
		}
	}
	return e
}

// Raw returns the Event message bytes.
func (e Event) Raw() []byte { return e.raw }

// TimeUnixNano returns the event time.
func (e Event) TimeUnixNano() uint64 { return e.time }

// Name returns the event name.
func (e Event) Name() []byte { return e.name }

// Attributes returns the event attributes.
func (e Event) Attributes() Attributes { return Attributes{b: e.raw, num: fieldEventAttributes} }

// DroppedAttributesCount is the number of attributes the producer dropped.
func (e Event) DroppedAttributesCount() uint32 { return e.dropped }

// Link is a view of a span link.
type Link struct {
	raw                         []byte
	traceID, spanID, traceState []byte
	flags, dropped              uint32
}

func parseLink(raw []byte) Link {
	l := Link{raw: raw}
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isBytes(fieldLinkTraceID):
			l.traceID = f.b
		case f.isBytes(fieldLinkSpanID):
			l.spanID = f.b
		case f.isBytes(fieldLinkTraceState):
			l.traceState = f.b
		case f.isFixed32(fieldLinkFlags):
			l.flags = uint32(f.u)
		case f.isVarint(fieldLinkDropped):
			l.dropped = uint32(f.u)
		}
	}
	return l
}

// Raw returns the Link message bytes.
func (l Link) Raw() []byte { return l.raw }

// TraceID returns the linked span's trace id.
func (l Link) TraceID() []byte { return l.traceID }

// SpanID returns the linked span's id.
func (l Link) SpanID() []byte { return l.spanID }

// TraceState returns the linked span's tracestate.
func (l Link) TraceState() []byte { return l.traceState }

// Flags returns the link flags (as Span.Flags).
func (l Link) Flags() uint32 { return l.flags }

// Attributes returns the link attributes.
func (l Link) Attributes() Attributes { return Attributes{b: l.raw, num: fieldLinkAttributes} }

// DroppedAttributesCount is the number of attributes the producer dropped.
func (l Link) DroppedAttributesCount() uint32 { return l.dropped }

// Attributes is a view of a list of KeyValues: the attributes of a span, resource, scope, event
// or link, or the entries of a kvlist value.
type Attributes struct {
	b   []byte // the enclosing message, or the part of it from the first attribute on
	num protowire.Number
}

// All iterates the key/value pairs in order.
func (a Attributes) All() iter.Seq[KeyValue] {
	return func(yield func(KeyValue) bool) {
		for kv := range a.pairs() {
			if !yield(parseKeyValue(kv)) {
				return
			}
		}
	}
}

// pairs iterates the encoded KeyValue messages in order: the one loop over attributes, which
// reads the usual layout (one-byte tag and length) without the general field loop.
func (a Attributes) pairs() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		tag := a.tag()
		for b := a.b; len(b) > 0; {
			kv, rest, ok := cutShort(b, tag)
			if !ok {
				f, n := next(b)
				if n < 0 {
					return
				}
				if rest = b[n:]; !f.isBytes(a.num) {
					b = rest
					continue
				}
				kv = f.b
			}
			b = rest
			if !yield(kv) {
				return
			}
		}
	}
}

// tag is the one-byte tag of the attribute fields (all are numbered below 16).
func (a Attributes) tag() byte { return byte(a.num)<<3 | byte(protowire.BytesType) }

// cutShort reads the length-delimited field at the start of b when it has the one-byte tag tag
// and a one-byte length, the usual layout of attributes, without the general field loop: its
// value, and what follows it. ok is false for anything else, which next reads.
func cutShort(b []byte, tag byte) (val, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag || b[1] >= 0x80 || int(b[1]) > len(b)-2 {
		return nil, b, false
	}
	end := 2 + int(b[1])
	return b[2:end:end], b[end:], true
}

// Len counts the key/value pairs.
func (a Attributes) Len() int {
	n := 0
	for range a.pairs() {
		n++
	}
	return n
}

// Has reports whether a pair with key is among the attributes: Get without decoding any value.
// A stream key template asks it of every span.
func (a Attributes) Has(key string) bool {
	for kv := range a.pairs() {
		if k, _ := splitKeyValue(kv); string(k) == key {
			return true
		}
	}
	return false
}

// Get returns the value of the last pair whose key is key. OTLP requires keys to be unique; when
// a producer repeats one anyway, the last wins, as it does for a standard JSON parser reading the
// json format's attribute object (which repeats the key): the stream key, service_name and the
// service filter then agree with what a consumer reads. (The Collector's pdata returns the first.)
func (a Attributes) Get(key string) (AnyValue, bool) {
	var (
		last  []byte
		found bool
	)
	for kv := range a.pairs() {
		// Compare the key before decoding the value: most pairs are not the one looked for.
		if k, v := splitKeyValue(kv); string(k) == key {
			last, found = v, true
		}
	}
	if !found {
		return AnyValue{}, false
	}
	return parseAnyValue(last), true
}

// KeyValue is one attribute.
type KeyValue struct {
	Key   []byte
	Value AnyValue
}

func parseKeyValue(raw []byte) KeyValue {
	k, v, ok := shortKeyValue(raw)
	if !ok {
		k, v = splitKeyValueFields(raw)
	}
	if str, ok := shortString(v); ok { // the usual value, without parseAnyValue's call
		return KeyValue{Key: k, Value: AnyValue{typ: ValueString, b: str}}
	}
	return KeyValue{Key: k, Value: parseAnyValue(v)}
}

// splitKeyValue returns the key and the encoded value of a KeyValue. Attributes are most of the
// bytes of a request, so their usual layout (shortKeyValue) is read without the general field
// loop.
func splitKeyValue(raw []byte) (key, value []byte) {
	if k, v, ok := shortKeyValue(raw); ok {
		return k, v
	}
	return splitKeyValueFields(raw)
}

// splitKeyValueFields is splitKeyValue by the general field loop, for any layout.
func splitKeyValueFields(raw []byte) (key, value []byte) {
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case f.isBytes(fieldKVKey):
			key = f.b
		case f.isBytes(fieldKVValue):
			value = f.b
		}
	}
	return key, value
}

// shortKeyValue reads the layout that every encoder writes for short attributes: the key, then
// the value, each once, with one-byte tags and lengths, filling kv exactly. ok is false for any
// other layout, which the general field loop reads (and validation checks).
func shortKeyValue(kv []byte) (key, value []byte, ok bool) {
	if len(kv) < 4 || kv[0] != fieldKVKey<<3|2 {
		return nil, nil, false
	}
	// The key's length; a byte of 0x80 or more (a longer varint) fails below.
	end := 2 + int(kv[1])
	if end+2 > len(kv) || kv[end] != fieldKVValue<<3|2 || end+2+int(kv[end+1]) != len(kv) || (kv[1]|kv[end+1]) >= 0x80 {
		return nil, nil, false
	}
	return kv[2:end:end], kv[end+2:], true
}

// shortString reads an AnyValue holding just a string with a one-byte length, the usual value.
func shortString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != fieldValueString<<3|2 || v[1] >= 0x80 || int(v[1]) != len(v)-2 {
		return nil, false
	}
	return v[2:], true
}

// ValueType is the type of an AnyValue.
type ValueType uint8

// The AnyValue types. ValueEmpty is a value with none of the oneof set, which OTLP allows (and
// which is what string_value_strindex, a profiles-only field, counts as in traces, as the proto
// asks receivers of other signals to treat it).
const (
	ValueEmpty ValueType = iota
	ValueString
	ValueBool
	ValueInt
	ValueDouble
	ValueArray
	ValueKVList
	ValueBytes
)

// String names the type as OTLP/JSON's AnyValue fields do.
func (t ValueType) String() string {
	switch t {
	case ValueString:
		return "stringValue"
	case ValueBool:
		return "boolValue"
	case ValueInt:
		return "intValue"
	case ValueDouble:
		return "doubleValue"
	case ValueArray:
		return "arrayValue"
	case ValueKVList:
		return "kvlistValue"
	case ValueBytes:
		return "bytesValue"
	}
	return "empty"
}

// AnyValue is a view of an attribute value.
type AnyValue struct {
	typ ValueType
	u   uint64
	b   []byte
}

func parseAnyValue(raw []byte) AnyValue {
	// The common case, a value holding just a short string, without the general field loop.
	if str, ok := shortString(raw); ok {
		return AnyValue{typ: ValueString, b: str}
	}
	var v AnyValue
	for b := raw; len(b) > 0; {
		f, n := next(b)
		if n < 0 {
			break
		}
		b = b[n:]
		// A oneof: the last member on the wire wins.
		switch f.typ {
		case protowire.BytesType:
			switch f.num {
			case fieldValueString:
				v = AnyValue{typ: ValueString, b: f.b}
			case fieldValueArray:
				v = AnyValue{typ: ValueArray, b: f.b}
			case fieldValueKVList:
				v = AnyValue{typ: ValueKVList, b: f.b}
			case fieldValueBytes:
				v = AnyValue{typ: ValueBytes, b: f.b}
			}
		case protowire.VarintType:
			switch f.num {
			case fieldValueBool:
				v = AnyValue{typ: ValueBool, u: f.u}
			case fieldValueInt:
				v = AnyValue{typ: ValueInt, u: f.u}
			case fieldValueStrindex:
				v = AnyValue{}
			}
		case protowire.Fixed64Type:
			if f.num == fieldValueDouble {
				v = AnyValue{typ: ValueDouble, u: f.u}
			}
		}
	}
	return v
}

// Type returns the type of the value.
func (v AnyValue) Type() ValueType { return v.typ }

// Str returns a string value's bytes (nil for other types).
func (v AnyValue) Str() []byte {
	if v.typ != ValueString {
		return nil
	}
	return v.b
}

// Bool returns a bool value (false for other types).
func (v AnyValue) Bool() bool { return v.typ == ValueBool && v.u != 0 }

// Int returns an int value (0 for other types).
func (v AnyValue) Int() int64 {
	if v.typ != ValueInt {
		return 0
	}
	return int64(v.u)
}

// Double returns a double value (0 for other types).
func (v AnyValue) Double() float64 {
	if v.typ != ValueDouble {
		return 0
	}
	return math.Float64frombits(v.u)
}

// Bytes returns a bytes value (nil for other types).
func (v AnyValue) Bytes() []byte {
	if v.typ != ValueBytes {
		return nil
	}
	return v.b
}

// Array returns an array value's elements (none for other types).
func (v AnyValue) Array() Values {
	if v.typ != ValueArray {
		return Values{}
	}
	return Values{b: v.b}
}

// KVList returns a kvlist value's entries (none for other types).
func (v AnyValue) KVList() Attributes {
	if v.typ != ValueKVList {
		return Attributes{}
	}
	return Attributes{b: v.b, num: fieldListValues}
}

// Values is a view of an array value's elements.
type Values struct{ b []byte }

// All iterates the elements in order.
func (vs Values) All() iter.Seq[AnyValue] {
	return func(yield func(AnyValue) bool) {
		for b := vs.b; len(b) > 0; {
			f, n := next(b)
			if n < 0 {
				return
			}
			b = b[n:]
			if f.isBytes(fieldListValues) && !yield(parseAnyValue(f.b)) {
				return
			}
		}
	}
}

// Len counts the elements.
func (vs Values) Len() int {
	n := 0
	for b := vs.b; len(b) > 0; {
		f, m := next(b)
		if m < 0 {
			break
		}
		b = b[m:]
		if f.isBytes(fieldListValues) {
			n++
		}
	}
	return n
}
