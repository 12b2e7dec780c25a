package otlpwire_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// readBack validates b and rebuilds the request through the views.
func readBack(t *testing.T, b []byte) (*coltracepb.ExportTraceServiceRequest, int) {
	t.Helper()
	n, err := otlpwire.Validate(b)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return FromViews(otlpwire.NewTraces(b)), n
}

func TestViewsReadEveryField(t *testing.T) {
	tests := map[string]*coltracepb.ExportTraceServiceRequest{
		"a request with every field and attribute type set": Full(),
		"the benchmark request":                             Realistic(20),
		"an empty request":                                  {},
		"a resource with no scopes and a scope with no spans": {ResourceSpans: []*tracepb.ResourceSpans{
			{}, {ScopeSpans: []*tracepb.ScopeSpans{{}}},
		}},
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			got, n := readBack(t, Marshal(req))
			if want := Canonical(req); !proto.Equal(got, want) {
				t.Errorf("views differ from the request (-want +got):\n%s", Diff(want, got))
			}
			if want := CountSpans(req); n != want {
				t.Errorf("Validate counted %d spans, want %d", n, want)
			}
		})
	}
}

func TestViewsReadRandomRequests(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 300 {
		req := Random(r, 4)
		got, n := readBack(t, Marshal(req))
		if want := Canonical(req); !proto.Equal(got, want) {
			t.Fatalf("request %d: views differ (-want +got):\n%s", i, Diff(want, got))
		}
		if n != CountSpans(req) {
			t.Fatalf("request %d: Validate counted %d spans, want %d", i, n, CountSpans(req))
		}
	}
}

func TestViewsSkipUnknownFieldsAndWrongWireTypes(t *testing.T) {
	req := Full()
	// Unknown fields at every level, and known field numbers with a wire type they do not have:
	// protobuf keeps both as unknown fields, so the views must not see them.
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 99, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "future field")
	unknown = protowire.AppendTag(unknown, 100, protowire.StartGroupType)
	unknown = protowire.AppendTag(unknown, 1, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 5)
	unknown = protowire.AppendTag(unknown, 100, protowire.EndGroupType)
	wrongType := protowire.AppendTag(nil, 1, protowire.VarintType) // trace_id / name / key as a varint
	wrongType = protowire.AppendVarint(wrongType, 7)
	wrongType = protowire.AppendTag(wrongType, 7, protowire.BytesType) // start time as bytes
	wrongType = protowire.AppendString(wrongType, "x")
	set := func(m proto.Message) {
		m.ProtoReflect().SetUnknown(append(append([]byte(nil), unknown...), wrongType...))
	}
	set(req)
	for _, rs := range req.ResourceSpans {
		set(rs)
		set(rs.Resource)
		for _, ss := range rs.ScopeSpans {
			set(ss)
			if ss.Scope != nil {
				set(ss.Scope)
			}
			for _, s := range ss.Spans {
				set(s)
				for _, kv := range s.Attributes {
					set(kv)
					set(kv.Value)
				}
			}
		}
	}
	b := Marshal(req)
	got, _ := readBack(t, b)
	if want := Canonical(req); !proto.Equal(got, want) {
		t.Errorf("views differ (-want +got):\n%s", Diff(want, got))
	}
}

