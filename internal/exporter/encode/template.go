package encode

import "github.com/tracestream/tracestream/internal/exporter/encode/streamkey"

// The key templates live in package streamkey, which the configuration package can import to
// check a template at start-up (package encode imports the configuration, so the configuration
// cannot import it); they are re-exported here for the encoders' users.

// DefaultFallback replaces a placeholder whose attribute is missing when the configuration names
// no fallback.
const DefaultFallback = streamkey.DefaultFallback

// Template is a parsed stream key template (see streamkey.Template).
type Template = streamkey.Template

// TemplateError is a key template that does not parse (see streamkey.TemplateError).
type TemplateError = streamkey.TemplateError

// Parse parses a key template (see streamkey.Parse).
func Parse(template string) (*Template, error) { return streamkey.Parse(template) }

// MustParse is Parse for templates known to be valid; it panics on error.
func MustParse(template string) *Template { return streamkey.MustParse(template) }
