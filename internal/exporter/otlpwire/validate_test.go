package otlpwire_test

import (
	"errors"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// Hand-encoding helpers: the malformed inputs cannot be built with the generated types.

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func msgField(num protowire.Number, parts ...[]byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), cat(parts...))
}

func strField(num protowire.Number, s string) []byte { return msgField(num, []byte(s)) }

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func fixed64Field(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func tag(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }

var (
	validTraceID = strField(1, "0123456789abcdef")
	validSpanID  = strField(2, "01234567")
)

// inSpan wraps span fields in a request: resource_spans[0].scope_spans[0].spans[0].
func inSpan(fields ...[]byte) []byte {
	return msgField(1, msgField(2, msgField(2, fields...)))
}

// attr is a KeyValue with a value made of the given AnyValue fields.
func attr(key string, value ...[]byte) []byte {
	return cat(strField(1, key), msgField(2, value...))
}

// nested returns an AnyValue nested depth levels deep (depth 1 is a plain string).
func nested(depth int) []byte {
	v := strField(1, "leaf")
	for range depth - 1 {
		v = msgField(5, msgField(1, v)) // array_value { values: [v] }
	}
	return v
}

func TestValidateRejectsMalformedInput(t *testing.T) {
	tests := map[string]struct {
		in           []byte
		kind         error
		path         string
		detail       string
		protoAccepts bool
	}{
		"a length that runs past the end of the request": {
			in:   cat(tag(1, protowire.BytesType), []byte{10, 1, 2, 3}),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0]",
			detail: "length 10 runs past the end of ExportTraceServiceRequest (3 bytes left)",
		},
		"a span whose length runs past its scope": {
			in:   msgField(1, msgField(2, tag(2, protowire.BytesType), []byte{50}, validTraceID)),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0]",
			detail: "length 50 runs past the end of ScopeSpans",
		},
		"the reserved wire type 7": {
			in:   inSpan(validTraceID, tag(5, 7)),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0]",
			detail: "field 5 of Span, wire type 7: cannot parse reserved wire type",
		},
		"field number 0": {
			in:   inSpan([]byte{0x02, 0x00}),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0]",
			detail: "bad field tag in Span: invalid field number",
		},
		"a field number above 2^29-1": {
			in:   cat(tag(protowire.MaxValidNumber+1, protowire.VarintType), []byte{1}),
			kind: otlpwire.ErrMalformed, path: "top level",
			detail: "field number 536870912 of ExportTraceServiceRequest is out of range",
		},
		"an end-group tag without a start": {
			in:   inSpan(tag(30, protowire.EndGroupType)),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0]",
			detail: "end-group tag for field 30 of Span without a start-group tag",
		},
		"an unterminated group": {
			in:   inSpan(tag(30, protowire.StartGroupType), varintField(1, 1)),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0]",
			detail: "field 30 of Span, wire type 3: unexpected EOF",
		},
		"a truncated varint": {
			in:   inSpan(tag(6, protowire.VarintType), []byte{0x80}),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0].kind",
			detail: "truncated or over-long varint",
		},
		"an eleven-byte varint": {
			in:   inSpan(tag(6, protowire.VarintType), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0].kind",
			detail: "truncated or over-long varint",
		},
		"a truncated fixed64 start time": {
			in:   inSpan(tag(7, protowire.Fixed64Type), []byte{1, 2, 3}),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano",
			detail: "fixed64 needs 8 bytes, 3 left",
		},
		"a truncated fixed32 flags": {
			in:   inSpan(tag(16, protowire.Fixed32Type), []byte{1}),
			kind: otlpwire.ErrMalformed, path: "resource_spans[0].scope_spans[0].spans[0].flags",
			detail: "fixed32 needs 4 bytes, 1 left",
		},
		"a 15-byte trace id": {
			in:   inSpan(strField(1, "0123456789abcde"), validSpanID),
			kind: otlpwire.ErrInvalidID, path: "resource_spans[0].scope_spans[0].spans[0].trace_id",
			detail: "trace id has 15 bytes, want 16", protoAccepts: true,
		},
		"a 9-byte span id in the second span": {
			in: msgField(1, msgField(2,
				msgField(2, validTraceID, validSpanID),
				msgField(2, validTraceID, strField(2, "012345678")))),
			kind: otlpwire.ErrInvalidID, path: "resource_spans[0].scope_spans[0].spans[1].span_id",
			detail: "span id has 9 bytes, want 8", protoAccepts: true,
		},
		"a 4-byte parent span id": {
			in:   inSpan(validTraceID, validSpanID, strField(4, "0123")),
			kind: otlpwire.ErrInvalidID, path: "resource_spans[0].scope_spans[0].spans[0].parent_span_id",
			detail: "span id has 4 bytes, want 8", protoAccepts: true,
		},
		"a 17-byte trace id in a link": {
			in:   inSpan(validTraceID, validSpanID, msgField(13, strField(1, "0123456789abcdef0"))),
			kind: otlpwire.ErrInvalidID, path: "resource_spans[0].scope_spans[0].spans[0].links[0].trace_id",
			detail: "trace id has 17 bytes, want 16", protoAccepts: true,
		},
		"invalid UTF-8 in a span name": {
			in:   inSpan(validTraceID, strField(5, "GET \xff/")),
			kind: otlpwire.ErrInvalidUTF8, path: "resource_spans[0].scope_spans[0].spans[0].name",
			detail: "byte 0xff at position 4 of a 6-byte string",
		},
		"a UTF-16 surrogate encoded in UTF-8 in an attribute key": {
			in:   inSpan(msgField(9, attr("k\xed\xa0\x80", strField(1, "v")))),
			kind: otlpwire.ErrInvalidUTF8, path: "resource_spans[0].scope_spans[0].spans[0].attributes[0].key",
			detail: "byte 0xed at position 1",
		},
		"invalid UTF-8 in a string inside a kvlist inside an array": {
			in: msgField(1, msgField(1, msgField(1, attr("a", msgField(5, msgField(1,
				msgField(6, msgField(1, attr("k", strField(1, "ok\xc3")))))))))),
			kind:   otlpwire.ErrInvalidUTF8,
			path:   "resource_spans[0].resource.attributes[0].value.array_value.values[0].kvlist_value.values[0].value.string_value",
			detail: "byte 0xc3 at position 2 of a 3-byte string",
		},
		"invalid UTF-8 in a scope name": {
			in:   msgField(1, msgField(2, msgField(1, strField(1, "\x80")))),
			kind: otlpwire.ErrInvalidUTF8, path: "resource_spans[0].scope_spans[0].scope.name",
		},
		"invalid UTF-8 in a status message": {
			in:   inSpan(msgField(15, strField(2, "\xfe"))),
			kind: otlpwire.ErrInvalidUTF8, path: "resource_spans[0].scope_spans[0].spans[0].status.message",
		},
		"invalid UTF-8 in an entity ref id key": {
			in:   msgField(1, msgField(1, msgField(3, strField(3, "ok"), strField(3, "\xff")))),
			kind: otlpwire.ErrInvalidUTF8, path: "resource_spans[0].resource.entity_refs[0].id_keys[1]",
		},
		"values nested one level too deep": {
			in:   inSpan(msgField(9, attr("deep", nested(otlpwire.MaxValueDepth+1)))),
			kind: otlpwire.ErrTooDeep, protoAccepts: true,
			detail: "more than 32 levels of array or kvlist values",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			n, err := otlpwire.Validate(tc.in)
			if err == nil {
				t.Fatalf("Validate accepted the input (%d spans)", n)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %v", err, tc.kind)
			}
			var e *otlpwire.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %q is not an *otlpwire.Error", err)
			}
			if tc.path != "" && !strings.Contains(err.Error(), " at "+tc.path+" ") {
				t.Errorf("error %q does not locate the problem at %s", err, tc.path)
			}
			if !strings.Contains(e.Detail, tc.detail) {
				t.Errorf("error detail %q does not contain %q", e.Detail, tc.detail)
			}
			if e.Offset < 0 || e.Offset > len(tc.in) {
				t.Errorf("offset %d outside the %d-byte input", e.Offset, len(tc.in))
			}
			perr := proto.Unmarshal(tc.in, &coltracepb.ExportTraceServiceRequest{})
			if (perr == nil) != tc.protoAccepts {
				t.Errorf("proto.Unmarshal error = %v, the test expects it to accept: %v", perr, tc.protoAccepts)
			}
		})
	}
}