func TestSingularFieldsLastOccurrenceWins(t *testing.T) {
	// Protobuf: of a scalar field that occurs twice the last one counts, and so does the last
	// member of a oneof that is set.
	var span []byte
	span = protowire.AppendTag(span, 5, protowire.BytesType)
	span = protowire.AppendString(span, "first")
	span = protowire.AppendTag(span, 5, protowire.BytesType)
	span = protowire.AppendString(span, "second")
	var value []byte
	value = protowire.AppendTag(value, 1, protowire.BytesType)
	value = protowire.AppendString(value, "a string")
	value = protowire.AppendTag(value, 3, protowire.VarintType)
	value = protowire.AppendVarint(value, 12)
	var kv []byte
	kv = protowire.AppendTag(kv, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "k")
	kv = protowire.AppendTag(kv, 2, protowire.BytesType)
	kv = protowire.AppendBytes(kv, value)
	span = protowire.AppendTag(span, 9, protowire.BytesType)
	span = protowire.AppendBytes(span, kv)

	s := otlpwire.ParseSpan(span)
	want := &tracepb.Span{}
	if err := proto.Unmarshal(span, want); err != nil {
		t.Fatal(err)
	}
	if got := string(s.Name()); got != want.Name || got != "second" {
		t.Errorf("name = %q, protobuf says %q", got, want.Name)
	}
	v, ok := s.Attributes().Get("k")
	if !ok || v.Type() != otlpwire.ValueInt || v.Int() != 12 || want.Attributes[0].Value.GetIntValue() != 12 {
		t.Errorf("attribute k = %v %d (found %v), want the int 12", v.Type(), v.Int(), ok)
	}
}

func TestAttributeLookup(t *testing.T) {
	b := Marshal(Full())
	var rs otlpwire.ResourceSpans
	for rs = range otlpwire.NewTraces(b).ResourceSpans() {
		break
	}
	res := rs.Resource()
	if got := string(res.ServiceName()); got != "checkout" {
		t.Errorf("ServiceName = %q, want checkout", got)
	}
	tests := map[string]struct {
		key    string
		found  bool
		typ    otlpwire.ValueType
		render func(otlpwire.AnyValue) any
		want   any
	}{
		"a string":             {key: "str", found: true, typ: otlpwire.ValueString, render: func(v otlpwire.AnyValue) any { return string(v.Str()) }, want: "value"},
		"an int":               {key: "int.negative", found: true, typ: otlpwire.ValueInt, render: func(v otlpwire.AnyValue) any { return v.Int() }, want: int64(math.MinInt64)},
		"a double":             {key: "double", found: true, typ: otlpwire.ValueDouble, render: func(v otlpwire.AnyValue) any { return v.Double() }, want: 3.25},
		"a bool":               {key: "bool.true", found: true, typ: otlpwire.ValueBool, render: func(v otlpwire.AnyValue) any { return v.Bool() }, want: true},
		"bytes":                {key: "bytes", found: true, typ: otlpwire.ValueBytes, render: func(v otlpwire.AnyValue) any { return v.Bytes() }, want: []byte{0, 1, 2, 0xfe, 0xff}},
		"an array's length":    {key: "array", found: true, typ: otlpwire.ValueArray, render: func(v otlpwire.AnyValue) any { return v.Array().Len() }, want: 7},
		"a kvlist's entry":     {key: "kvlist", found: true, typ: otlpwire.ValueKVList, render: func(v otlpwire.AnyValue) any { x, _ := v.KVList().Get("inner"); return string(x.Str()) }, want: "x"},
		"an empty value":       {key: "empty.value", found: true, typ: otlpwire.ValueEmpty, render: func(v otlpwire.AnyValue) any { return v.Str() == nil }, want: true},
		"the empty key":        {key: "", found: true, typ: otlpwire.ValueString, render: func(v otlpwire.AnyValue) any { return string(v.Str()) }, want: "empty key"},
		"a missing key":        {key: "nope", found: false},
		"a prefix of a key":    {key: "service", found: false},
		"a key with more text": {key: "strx", found: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, ok := res.Attributes().Get(tc.key)
			if ok != tc.found {
				t.Fatalf("found = %v, want %v", ok, tc.found)
			}
			if !ok {
				return
			}
			if v.Type() != tc.typ {
				t.Fatalf("type = %v, want %v", v.Type(), tc.typ)
			}
			if got := tc.render(v); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("value = %v, want %v", got, tc.want)
			}
		})
	}
	// Accessors of another type return zero values rather than reinterpret bytes.
	v, _ := res.Attributes().Get("str")
	if v.Int() != 0 || v.Bool() || v.Double() != 0 || v.Bytes() != nil || v.Array().Len() != 0 || v.KVList().Len() != 0 {
		t.Errorf("a string value answers other accessors with non-zero values")
	}
	if n := res.Attributes().Len(); n != 3+len(AllTypes()) {
		t.Errorf("Len = %d, want %d", n, 3+len(AllTypes()))
	}
}

