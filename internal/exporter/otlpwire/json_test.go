package otlpwire_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// fromJSON converts body and decodes the result with the generated types.
func fromJSON(t *testing.T, body string) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	b, err := otlpwire.FromJSON([]byte(body))
	if err != nil {
		t.Fatalf("FromJSON: %v", err)
	}
	got := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("proto.Unmarshal of FromJSON's output: %v", err)
	}
	return got
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestFromJSONReadsTheReferencePayload(t *testing.T) {
	body, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	got := fromJSON(t, string(body))
	want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{KV("service.name", Str("my.service"))}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{
				Name: "my.library", Version: "1.0.0",
				Attributes: []*commonpb.KeyValue{KV("my.scope.attribute", Str("some scope attribute"))},
			},
			Spans: []*tracepb.Span{{
				TraceId:           mustHex("5b8efff798038103d269b633813fc60c"),
				SpanId:            mustHex("eee19b7ec3c1b174"),
				ParentSpanId:      mustHex("eee19b7ec3c1b173"),
				Name:              "I'm a server span",
				StartTimeUnixNano: 1544712660000000000,
				EndTimeUnixNano:   1544712661000000000,
				Kind:              tracepb.Span_SPAN_KIND_SERVER,
				Attributes:        []*commonpb.KeyValue{KV("my.span.attr", Str("some value"))},
			}},
		}},
	}}}
	if !proto.Equal(got, want) {
		t.Errorf("FromJSON(trace.json) differs:\n%s", Diff(want, got))
	}
	b, _ := otlpwire.FromJSON(body)
	if n, err := otlpwire.Validate(b); err != nil || n != 1 {
		t.Errorf("Validate = %d, %v; want 1 span", n, err)
	}
}

// otlpJSON marshals req as OTLP/JSON: protojson with integer enums, then the ids rewritten from
// base64 (proto3's mapping of bytes) to hex (OTLP's deviation from it), in upper or lower case.
func otlpJSON(t *testing.T, req proto.Message, protoNames, upper bool) []byte {
	t.Helper()
	b, err := protojson.MarshalOptions{UseEnumNumbers: true, UseProtoNames: protoNames}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	var rewrite func(any)
	rewrite = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				switch k {
				case "traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id":
					raw, err := base64.StdEncoding.DecodeString(e.(string))
					if err != nil {
						t.Fatal(err)
					}
					h := hex.EncodeToString(raw)
					if upper {
						h = strings.ToUpper(h)
					}
					x[k] = h
				default:
					rewrite(e)
				}
			}
		case []any:
			for _, e := range x {
				rewrite(e)
			}
		}
	}
	rewrite(tree)
	out, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFromJSONAgreesWithProtoJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	reqs := []*coltracepb.ExportTraceServiceRequest{Full(), Realistic(3)}
	for range 200 {
		reqs = append(reqs, Random(r, 4))
	}
	for i, req := range reqs {
		for _, protoNames := range []bool{false, true} {
			body := otlpJSON(t, req, protoNames, i%2 == 0)
			got := fromJSON(t, string(body))
			if !proto.Equal(got, req) {
				t.Fatalf("request %d (proto names %v): FromJSON differs from the original:\n%s\nbody: %s", i, protoNames, Diff(req, got), body)
			}
		}
	}
}

