package encode_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// FuzzKeyTemplate checks that Parse never panics, that its errors point inside the template,
// that a parsed template prints back as the same text (there is one way to write each), and that
// rendering one never panics and writes the literal text with the braces unescaped.
func FuzzKeyTemplate(f *testing.F) {
	req := Marshal(templateRequest())
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := encode.Parse(s)
		if err != nil {
			var te *encode.TemplateError
			if !errors.As(err, &te) || te.Offset < 0 || te.Offset > len(s) || te.Template != s {
				t.Fatalf("error %v does not locate the problem inside the template", err)
			}
			return
		}
		if got := tmpl.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
		again, err := encode.Parse(tmpl.String())
		if err != nil || again.String() != s {
			t.Fatalf("the printed template does not parse back: %v", err)
		}
		for rs := range otlpwire.NewTraces(req).ResourceSpans() {
			for ss := range rs.ScopeSpans() {
				for sp := range ss.Spans() {
					key := string(tmpl.Append(nil, &sp, rs.Resource(), ss.Scope(), "\x00"))
					// Without placeholders, the key is the template with its braces unescaped.
					if len(tmpl.Attributes()) == 0 {
						want := strings.NewReplacer("{{", "{", "}}", "}").Replace(s)
						if key != want {
							t.Fatalf("key %q, want %q", key, want)
						}
					}
				}
			}
		}
	})
}

// fuzzedFields is fields, except that an attribute's field may repeat: a producer that repeats
// an attribute key (OTLP forbids it, nothing on the wire prevents it) gets the field repeated in
// the flat format, as the json format repeats the key (docs/stream-entries.md). Every other
// field must appear once.
func fuzzedFields(t *testing.T, b *entry.Batch, i int) map[string]string {
	t.Helper()
	m := map[string]string{}
	for j := range b.NumFields(i) {
		n, v := b.FieldPair(i, j)
		name := string(n)
		if _, dup := m[name]; dup && !isAttributeField(name) {
			t.Fatalf("entry %d has field %q twice", i, n)
		}
		m[name] = string(v)
	}
	return m
}

func isAttributeField(name string) bool {
	if strings.HasPrefix(name, "attr.") || strings.HasPrefix(name, "resource.") || strings.HasPrefix(name, "scope.attr.") {
		return true
	}
	for _, p := range []string{"event.", "link."} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			_, after, _ := strings.Cut(rest, ".")
			return strings.HasPrefix(after, "attr.")
		}
	}
	return false
}

// traceparentRE is the W3C traceparent of version 00.
var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// FuzzEncodeJSON encodes every request that Validate accepts in the three formats and checks
// that the json format's data is valid JSON, that every entry carries a well-formed traceparent
// and the span's ids, that the otlp format decodes to one span, and that nothing panics.
func FuzzEncodeJSON(f *testing.F) {
	encoders := map[string]*encode.Encoder{}
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		encoders[format] = newEncoder(f, format)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, err := otlpwire.Validate(b)
		if err != nil {
			return
		}
		for format, e := range encoders {
			var batch entry.Batch
			rejected := e.EncodeTraces(&batch, otlpwire.NewTraces(b), nil, 0).Rejected
			if batch.Len()+rejected != spans {
				t.Fatalf("%s: %d entries and %d rejected, want %d spans", format, batch.Len(), rejected, spans)
			}
			for i := range batch.Len() {
				fs := fuzzedFields(t, &batch, i)
				tp := fs["traceparent"]
				if !traceparentRE.MatchString(tp) {
					t.Fatalf("%s: traceparent %q", format, tp)
				}
				ent := batch.Entries[i]
				if want := fmt.Sprintf("00-%x-%x-", ent.TraceID, ent.SpanID); !strings.HasPrefix(tp, want) {
					t.Fatalf("%s: traceparent %q does not carry the entry's ids %s", format, tp, want)
				}
				switch format {
				case config.FormatJSON:
					if !json.Valid([]byte(fs["data"])) {
						t.Fatalf("data is not valid JSON: %s", fs["data"])
					}
				case config.FormatOTLP:
					var td tracepb.TracesData
					if err := proto.Unmarshal([]byte(fs["otlp"]), &td); err != nil {
						t.Fatalf("otlp does not decode: %v", err)
					}
					if n := len(td.ResourceSpans); n != 1 || len(td.ResourceSpans[0].ScopeSpans) != 1 || len(td.ResourceSpans[0].ScopeSpans[0].Spans) != 1 {
						t.Fatalf("otlp holds %d resources, want one resource, scope and span", n)
					}
				}
			}
		}
	})
}
