// Package otlpwiretest builds OTLP trace requests with the generated protobuf types, for tests of
// the code that reads them with otlpwire: a request with every field set, random requests, a
// realistic one for benchmarks, and the conversion of otlpwire views back into generated types, so
// that a test can compare what otlpwire read with what was written using proto.Equal.
package otlpwiretest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// Str returns a string AnyValue.
func Str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

// Int returns an int AnyValue.
func Int(i int64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
}

// Double returns a double AnyValue.
func Double(f float64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
}

// Bool returns a bool AnyValue.
func Bool(b bool) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
}

// Bytes returns a bytes AnyValue.
func Bytes(b []byte) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: b}}
}

// Array returns an array AnyValue.
func Array(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
}

// KVList returns a kvlist AnyValue.
func KVList(kvs ...*commonpb.KeyValue) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: kvs}}}
}

// KV returns a key/value pair.
func KV(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

// TraceID is the trace id of the spans of Full.
var TraceID = []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}

// AllTypes returns attributes with one value of every type, nested arrays and kvlists, and
// strings that need JSON escaping.
func AllTypes() []*commonpb.KeyValue {
	return []*commonpb.KeyValue{
		KV("str", Str("value")),
		KV("escaped", Str("quote\" backslash\\ nl\n tab\t ctl\x01 del\x7f é 世界 😀 \u2028")),
		KV("empty.str", Str("")),
		KV("bool.true", Bool(true)),
		KV("bool.false", Bool(false)),
		KV("int", Int(42)),
		KV("int.negative", Int(-9223372036854775808)),
		KV("int.max", Int(math.MaxInt64)),
		KV("double", Double(3.25)),
		KV("double.integral", Double(3)),
		KV("double.tiny", Double(1e-7)),
		KV("double.huge", Double(1.5e300)),
		KV("double.negzero", Double(math.Copysign(0, -1))),
		KV("bytes", Bytes([]byte{0, 1, 2, 0xfe, 0xff})),
		KV("array", Array(Str("a"), Int(1), Double(2.5), Bool(true), Bytes([]byte("hi")), Array(), Array(Int(7)))),
		KV("kvlist", KVList(KV("inner", Str("x")), KV("nested", KVList(KV("deep", Int(3)))), KV("list", Array(Str("y"))))),
		KV("empty.value", &commonpb.AnyValue{}),
		KV("", Str("empty key")),
		KV("ключ \"q\"", Str("unicode key")),
	}
}

// Full returns a request with every field of every message set, two resources, two scopes and
// three spans.
func Full() *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{
			Resource: &resourcepb.Resource{
				Attributes: append([]*commonpb.KeyValue{
					KV("service.name", Str("checkout")),
					KV("service.version", Str("1.2.3")),
					KV("deployment.environment", Str("prod")),
				}, AllTypes()...),
				DroppedAttributesCount: 3,
				EntityRefs: []*commonpb.EntityRef{{
					SchemaUrl: "https://opentelemetry.io/schemas/1.26.0", Type: "service",
					IdKeys: []string{"service.name"}, DescriptionKeys: []string{"service.version"},
				}},
			},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
			ScopeSpans: []*tracepb.ScopeSpans{
				{
					Scope: &commonpb.InstrumentationScope{
						Name: "io.opentelemetry.http", Version: "2.0.0",
						Attributes:             []*commonpb.KeyValue{KV("scope.attr", Str("s")), KV("scope.int", Int(5))},
						DroppedAttributesCount: 1,
					},
					SchemaUrl: "https://opentelemetry.io/schemas/1.24.0",
					Spans: []*tracepb.Span{
						serverSpan(),
						{
							TraceId:           TraceID,
							SpanId:            []byte{0, 0, 0, 0, 0, 0, 0, 1},
							Name:              "root",
							Kind:              tracepb.Span_SPAN_KIND_INTERNAL,
							StartTimeUnixNano: 1,
							EndTimeUnixNano:   2,
							Status:            &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
						},
					},
				},
				{
					Spans: []*tracepb.Span{{
						TraceId: TraceID, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 2}, Name: "no scope",
						Kind: tracepb.Span_SPAN_KIND_CLIENT, Flags: 1,
					}},
				},
			},
		},
		{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{KV("service.name", Str("payments"))}},
			ScopeSpans: []*tracepb.ScopeSpans{{
				Scope: &commonpb.InstrumentationScope{Name: "manual"},
				Spans: []*tracepb.Span{{
					TraceId: TraceID, SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 3}, Name: "charge",
					Kind: tracepb.Span_SPAN_KIND_PRODUCER, StartTimeUnixNano: 10, EndTimeUnixNano: 5,
					Attributes: []*commonpb.KeyValue{KV("http.route", Str("/charge"))},
				}},
			}},
		},
	}}
}

