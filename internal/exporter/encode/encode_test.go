package encode_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const hashTagTemplate = "traces:{{{service.name}}}"

func newEncoder(t testing.TB, format string) *encode.Encoder {
	t.Helper()
	e, err := encode.New(config.Stream{KeyTemplate: hashTagTemplate, Format: format})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// encodeAll validates b and encodes every span of it.
func encodeAll(t testing.TB, format string, b []byte) *entry.Batch {
	t.Helper()
	if _, err := otlpwire.Validate(b); err != nil {
		t.Fatal(err)
	}
	var batch entry.Batch
	if r := newEncoder(t, format).EncodeTraces(&batch, otlpwire.NewTraces(b), nil, 0); r.Rejected != 0 {
		t.Fatalf("EncodeTraces rejected %d spans: %v", r.Rejected, r.FirstRejection)
	}
	return &batch
}

// fields returns entry i's fields as a map, failing on duplicate names.
func fields(t testing.TB, b *entry.Batch, i int) map[string]string {
	t.Helper()
	m := map[string]string{}
	for j := range b.NumFields(i) {
		n, v := b.FieldPair(i, j)
		if _, dup := m[string(n)]; dup {
			t.Fatalf("entry %d has field %q twice", i, n)
		}
		m[string(n)] = string(v)
	}
	return m
}

// decodeData parses a json entry's data field, keeping numbers as written.
func decodeData(t testing.TB, data string) map[string]any {
	t.Helper()
	if !json.Valid([]byte(data)) {
		t.Fatalf("data is not valid JSON: %s", data)
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestJSONEntryOfTheReferencePayload(t *testing.T) {
	body, err := os.ReadFile("../otlpwire/testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := otlpwire.FromJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	batch := encodeAll(t, config.FormatJSON, pb)
	if batch.Len() != 1 {
		t.Fatalf("%d entries, want 1", batch.Len())
	}
	if got := string(batch.Key(0)); got != "traces:{my.service}" {
		t.Errorf("key = %q", got)
	}
	f := fields(t, batch, 0)
	if len(f) != 2 {
		t.Errorf("fields %q, want traceparent and data", f)
	}
	if got, want := f["traceparent"], "00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-00"; got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
	want := map[string]any{
		"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174",
		"parent_span_id": "eee19b7ec3c1b173", "trace_state": "", "flags": json.Number("0"),
		"name": "I'm a server span", "kind": json.Number("2"),
		"start_time_unix_nano": json.Number("1544712660000000000"),
		"end_time_unix_nano":   json.Number("1544712661000000000"),
		"duration_ns":          json.Number("1000000000"),
		"status":               map[string]any{"code": json.Number("0"), "message": ""},
		"attributes":           map[string]any{"my.span.attr": "some value"},
		"resource":             map[string]any{"attributes": map[string]any{"service.name": "my.service"}},
		"scope": map[string]any{"name": "my.library", "version": "1.0.0",
			"attributes": map[string]any{"my.scope.attribute": "some scope attribute"}},
		"events": []any{}, "links": []any{},
		"dropped_attributes_count": json.Number("0"), "dropped_events_count": json.Number("0"),
		"dropped_links_count": json.Number("0"), "service_name": "my.service",
	}
	if got := decodeData(t, f["data"]); !reflect.DeepEqual(got, want) {
		t.Errorf("data = %v\nwant   %v", got, want)
	}
	// The exact bytes, as docs/stream-entries.md shows them.
	const documented = `{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","parent_span_id":"eee19b7ec3c1b173","trace_state":"","flags":0,"name":"I'm a server span","kind":2,"start_time_unix_nano":1544712660000000000,"end_time_unix_nano":1544712661000000000,"duration_ns":1000000000,"status":{"code":0,"message":""},"attributes":{"my.span.attr":"some value"},"resource":{"attributes":{"service.name":"my.service"}},"scope":{"name":"my.library","version":"1.0.0","attributes":{"my.scope.attribute":"some scope attribute"}},"events":[],"links":[],"dropped_attributes_count":0,"dropped_events_count":0,"dropped_links_count":0,"service_name":"my.service"}`
	if f["data"] != documented {
		t.Errorf("data differs from the documented example:\n%s", f["data"])
	}
	doc, err := os.ReadFile("../../../docs/stream-entries.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ReplaceAll(string(doc), `'\''`, "'"), documented) {
		t.Errorf("docs/stream-entries.md no longer shows the example data")
	}
	e := batch.Entries[0]
	if hexID := fmt.Sprintf("%x-%x", e.TraceID, e.SpanID); hexID != "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174" {
		t.Errorf("entry ids = %s", hexID)
	}
}

// attrRequest is a request with one span whose only attribute is k.
func attrRequest(v *commonpb.AnyValue) []byte {
	req := Full()
	req.ResourceSpans = req.ResourceSpans[:1]
	req.ResourceSpans[0].ScopeSpans = req.ResourceSpans[0].ScopeSpans[:1]
	ss := req.ResourceSpans[0].ScopeSpans[0]
	ss.Spans = ss.Spans[:1]
	ss.Spans[0].Attributes = []*commonpb.KeyValue{KV("k", v)}
	return Marshal(req)
}

func TestAttributeValuesInJSONAndFlat(t *testing.T) {
	tests := map[string]struct {
		value *commonpb.AnyValue
		json  string // the value's text in data.attributes
		flat  string // the attr.k field
	}{
		"a string":                 {Str("v"), `"v"`, `v`},
		"an empty string":          {Str(""), `""`, ``},
		"a string to escape":       {Str("a\"b\\c\nd\re\tf\x00g\x1fh\u2028i\u2029j/<>&é😀"), `"a\"b\\c\nd\re\tf\u0000g\u001fh\u2028i\u2029j/<>&é😀"`, "a\"b\\c\nd\re\tf\x00g\x1fh\u2028i\u2029j/<>&é😀"},
		"a true bool":              {Bool(true), `true`, `true`},
		"a false bool":             {Bool(false), `false`, `false`},
		"an int":                   {Int(1234567890123), `1234567890123`, `1234567890123`},
		"the smallest int":         {Int(math.MinInt64), `-9223372036854775808`, `-9223372036854775808`},
		"a double":                 {Double(0.1), `0.1`, `0.1`},
		"an integral double":       {Double(-42), `-42.0`, `-42.0`},
		"a double below 1e-6":      {Double(1.5e-7), `1.5e-7`, `1.5e-7`},
		"a double of 1e21":         {Double(1e21), `1e+21`, `1e+21`},
		"the largest double":       {Double(math.MaxFloat64), `1.7976931348623157e+308`, `1.7976931348623157e+308`},
		"NaN":                      {Double(math.NaN()), `"NaN"`, `"NaN"`},
		"+Inf":                     {Double(math.Inf(1)), `"Infinity"`, `"Infinity"`},
		"-Inf":                     {Double(math.Inf(-1)), `"-Infinity"`, `"-Infinity"`},
		"bytes":                    {Bytes([]byte("\x00\xffhi")), `"AP9oaQ=="`, `"AP9oaQ=="`},
		"empty bytes":              {Bytes(nil), `""`, `""`},
		"an empty value":           {&commonpb.AnyValue{}, `null`, `null`},
		"an array of every type":   {Array(Str("s"), Bool(false), Int(-1), Double(2), Bytes([]byte{1}), &commonpb.AnyValue{}, Array()), `["s",false,-1,2.0,"AQ==",null,[]]`, `["s",false,-1,2.0,"AQ==",null,[]]`},
		"a kvlist with a kvlist":   {KVList(KV("a", Int(1)), KV("b\"", KVList(KV("c", Str("d"))))), `{"a":1,"b\"":{"c":"d"}}`, `{"a":1,"b\"":{"c":"d"}}`},
		"an empty kvlist":          {KVList(), `{}`, `{}`},
		"a string with an emoji":   {Str("😀"), `"😀"`, `😀`},
		"a string of quotes alone": {Str(`""`), `"\"\""`, `""`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := attrRequest(tc.value)
			jb := encodeAll(t, config.FormatJSON, b)
			data := fields(t, jb, 0)["data"]
			var d struct {
				Attributes map[string]json.RawMessage `json:"attributes"`
			}
			if err := json.Unmarshal([]byte(data), &d); err != nil {
				t.Fatalf("data is not JSON: %v\n%s", err, data)
			}
			if got := string(d.Attributes["k"]); got != tc.json {
				t.Errorf("json: %s, want %s", got, tc.json)
			}
			fb := encodeAll(t, config.FormatFlat, b)
			if got := fields(t, fb, 0)["attr.k"]; got != tc.flat {
				t.Errorf("flat: %q, want %q", got, tc.flat)
			}
		})
	}
}

// TestEntriesMatchGoldenFiles pins the exact bytes of every entry of the request with every field
// set: the golden files are the contract with consumers (docs/stream-entries.md), and a change to
// them is a change to the format. Regenerate with -update and review the diff.
func TestEntriesMatchGoldenFiles(t *testing.T) {
	for _, format := range []string{config.FormatJSON, config.FormatFlat} {
		t.Run(format, func(t *testing.T) {
			batch := encodeAll(t, format, Marshal(Full()))
			var got bytes.Buffer
			for i := range batch.Len() {
				fmt.Fprintf(&got, "entry %d\nkey %s\n", i, strconv.Quote(string(batch.Key(i))))
				for j := range batch.NumFields(i) {
					n, v := batch.FieldPair(i, j)
					if format == config.FormatJSON && string(n) == "data" {
						var indented bytes.Buffer
						if err := json.Indent(&indented, v, "  ", "  "); err != nil {
							t.Fatalf("entry %d: data is not JSON: %v", i, err)
						}
						fmt.Fprintf(&got, "  data\n  %s\n", indented.Bytes())
						continue
					}
					fmt.Fprintf(&got, "  %s %s\n", strconv.Quote(string(n)), strconv.Quote(string(v)))
				}
			}
			path := "testdata/full." + format + ".golden"
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("entries differ from %s (run with -update and review the diff):\n%s", path, firstDiff(string(want), got.String()))
			}
			// Indentation aside, the golden data is the exact bytes: compacting the golden
			// JSON must give back what the encoder wrote.
			if format == config.FormatJSON {
				data := fields(t, batch, 0)["data"]
				var compact bytes.Buffer
				start := strings.Index(string(want), "  data\n  ") + len("  data\n  ")
				end := strings.Index(string(want[start:]), "\nentry ")
				if err := json.Compact(&compact, want[start:start+end]); err != nil || compact.String() != data {
					t.Errorf("compacted golden data differs from the entry (err %v)", err)
				}
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d\nwant: %s\ngot:  %s", i+1, wl, gl)
		}
	}
	return ""
}

// TestJSONStaysValidOnUnvalidatedInput encodes a span that Validate would reject (invalid UTF-8
// in its name and in an attribute key): the encoders do not rely on Validate for memory safety
// or for the validity of their JSON, and replace what is not UTF-8 with U+FFFD.
func TestJSONStaysValidOnUnvalidatedInput(t *testing.T) {
	kv := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "k\xff")
	kv = protowire.AppendBytes(protowire.AppendTag(kv, 2, protowire.BytesType),
		protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "v\xc3"))
	var span []byte
	span = protowire.AppendBytes(protowire.AppendTag(span, 1, protowire.BytesType), TraceID)
	span = protowire.AppendBytes(protowire.AppendTag(span, 2, protowire.BytesType), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	span = protowire.AppendString(protowire.AppendTag(span, 5, protowire.BytesType), "bad \xed\xa0\x80 name")
	span = protowire.AppendBytes(protowire.AppendTag(span, 9, protowire.BytesType), kv)
	req := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), span)))
	if _, err := otlpwire.Validate(req); !errors.Is(err, otlpwire.ErrInvalidUTF8) {
		t.Fatalf("Validate = %v, want ErrInvalidUTF8 (the test input is not what it should be)", err)
	}
	var batch entry.Batch
	if r := newEncoder(t, config.FormatJSON).EncodeTraces(&batch, otlpwire.NewTraces(req), nil, 0); r.Rejected != 0 {
		t.Fatal(r.FirstRejection)
	}
	d := decodeData(t, fields(t, &batch, 0)["data"])
	if got, want := d["name"], "bad \ufffd\ufffd\ufffd name"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got, want := d["attributes"], map[string]any{"k\ufffd": "v\ufffd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("attributes = %q, want %q", got, want)
	}
}

