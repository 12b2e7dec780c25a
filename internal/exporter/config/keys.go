package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// EnvPrefix starts the name of every environment variable that sets a key.
const EnvPrefix = "TRACESTREAM_"

// leaf is one settable key: a field that is not a nested section.
type leaf struct {
	key   string       // dotted path of JSON names: "redis.tls.caFile"
	env   string       // TRACESTREAM_REDIS_TLS_CA_FILE
	index []int        // reflect field index path from Config
	typ   reflect.Type // the field's type
}

var durationType = reflect.TypeFor[Duration]()

// leaves lists every key of Config in declaration order. It is derived from the json tags, so a
// field added to Config gets its environment variable and flag without further code.
var leaves = sync.OnceValue(func() []leaf {
	var out []leaf
	walkLeaves(reflect.TypeFor[Config](), "", nil, &out)
	return out
})

// leavesByEnv indexes leaves by environment variable name.
var leavesByEnv = sync.OnceValue(func() map[string]leaf {
	m := make(map[string]leaf, len(leaves()))
	for _, l := range leaves() {
		m[l.env] = l
	}
	return m
})

func walkLeaves(t reflect.Type, prefix string, index []int, out *[]leaf) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			walkLeaves(f.Type, key, idx, out)
			continue
		}
		*out = append(*out, leaf{key: key, env: envName(key), index: idx, typ: f.Type})
	}
}

// jsonName is the key of a struct field, or "" when the field is not serialised.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return name
}

// envName derives a key's environment variable: TRACESTREAM_, then the key in upper case with
// dots and camelCase boundaries turned into underscores. An acronym stays one word:
// receivers.tls.clientCAFile is TRACESTREAM_RECEIVERS_TLS_CLIENT_CA_FILE.
func envName(key string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	r := []rune(key)
	for i, c := range r {
		switch {
		case c == '.':
			b.WriteByte('_')
			continue
		case i > 0 && unicode.IsUpper(c) && r[i-1] != '.':
			prev := r[i-1]
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

// field returns the settable value of l in c.
func (l leaf) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(l.index)
}

// set parses text as the value of l and stores it in c.
func (l leaf) set(c *Config, text string) error {
	return setText(l.field(c), text)
}

// setText parses text into v, by v's type. Lists are comma-separated; blanks around items are
// trimmed and empty items dropped, so "" is the empty list.
func setText(v reflect.Value, text string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("want a duration such as \"5s\" or \"100ms\", got %q", text)
		}
		v.Set(reflect.ValueOf(Duration{d}))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", text)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want an integer, got %q", text)
		}
		v.SetInt(n)
	case reflect.Uint32:
		n, err := strconv.ParseUint(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a non-negative integer below 2^32, got %q", text)
		}
		v.SetUint(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		v.Set(reflect.ValueOf(splitList(text)))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// splitList splits a comma-separated list.
func splitList(text string) []string {
	out := []string{}
	for item := range strings.SplitSeq(text, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// formatText is the inverse of setText, for flag defaults.
func formatText(v reflect.Value) string {
	if v.Type() == durationType {
		return v.Interface().(Duration).String()
	}
	if v.Kind() == reflect.Slice {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// typeName describes a key's type for flag usage and error messages.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint32:
		return "integer"
	case reflect.Slice:
		return "list"
	case reflect.Struct:
		return "mapping"
	}
	return t.String()
}

// suggest returns ` (did you mean "x"?)` when one of candidates is close to name: the same but for
// case, or at most two edits away.
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