func TestServiceNameIsNilWhenMissingOrNotAString(t *testing.T) {
	tests := map[string][]*commonpb.KeyValue{
		"no attributes":            nil,
		"no service.name":          {KV("service.version", Str("1"))},
		"service.name is an int":   {KV("service.name", Int(3))},
		"service.name is a kvlist": {KV("service.name", KVList())},
	}
	for name, attrs := range tests {
		t.Run(name, func(t *testing.T) {
			req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{}}}
			req.ResourceSpans[0].Resource = nil
			if attrs != nil {
				req = Full()
				req.ResourceSpans[0].Resource.Attributes = attrs
			}
			for rs := range otlpwire.NewTraces(Marshal(req)).ResourceSpans() {
				if got := rs.Resource().ServiceName(); got != nil {
					t.Errorf("ServiceName = %q, want nil", got)
				}
				break
			}
		})
	}
}

// TestHeadersRebuildOneScopeLosslessly checks what the otlp stream format relies on: the header
// of a ResourceSpans and of a ScopeSpans followed by one child is that message with that one child,
// unknown fields and all, whatever the order of the fields on the wire.
func TestHeadersRebuildOneScopeLosslessly(t *testing.T) {
	unknown := protowire.AppendTag(nil, 77, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "unknown")
	full := Full()
	full.ResourceSpans[0].ProtoReflect().SetUnknown(unknown)
	full.ResourceSpans[0].ScopeSpans[0].ProtoReflect().SetUnknown(unknown)

	tests := map[string][]byte{
		"fields in the order protobuf writes them":       Marshal(full),
		"scope_spans and spans between the other fields": interleave(t, Marshal(full)),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := otlpwire.Validate(b); err != nil {
				t.Fatal(err)
			}
			want := &coltracepb.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			i := 0
			for rs := range otlpwire.NewTraces(b).ResourceSpans() {
				j := 0
				for ss := range rs.ScopeSpans() {
					k := 0
					for sp := range ss.Spans() {
						ssb := ss.AppendHeader(nil)
						if len(ssb) != ss.HeaderLen() {
							t.Fatalf("ScopeSpans header is %d bytes, HeaderLen says %d", len(ssb), ss.HeaderLen())
						}
						ssb = protowire.AppendTag(ssb, 2, protowire.BytesType)
						ssb = protowire.AppendBytes(ssb, sp.Raw())
						rsb := rs.AppendHeader(nil)
						if len(rsb) != rs.HeaderLen() {
							t.Fatalf("ResourceSpans header is %d bytes, HeaderLen says %d", len(rsb), rs.HeaderLen())
						}
						rsb = protowire.AppendTag(rsb, 2, protowire.BytesType)
						rsb = protowire.AppendBytes(rsb, ssb)
						got := &tracepb.ResourceSpans{}
						if err := proto.Unmarshal(rsb, got); err != nil {
							t.Fatal(err)
						}
						exp := proto.Clone(want.ResourceSpans[i]).(*tracepb.ResourceSpans)
						exp.ScopeSpans = []*tracepb.ScopeSpans{proto.Clone(exp.ScopeSpans[j]).(*tracepb.ScopeSpans)}
						exp.ScopeSpans[0].Spans = []*tracepb.Span{exp.ScopeSpans[0].Spans[k]}
						if !proto.Equal(got, exp) {
							t.Errorf("resource %d scope %d span %d: rebuilt message differs (-want +got):\n%s", i, j, k, Diff(exp, got))
						}
						k++
					}
					j++
				}
				i++
			}
		})
	}
}