func TestFromJSONAccepts(t *testing.T) {
	span := func(fields string) string {
		return `{"resourceSpans":[{"scopeSpans":[{"spans":[{` + fields + `}]}]}]}`
	}
	attrSpan := func(value string) string {
		return span(`"attributes":[{"key":"k","value":` + value + `}]`)
	}
	req := func(s *tracepb.Span) *coltracepb.ExportTraceServiceRequest {
		return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{s}}},
		}}}
	}
	attrReq := func(v *commonpb.AnyValue) *coltracepb.ExportTraceServiceRequest {
		return req(&tracepb.Span{Attributes: []*commonpb.KeyValue{KV("k", v)}})
	}
	tests := map[string]struct {
		body string
		want *coltracepb.ExportTraceServiceRequest
	}{
		"unknown fields of every JSON type at every level": {
			body: `{"x":1,"resourceSpans":[{"future":{"a":[1,{"b":null}]},"scopeSpans":[{"y":"z","spans":[{"name":"n","new":[true,false,null,-1.5e3,"s\"\\"]}]}]}],"z":{}}`,
			want: req(&tracepb.Span{Name: "n"}),
		},
		"lower- and upper-case hex ids": {
			body: span(`"traceId":"5b8efff798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"eee19b7ec3c1b173"`),
			want: req(&tracepb.Span{TraceId: mustHex("5b8efff798038103d269b633813fc60c"), SpanId: mustHex("eee19b7ec3c1b174"), ParentSpanId: mustHex("eee19b7ec3c1b173")}),
		},
		"64-bit integers as strings and as numbers": {
			body: span(`"startTimeUnixNano":"18446744073709551615","endTimeUnixNano":1544712661000000000,"droppedAttributesCount":"7"`),
			want: req(&tracepb.Span{StartTimeUnixNano: math.MaxUint64, EndTimeUnixNano: 1544712661000000000, DroppedAttributesCount: 7}),
		},
		"integers written with a fraction or an exponent": {
			body: span(`"kind":2.0,"droppedEventsCount":1e2,"flags":"3E0"`),
			want: req(&tracepb.Span{Kind: 2, DroppedEventsCount: 100, Flags: 3}),
		},
		"enum names, which the specification forbids but the collector accepts": {
			body: span(`"kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"}`),
			want: req(&tracepb.Span{Kind: tracepb.Span_SPAN_KIND_CLIENT, Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}}),
		},
		"a negative enum value": {
			body: span(`"kind":-3`),
			want: req(&tracepb.Span{Kind: -3}),
		},
		"proto field names": {
			body: `{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"000102030405060708090a0b0c0d0e0f","start_time_unix_nano":"5","dropped_links_count":2}]}]}]}`,
			want: req(&tracepb.Span{TraceId: mustHex("000102030405060708090a0b0c0d0e0f"), StartTimeUnixNano: 5, DroppedLinksCount: 2}),
		},
		"null as the value of every kind of field": {
			body: span(`"name":null,"kind":null,"attributes":null,"status":null,"traceId":null`),
			want: req(&tracepb.Span{}),
		},
		"an int value as a string":                      {body: attrSpan(`{"intValue":"-9223372036854775808"}`), want: attrReq(Int(math.MinInt64))},
		"an int value as a number":                      {body: attrSpan(`{"intValue":42}`), want: attrReq(Int(42))},
		"a zero int value, which is still a value":      {body: attrSpan(`{"intValue":"0"}`), want: attrReq(Int(0))},
		"an empty string value, which is still a value": {body: attrSpan(`{"stringValue":""}`), want: attrReq(Str(""))},
		"a false bool value, which is still a value":    {body: attrSpan(`{"boolValue":false}`), want: attrReq(Bool(false))},
		"a double NaN":                   {body: attrSpan(`{"doubleValue":"NaN"}`), want: attrReq(Double(math.NaN()))},
		"a double -Infinity":             {body: attrSpan(`{"doubleValue":"-Infinity"}`), want: attrReq(Double(math.Inf(-1)))},
		"a double as a string":           {body: attrSpan(`{"doubleValue":"1.5"}`), want: attrReq(Double(1.5))},
		"a double with an exponent":      {body: attrSpan(`{"doubleValue":-2.5E-3}`), want: attrReq(Double(-0.0025))},
		"padded standard base64 bytes":   {body: attrSpan(`{"bytesValue":"+/8="}`), want: attrReq(Bytes([]byte{0xfb, 0xff}))},
		"unpadded URL-safe base64 bytes": {body: attrSpan(`{"bytesValue":"-_8"}`), want: attrReq(Bytes([]byte{0xfb, 0xff}))},
		"an empty value":                 {body: attrSpan(`{}`), want: attrReq(&commonpb.AnyValue{})},
		"nested arrays and kvlists": {
			body: attrSpan(`{"arrayValue":{"values":[{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{}}}]}}]}}`),
			want: attrReq(Array(KVList(KV("a", Array())))),
		},
		"escapes, a surrogate pair and a lone surrogate": {
			body: span(`"name":"q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00x\ud800y"`),
			want: req(&tracepb.Span{Name: "q\"b\\s/n\nt\tué😀x\uFFFDy"}),
		},
		"raw UTF-8 and whitespace everywhere": {
			body: " {\n\t\"resourceSpans\" : [ { \"scopeSpans\" : [ { \"spans\" : [ { \"name\" : \"世界 😀\" } ] } ] } ] } \r\n",
			want: req(&tracepb.Span{Name: "世界 😀"}),
		},
		"a long message, whose length needs two bytes": {
			body: span(`"name":"` + strings.Repeat("x", 300) + `"`),
			want: req(&tracepb.Span{Name: strings.Repeat("x", 300)}),
		},
		"an empty request": {body: `{}`, want: &coltracepb.ExportTraceServiceRequest{}},
		"an empty status":  {body: span(`"status":{}`), want: req(&tracepb.Span{Status: &tracepb.Status{}})},
		"entity refs, with an empty string in a list": {body: `{"resourceSpans":[{"resource":{"entityRefs":[{"type":"service","idKeys":["service.name",""]}]}}]}`, want: &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{Resource: &resourcepb.Resource{EntityRefs: []*commonpb.EntityRef{{Type: "service", IdKeys: []string{"service.name", ""}}}}}}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := fromJSON(t, tc.body)
			if !proto.Equal(got, tc.want) {
				t.Errorf("FromJSON differs:\n%s", Diff(tc.want, got))
			}
		})
	}
}