func TestFlatFieldsOfAFullSpan(t *testing.T) {
	f := fields(t, encodeAll(t, config.FormatFlat, Marshal(Full())), 0)
	want := map[string]string{
		"traceparent":                      "00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01",
		"trace_id":                         "5b8efff798038103d269b633813fc60c",
		"span_id":                          "eee19b7ec3c1b174",
		"parent_span_id":                   "eee19b7ec3c1b173",
		"trace_state":                      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		"flags":                            "769",
		"name":                             "GET /api/\"items\"\n\té世😀",
		"kind":                             "2",
		"start_time_unix_nano":             "1544712660000000000",
		"end_time_unix_nano":               "1544712661000000123",
		"duration_ns":                      "1000000123",
		"status_code":                      "2",
		"status_message":                   "boom: \"bad\"",
		"service_name":                     "checkout",
		"scope_name":                       "io.opentelemetry.http",
		"scope_version":                    "2.0.0",
		"dropped_attributes_count":         "4",
		"dropped_events_count":             "5",
		"dropped_links_count":              "7",
		"attr.int":                         "42",
		"resource.service.name":            "checkout",
		"scope.attr.scope.int":             "5",
		"event.0.name":                     "exception",
		"event.0.time_unix_nano":           "1544712660500000000",
		"event.0.dropped_attributes_count": "2",
		"event.0.attr.exception.escaped":   "true",
		"event.1.name":                     "cache.miss",
		"link.0.trace_id":                  "0102030405060708090a0b0c0d0e0f10",
		"link.0.span_id":                   "0102030405060708",
		"link.0.trace_state":               "vendor=x",
		"link.0.flags":                     "257",
		"link.0.dropped_attributes_count":  "6",
		"link.0.attr.link.n":               "2",
		"link.1.span_id":                   "0807060504030201",
		"link.1.trace_state":               "",
	}
	for name, v := range want {
		if got, ok := f[name]; !ok || got != v {
			t.Errorf("field %s = %q (present %v), want %q", name, got, ok, v)
		}
	}
	for _, absent := range []string{"event.1.dropped_attributes_count", "link.1.dropped_attributes_count", "event.2.name", "link.2.trace_id"} {
		if _, ok := f[absent]; ok {
			t.Errorf("field %s is present, want it omitted", absent)
		}
	}
	// A span without drops, events or links has exactly the fixed fields, its attributes and
	// those of its resource and scope.
	root := fields(t, encodeAll(t, config.FormatFlat, Marshal(Full())), 1)
	fixed := []string{"traceparent", "trace_id", "span_id", "parent_span_id", "trace_state", "flags", "name", "kind",
		"start_time_unix_nano", "end_time_unix_nano", "duration_ns", "status_code", "status_message",
		"service_name", "scope_name", "scope_version"}
	n := len(fixed) + len(Full().ResourceSpans[0].Resource.Attributes) + 2
	if len(root) != n {
		t.Errorf("root span has %d fields, want %d", len(root), n)
	}
	for _, name := range fixed {
		if _, ok := root[name]; !ok {
			t.Errorf("root span lacks %s", name)
		}
	}
}