func TestValidateAcceptsWhatProtobufAccepts(t *testing.T) {
	tests := map[string]struct {
		in    []byte
		spans int
	}{
		"an empty request": {in: nil},
		"a span with no fields at all": {
			in: inSpan(), spans: 1,
		},
		"unknown fields of every wire type, including a nested group": {
			in: inSpan(validTraceID,
				varintField(40, 1), fixed64Field(41, 2), strField(42, "\xff not checked"),
				cat(tag(43, protowire.Fixed32Type), []byte{1, 2, 3, 4}),
				cat(tag(44, protowire.StartGroupType), tag(45, protowire.StartGroupType), varintField(1, 1),
					tag(45, protowire.EndGroupType), tag(44, protowire.EndGroupType))),
			spans: 1,
		},
		"known field numbers with another wire type, which protobuf keeps as unknown": {
			in:    inSpan(varintField(1, 5), fixed64Field(5, 1), strField(6, "x"), cat(tag(9, protowire.StartGroupType), tag(9, protowire.EndGroupType))),
			spans: 1,
		},
		"empty ids": {
			in: inSpan(strField(1, ""), strField(2, ""), strField(4, "")), spans: 1,
		},
		"a negative kind, a ten-byte varint": {
			in: inSpan(validTraceID, varintField(6, 1<<64-1)), spans: 1,
		},
		"values nested exactly as deep as allowed": {
			in: inSpan(msgField(9, attr("deep", nested(otlpwire.MaxValueDepth)))), spans: 1,
		},
		"the profiles-only strindex fields": {
			in: inSpan(msgField(9, cat(varintField(3, 4), msgField(2, varintField(8, 2))))), spans: 1,
		},
		"three spans in two scopes of two resources": {
			in:    cat(msgField(1, msgField(2, msgField(2), msgField(2)), msgField(2)), msgField(1, msgField(2, msgField(2)))),
			spans: 3,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := proto.Unmarshal(tc.in, &coltracepb.ExportTraceServiceRequest{}); err != nil {
				t.Fatalf("proto.Unmarshal rejects the test input: %v", err)
			}
			n, err := otlpwire.Validate(tc.in)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if n != tc.spans {
				t.Errorf("Validate counted %d spans, want %d", n, tc.spans)
			}
		})
	}
}