func TestFromJSONRejects(t *testing.T) {
	span := func(fields string) string {
		return `{"resourceSpans":[{"scopeSpans":[{"spans":[{` + fields + `}]}]}]}`
	}
	tests := map[string]struct {
		body string
		want string
	}{
		"an id that is not hex": {
			body: span(`"traceId":"5B8EFFF798038103D269B633813FC6XX"`),
			want: `at resourceSpans[0].scopeSpans[0].spans[0].traceId (offset 54): id "5B8EFFF798038103D269B633813FC6XX" is not hex: encoding/hex: invalid byte: U+0058 'X'`,
		},
		"an id of odd length": {
			body: span(`"spanId":"abc"`),
			want: `at resourceSpans[0].scopeSpans[0].spans[0].spanId (offset 53): id "abc" is not hex: odd length`,
		},
		"a base64 id, as protojson would write it": {
			body: span(`"spanId":"7uGbfsPBsXQ="`),
			want: `spanId (offset 53): id "7uGbfsPBsXQ=" is not hex: encoding/hex: invalid byte: U+0075 'u'`,
		},
		"data after the request": {
			body: `{} {}`,
			want: `at top level (offset 3): unexpected '{' after the request object`,
		},
		"an array instead of the request object": {
			body: `[]`,
			want: `at top level (offset 0): want an object for ExportTraceServiceRequest, found '['`,
		},
		"an empty body": {
			body: ``,
			want: `want an object for ExportTraceServiceRequest, found the end of the body`,
		},
		"a string where a list belongs": {
			body: `{"resourceSpans":"x"}`,
			want: `at resourceSpans (offset 17): want an array, found '"'`,
		},
		"a number where a string belongs": {
			body: span(`"name":5`),
			want: `at resourceSpans[0].scopeSpans[0].spans[0].name (offset 51): want a string, found '5'`,
		},
		"a bool written as a string": {
			body: `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"boolValue":"true"}}]}]}]}]}`,
			want: `attributes[0].value.boolValue (offset 90): want true or false, found '"'`,
		},
		"a count too large for 32 bits": {
			body: span(`"droppedAttributesCount":4294967296`),
			want: `droppedAttributesCount (offset 69): "4294967296" is not an unsigned integer of 32 bits`,
		},
		"a negative count": {
			body: span(`"droppedEventsCount":-1`),
			want: `"-1" is not an unsigned integer of 32 bits`,
		},
		"a fractional time": {
			body: span(`"startTimeUnixNano":1.5`),
			want: `"1.5" is not an unsigned integer of 64 bits`,
		},
		"an unknown enum name": {
			body: span(`"kind":"SERVER"`),
			want: `kind (offset 51): "SERVER" is not an integer of 32 bits`,
		},
		"a double out of range": {
			body: `{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"doubleValue":1e400}}]}}]}`,
			want: `"1e400" is out of range for a double`,
		},
		"a number with a leading zero": {
			body: span(`"kind":02`),
			want: `kind (offset 51): want a number, found '0'`,
		},
		"a lone minus sign": {
			body: span(`"kind":-`),
			want: `want a number, found '-'`,
		},
		"an unterminated string": {
			body: `{"resourceSpans`,
			want: `unterminated string`,
		},
		"a raw newline in a string": {
			body: span("\"name\":\"a\nb\""),
			want: `control character 0x0a in a string`,
		},
		"invalid UTF-8 in a string": {
			body: span("\"name\":\"a\xffb\""),
			want: `spans[0].name (offset 53): invalid UTF-8 in a string`,
		},
		"invalid UTF-8 in an unknown field": {
			body: `{"x":"` + "\xc3" + `"}`,
			want: `invalid UTF-8 in a string`,
		},
		"a bad escape": {
			body: span(`"name":"\x41"`),
			want: `bad escape \x`,
		},
		"a short unicode escape": {
			body: span(`"name":"\u12"`),
			want: `bad \u escape`,
		},
		"null inside a list": {
			body: `{"resourceSpans":[null]}`,
			want: `at resourceSpans[0] (offset 18): want an object for ResourceSpans, found 'n'`,
		},
		"a missing colon": {
			body: `{"resourceSpans" []}`,
			want: `want ':' after a field name, found '['`,
		},
		"a trailing comma": {
			body: `{"resourceSpans":[{},]}`,
			want: `want an object for ResourceSpans, found ']'`,
		},
		"nesting deeper than 512 levels in an unknown field": {
			body: `{"x":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
			want: `more than 512 levels of nesting`,
		},
		"a misspelt literal": {
			body: `{"x":nul}`,
			want: `unknown literal`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := otlpwire.FromJSON([]byte(tc.body))
			if err == nil {
				t.Fatalf("FromJSON accepted the body: %x", b)
			}
			if !errors.Is(err, otlpwire.ErrInvalidJSON) {
				t.Errorf("error %q is not ErrInvalidJSON", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func TestAppendFromJSONReusesTheBuffer(t *testing.T) {
	body, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	buf, err := otlpwire.AppendFromJSON(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	want := string(buf)
	allocs := testing.AllocsPerRun(50, func() {
		buf, err = otlpwire.AppendFromJSON(buf[:0], body)
	})
	if err != nil || string(buf) != want {
		t.Fatalf("second conversion differs (err %v)", err)
	}
	if allocs != 0 {
		t.Errorf("AppendFromJSON into a large enough buffer allocated %v times, want 0", allocs)
	}
}
