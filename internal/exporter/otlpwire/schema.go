package otlpwire

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of the OTLP trace messages (opentelemetry/proto/trace/v1/trace.proto,
// common/v1/common.proto, resource/v1/resource.proto, as generated in
// go.opentelemetry.io/proto/otlp v1.11). The reader, Validate and FromJSON all read them from here
// so that a field can never mean one thing to one of them and another thing to the next.
const (
	fieldResourceSpans = 1 // ExportTraceServiceRequest / TracesData

	fieldRSResource   = 1 // ResourceSpans
	fieldRSScopeSpans = 2
	fieldRSSchemaURL  = 3

	fieldResourceAttributes = 1 // Resource
	fieldResourceDropped    = 2
	fieldResourceEntityRefs = 3

	fieldSSScope     = 1 // ScopeSpans
	fieldSSSpans     = 2
	fieldSSSchemaURL = 3

	fieldScopeName       = 1 // InstrumentationScope
	fieldScopeVersion    = 2
	fieldScopeAttributes = 3
	fieldScopeDropped    = 4

	fieldSpanTraceID       = 1 // Span
	fieldSpanSpanID        = 2
	fieldSpanTraceState    = 3
	fieldSpanParentSpanID  = 4
	fieldSpanName          = 5
	fieldSpanKind          = 6
	fieldSpanStart         = 7
	fieldSpanEnd           = 8
	fieldSpanAttributes    = 9
	fieldSpanDroppedAttrs  = 10
	fieldSpanEvents        = 11
	fieldSpanDroppedEvents = 12
	fieldSpanLinks         = 13
	fieldSpanDroppedLinks  = 14
	fieldSpanStatus        = 15
	fieldSpanFlags         = 16

	fieldEventTime       = 1 // Span.Event
	fieldEventName       = 2
	fieldEventAttributes = 3
	fieldEventDropped    = 4

	fieldLinkTraceID    = 1 // Span.Link
	fieldLinkSpanID     = 2
	fieldLinkTraceState = 3
	fieldLinkAttributes = 4
	fieldLinkDropped    = 5
	fieldLinkFlags      = 6

	fieldStatusMessage = 2 // Status (1 is the removed deprecated_code)
	fieldStatusCode    = 3

	fieldKVKey         = 1 // KeyValue
	fieldKVValue       = 2
	fieldKVKeyStrindex = 3

	fieldValueString   = 1 // AnyValue (a oneof)
	fieldValueBool     = 2
	fieldValueInt      = 3
	fieldValueDouble   = 4
	fieldValueArray    = 5
	fieldValueKVList   = 6
	fieldValueBytes    = 7
	fieldValueStrindex = 8

	fieldListValues = 1 // ArrayValue and KeyValueList
)

// kind is how a field is encoded on the wire and what Validate checks about it.
type kind uint8

const (
	kindNone    kind = iota // not a field of this message: skipped as unknown
	kindUint32              // varint
	kindInt32               // varint, an enum or int32 (negative values are 10-byte varints)
	kindInt64               // varint
	kindBool                // varint
	kindFixed32             // fixed32
	kindFixed64             // fixed64 (uint64)
	kindDouble              // fixed64 (IEEE 754)
	kindString              // length-delimited, must be UTF-8
	kindBytes               // length-delimited
	kindTraceID             // length-delimited, empty or 16 bytes
	kindSpanID              // length-delimited, empty or 8 bytes
	kindMessage             // length-delimited, a nested message
)

// wireType is the wire type that a field of kind k must have. A known field that arrives with
// another wire type is an unknown field to protobuf (proto.Unmarshal keeps it as such), and so it is
// to this package.
func (k kind) wireType() protowire.Type {
	switch k {
	case kindUint32, kindInt32, kindInt64, kindBool:
		return protowire.VarintType
	case kindFixed32:
		return protowire.Fixed32Type
	case kindFixed64, kindDouble:
		return protowire.Fixed64Type
	default:
		return protowire.BytesType
	}
}

// fieldDesc describes one field of a message, for Validate (names in error paths) and FromJSON
// (JSON names, value kinds).
type fieldDesc struct {
	name     string // proto name, used in error paths and accepted by FromJSON
	jsonName string // lowerCamelCase name of the OTLP/JSON encoding
	kind     kind
	repeated bool
	oneof    bool // member of a oneof: its zero value is still a value (FromJSON must write it)
	msg      *msgDesc
	enum     map[string]int32 // enum value names that FromJSON also accepts
}

// msgDesc describes a message: its fields indexed by field number.
type msgDesc struct {
	name    string
	fields  []fieldDesc
	isValue bool // AnyValue: nesting counts towards MaxValueDepth
	attrTag byte // the one-byte tag of its KeyValue field (attributes, kvlist values), 0 if none
}

// field returns the description of field num, or nil when the message has no such field.
func (d *msgDesc) field(num protowire.Number) *fieldDesc {
	if num <= 0 || int(num) >= len(d.fields) || d.fields[num].kind == kindNone {
		return nil
	}
	return &d.fields[num]
}

// byJSONName finds a field by its JSON name or its proto name, as proto3's JSON mapping requires
// parsers to accept both.
func (d *msgDesc) byJSONName(name []byte) (protowire.Number, *fieldDesc) {
	for i := range d.fields {
		f := &d.fields[i]
		if f.kind != kindNone && (string(name) == f.jsonName || string(name) == f.name) {
			return protowire.Number(i), f
		}
	}
	return 0, nil
}

// The message descriptions. They reference each other (AnyValue is recursive), so they are
// declared first and filled in by init.
var (
	descRequest       = &msgDesc{name: "ExportTraceServiceRequest"}
	descResourceSpans = &msgDesc{name: "ResourceSpans"}
	descResource      = &msgDesc{name: "Resource"}
	descEntityRef     = &msgDesc{name: "EntityRef"}
	descScopeSpans    = &msgDesc{name: "ScopeSpans"}
	descScope         = &msgDesc{name: "InstrumentationScope"}
	descSpan          = &msgDesc{name: "Span"}
	descEvent         = &msgDesc{name: "Event"}
	descLink          = &msgDesc{name: "Link"}
	descStatus        = &msgDesc{name: "Status"}
	descKeyValue      = &msgDesc{name: "KeyValue"}
	descAnyValue      = &msgDesc{name: "AnyValue", isValue: true}
	descArrayValue    = &msgDesc{name: "ArrayValue"}
	descKeyValueList  = &msgDesc{name: "KeyValueList"}
)

var (
	spanKindNames = map[string]int32{
		"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
		"SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
	}
	statusCodeNames = map[string]int32{
		"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
	}
)

// fields builds a field table indexed by field number, naming each field in JSON as proto3's
// JSON mapping does.
func fields(defs map[protowire.Number]fieldDesc) []fieldDesc {
	hi := protowire.Number(0)
	for n := range defs {
		hi = max(hi, n)
	}
	out := make([]fieldDesc, hi+1)
	for n, f := range defs {
		f.jsonName = lowerCamel(f.name)
		out[n] = f
	}
	return out
}

// lowerCamel is the JSON name of a field with proto name name: each letter after an underscore
// in upper case, the underscores dropped ("dropped_attributes_count": "droppedAttributesCount").
func lowerCamel(name string) string {
	b := make([]byte, 0, len(name))
	upper := false
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '_':
			upper = true
		case upper && c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
			upper = false
		default:
			b = append(b, c)
			upper = false
		}
	}
	return string(b)
}

