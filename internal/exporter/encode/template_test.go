package encode_test

import (
	"errors"
	"math"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

func TestParseRejectsBadTemplates(t *testing.T) {
	tests := map[string]struct {
		template string
		want     string
	}{
		"an empty template": {
			template: "",
			want:     `key template "": offset 0: the template is empty`,
		},
		"an unclosed placeholder": {
			template: "traces:{service.name",
			want:     `key template "traces:{service.name": offset 7: unclosed "{" (close the placeholder with "}", or write "{{" for a literal brace)`,
		},
		"an empty placeholder": {
			template: "traces:{}",
			want:     `key template "traces:{}": offset 7: empty placeholder "{}" (name an attribute, as in {service.name}, or write "{{}}" for literal braces)`,
		},
		"a stray closing brace": {
			template: "traces}x",
			want:     `key template "traces}x": offset 6: stray "}" (write "}}" for a literal brace)`,
		},
		"a closing brace after a placeholder": {
			template: "{a}}",
			want:     `key template "{a}}": offset 3: stray "}" (write "}}" for a literal brace)`,
		},
		"a brace inside a placeholder": {
			template: "t:{a{b}",
			want:     `key template "t:{a{b}": offset 4: "{" inside the placeholder opened at offset 2 (attribute keys cannot contain braces)`,
		},
		"a hash tag with one brace too few": {
			template: "traces:{{service.name}}}",
			want:     `key template "traces:{{service.name}}}": offset 23: stray "}" (write "}}" for a literal brace)`,
		},
		"a lone opening brace at the end": {
			template: "traces:{",
			want:     `key template "traces:{": offset 7: unclosed "{"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tmpl, err := encode.Parse(tc.template)
			if err == nil {
				t.Fatalf("Parse accepted it as %q", tmpl)
			}
			var te *encode.TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *TemplateError", err)
			}
			if got := err.Error(); len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("error = %s\nwant    %s", got, tc.want)
			}
		})
	}
}

// templateRequest has a span, resource and scope attribute for each lookup order case.
func templateRequest() *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			KV("service.name", Str("checkout")),
			KV("shared", Str("from-resource")),
			KV("resource.only", Str("r")),
			KV("empty.on.span", Str("resource-wins")),
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "lib", Attributes: []*commonpb.KeyValue{
				KV("shared", Str("from-scope")),
				KV("scope.only", Str("s")),
			}},
			Spans: []*tracepb.Span{{
				TraceId: TraceID, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8},
				Attributes: []*commonpb.KeyValue{
					KV("shared", Str("from-span")),
					KV("empty.on.span", Str("")),
					KV("http.status_code", Int(503)),
					KV("negative", Int(-7)),
					KV("retry", Bool(true)),
					KV("ratio", Double(0.25)),
					KV("integral", Double(2)),
					KV("huge", Double(1e21)),
					KV("nan", Double(math.NaN())),
					KV("inf", Double(math.Inf(-1))),
					KV("raw", Bytes([]byte{0xff, 0x00})),
					KV("list", Array(Str("a"), Int(1))),
					KV("map", KVList(KV("k", Str("v")))),
					KV("nothing", &commonpb.AnyValue{}),
					KV("tenant", Str("acme/eu")),
				},
			}},
		}},
	}}}
}

func renderFirstSpan(t *testing.T, tmpl *encode.Template, fallback string) string {
	t.Helper()
	b := Marshal(templateRequest())
	for rs := range otlpwire.NewTraces(b).ResourceSpans() {
		for ss := range rs.ScopeSpans() {
			for sp := range ss.Spans() {
				return string(tmpl.Append(nil, &sp, rs.Resource(), ss.Scope(), fallback))
			}
		}
	}
	t.Fatal("no span")
	return ""
}

func TestTemplateRendering(t *testing.T) {
	tests := map[string]struct {
		template string
		want     string
	}{
		"a Redis Cluster hash tag around the service name":   {"traces:{{{service.name}}}", "traces:{checkout}"},
		"doubled braces are literal braces":                  {"a{{b}}c", "a{b}c"},
		"a literal brace pair that looks like a placeholder": {"{{service.name}}", "{service.name}"},
		"no placeholder at all":                              {"traces", "traces"},
		"span attributes win over resource and scope":        {"{shared}", "from-span"},
		"resource attributes win over scope attributes":      {"{resource.only}/{scope.only}", "r/s"},
		"an empty string on the span falls through":          {"{empty.on.span}", "resource-wins"},
		"a missing attribute takes the fallback":             {"traces:{tenant.id}:{service.name}", "traces:FB:checkout"},
		"an empty value takes the fallback":                  {"{nothing}", "FB"},
		"an int in decimal":                                  {"{http.status_code}|{negative}", "503|-7"},
		"a bool":                                             {"{retry}", "true"},
		"doubles in their shortest form":                     {"{ratio} {integral} {huge}", "0.25 2 1e+21"},
		"special doubles by name":                            {"{nan} {inf}", "NaN -Infinity"},
		"bytes in base64":                                    {"{raw}", "/wA="},
		"arrays and kvlists as JSON":                         {"{list} {map}", `["a",1] {"k":"v"}`},
		"values are not escaped":                             {"t:{tenant}", "t:acme/eu"},
		"adjacent placeholders":                              {"{service.name}{retry}", "checkouttrue"},
		"a placeholder key with spaces is taken as written":  {"{ service.name }", "FB"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tmpl, err := encode.Parse(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := renderFirstSpan(t, tmpl, "FB"); got != tc.want {
				t.Errorf("rendered %q, want %q", got, tc.want)
			}
			if got := tmpl.String(); got != tc.template {
				t.Errorf("String() = %q, want the template back", got)
			}
		})
	}
}

func TestTemplateAttributes(t *testing.T) {
	got := encode.MustParse("t:{{{service.name}}}:{tenant}").Attributes()
	if len(got) != 2 || got[0] != "service.name" || got[1] != "tenant" {
		t.Errorf("Attributes = %q, want [service.name tenant]", got)
	}
}

func TestTemplateRenderingDoesNotAllocate(t *testing.T) {
	tmpl := encode.MustParse("traces:{{{service.name}}}:{http.status_code}:{missing}:{ratio}")
	b := Marshal(templateRequest())
	var rs otlpwire.ResourceSpans
	var ss otlpwire.ScopeSpans
	var sp otlpwire.Span
	for rs = range otlpwire.NewTraces(b).ResourceSpans() {
		for ss = range rs.ScopeSpans() {
			for sp = range ss.Spans() {
			}
		}
	}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = tmpl.Append(buf[:0], &sp, rs.Resource(), ss.Scope(), "unknown")
	})
	if want := "traces:{checkout}:503:unknown:0.25"; string(buf) != want {
		t.Fatalf("rendered %q, want %q", buf, want)
	}
	if allocs != 0 {
		t.Errorf("Append allocated %v times, want 0", allocs)
	}
}

// TestDocumentedKeyExamples renders the examples of docs/stream-entries.md, so that the page
// cannot drift from the code.
func TestDocumentedKeyExamples(t *testing.T) {
	tests := map[string]struct {
		template       string
		span, resource []*commonpb.KeyValue
		want           string
	}{
		"a constant":                   {template: "traces", want: "traces"},
		"the service name":             {template: "traces:{service.name}", resource: []*commonpb.KeyValue{KV("service.name", Str("checkout"))}, want: "traces:checkout"},
		"a hash tag":                   {template: "traces:{{{service.name}}}", resource: []*commonpb.KeyValue{KV("service.name", Str("checkout"))}, want: "traces:{checkout}"},
		"a hash tag with the fallback": {template: "traces:{{{service.name}}}", want: "traces:{unknown}"},
		"two placeholders": {
			template: "t:{tenant}:{http.response.status_code}",
			span:     []*commonpb.KeyValue{KV("tenant", Str("acme")), KV("http.response.status_code", Int(503))},
			want:     "t:acme:503",
		},
		"literal braces":                   {template: "{{literal}}", want: "{literal}"},
		"four braces are two literal":      {template: "{{{{x}}}}", span: []*commonpb.KeyValue{KV("x", Int(1))}, want: "{{x}}"},
		"five braces around a placeholder": {template: "{{{{{x}}}}}", span: []*commonpb.KeyValue{KV("x", Int(1))}, want: "{{1}}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
				Resource: &resourcepb.Resource{Attributes: tc.resource},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
					{TraceId: TraceID, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Attributes: tc.span},
				}}},
			}}}
			var got string
			for rs := range otlpwire.NewTraces(Marshal(req)).ResourceSpans() {
				for ss := range rs.ScopeSpans() {
					for sp := range ss.Spans() {
						got = string(encode.MustParse(tc.template).Append(nil, &sp, rs.Resource(), ss.Scope(), encode.DefaultFallback))
					}
				}
			}
			if got != tc.want {
				t.Errorf("key %q, want %q", got, tc.want)
			}
		})
	}
}
