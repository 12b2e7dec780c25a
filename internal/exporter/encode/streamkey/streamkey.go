// Package streamkey renders the Redis Stream key of a span from a key template such as
// "traces:{{{service.name}}}". It is apart from package encode so that the configuration
// package can check a template at start-up without importing the encoders (which import the
// configuration).
package streamkey

import (
	"strconv"
	"strings"

	"github.com/tracestream/tracestream/internal/exporter/encode/otlpjson"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// DefaultFallback replaces a placeholder whose attribute is missing when the configuration names
// no fallback.
const DefaultFallback = "unknown"

// Template is a parsed stream key template: literal text and {attribute} placeholders. "{{" and
// "}}" stand for literal braces, so that a Redis Cluster hash tag around a placeholder is written
// "traces:{{{service.name}}}" and renders as "traces:{checkout}".
type Template struct {
	parts []part
}

// part is a run of literal text, or a placeholder when isAttr is set.
type part struct {
	text   string // the literal text (braces unescaped), or the attribute key
	isAttr bool
}

// TemplateError is a key template that does not parse. It names the byte offset and the problem,
// because the template comes from a user's configuration and the message is all they will see.
type TemplateError struct {
	// Template is the template as configured.
	Template string
	// Offset is the byte offset of the problem in Template.
	Offset int
	// Problem says what is wrong there.
	Problem string
}

// Error formats the problem as `key template "...": offset N: problem`.
func (e *TemplateError) Error() string {
	return "key template " + strconv.Quote(e.Template) + ": offset " + strconv.Itoa(e.Offset) + ": " + e.Problem
}

// Parse parses a key template. A placeholder is an attribute key between single braces: "{key}",
// looked up in the span attributes, then the resource attributes, then the scope attributes. "{{"
// is a literal "{" and "}}" a literal "}". A key cannot contain braces.
func Parse(template string) (*Template, error) {
	fail := func(off int, problem string) (*Template, error) {
		return nil, &TemplateError{Template: template, Offset: off, Problem: problem}
	}
	if template == "" {
		return fail(0, "the template is empty")
	}
	t := &Template{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(template); {
		c := template[i]
		switch {
		case c == '{' && i+1 < len(template) && template[i+1] == '{':
			lit.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(template) && template[i+1] == '}':
			lit.WriteByte('}')
			i += 2
		case c == '}':
			return fail(i, `stray "}" (write "}}" for a literal brace)`)
		case c == '{':
			end := strings.IndexAny(template[i+1:], "{}")
			if end < 0 {
				return fail(i, `unclosed "{" (close the placeholder with "}", or write "{{" for a literal brace)`)
			}
			end += i + 1
			if template[end] == '{' {
				return fail(end, `"{" inside the placeholder opened at offset `+strconv.Itoa(i)+` (attribute keys cannot contain braces)`)
			}
			if end == i+1 {
				return fail(i, `empty placeholder "{}" (name an attribute, as in {service.name}, or write "{{}}" for literal braces)`)
			}
			flush()
			t.parts = append(t.parts, part{text: template[i+1 : end], isAttr: true})
			i = end + 1
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return t, nil
}

// MustParse is Parse for templates known to be valid, such as constants; it panics on error.
func MustParse(template string) *Template {
	t, err := Parse(template)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template in its source form. There is one way to write each template, so
// Parse(s).String() == s.
func (t *Template) String() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.isAttr {
			b.WriteString("{" + p.text + "}")
			continue
		}
		b.WriteString(strings.NewReplacer("{", "{{", "}", "}}").Replace(p.text))
	}
	return b.String()
}

// Pattern is a Redis SCAN MATCH glob of every key the template can render: each placeholder
// becomes *, and glob metacharacters in literal text are escaped, so that the operator's lag
// reader finds the streams the exporter writes with the grammar the exporter parses.
func (t *Template) Pattern() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.isAttr {
			b.WriteByte('*')
			continue
		}
		for i := 0; i < len(p.text); i++ {
			if c := p.text[i]; strings.IndexByte(`*?[]\`, c) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(p.text[i])
		}
	}
	return b.String()
}

// Attributes lists the attribute keys of the placeholders, in order.
func (t *Template) Attributes() []string {
	var keys []string
	for _, p := range t.parts {
		if p.isAttr {
			keys = append(keys, p.text)
		}
	}
	return keys
}

// Append appends the key of span sp to dst: each placeholder is replaced with the attribute of the
// span, else of the resource, else of the scope, else with fallback. A string attribute renders
// as itself; other types as their natural text: an int in decimal, a bool as true or false, a
// double in its shortest form that reads back exactly (NaN, Infinity, -Infinity for the special
// values), bytes in standard base64, arrays and kvlists as JSON. An empty string or empty value
// counts as missing, because a key with an empty segment is never what was meant (and an empty
// hash tag "{}" would silently stop being a hash tag). It does not allocate.
func (t *Template) Append(dst []byte, sp *otlpwire.Span, res otlpwire.Resource, scope otlpwire.Scope, fallback string) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		if !p.isAttr {
			dst = append(dst, p.text...)
			continue
		}
		v, ok := lookup(p.text, sp, res, scope)
		if !ok {
			dst = append(dst, fallback...)
			continue
		}
		dst = appendText(dst, v)
	}
	return dst
}

// ScopeOnly reports whether the key of span sp is the key of its resource and scope alone (what
// Append renders for a span without attributes), because the span has none of the placeholders'
// attributes. Encoders render that key once per scope and copy it: asking whether a span has an
// attribute costs less than looking it up in the span, then the resource, then the scope.
func (t *Template) ScopeOnly(sp *otlpwire.Span) bool {
	attrs := sp.Attributes()
	for i := range t.parts {
		if t.parts[i].isAttr && attrs.Has(t.parts[i].text) {
			return false
		}
	}
	return true
}

// lookup finds a usable (non-empty) value of key in the span, resource and scope attributes.
func lookup(key string, sp *otlpwire.Span, res otlpwire.Resource, scope otlpwire.Scope) (otlpwire.AnyValue, bool) {
	if v, ok := sp.Attributes().Get(key); ok && !empty(v) {
		return v, true
	}
	if v, ok := res.Attributes().Get(key); ok && !empty(v) {
		return v, true
	}
	if v, ok := scope.Attributes().Get(key); ok && !empty(v) {
		return v, true
	}
	return otlpwire.AnyValue{}, false
}

func empty(v otlpwire.AnyValue) bool {
	return v.Type() == otlpwire.ValueEmpty || (v.Type() == otlpwire.ValueString && len(v.Str()) == 0)
}

// appendText appends a value's natural text: a string as itself, anything else as in the json
// format except that doubles keep their shortest form (3, not 3.0) and special doubles and bytes
// are not quoted.
func appendText(dst []byte, v otlpwire.AnyValue) []byte {
	switch v.Type() {
	case otlpwire.ValueString:
		return append(dst, v.Str()...)
	case otlpwire.ValueDouble:
		return otlpjson.AppendFloat(dst, v.Double(), false, false)
	case otlpwire.ValueBytes:
		return otlpjson.AppendBase64(dst, v.Bytes())
	}
	return otlpjson.AppendValue(dst, v)
}