// TestOTLPEntryIsTheSpanWithItsResourceAndScope checks that the otlp field decodes to exactly
// the span, its resource and its scope, schema urls and unknown fields included.
func TestOTLPEntryIsTheSpanWithItsResourceAndScope(t *testing.T) {
	req := Full()
	unknown := protowire.AppendTag(nil, 1000, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "from the future")
	for _, rs := range req.ResourceSpans {
		rs.ProtoReflect().SetUnknown(unknown)
		for _, ss := range rs.ScopeSpans {
			ss.ProtoReflect().SetUnknown(unknown)
			for _, s := range ss.Spans {
				s.ProtoReflect().SetUnknown(unknown)
			}
		}
	}
	batch := encodeAll(t, config.FormatOTLP, Marshal(req))
	i := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				f := fields(t, batch, i)
				if len(f) != 2 || f["traceparent"] == "" {
					t.Fatalf("entry %d fields %q, want traceparent and otlp", i, f)
				}
				got := &tracepb.TracesData{}
				if err := proto.Unmarshal([]byte(f["otlp"]), got); err != nil {
					t.Fatalf("entry %d: otlp does not decode: %v", i, err)
				}
				wantRS := proto.Clone(rs).(*tracepb.ResourceSpans)
				wantSS := proto.Clone(ss).(*tracepb.ScopeSpans)
				wantSS.Spans = []*tracepb.Span{s}
				wantRS.ScopeSpans = []*tracepb.ScopeSpans{wantSS}
				want := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{wantRS}}
				if !proto.Equal(got, want) {
					t.Errorf("entry %d: otlp differs:\n%s", i, Diff(want, got))
				}
				i++
			}
		}
	}
	if i != batch.Len() {
		t.Errorf("%d entries, want %d", batch.Len(), i)
	}
}