func init() {
	// attributes is the attributes field of every message that has one.
	attributes := fieldDesc{name: "attributes", kind: kindMessage, repeated: true, msg: descKeyValue}
	describeEnvelope(attributes)
	describeSpan(attributes)
	describeValues()
	for _, d := range []*msgDesc{descResource, descScope, descSpan, descEvent, descLink, descKeyValueList} {
		for num, f := range d.fields {
			if f.msg == descKeyValue {
				d.attrTag = byte(num<<3) | byte(protowire.BytesType)
			}
		}
	}
}

// describeEnvelope describes the messages around the spans: the request, resources, scopes.
func describeEnvelope(attributes fieldDesc) {
	descRequest.fields = fields(map[protowire.Number]fieldDesc{
		fieldResourceSpans: {name: "resource_spans", kind: kindMessage, repeated: true, msg: descResourceSpans},
	})
	descResourceSpans.fields = fields(map[protowire.Number]fieldDesc{
		fieldRSResource:   {name: "resource", kind: kindMessage, msg: descResource},
		fieldRSScopeSpans: {name: "scope_spans", kind: kindMessage, repeated: true, msg: descScopeSpans},
		fieldRSSchemaURL:  {name: "schema_url", kind: kindString},
	})
	descResource.fields = fields(map[protowire.Number]fieldDesc{
		fieldResourceAttributes: attributes,
		fieldResourceDropped:    {name: "dropped_attributes_count", kind: kindUint32},
		fieldResourceEntityRefs: {name: "entity_refs", kind: kindMessage, repeated: true, msg: descEntityRef},
	})
	descEntityRef.fields = fields(map[protowire.Number]fieldDesc{
		1: {name: "schema_url", kind: kindString},
		2: {name: "type", kind: kindString},
		3: {name: "id_keys", kind: kindString, repeated: true},
		4: {name: "description_keys", kind: kindString, repeated: true},
	})
	descScopeSpans.fields = fields(map[protowire.Number]fieldDesc{
		fieldSSScope:     {name: "scope", kind: kindMessage, msg: descScope},
		fieldSSSpans:     {name: "spans", kind: kindMessage, repeated: true, msg: descSpan},
		fieldSSSchemaURL: {name: "schema_url", kind: kindString},
	})
	descScope.fields = fields(map[protowire.Number]fieldDesc{
		fieldScopeName:       {name: "name", kind: kindString},
		fieldScopeVersion:    {name: "version", kind: kindString},
		fieldScopeAttributes: attributes,
		fieldScopeDropped:    {name: "dropped_attributes_count", kind: kindUint32},
	})
}