// serverSpan is Full's first span: every field set, with events and links.
func serverSpan() *tracepb.Span {
	return &tracepb.Span{
		TraceId:                TraceID,
		SpanId:                 []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74},
		TraceState:             "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		ParentSpanId:           []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73},
		Flags:                  0x301,
		Name:                   "GET /api/\"items\"\n\té世😀",
		Kind:                   tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano:      1544712660000000000,
		EndTimeUnixNano:        1544712661000000123,
		Attributes:             AllTypes(),
		DroppedAttributesCount: 4,
		Events: []*tracepb.Span_Event{
			{TimeUnixNano: 1544712660500000000, Name: "exception", Attributes: []*commonpb.KeyValue{
				KV("exception.type", Str("java.lang.NullPointerException")),
				KV("exception.stacktrace", Str("at a.b(c.java:1)\n\tat d.e(f.java:2)")),
				KV("exception.escaped", Bool(true)),
			}, DroppedAttributesCount: 2},
			{TimeUnixNano: 1544712660600000000, Name: "cache.miss"},
		},
		DroppedEventsCount: 5,
		Links: []*tracepb.Span_Link{
			{
				TraceId:    []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
				SpanId:     []byte{1, 2, 3, 4, 5, 6, 7, 8},
				TraceState: "vendor=x",
				Attributes: []*commonpb.KeyValue{KV("link.kind", Str("follows")), KV("link.n", Int(2))},
				Flags:      0x101, DroppedAttributesCount: 6,
			},
			{TraceId: TraceID, SpanId: []byte{8, 7, 6, 5, 4, 3, 2, 1}},
		},
		DroppedLinksCount: 7,
		Status:            &tracepb.Status{Message: "boom: \"bad\"", Code: tracepb.Status_STATUS_CODE_ERROR},
	}
}

// Realistic returns a request of n spans of one service and one scope, each with ten attributes
// of the kinds HTTP server instrumentation records, and a resource with five attributes: the
// benchmarks' request.
func Realistic(n int) *coltracepb.ExportTraceServiceRequest {
	r := rand.New(rand.NewPCG(1, 2))
	spans := make([]*tracepb.Span, n)
	for i := range spans {
		tid, sid, pid := make([]byte, 16), make([]byte, 8), make([]byte, 8)
		fill(r, tid)
		fill(r, sid)
		fill(r, pid)
		start := uint64(1_700_000_000_000_000_000) + uint64(i)*1000
		spans[i] = &tracepb.Span{
			TraceId: tid, SpanId: sid, ParentSpanId: pid, Flags: 1,
			Name: "GET /api/v1/orders/{id}", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(r.IntN(5_000_000)),
			Attributes: []*commonpb.KeyValue{
				KV("http.request.method", Str("GET")),
				KV("http.route", Str("/api/v1/orders/{id}")),
				KV("url.path", Str(fmt.Sprintf("/api/v1/orders/%d", r.IntN(100000)))),
				KV("url.scheme", Str("https")),
				KV("http.response.status_code", Int(200)),
				KV("server.address", Str("orders.internal.example.com")),
				KV("server.port", Int(8443)),
				KV("client.address", Str("10.1.2.3")),
				KV("user_agent.original", Str("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")),
				KV("network.protocol.version", Str("1.1")),
			},
			Status: &tracepb.Status{},
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			KV("service.name", Str("orders")),
			KV("service.version", Str("4.2.0")),
			KV("deployment.environment.name", Str("production")),
			KV("k8s.pod.name", Str("orders-7d9f8c6b5-x2x9z")),
			KV("host.name", Str("node-17")),
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.60.0"},
			Spans: spans,
		}},
	}}}
}