func TestSpansWithoutValidIDsAreRejected(t *testing.T) {
	tests := map[string]struct {
		traceID, spanID []byte
		want            error
	}{
		"a missing trace id":   {traceID: nil, spanID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, want: encode.ErrInvalidTraceID},
		"an all-zero trace id": {traceID: make([]byte, 16), spanID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, want: encode.ErrInvalidTraceID},
		"a short trace id":     {traceID: []byte{1}, spanID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, want: encode.ErrInvalidTraceID},
		"a missing span id":    {traceID: TraceID, spanID: nil, want: encode.ErrInvalidSpanID},
		"an all-zero span id":  {traceID: TraceID, spanID: make([]byte, 8), want: encode.ErrInvalidSpanID},
	}
	for name, tc := range tests {
		for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
			t.Run(name+" in "+format, func(t *testing.T) {
				req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
					ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
						{TraceId: TraceID, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Name: "good before"},
						{TraceId: tc.traceID, SpanId: tc.spanID, Name: "bad"},
						{TraceId: TraceID, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 2}, Name: "good after"},
					}}},
				}}}
				var batch entry.Batch
				r := newEncoder(t, format).EncodeTraces(&batch, otlpwire.NewTraces(Marshal(req)), nil, 0)
				rejected, err := r.Rejected, r.FirstRejection
				if rejected != 1 || !errors.Is(err, tc.want) {
					t.Fatalf("EncodeTraces = %d, %v; want 1 rejected with %v", rejected, err, tc.want)
				}
				var ise *encode.InvalidSpanError
				if !errors.As(err, &ise) {
					t.Errorf("error %v is not an *InvalidSpanError", err)
				}
				if batch.Len() != 2 {
					t.Fatalf("%d entries, want the 2 good spans", batch.Len())
				}
				for i, wantSpan := range []byte{1, 2} {
					if got := batch.Entries[i].SpanID[7]; got != wantSpan {
						t.Errorf("entry %d is span %d, want %d", i, got, wantSpan)
					}
				}
			})
		}
	}
	if msg := encode.ErrInvalidTraceID.Error(); !strings.Contains(msg, "trace_id") || !strings.Contains(msg, "traceparent") {
		t.Errorf("message %q does not say what is wrong", msg)
	}
}