// interleave rewrites a request so that in every ResourceSpans and ScopeSpans the children come
// first, then the schema_url, then the rest of the children: legal, and not how protobuf writes.
func interleave(t *testing.T, b []byte) []byte {
	t.Helper()
	split := func(msg []byte, child protowire.Number, rewriteChild func([]byte) []byte) []byte {
		var children [][]byte
		var other []byte
		for len(msg) > 0 {
			num, typ, n := protowire.ConsumeField(msg)
			if n < 0 {
				t.Fatal("bad input")
			}
			if num == child && typ == protowire.BytesType {
				_, _, m := protowire.ConsumeTag(msg)
				v, _ := protowire.ConsumeBytes(msg[m:])
				c := protowire.AppendTag(nil, child, protowire.BytesType)
				children = append(children, protowire.AppendBytes(c, rewriteChild(v)))
			} else {
				other = append(other, msg[:n]...)
			}
			msg = msg[n:]
		}
		var out []byte
		for i, c := range children {
			out = append(out, c...)
			if i == 0 {
				out = append(out, other...)
			}
		}
		if len(children) == 0 {
			out = other
		}
		return out
	}
	same := func(b []byte) []byte { return b }
	rewriteRS := func(rs []byte) []byte {
		return split(rs, 2, func(ss []byte) []byte { return split(ss, 2, same) })
	}
	return split(b, 1, rewriteRS)
}

func TestReadersStopOnMalformedInputWithoutPanicking(t *testing.T) {
	b := Marshal(Full())
	for cut := range len(b) {
		// Every prefix, and every prefix with a garbage byte: whatever the views make of it,
		// they must not panic or loop.
		for _, in := range [][]byte{b[:cut], append(append([]byte(nil), b[:cut]...), 0xff)} {
			walk(otlpwire.NewTraces(in))
		}
	}
}

// walk reads every value of every view, as an encoder would.
func walk(t otlpwire.Traces) int {
	n := 0
	for rs := range t.ResourceSpans() {
		n += len(rs.AppendHeader(nil)) + rs.HeaderLen() + walkAttrs(rs.Resource().Attributes())
		for ss := range rs.ScopeSpans() {
			n += len(ss.AppendHeader(nil)) + ss.HeaderLen() + walkAttrs(ss.Scope().Attributes())
			for sp := range ss.Spans() {
				n += len(sp.Raw()) + len(sp.TraceID()) + len(sp.Name()) + int(sp.Kind()) + len(sp.Status().Message())
				n += walkAttrs(sp.Attributes())
				for e := range sp.Events() {
					n += len(e.Name()) + walkAttrs(e.Attributes())
				}
				for l := range sp.Links() {
					n += len(l.TraceState()) + walkAttrs(l.Attributes())
				}
			}
		}
	}
	return n
}

func walkAttrs(a otlpwire.Attributes) int {
	n := a.Len()
	for kv := range a.All() {
		n += len(kv.Key) + countValue(kv.Value)
	}
	return n
}

func TestViewsDoNotAllocate(t *testing.T) {
	b := Marshal(Full())
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		for rs := range otlpwire.NewTraces(b).ResourceSpans() {
			sink += len(rs.Resource().ServiceName())
			for ss := range rs.ScopeSpans() {
				sink += len(ss.Scope().Name())
				for sp := range ss.Spans() {
					sink += len(sp.TraceID()) + len(sp.Name()) + int(sp.Status().Code())
					for kv := range sp.Attributes().All() {
						sink += len(kv.Key) + countValue(kv.Value)
					}
					for e := range sp.Events() {
						sink += len(e.Name()) + e.Attributes().Len()
					}
					for l := range sp.Links() {
						sink += len(l.SpanID()) + l.Attributes().Len()
					}
					if v, ok := sp.Attributes().Get("int"); ok {
						sink += int(v.Int())
					}
				}
			}
		}
	})
	if allocs != 0 {
		t.Errorf("iterating every field allocated %v times per request, want 0", allocs)
	}
	_ = sink
}

func countValue(v otlpwire.AnyValue) int {
	n := len(v.Str()) + len(v.Bytes())
	for e := range v.Array().All() {
		n += countValue(e)
	}
	for kv := range v.KVList().All() {
		n += len(kv.Key) + countValue(kv.Value)
	}
	return n
}