// describeSpan describes a span and the messages inside it.
func describeSpan(attributes fieldDesc) {
	descSpan.fields = fields(map[protowire.Number]fieldDesc{
		fieldSpanTraceID:       {name: "trace_id", kind: kindTraceID},
		fieldSpanSpanID:        {name: "span_id", kind: kindSpanID},
		fieldSpanTraceState:    {name: "trace_state", kind: kindString},
		fieldSpanParentSpanID:  {name: "parent_span_id", kind: kindSpanID},
		fieldSpanName:          {name: "name", kind: kindString},
		fieldSpanKind:          {name: "kind", kind: kindInt32, enum: spanKindNames},
		fieldSpanStart:         {name: "start_time_unix_nano", kind: kindFixed64},
		fieldSpanEnd:           {name: "end_time_unix_nano", kind: kindFixed64},
		fieldSpanAttributes:    attributes,
		fieldSpanDroppedAttrs:  {name: "dropped_attributes_count", kind: kindUint32},
		fieldSpanEvents:        {name: "events", kind: kindMessage, repeated: true, msg: descEvent},
		fieldSpanDroppedEvents: {name: "dropped_events_count", kind: kindUint32},
		fieldSpanLinks:         {name: "links", kind: kindMessage, repeated: true, msg: descLink},
		fieldSpanDroppedLinks:  {name: "dropped_links_count", kind: kindUint32},
		fieldSpanStatus:        {name: "status", kind: kindMessage, msg: descStatus},
		fieldSpanFlags:         {name: "flags", kind: kindFixed32},
	})
	descEvent.fields = fields(map[protowire.Number]fieldDesc{
		fieldEventTime:       {name: "time_unix_nano", kind: kindFixed64},
		fieldEventName:       {name: "name", kind: kindString},
		fieldEventAttributes: attributes,
		fieldEventDropped:    {name: "dropped_attributes_count", kind: kindUint32},
	})
	descLink.fields = fields(map[protowire.Number]fieldDesc{
		fieldLinkTraceID:    {name: "trace_id", kind: kindTraceID},
		fieldLinkSpanID:     {name: "span_id", kind: kindSpanID},
		fieldLinkTraceState: {name: "trace_state", kind: kindString},
		fieldLinkAttributes: attributes,
		fieldLinkDropped:    {name: "dropped_attributes_count", kind: kindUint32},
		fieldLinkFlags:      {name: "flags", kind: kindFixed32},
	})
	descStatus.fields = fields(map[protowire.Number]fieldDesc{
		fieldStatusMessage: {name: "message", kind: kindString},
		fieldStatusCode:    {name: "code", kind: kindInt32, enum: statusCodeNames},
	})
}

// describeValues describes attribute values, which nest.
func describeValues() {
	descKeyValue.fields = fields(map[protowire.Number]fieldDesc{
		fieldKVKey:         {name: "key", kind: kindString},
		fieldKVValue:       {name: "value", kind: kindMessage, msg: descAnyValue},
		fieldKVKeyStrindex: {name: "key_strindex", kind: kindInt32},
	})
	descAnyValue.fields = fields(map[protowire.Number]fieldDesc{
		fieldValueString:   {name: "string_value", kind: kindString, oneof: true},
		fieldValueBool:     {name: "bool_value", kind: kindBool, oneof: true},
		fieldValueInt:      {name: "int_value", kind: kindInt64, oneof: true},
		fieldValueDouble:   {name: "double_value", kind: kindDouble, oneof: true},
		fieldValueArray:    {name: "array_value", kind: kindMessage, oneof: true, msg: descArrayValue},
		fieldValueKVList:   {name: "kvlist_value", kind: kindMessage, oneof: true, msg: descKeyValueList},
		fieldValueBytes:    {name: "bytes_value", kind: kindBytes, oneof: true},
		fieldValueStrindex: {name: "string_value_strindex", kind: kindInt32, oneof: true},
	})
	descArrayValue.fields = fields(map[protowire.Number]fieldDesc{
		fieldListValues: {name: "values", kind: kindMessage, repeated: true, msg: descAnyValue},
	})
	descKeyValueList.fields = fields(map[protowire.Number]fieldDesc{
		fieldListValues: {name: "values", kind: kindMessage, repeated: true, msg: descKeyValue},
	})

}