func TestTraceparentUsesTheLowEightBitsOfTheFlags(t *testing.T) {
	tests := map[string]struct {
		flags uint32
		want  string
	}{
		"not sampled":                    {0, "00"},
		"sampled":                        {1, "01"},
		"sampled with a remote parent":   {0x301, "01"},
		"every W3C flag bit":             {0xff, "ff"},
		"only OTLP's is-remote bits set": {0x300, "00"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
					{TraceId: TraceID, SpanId: []byte{0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x10, 0x11}, Flags: tc.flags},
				}}},
			}}}
			batch := encodeAll(t, config.FormatOTLP, Marshal(req))
			want := "00-5b8efff798038103d269b633813fc60c-0a0b0c0d0e0f1011-" + tc.want
			if got := fields(t, batch, 0)["traceparent"]; got != want {
				t.Errorf("traceparent = %q, want %q", got, want)
			}
		})
	}
}

func TestNewValidatesTheStreamConfig(t *testing.T) {
	tests := map[string]struct {
		cfg     config.Stream
		want    string
		format  string
		fallbak string
	}{
		"defaults":            {cfg: config.Stream{KeyTemplate: "t:{tenant}"}, format: config.FormatJSON},
		"flat":                {cfg: config.Stream{KeyTemplate: "t", Format: config.FormatFlat}, format: config.FormatFlat},
		"an unknown format":   {cfg: config.Stream{KeyTemplate: "t", Format: "xml"}, want: `stream.format: unknown format "xml" (want json, flat or otlp)`},
		"no key template":     {cfg: config.Stream{}, want: `stream.keyTemplate: key template "": offset 0: the template is empty`},
		"a bad key template":  {cfg: config.Stream{KeyTemplate: "t:{x"}, want: `stream.keyTemplate: key template "t:{x": offset 2: unclosed "{"`},
		"a configured format": {cfg: config.Stream{KeyTemplate: "t", Format: config.FormatOTLP}, format: config.FormatOTLP},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := encode.New(tc.cfg)
			if tc.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("error = %v, want %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Format() != tc.format {
				t.Errorf("format = %q, want %q", e.Format(), tc.format)
			}
		})
	}
}