func TestErrorMessageNamesKindPathAndOffset(t *testing.T) {
	_, err := otlpwire.Validate(inSpan(strField(1, "short")))
	want := "otlpwire: invalid id length at resource_spans[0].scope_spans[0].spans[0].trace_id (offset 8): trace id has 5 bytes, want 16"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant   %s", err, want)
	}
}

// TestPlainAttributesStillCountTowardsTheDepth checks the fast path for plain attributes (a key
// and a string) against the depth limit: inside kvlists nested one level too deep, such an
// attribute's value is still refused, and where it is.
func TestPlainAttributesStillCountTowardsTheDepth(t *testing.T) {
	inKVLists := func(depth int) []byte {
		v := strField(1, "leaf")
		for range depth - 1 {
			v = msgField(6, msgField(1, attr("k", v))) // kvlist_value { values: [{k: v}] }
		}
		return inSpan(msgField(9, attr("deep", v)))
	}
	if _, err := otlpwire.Validate(inKVLists(otlpwire.MaxValueDepth)); err != nil {
		t.Errorf("values nested as deep as allowed: %v", err)
	}
	_, err := otlpwire.Validate(inKVLists(otlpwire.MaxValueDepth + 1))
	if !errors.Is(err, otlpwire.ErrTooDeep) || !strings.HasSuffix(strings.Split(err.Error(), " (offset")[0], ".kvlist_value.values[0].value") {
		t.Errorf("one level too deep: %v, want ErrTooDeep at the innermost value", err)
	}
}