func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// Random returns a random request: random structure, every attribute type, nested values up to
// depth levels, ids of the right length (or empty), arbitrary Unicode in strings.
func Random(r *rand.Rand, depth int) *coltracepb.ExportTraceServiceRequest {
	g := gen{r: r, depth: depth}
	req := &coltracepb.ExportTraceServiceRequest{}
	for range r.IntN(3) + 1 {
		rs := &tracepb.ResourceSpans{SchemaUrl: g.str()}
		if r.IntN(4) > 0 {
			rs.Resource = &resourcepb.Resource{Attributes: g.attrs(), DroppedAttributesCount: g.u32()}
			if r.IntN(4) == 0 {
				rs.Resource.EntityRefs = []*commonpb.EntityRef{{
					SchemaUrl: g.str(), Type: g.str(),
					IdKeys: []string{g.str(), g.str()}, DescriptionKeys: []string{g.str()},
				}}
			}
		}
		for range r.IntN(3) {
			ss := &tracepb.ScopeSpans{SchemaUrl: g.str()}
			if r.IntN(4) > 0 {
				ss.Scope = &commonpb.InstrumentationScope{Name: g.str(), Version: g.str(), Attributes: g.attrs(), DroppedAttributesCount: g.u32()}
			}
			for range r.IntN(4) {
				ss.Spans = append(ss.Spans, g.span())
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	return req
}

type gen struct {
	r     *rand.Rand
	depth int
}

var alphabet = []string{"a", "b", "service.name", "é", "世", "😀", "\"", "\\", "\n", "\x00", "\u2028", " ", "<", "&", "\x7f", "\t", "{", "}"}

func (g *gen) str() string {
	if g.r.IntN(3) == 0 {
		return ""
	}
	s := ""
	for range g.r.IntN(6) {
		s += alphabet[g.r.IntN(len(alphabet))]
	}
	return s
}

func (g *gen) u32() uint32 {
	if g.r.IntN(2) == 0 {
		return 0
	}
	return g.r.Uint32()
}

func (g *gen) id(n int) []byte {
	if g.r.IntN(8) == 0 {
		return nil
	}
	b := make([]byte, n)
	fill(g.r, b)
	return b
}

func (g *gen) attrs() []*commonpb.KeyValue {
	var kvs []*commonpb.KeyValue
	for range g.r.IntN(5) {
		kv := KV(g.str(), g.value(1))
		if g.r.IntN(10) == 0 {
			kv.KeyStrindex = int32(g.r.IntN(3)) // profiles-only, must be ignored in traces
		}
		kvs = append(kvs, kv)
	}
	return kvs
}

func (g *gen) value(level int) *commonpb.AnyValue {
	kinds := 8
	if level >= g.depth {
		kinds = 6 // scalars only
	}
	switch g.r.IntN(kinds) {
	case 0:
		return Str(g.str())
	case 1:
		return Bool(g.r.IntN(2) == 0)
	case 2:
		return Int(int64(g.r.Uint64()))
	case 3:
		switch g.r.IntN(5) {
		case 0:
			return Double(math.Inf(1 - 2*g.r.IntN(2)))
		case 1:
			return Double(float64(g.r.IntN(1000)))
		default:
			return Double(g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(40)-20)))
		}
	case 4:
		return Bytes(g.id(g.r.IntN(5)))
	case 5:
		if g.r.IntN(4) == 0 {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValueStrindex{StringValueStrindex: int32(g.r.IntN(3))}}
		}
		return &commonpb.AnyValue{}
	case 6:
		v := Array()
		for range g.r.IntN(4) {
			v.GetArrayValue().Values = append(v.GetArrayValue().Values, g.value(level+1))
		}
		return v
	default:
		v := KVList()
		for range g.r.IntN(4) {
			v.GetKvlistValue().Values = append(v.GetKvlistValue().Values, KV(g.str(), g.value(level+1)))
		}
		return v
	}
}

func (g *gen) span() *tracepb.Span {
	s := &tracepb.Span{
		TraceId: g.id(16), SpanId: g.id(8), TraceState: g.str(), ParentSpanId: g.id(8),
		Flags: g.u32(), Name: g.str(), Kind: tracepb.Span_SpanKind(g.r.IntN(7) - 1),
		StartTimeUnixNano: g.r.Uint64(), EndTimeUnixNano: g.r.Uint64(),
		Attributes: g.attrs(), DroppedAttributesCount: g.u32(),
		DroppedEventsCount: g.u32(), DroppedLinksCount: g.u32(),
	}
	for range g.r.IntN(3) {
		s.Events = append(s.Events, &tracepb.Span_Event{TimeUnixNano: g.r.Uint64(), Name: g.str(), Attributes: g.attrs(), DroppedAttributesCount: g.u32()})
	}
	for range g.r.IntN(3) {
		s.Links = append(s.Links, &tracepb.Span_Link{TraceId: g.id(16), SpanId: g.id(8), TraceState: g.str(), Attributes: g.attrs(), DroppedAttributesCount: g.u32(), Flags: g.u32()})
	}
	if g.r.IntN(3) > 0 {
		s.Status = &tracepb.Status{Message: g.str(), Code: tracepb.Status_StatusCode(g.r.IntN(4))}
	}
	return s
}

