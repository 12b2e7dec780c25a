package streamkey_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/encode/streamkey"
)

// TestParse reads templates into their attributes and back into their one source form.
func TestParse(t *testing.T) {
	tests := map[string]struct {
		template string
		attrs    []string
	}{
		"a placeholder after literal text":        {"traces:{service.name}", []string{"service.name"}},
		"a cluster hash tag around a placeholder": {"traces:{{{service.name}}}", []string{"service.name"}},
		"two placeholders":                        {"t:{a}:{b}", []string{"a", "b"}},
		"literal braces only":                     {"{{literal}}", nil},
		"no placeholder":                          {"traces", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tmpl, err := streamkey.Parse(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			if got := tmpl.Attributes(); !slices.Equal(got, tc.attrs) {
				t.Errorf("Attributes() = %q, want %q", got, tc.attrs)
			}
			if got := tmpl.String(); got != tc.template {
				t.Errorf("String() = %q, want the source %q", got, tc.template)
			}
		})
	}
}

// TestParseRefusesBadTemplates names the offset of each problem.
func TestParseRefusesBadTemplates(t *testing.T) {
	tests := map[string]struct {
		template string
		offset   int
	}{
		"an empty template":             {"", 0},
		"an unclosed placeholder":       {"traces:{service.name", 7},
		"a stray closing brace":         {"traces:}x", 7},
		"an empty placeholder":          {"traces:{}", 7},
		"a brace inside a placeholder":  {"t:{a{b}", 4},
		"a lone brace after a hash tag": {"t:{{{a}}", 7},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := streamkey.Parse(tc.template)
			var te *streamkey.TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("Parse(%q) = %v, want a TemplateError", tc.template, err)
			}
			if te.Offset != tc.offset {
				t.Errorf("offset %d, want %d (%v)", te.Offset, tc.offset, err)
			}
		})
	}
}

// TestPattern turns templates into the SCAN MATCH glob the operator's lag reader uses:
// placeholders become *, literal braces stay, glob metacharacters are escaped.
func TestPattern(t *testing.T) {
	for tmpl, want := range map[string]string{
		"traces:{service.name}":     "traces:*",
		"traces:{{{service.name}}}": "traces:{*}",
		"t:{a}:{b}":                 "t:*:*",
		"literal*[x]?":              `literal\*\[x\]\?`,
		`back\slash`:                `back\\slash`,
		"{{literal}}":               "{literal}",
	} {
		if got := streamkey.MustParse(tmpl).Pattern(); got != want {
			t.Errorf("Pattern of %q = %q, want %q", tmpl, got, want)
		}
	}
}
