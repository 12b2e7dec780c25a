package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/tracestream/tracestream/internal/redisconn"
)

// Load builds the exporter's configuration: Default, overlaid by the YAML file at path (none when
// path is empty), overlaid by the TRACESTREAM_* environment variables, then validated.
func Load(path string) (Config, error) {
	return load(path, os.Environ(), nil)
}

// LoadWithFlags is Load with one more overlay, on top of the environment: the flags of fs that
// RegisterFlags registered and that were set on the command line. fs must have been parsed.
func LoadWithFlags(path string, fs *flag.FlagSet) (Config, error) {
	if !fs.Parsed() {
		return Config{}, errors.New("loading configuration: flags not parsed yet")
	}
	return load(path, os.Environ(), fs)
}

func load(path string, environ []string, fs *flag.FlagSet) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading config file: %w", err)
		}
		if err := decodeYAML(data, &c); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return Config{}, fmt.Errorf("environment: %w", err)
	}
	if fs != nil {
		if err := ApplyFlags(fs, &c); err != nil {
			return Config{}, fmt.Errorf("flags: %w", err)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// decodeYAML overlays the keys present in data on c. Unknown keys are errors that name their
// full path; so are values of the wrong type.
func decodeYAML(data []byte, c *Config) error {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if m, ok := doc.(map[string]any); ok {
		// encoding/json matches keys case-insensitively and names only the first unknown key,
		// without its section; this check is exact, names every unknown key and suggests a fix.
		var errs []error
		unknownKeys(m, reflect.TypeFor[Config](), "", &errs)
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return fmt.Errorf("want a mapping of sections (receivers, redis, ...), got %s", te.Value)
			}
			return fmt.Errorf("%s: want %s, got %s", te.Field, wantType(te.Type), te.Value)
		}
		return err
	}
	// Empty is standalone (a null or tagged empty value in the file): one spelling, so that the
	// configuration reads back the same after a trip through a ConfigMap.
	c.Redis.Mode = string(redisconn.Mode(c.Redis.Mode).OrDefault())
	return nil
}

// unknownKeys reports the keys of m that are not json names of struct type t, recursing into
// nested sections. The errors are sorted by key path.
func unknownKeys(m map[string]any, t reflect.Type, prefix string, errs *[]error) {
	fields := map[string]reflect.Type{}
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if name := jsonName(t.Field(i)); name != "" {
			fields[name] = t.Field(i).Type
			names = append(names, name)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		ft, ok := fields[k]
		if !ok {
			*errs = append(*errs, fmt.Errorf("%s: unknown key%s", path, suggest(k, names)))
			continue
		}
		if sub, isMap := m[k].(map[string]any); isMap && ft.Kind() == reflect.Struct && ft != durationType {
			unknownKeys(sub, ft, path, errs)
		}
	}
}

// wantType describes what a key of type t accepts, for a type error.
func wantType(t reflect.Type) string {
	switch typeName(t) {
	case "duration":
		return `a duration such as "5s" or "100ms"`
	case "integer":
		return "an integer"
	case "boolean":
		return "true or false"
	case "list":
		return "a list"
	case "mapping":
		return "a mapping"
	}
	return "a " + typeName(t)
}

// applyEnv overlays on c the TRACESTREAM_* variables of environ ("NAME=value" strings).
//
// The prefix is shared with the build scripts (TRACESTREAM_CACHE, TRACESTREAM_CLUSTER_DIR), so a
// variable that names no key is ignored, unless it looks like a misspelt key, which must not pass
// silently: it is an error when it starts with a section's prefix (TRACESTREAM_REDIS_...) or is
// within two edits of a key's variable.
func applyEnv(c *Config, environ []string) error {
	byEnv := leavesByEnv()
	names := make([]string, 0, len(byEnv))
	sections := map[string]bool{}
	for _, l := range leaves() {
		names = append(names, l.env)
		section, _, _ := strings.Cut(l.key, ".")
		sections[envName(section)+"_"] = true
	}
	var errs []error
	for _, kv := range slices.Sorted(slices.Values(environ)) {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		l, ok := byEnv[name]
		if !ok {
			hint := suggest(name, names)
			inSection := false
			for s := range sections {
				inSection = inSection || strings.HasPrefix(name, s)
			}
			if inSection || hint != "" {
				errs = append(errs, fmt.Errorf("%s: not a configuration variable%s", name, hint))
			}
			continue
		}
		if err := l.set(c, value); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, l.key, err))
		}
	}
	return errors.Join(errs...)
}

// RegisterFlags registers on fs one flag per key, named by the key's dotted path
// (--redis.addresses, --stream.format). A flag checks its value's syntax when it is parsed;
// ApplyFlags or LoadWithFlags then apply the flags that were set. Lists are comma-separated,
// and a list flag given more than once accumulates.
func RegisterFlags(fs *flag.FlagSet) {
	def := Default()
	for _, l := range leaves() {
		v := &flagValue{leaf: l}
		if f := l.field(&def); !f.IsZero() {
			v.def = formatText(f) // a zero default is left out of the help, as the flag package does
		}
		fs.Var(v, l.key, flagUsage(l))
	}
}

// flagUsage says what a key's flag takes; the back-quoted word is the flag package's placeholder.
func flagUsage(l leaf) string {
	var what string
	switch typeName(l.typ) {
	case "duration":
		what = "a `duration` such as 5s or 100ms"
	case "integer":
		what = "an `integer`"
	case "boolean":
		what = "true or false"
	case "list":
		what = "a comma-separated `list`"
	default:
		what = "a `string`"
	}
	return fmt.Sprintf("%s; or set %s (docs/exporter-config.md)", what, l.env)
}

// ApplyFlags overlays on c the flags of fs that RegisterFlags registered and that were set;
// other flags of fs are left alone. Call it after fs.Parse.
func ApplyFlags(fs *flag.FlagSet, c *Config) error {
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		v, ok := f.Value.(*flagValue)
		if !ok || len(v.values) == 0 {
			return
		}
		text := v.values[len(v.values)-1]
		if v.leaf.typ.Kind() == reflect.Slice {
			text = strings.Join(v.values, ",")
		}
		if err := v.leaf.set(c, text); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", v.leaf.key, err))
		}
	})
	return errors.Join(errs...)
}

// flagValue is a key's flag. It records what was set rather than writing into a Config, so the
// flags can be applied after the file and the environment.
type flagValue struct {
	leaf   leaf
	def    string
	values []string
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	if len(v.values) > 0 {
		return strings.Join(v.values, ",")
	}
	return v.def
}

func (v *flagValue) Set(text string) error {
	if err := setText(reflect.New(v.leaf.typ).Elem(), text); err != nil {
		return err
	}
	v.values = append(v.values, text)
	return nil
}

// IsBoolFlag lets a boolean key be set with a bare --redis.tls.enabled.
func (v *flagValue) IsBoolFlag() bool {
	return v != nil && v.leaf.typ != nil && v.leaf.typ.Kind() == reflect.Bool
}
