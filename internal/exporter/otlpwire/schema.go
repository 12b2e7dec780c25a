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

// fields builds a field table indexed by field number.
func fields(defs map[protowire.Number]fieldDesc) []fieldDesc {
	hi := protowire.Number(0)
	for n := range defs {
		hi = max(hi, n)
	}
	out := make([]fieldDesc, hi+1)
	for n, f := range defs {
		out[n] = f
	}
	return out
}

func init() {
	attrs := func(name, jsonName string) fieldDesc {
		return fieldDesc{name: name, jsonName: jsonName, kind: kindMessage, repeated: true, msg: descKeyValue}
	}
	descRequest.fields = fields(map[protowire.Number]fieldDesc{
		fieldResourceSpans: {name: "resource_spans", jsonName: "resourceSpans", kind: kindMessage, repeated: true, msg: descResourceSpans},
	})
	descResourceSpans.fields = fields(map[protowire.Number]fieldDesc{
		fieldRSResource:   {name: "resource", jsonName: "resource", kind: kindMessage, msg: descResource},
		fieldRSScopeSpans: {name: "scope_spans", jsonName: "scopeSpans", kind: kindMessage, repeated: true, msg: descScopeSpans},
		fieldRSSchemaURL:  {name: "schema_url", jsonName: "schemaUrl", kind: kindString},
	})
	descResource.fields = fields(map[protowire.Number]fieldDesc{
		fieldResourceAttributes: attrs("attributes", "attributes"),
		fieldResourceDropped:    {name: "dropped_attributes_count", jsonName: "droppedAttributesCount", kind: kindUint32},
		fieldResourceEntityRefs: {name: "entity_refs", jsonName: "entityRefs", kind: kindMessage, repeated: true, msg: descEntityRef},
	})
	descEntityRef.fields = fields(map[protowire.Number]fieldDesc{
		1: {name: "schema_url", jsonName: "schemaUrl", kind: kindString},
		2: {name: "type", jsonName: "type", kind: kindString},
		3: {name: "id_keys", jsonName: "idKeys", kind: kindString, repeated: true},
		4: {name: "description_keys", jsonName: "descriptionKeys", kind: kindString, repeated: true},
	})
	descScopeSpans.fields = fields(map[protowire.Number]fieldDesc{
		fieldSSScope:     {name: "scope", jsonName: "scope", kind: kindMessage, msg: descScope},
		fieldSSSpans:     {name: "spans", jsonName: "spans", kind: kindMessage, repeated: true, msg: descSpan},
		fieldSSSchemaURL: {name: "schema_url", jsonName: "schemaUrl", kind: kindString},
	})
	descScope.fields = fields(map[protowire.Number]fieldDesc{
		fieldScopeName:       {name: "name", jsonName: "name", kind: kindString},
		fieldScopeVersion:    {name: "version", jsonName: "version", kind: kindString},
		fieldScopeAttributes: attrs("attributes", "attributes"),
		fieldScopeDropped:    {name: "dropped_attributes_count", jsonName: "droppedAttributesCount", kind: kindUint32},
	})
	descSpan.fields = fields(map[protowire.Number]fieldDesc{
		fieldSpanTraceID:       {name: "trace_id", jsonName: "traceId", kind: kindTraceID},
		fieldSpanSpanID:        {name: "span_id", jsonName: "spanId", kind: kindSpanID},
		fieldSpanTraceState:    {name: "trace_state", jsonName: "traceState", kind: kindString},
		fieldSpanParentSpanID:  {name: "parent_span_id", jsonName: "parentSpanId", kind: kindSpanID},
		fieldSpanName:          {name: "name", jsonName: "name", kind: kindString},
		fieldSpanKind:          {name: "kind", jsonName: "kind", kind: kindInt32, enum: spanKindNames},
		fieldSpanStart:         {name: "start_time_unix_nano", jsonName: "startTimeUnixNano", kind: kindFixed64},
		fieldSpanEnd:           {name: "end_time_unix_nano", jsonName: "endTimeUnixNano", kind: kindFixed64},
		fieldSpanAttributes:    attrs("attributes", "attributes"),
		fieldSpanDroppedAttrs:  {name: "dropped_attributes_count", jsonName: "droppedAttributesCount", kind: kindUint32},
		fieldSpanEvents:        {name: "events", jsonName: "events", kind: kindMessage, repeated: true, msg: descEvent},
		fieldSpanDroppedEvents: {name: "dropped_events_count", jsonName: "droppedEventsCount", kind: kindUint32},
		fieldSpanLinks:         {name: "links", jsonName: "links", kind: kindMessage, repeated: true, msg: descLink},
		fieldSpanDroppedLinks:  {name: "dropped_links_count", jsonName: "droppedLinksCount", kind: kindUint32},
		fieldSpanStatus:        {name: "status", jsonName: "status", kind: kindMessage, msg: descStatus},
		fieldSpanFlags:         {name: "flags", jsonName: "flags", kind: kindFixed32},
	})
	descEvent.fields = fields(map[protowire.Number]fieldDesc{
		fieldEventTime:       {name: "time_unix_nano", jsonName: "timeUnixNano", kind: kindFixed64},
		fieldEventName:       {name: "name", jsonName: "name", kind: kindString},
		fieldEventAttributes: attrs("attributes", "attributes"),
		fieldEventDropped:    {name: "dropped_attributes_count", jsonName: "droppedAttributesCount", kind: kindUint32},
	})
	descLink.fields = fields(map[protowire.Number]fieldDesc{
		fieldLinkTraceID:    {name: "trace_id", jsonName: "traceId", kind: kindTraceID},
		fieldLinkSpanID:     {name: "span_id", jsonName: "spanId", kind: kindSpanID},
		fieldLinkTraceState: {name: "trace_state", jsonName: "traceState", kind: kindString},
		fieldLinkAttributes: attrs("attributes", "attributes"),
		fieldLinkDropped:    {name: "dropped_attributes_count", jsonName: "droppedAttributesCount", kind: kindUint32},
		fieldLinkFlags:      {name: "flags", jsonName: "flags", kind: kindFixed32},
	})
	descStatus.fields = fields(map[protowire.Number]fieldDesc{
		fieldStatusMessage: {name: "message", jsonName: "message", kind: kindString},
		fieldStatusCode:    {name: "code", jsonName: "code", kind: kindInt32, enum: statusCodeNames},
	})
	descKeyValue.fields = fields(map[protowire.Number]fieldDesc{
		fieldKVKey:         {name: "key", jsonName: "key", kind: kindString},
		fieldKVValue:       {name: "value", jsonName: "value", kind: kindMessage, msg: descAnyValue},
		fieldKVKeyStrindex: {name: "key_strindex", jsonName: "keyStrindex", kind: kindInt32},
	})
	descAnyValue.fields = fields(map[protowire.Number]fieldDesc{
		fieldValueString:   {name: "string_value", jsonName: "stringValue", kind: kindString, oneof: true},
		fieldValueBool:     {name: "bool_value", jsonName: "boolValue", kind: kindBool, oneof: true},
		fieldValueInt:      {name: "int_value", jsonName: "intValue", kind: kindInt64, oneof: true},
		fieldValueDouble:   {name: "double_value", jsonName: "doubleValue", kind: kindDouble, oneof: true},
		fieldValueArray:    {name: "array_value", jsonName: "arrayValue", kind: kindMessage, oneof: true, msg: descArrayValue},
		fieldValueKVList:   {name: "kvlist_value", jsonName: "kvlistValue", kind: kindMessage, oneof: true, msg: descKeyValueList},
		fieldValueBytes:    {name: "bytes_value", jsonName: "bytesValue", kind: kindBytes, oneof: true},
		fieldValueStrindex: {name: "string_value_strindex", jsonName: "stringValueStrindex", kind: kindInt32, oneof: true},
	})
	descArrayValue.fields = fields(map[protowire.Number]fieldDesc{
		fieldListValues: {name: "values", jsonName: "values", kind: kindMessage, repeated: true, msg: descAnyValue},
	})
	descKeyValueList.fields = fields(map[protowire.Number]fieldDesc{
		fieldListValues: {name: "values", jsonName: "values", kind: kindMessage, repeated: true, msg: descKeyValue},
	})
}