func TestValidateDoesNotAllocate(t *testing.T) {
	b := Marshal(Full())
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := otlpwire.Validate(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Validate allocated %v times per request, want 0", allocs)
	}
}

func TestRawBytesAreTheEncodedMessages(t *testing.T) {
	req := Full()
	b := Marshal(req)
	for rs := range otlpwire.NewTraces(b).ResourceSpans() {
		res := &tracepb.ResourceSpans{}
		if err := proto.Unmarshal(rs.Raw(), res); err != nil || !proto.Equal(res, req.ResourceSpans[0]) {
			t.Errorf("ResourceSpans.Raw does not decode to the first ResourceSpans (err %v)", err)
		}
		r := rs.Resource()
		if !bytes.Equal(r.Raw(), Marshal(req.ResourceSpans[0].Resource)) {
			t.Errorf("Resource.Raw differs from the marshalled resource")
		}
		for ss := range rs.ScopeSpans() {
			if !bytes.Equal(ss.Scope().Raw(), Marshal(req.ResourceSpans[0].ScopeSpans[0].Scope)) {
				t.Errorf("Scope.Raw differs from the marshalled scope")
			}
			for sp := range ss.Spans() {
				if !bytes.Equal(sp.Raw(), Marshal(req.ResourceSpans[0].ScopeSpans[0].Spans[0])) {
					t.Errorf("Span.Raw differs from the marshalled span")
				}
				break
			}
			break
		}
		break
	}
}

// A key a producer repeats reads as its last value, as a JSON parser reads the json format's
// repeated key; the resource's service name follows.
func TestRepeatedAttributeKeyReadsAsItsLastValue(t *testing.T) {
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "first"}}},
		{Key: "host", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "h"}}},
		{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "last"}}},
	}}
	raw, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{Resource: res}}})
	if err != nil {
		t.Fatal(err)
	}
	var r otlpwire.Resource
	for rs := range otlpwire.NewTraces(raw).ResourceSpans() {
		r = rs.Resource()
	}
	if got := string(r.ServiceName()); got != "last" {
		t.Fatalf("ServiceName() = %q, want the last value", got)
	}
	if v, ok := r.Attributes().Get("host"); !ok || string(v.Str()) != "h" {
		t.Fatalf("Get(host) = %q, %v", v.Str(), ok)
	}
	if _, ok := r.Attributes().Get("missing"); ok {
		t.Fatal("Get(missing) found a value")
	}
}

// TestHasAgreesWithGet checks Has against Get on every attribute list of random requests, for
// keys that are there and keys that are not, and on attributes encoded with over-long lengths
// (valid protobuf that takes Has's general path).
func TestHasAgreesWithGet(t *testing.T) {
	check := func(a otlpwire.Attributes, keys ...string) {
		t.Helper()
		for kv := range a.All() {
			keys = append(keys, string(kv.Key))
		}
		for _, k := range append(keys, "absent", "") {
			if _, found := a.Get(k); a.Has(k) != found {
				t.Fatalf("Has(%q) = %v, Get finds it: %v", k, a.Has(k), found)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		for rs := range otlpwire.NewTraces(Marshal(Random(r, 3))).ResourceSpans() {
			check(rs.Resource().Attributes())
			for ss := range rs.ScopeSpans() {
				check(ss.Scope().Attributes())
				for sp := range ss.Spans() {
					check(sp.Attributes())
					for ev := range sp.Events() {
						check(ev.Attributes())
					}
				}
			}
		}
	}
	// service.name=x, with the attribute's length written in two bytes (0x8e 0x00).
	kv := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "service.name")
	kv = protowire.AppendBytes(protowire.AppendTag(kv, 2, protowire.BytesType), protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "x"))
	span := append(protowire.AppendTag(nil, 9, protowire.BytesType), byte(len(kv))|0x80, 0)
	span = append(span, kv...)
	sp := otlpwire.ParseSpan(span)
	if !sp.Attributes().Has("service.name") {
		t.Error("Has misses an attribute whose length is written in two bytes")
	}
	check(sp.Attributes(), "service")
}