// Marshal is proto.Marshal that panics on error, for test tables.
func Marshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Canonical returns a copy of req in the form that FromViews produces, so that the two can be
// compared with proto.Equal: what otlpwire does not expose (unknown fields, entity_refs, the
// profiles-only strindex fields) is cleared, and absent resource, scope, status and values are
// set to empty ones, because the views do not tell absent from empty.
func Canonical(req *coltracepb.ExportTraceServiceRequest) *coltracepb.ExportTraceServiceRequest {
	b, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	out := &coltracepb.ExportTraceServiceRequest{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, out); err != nil {
		panic(err)
	}
	for _, rs := range out.ResourceSpans {
		if rs.Resource == nil {
			rs.Resource = &resourcepb.Resource{}
		}
		rs.Resource.EntityRefs = nil
		for _, ss := range rs.ScopeSpans {
			if ss.Scope == nil {
				ss.Scope = &commonpb.InstrumentationScope{}
			}
			for _, s := range ss.Spans {
				if s.Status == nil {
					s.Status = &tracepb.Status{}
				}
			}
		}
	}
	eachAttributeList(out, canonicalAttrs)
	return out
}

// eachAttributeList calls fn with every attribute list of req: those of its resources, scopes,
// spans, events and links.
func eachAttributeList(req *coltracepb.ExportTraceServiceRequest, fn func([]*commonpb.KeyValue)) {
	for _, rs := range req.ResourceSpans {
		fn(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			fn(ss.GetScope().GetAttributes())
			for _, s := range ss.Spans {
				fn(s.Attributes)
				for _, e := range s.Events {
					fn(e.Attributes)
				}
				for _, l := range s.Links {
					fn(l.Attributes)
				}
			}
		}
	}
}

func canonicalAttrs(kvs []*commonpb.KeyValue) {
	for _, kv := range kvs {
		kv.KeyStrindex = 0
		if kv.Value == nil {
			kv.Value = &commonpb.AnyValue{}
		}
		canonicalValue(kv.Value)
	}
}

func canonicalValue(v *commonpb.AnyValue) {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValueStrindex:
		v.Value = nil
	case *commonpb.AnyValue_ArrayValue:
		if x.ArrayValue == nil {
			x.ArrayValue = &commonpb.ArrayValue{}
		}
		for i, e := range x.ArrayValue.Values {
			if e == nil {
				x.ArrayValue.Values[i] = &commonpb.AnyValue{}
			}
			canonicalValue(x.ArrayValue.Values[i])
		}
	case *commonpb.AnyValue_KvlistValue:
		if x.KvlistValue == nil {
			x.KvlistValue = &commonpb.KeyValueList{}
		}
		canonicalAttrs(x.KvlistValue.Values)
	}
}

// FromViews rebuilds the request that t views, field by field, through the otlpwire accessors.
func FromViews(t otlpwire.Traces) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	for rs := range t.ResourceSpans() {
		res := rs.Resource()
		prs := &tracepb.ResourceSpans{
			Resource: &resourcepb.Resource{
				Attributes:             AttributesFromView(res.Attributes()),
				DroppedAttributesCount: res.DroppedAttributesCount(),
			},
			SchemaUrl: string(rs.SchemaURL()),
		}
		for ss := range rs.ScopeSpans() {
			sc := ss.Scope()
			pss := &tracepb.ScopeSpans{
				Scope: &commonpb.InstrumentationScope{
					Name: string(sc.Name()), Version: string(sc.Version()),
					Attributes:             AttributesFromView(sc.Attributes()),
					DroppedAttributesCount: sc.DroppedAttributesCount(),
				},
				SchemaUrl: string(ss.SchemaURL()),
			}
			for sp := range ss.Spans() {
				pss.Spans = append(pss.Spans, SpanFromView(&sp))
			}
			prs.ScopeSpans = append(prs.ScopeSpans, pss)
		}
		req.ResourceSpans = append(req.ResourceSpans, prs)
	}
	return req
}