func TestFallbackDefaultsToUnknown(t *testing.T) {
	for fallback, want := range map[string]string{"": "t:unknown", "none": "t:none"} {
		e, err := encode.New(config.Stream{KeyTemplate: "t:{missing}", Fallback: fallback})
		if err != nil {
			t.Fatal(err)
		}
		var batch entry.Batch
		if r := e.EncodeTraces(&batch, otlpwire.NewTraces(Marshal(Full())), nil, 0); r.Rejected != 0 {
			t.Fatal(r.FirstRejection)
		}
		if got := string(batch.Key(0)); got != want {
			t.Errorf("fallback %q: key %q, want %q", fallback, got, want)
		}
	}
}

func TestEncodersDoNotAllocatePerSpan(t *testing.T) {
	req := Marshal(Realistic(100))
	full := Marshal(Full())
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		t.Run(format, func(t *testing.T) {
			e := newEncoder(t, format)
			var batch entry.Batch
			for _, b := range [][]byte{req, full} {
				// Warm the batch up to size, then count.
				if r := e.EncodeTraces(&batch, otlpwire.NewTraces(b), nil, 0); r.Rejected != 0 {
					t.Fatal(r.FirstRejection)
				}
				batch.Reset()
				allocs := testing.AllocsPerRun(20, func() {
					batch.Reset()
					if r := e.EncodeTraces(&batch, otlpwire.NewTraces(b), nil, 0); r.Rejected != 0 || r.Filtered != 0 {
						t.Fatal(r.FirstRejection)
					}
				})
				if allocs != 0 {
					t.Errorf("encoding %d spans into a warm batch allocated %v times, want 0", batch.Len(), allocs)
				}
			}
		})
	}
}