// SpanFromView rebuilds a span through the otlpwire accessors.
func SpanFromView(sp *otlpwire.Span) *tracepb.Span {
	st := sp.Status()
	ps := &tracepb.Span{
		TraceId: sp.TraceID(), SpanId: sp.SpanID(), TraceState: string(sp.TraceState()),
		ParentSpanId: sp.ParentSpanID(), Flags: sp.Flags(), Name: string(sp.Name()),
		Kind:              tracepb.Span_SpanKind(sp.Kind()),
		StartTimeUnixNano: sp.StartTimeUnixNano(), EndTimeUnixNano: sp.EndTimeUnixNano(),
		Attributes:             AttributesFromView(sp.Attributes()),
		DroppedAttributesCount: sp.DroppedAttributesCount(),
		DroppedEventsCount:     sp.DroppedEventsCount(),
		DroppedLinksCount:      sp.DroppedLinksCount(),
		Status:                 &tracepb.Status{Message: string(st.Message()), Code: tracepb.Status_StatusCode(st.Code())},
	}
	for e := range sp.Events() {
		ps.Events = append(ps.Events, &tracepb.Span_Event{
			TimeUnixNano: e.TimeUnixNano(), Name: string(e.Name()),
			Attributes: AttributesFromView(e.Attributes()), DroppedAttributesCount: e.DroppedAttributesCount(),
		})
	}
	for l := range sp.Links() {
		ps.Links = append(ps.Links, &tracepb.Span_Link{
			TraceId: l.TraceID(), SpanId: l.SpanID(), TraceState: string(l.TraceState()),
			Attributes: AttributesFromView(l.Attributes()), DroppedAttributesCount: l.DroppedAttributesCount(),
			Flags: l.Flags(),
		})
	}
	return ps
}

// AttributesFromView rebuilds a list of attributes through the otlpwire accessors.
func AttributesFromView(a otlpwire.Attributes) []*commonpb.KeyValue {
	var kvs []*commonpb.KeyValue
	for kv := range a.All() {
		kvs = append(kvs, KV(string(kv.Key), ValueFromView(kv.Value)))
	}
	return kvs
}

// ValueFromView rebuilds a value through the otlpwire accessors.
func ValueFromView(v otlpwire.AnyValue) *commonpb.AnyValue {
	switch v.Type() {
	case otlpwire.ValueString:
		return Str(string(v.Str()))
	case otlpwire.ValueBool:
		return Bool(v.Bool())
	case otlpwire.ValueInt:
		return Int(v.Int())
	case otlpwire.ValueDouble:
		return Double(v.Double())
	case otlpwire.ValueBytes:
		return Bytes(v.Bytes())
	case otlpwire.ValueArray:
		a := Array()
		for e := range v.Array().All() {
			a.GetArrayValue().Values = append(a.GetArrayValue().Values, ValueFromView(e))
		}
		return a
	case otlpwire.ValueKVList:
		return KVList(AttributesFromView(v.KVList())...)
	}
	return &commonpb.AnyValue{}
}

// ValueDepth returns how deeply the values of req nest (1 for a flat attribute).
func ValueDepth(req *coltracepb.ExportTraceServiceRequest) int {
	d := 0
	eachAttributeList(req, func(kvs []*commonpb.KeyValue) {
		for _, kv := range kvs {
			d = max(d, valueDepth(kv.GetValue(), 1))
		}
	})
	return d
}

func valueDepth(v *commonpb.AnyValue, level int) int {
	if v == nil {
		return 0
	}
	d := level
	for _, e := range v.GetArrayValue().GetValues() {
		d = max(d, valueDepth(e, level+1))
	}
	for _, kv := range v.GetKvlistValue().GetValues() {
		d = max(d, valueDepth(kv.GetValue(), level+1))
	}
	return d
}

// HasBadID reports whether any trace or span id of req is non-empty and of the wrong length.
func HasBadID(req *coltracepb.ExportTraceServiceRequest) bool {
	bad := func(id []byte, n int) bool { return len(id) != 0 && len(id) != n }
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				if bad(s.TraceId, 16) || bad(s.SpanId, 8) || bad(s.ParentSpanId, 8) {
					return true
				}
				for _, l := range s.Links {
					if bad(l.TraceId, 16) || bad(l.SpanId, 8) {
						return true
					}
				}
			}
		}
	}
	return false
}

// CountSpans counts the spans of req.
func CountSpans(req *coltracepb.ExportTraceServiceRequest) int {
	n := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

// Diff describes how got differs from want: the first differing line of their text format, with
// a little context, since whole requests are too long to read side by side.
func Diff(want, got proto.Message) string {
	opts := prototext.MarshalOptions{Multiline: true}
	w := strings.Split(opts.Format(want), "\n")
	g := strings.Split(opts.Format(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		if i < len(w) && i < len(g) && w[i] == g[i] {
			continue
		}
		from := max(0, i-5)
		return fmt.Sprintf("first difference at line %d\nwant:\n%s\ngot:\n%s", i+1,
			strings.Join(w[from:min(len(w), i+3)], "\n"), strings.Join(g[from:min(len(g), i+3)], "\n"))
	}
	return "no difference in text format (NaN, or -0 against 0?)"
}

// CPUTime is the CPU time (user and system) the process has used so far. Benchmarks report it per
// span next to the wall time because the machines they run on are shared: wall time moves with
// the load of other processes, CPU time much less.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