// TestEncodeAndEncodeTracesWriteTheSameEntries checks the per-span API against the per-request
// one, which reuses the resource and scope JSON of a scope's first span for the next ones.
func TestEncodeAndEncodeTracesWriteTheSameEntries(t *testing.T) {
	b := Marshal(Full())
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		t.Run(format, func(t *testing.T) {
			e := newEncoder(t, format)
			var whole, single entry.Batch
			if r := e.EncodeTraces(&whole, otlpwire.NewTraces(b), nil, 0); r.Rejected != 0 {
				t.Fatal(r.FirstRejection)
			}
			for rs := range otlpwire.NewTraces(b).ResourceSpans() {
				for ss := range rs.ScopeSpans() {
					for sp := range ss.Spans() {
						if err := e.Encode(&single, &rs, &ss, &sp); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if whole.Len() != single.Len() || whole.Len() != 4 {
				t.Fatalf("%d and %d entries, want 4", whole.Len(), single.Len())
			}
			for i := range whole.Len() {
				if !reflect.DeepEqual(fields(t, &whole, i), fields(t, &single, i)) || string(whole.Key(i)) != string(single.Key(i)) {
					t.Errorf("entry %d differs", i)
				}
			}
		})
	}
}

func TestEncodeTracesFiltersByServiceName(t *testing.T) {
	tests := map[string]struct {
		keep              func([]byte) bool
		encoded, filtered int
		firstKey          string
	}{
		"no filter":               {keep: nil, encoded: 4, firstKey: "traces:{checkout}"},
		"only payments":           {keep: func(s []byte) bool { return string(s) == "payments" }, encoded: 1, filtered: 3, firstKey: "traces:{payments}"},
		"everything but payments": {keep: func(s []byte) bool { return string(s) != "payments" }, encoded: 3, filtered: 1, firstKey: "traces:{checkout}"},
		"nothing":                 {keep: func([]byte) bool { return false }, filtered: 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var batch entry.Batch
			r := newEncoder(t, config.FormatJSON).EncodeTraces(&batch, otlpwire.NewTraces(Marshal(Full())), tc.keep, 0)
			if r.Encoded != tc.encoded || r.Filtered != tc.filtered || r.Rejected != 0 || batch.Len() != tc.encoded {
				t.Fatalf("result %+v with %d entries, want %d encoded and %d filtered", r, batch.Len(), tc.encoded, tc.filtered)
			}
			if tc.encoded > 0 && string(batch.Key(0)) != tc.firstKey {
				t.Errorf("first key %q, want %q", batch.Key(0), tc.firstKey)
			}
		})
	}
}

// TestEncodingStopsAtMaxBytes: a 64 KiB resource shared by 100 spans encodes to over 6 MiB of
// entries; with a 1 MiB bound, encoding stops soon after the bound and says so.
func TestEncodingStopsAtMaxBytes(t *testing.T) {
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "big",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: strings.Repeat("r", 64<<10)}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{}},
	}}}
	for i := range 100 {
		req.ResourceSpans[0].ScopeSpans[0].Spans = append(req.ResourceSpans[0].ScopeSpans[0].Spans,
			&tracepb.Span{TraceId: []byte("0123456789abcdef"), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i + 1)}, Name: "s"})
	}
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		var batch entry.Batch
		r := newEncoder(t, format).EncodeTraces(&batch, otlpwire.NewTraces(Marshal(req)), nil, 1<<20)
		if !r.TooLarge || len(batch.Buf) > 1<<20+128<<10 || r.Encoded >= 100 {
			t.Errorf("%s: TooLarge %v after %d entries of %d bytes; want it to stop just past 1 MiB", format, r.TooLarge, r.Encoded, len(batch.Buf))
		}
		batch.Reset()
		if r := newEncoder(t, format).EncodeTraces(&batch, otlpwire.NewTraces(Marshal(req)), nil, 0); r.TooLarge || r.Encoded != 100 {
			t.Errorf("%s: without a bound: TooLarge %v, %d entries", format, r.TooLarge, r.Encoded)
		}
	}
}

// TestSpansOfAScopeGetTheirOwnKeys checks the key rendered once per scope against spans that
// carry the template's attribute themselves, or only mention it, between spans that do not.
func TestSpansOfAScopeGetTheirOwnKeys(t *testing.T) {
	span := func(id byte, attrs ...*commonpb.KeyValue) *tracepb.Span {
		return &tracepb.Span{TraceId: TraceID, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, id}, Attributes: attrs}
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{KV("service.name", Str("checkout"))}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			span(1),
			span(2, KV("service.name", Str("override"))),
			span(3, KV("note", Str("service.name"))),
			span(4, KV("service.name", Str(""))),
			span(5, KV("http.route", Str("/"))),
			span(6, KV("service.name", Int(7))),
		}}},
	}}}
	want := []string{"traces:{checkout}", "traces:{override}", "traces:{checkout}", "traces:{checkout}", "traces:{checkout}", "traces:{7}"}
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		var batch entry.Batch
		if r := newEncoder(t, format).EncodeTraces(&batch, otlpwire.NewTraces(Marshal(req)), nil, 0); r.Encoded != len(want) {
			t.Fatalf("%s: %+v", format, r)
		}
		for i, w := range want {
			if got := string(batch.Key(i)); got != w {
				t.Errorf("%s: span %d has key %q, want %q", format, i+1, got, w)
			}
		}
	}
}
