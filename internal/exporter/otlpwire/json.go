package otlpwire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrInvalidJSON is the kind of the *Error that FromJSON returns for a body that is not
// OTLP/JSON: bad JSON syntax, a value of the wrong JSON type for its field, an id that is not hex.
var ErrInvalidJSON = errors.New("invalid OTLP/JSON")

// maxJSONDepth bounds the nesting of JSON objects and arrays, so that a body of a million '['
// cannot exhaust the stack. A request with values at MaxValueDepth needs about 140 levels.
const maxJSONDepth = 512

// FromJSON converts an OTLP/JSON ExportTraceServiceRequest (the OTLP/HTTP "application/json"
// body) to its protobuf encoding, which the rest of the exporter reads with this package.
//
// It follows the OTLP specification's JSON encoding: trace and span ids are hex (either case),
// enums are integers (their names are accepted too, as the collector does), 64-bit integers may be
// numbers or strings, bytes values are base64, field names are lowerCamelCase (the proto names
// are accepted too, as proto3's JSON mapping requires), null means "not set", and unknown fields
// are ignored. The output still needs Validate: FromJSON checks the JSON, not the OTLP rules
// (id lengths, value depth).
func FromJSON(body []byte) ([]byte, error) { return AppendFromJSON(nil, body) }

// AppendFromJSON is FromJSON appending to dst, so that callers can reuse a buffer.
func AppendFromJSON(dst, body []byte) ([]byte, error) {
	d := jsonDecoder{in: body, out: dst}
	e := d.message(descRequest)
	if e == nil {
		d.ws()
		if d.pos < len(d.in) {
			e = d.fail("unexpected %q after the request object", d.in[d.pos])
		}
	}
	if e != nil {
		return dst, finish(e)
	}
	return d.out, nil
}

// finish turns the path elements collected while e travelled up into its Path.
func finish(e *Error) error {
	for i := len(e.rev) - 1; i >= 0; i-- {
		if e.Path != "" {
			e.Path += "."
		}
		e.Path += e.rev[i]
	}
	e.rev = nil
	return e
}

// jsonDecoder converts JSON to protobuf in one pass: each field is written as it is read, and the
// length of a nested message is patched in once its end is reached.
type jsonDecoder struct {
	in    []byte
	pos   int
	out   []byte
	depth int
	str   []byte // unescaped string, when the input one has escapes
	bin   []byte // decoded base64
}

func (d *jsonDecoder) fail(format string, args ...any) *Error {
	return fail(ErrInvalidJSON, d.pos, format, args...)
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.in) {
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.ws()
	if d.pos < len(d.in) {
		return d.in[d.pos]
	}
	return 0
}

func (d *jsonDecoder) literal(lit string) bool {
	if bytes.HasPrefix(d.in[d.pos:], []byte(lit)) {
		d.pos += len(lit)
		return true
	}
	return false
}

func (d *jsonDecoder) enter() *Error {
	if d.depth++; d.depth > maxJSONDepth {
		return d.fail("more than %d levels of nesting", maxJSONDepth)
	}
	return nil
}

// message reads a JSON object as message desc and appends its fields to out.
func (d *jsonDecoder) message(desc *msgDesc) *Error {
	if c := d.peek(); c != '{' {
		return d.fail("want an object for %s, found %s", desc.name, describe(c))
	}
	if empty, err := d.open('}'); empty || err != nil {
		return err
	}
	for {
		key, err := d.key()
		if err != nil {
			return err
		}
		num, f := desc.byJSONName(key)
		if f == nil {
			// Receivers must ignore unknown fields (OTLP specification).
			err = d.skip()
		} else {
			err = d.field(num, f)
		}
		if err != nil {
			return err
		}
		if more, err := d.next('}', desc.name); !more {
			return err
		}
	}
}

// open steps into the object or array at pos (the caller checked its opening byte) and reports
// whether it is empty, in which case it has read its closer too.
func (d *jsonDecoder) open(closer byte) (empty bool, err *Error) {
	if err := d.enter(); err != nil {
		return false, err
	}
	d.pos++
	if d.peek() == closer {
		d.pos++
		d.depth--
		return true, nil
	}
	return false, nil
}

// key reads an object's field name and the ':' after it.
func (d *jsonDecoder) key() ([]byte, *Error) {
	if c := d.peek(); c != '"' {
		return nil, d.fail("want a field name, found %s", describe(c))
	}
	key, err := d.readString()
	if err != nil {
		return nil, err
	}
	if c := d.peek(); c != ':' {
		return nil, d.fail("want ':' after a field name, found %s", describe(c))
	}
	d.pos++
	return key, nil
}

// next reads what follows a member of an object or array: ',' (more follows) or its closer (the
// end: it is left). in names the message being read, for the error, or is empty.
func (d *jsonDecoder) next(closer byte, in string) (more bool, err *Error) {
	switch c := d.peek(); c {
	case ',':
		d.pos++
		return true, nil
	case closer:
		d.pos++
		d.depth--
		return false, nil
	default:
		return false, d.notNext(closer, in, c)
	}
}

// notNext is the error of next, kept out of it so that next stays small.
func (d *jsonDecoder) notNext(closer byte, in string, found byte) *Error {
	if in != "" {
		return d.fail("want ',' or '%c' in %s, found %s", closer, in, describe(found))
	}
	return d.fail("want ',' or '%c', found %s", closer, describe(found))
}

// withPath records that e, if any, happened inside elem.
func withPath(e *Error, elem string) *Error {
	if e != nil {
		e.rev = append(e.rev, elem)
	}
	return e
}

// field reads the value of field num (described by f).
func (d *jsonDecoder) field(num protowire.Number, f *fieldDesc) *Error {
	d.ws()
	if d.literal("null") {
		return nil // proto3 JSON: null is the default value
	}
	if !f.repeated {
		return withPath(d.value(num, f), f.jsonName)
	}
	if c := d.peek(); c != '[' {
		return withPath(d.fail("want an array, found %s", describe(c)), f.jsonName)
	}
	if empty, err := d.open(']'); empty || err != nil {
		return err
	}
	for i := 0; ; i++ {
		if err := d.value(num, f); err != nil {
			return withPath(err, f.jsonName+"["+strconv.Itoa(i)+"]")
		}
		if more, err := d.next(']', ""); !more {
			return withPath(err, f.jsonName)
		}
	}
}

// value reads one value of field num and appends it.
func (d *jsonDecoder) value(num protowire.Number, f *fieldDesc) *Error {
	d.ws()
	switch f.kind {
	case kindMessage:
		d.out = protowire.AppendTag(d.out, num, protowire.BytesType)
		at := len(d.out)
		d.out = append(d.out, 0)
		if err := d.message(f.msg); err != nil {
			return err
		}
		d.patchLength(at)
		return nil
	case kindString, kindBytes, kindTraceID, kindSpanID:
		return d.stringValue(num, f)
	case kindBool:
		return d.boolValue(num, f)
	case kindDouble:
		return d.doubleValue(num, f)
	default:
		return d.integerValue(num, f)
	}
}

// stringValue reads a string of field num: text, base64 bytes or a hex id.
func (d *jsonDecoder) stringValue(num protowire.Number, f *fieldDesc) *Error {
	start := d.pos
	if c := d.peek(); c != '"' {
		return d.fail("want a string, found %s", describe(c))
	}
	s, err := d.readString()
	if err != nil {
		return err
	}
	if len(s) == 0 && !f.oneof && !f.repeated {
		return nil // proto3: an empty string is the default, not written
	}
	switch f.kind {
	case kindString:
		d.out = protowire.AppendTag(d.out, num, protowire.BytesType)
		d.out = protowire.AppendBytes(d.out, s)
		return nil
	case kindBytes:
		return d.base64Value(num, s, start)
	default:
		return d.hexIDValue(num, s, start)
	}
}

// base64Value appends bytes field num, given in base64 (standard or URL-safe, padded or not) as
// proto3's JSON mapping allows.
func (d *jsonDecoder) base64Value(num protowire.Number, s []byte, start int) *Error {
	enc := base64.StdEncoding
	if bytes.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	var derr error
	if d.bin, derr = enc.AppendDecode(d.bin[:0], s); derr != nil {
		return fail(ErrInvalidJSON, start, "bytes value is not base64: %v", derr)
	}
	d.out = protowire.AppendTag(d.out, num, protowire.BytesType)
	d.out = protowire.AppendBytes(d.out, d.bin)
	return nil
}

// hexIDValue appends id field num, given in hex, not base64 (OTLP/JSON's deviation from proto3's
// JSON mapping).
func (d *jsonDecoder) hexIDValue(num protowire.Number, s []byte, start int) *Error {
	if len(s)%2 != 0 {
		return fail(ErrInvalidJSON, start, "id %q is not hex: odd length", s)
	}
	d.out = protowire.AppendTag(d.out, num, protowire.BytesType)
	d.out = protowire.AppendVarint(d.out, uint64(len(s)/2))
	var derr error
	if d.out, derr = hex.AppendDecode(d.out, s); derr != nil {
		return fail(ErrInvalidJSON, start, "id %q is not hex: %v", s, derr)
	}
	return nil
}

func (d *jsonDecoder) boolValue(num protowire.Number, f *fieldDesc) *Error {
	var b bool
	switch {
	case d.literal("true"):
		b = true
	case d.literal("false"):
	default:
		return d.fail("want true or false, found %s", describe(d.peek()))
	}
	if b || f.oneof {
		d.out = protowire.AppendTag(d.out, num, protowire.VarintType)
		d.out = protowire.AppendVarint(d.out, protowire.EncodeBool(b))
	}
	return nil
}

func (d *jsonDecoder) doubleValue(num protowire.Number, f *fieldDesc) *Error {
	x, err := d.readDouble()
	if err != nil {
		return err
	}
	if x != 0 || math.Signbit(x) || f.oneof {
		d.out = protowire.AppendTag(d.out, num, protowire.Fixed64Type)
		d.out = protowire.AppendFixed64(d.out, math.Float64bits(x))
	}
	return nil
}

// integerValue reads an integer or enum: a number, or a string holding a number (proto3 JSON
// writes 64-bit ones as strings), or for an enum its name.
func (d *jsonDecoder) integerValue(num protowire.Number, f *fieldDesc) *Error {
	start := d.pos
	tok, quoted, err := d.readNumberToken()
	if err != nil {
		return err
	}
	u, err := integer(tok, quoted, f, start)
	if err != nil || (u == 0 && !f.oneof) {
		return err
	}
	switch f.kind {
	case kindFixed32:
		d.out = protowire.AppendTag(d.out, num, protowire.Fixed32Type)
		d.out = protowire.AppendFixed32(d.out, uint32(u))
	case kindFixed64:
		d.out = protowire.AppendTag(d.out, num, protowire.Fixed64Type)
		d.out = protowire.AppendFixed64(d.out, u)
	default:
		d.out = protowire.AppendTag(d.out, num, protowire.VarintType)
		d.out = protowire.AppendVarint(d.out, u)
	}
	return nil
}

// integer is the value of tok, read at start, for integer field f, as the bits it is written with.
func integer(tok []byte, quoted bool, f *fieldDesc, start int) (uint64, *Error) {
	if f.kind != kindInt32 && f.kind != kindInt64 {
		bits := 64
		if f.kind == kindUint32 || f.kind == kindFixed32 {
			bits = 32
		}
		v, ok := parseUint(tok, bits)
		if !ok {
			return 0, fail(ErrInvalidJSON, start, "%q is not an unsigned integer of %d bits", tok, bits)
		}
		return v, nil
	}
	bits := 64
	if f.kind == kindInt32 {
		bits = 32
	}
	v, ok := parseInt(tok, bits)
	if !ok {
		e, isEnum := f.enum[string(tok)]
		if !isEnum || !quoted {
			return 0, fail(ErrInvalidJSON, start, "%q is not an integer of %d bits", tok, bits)
		}
		v = int64(e)
	}
	return uint64(v), nil
}

// patchLength writes the length of the message that starts after the one-byte placeholder at out[at].
func (d *jsonDecoder) patchLength(at int) {
	n := len(d.out) - at - 1
	if n < 0x80 {
		d.out[at] = byte(n)
		return
	}
	sz := protowire.SizeVarint(uint64(n))
	var pad [9]byte
	d.out = append(d.out, pad[:sz-1]...)
	copy(d.out[at+sz:], d.out[at+1:at+1+n])
	protowire.AppendVarint(d.out[:at], uint64(n))
}

func parseInt(tok []byte, bits int) (int64, bool) {
	if v, err := strconv.ParseInt(string(tok), 10, bits); err == nil {
		return v, true
	}
	x, ok := parseIntegralFloat(tok)
	if !ok || x < -math.Ldexp(1, bits-1) || x >= math.Ldexp(1, bits-1) {
		return 0, false
	}
	return int64(x), true
}

func parseUint(tok []byte, bits int) (uint64, bool) {
	if v, err := strconv.ParseUint(string(tok), 10, bits); err == nil {
		return v, true
	}
	x, ok := parseIntegralFloat(tok)
	if !ok || x < 0 || x >= math.Ldexp(1, bits) {
		return 0, false
	}
	return uint64(x), true
}

// parseIntegralFloat accepts integers written with a fraction or exponent ("1.0", "1e3"), as
// proto3's JSON mapping does.
func parseIntegralFloat(tok []byte) (float64, bool) {
	if !bytes.ContainsAny(tok, ".eE") || !validNumber(tok) {
		return 0, false
	}
	x, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || x != math.Trunc(x) {
		return 0, false
	}
	return x, true
}

// readDouble reads a number, or a string holding a number, "NaN", "Infinity" or "-Infinity".
func (d *jsonDecoder) readDouble() (float64, *Error) {
	start := d.pos
	tok, quoted, err := d.readNumberToken()
	if err != nil {
		return 0, err
	}
	if quoted {
		switch string(tok) {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
	}
	if !validNumber(tok) {
		return 0, fail(ErrInvalidJSON, start, "%q is not a number", tok)
	}
	x, perr := strconv.ParseFloat(string(tok), 64)
	if perr != nil {
		return 0, fail(ErrInvalidJSON, start, "%q is out of range for a double", tok)
	}
	return x, nil
}

// readNumberToken reads a JSON number, or a string (whose contents the caller checks).
func (d *jsonDecoder) readNumberToken() (tok []byte, quoted bool, err *Error) {
	c := d.peek()
	if c == '"' {
		s, err := d.readString()
		return s, true, err
	}
	start := d.pos
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.pos++
			continue
		}
		break
	}
	tok = d.in[start:d.pos]
	if !validNumber(tok) {
		d.pos = start
		return nil, false, d.fail("want a number, found %s", describe(c))
	}
	return tok, false, nil
}

// validNumber reports whether tok is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(tok []byte) bool {
	i := 0
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(tok) && tok[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(tok)
}

// readString reads a JSON string at pos and returns its contents: a slice of the input when it has
// no escapes, else of d.str (valid until the next call).
func (d *jsonDecoder) readString() ([]byte, *Error) {
	d.pos++ // the opening quote
	start := d.pos
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			d.pos++
			return d.in[start : d.pos-1], nil
		case c == '\\':
			d.str = append(d.str[:0], d.in[start:d.pos]...)
			return d.readEscapedString()
		case c < 0x20:
			return nil, d.fail("control character 0x%02x in a string", c)
		case c < utf8.RuneSelf:
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.in[d.pos:])
			if r == utf8.RuneError && n == 1 {
				return nil, d.fail("invalid UTF-8 in a string")
			}
			d.pos += n
		}
	}
	return nil, d.fail("unterminated string")
}

// readEscapedString goes on with a string readString found an escape in, from that escape,
// appending its contents to d.str.
func (d *jsonDecoder) readEscapedString() ([]byte, *Error) {
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			d.pos++
			return d.str, nil
		case c == '\\':
			if err := d.escape(); err != nil {
				return nil, err
			}
		case c < 0x20:
			return nil, d.fail("control character 0x%02x in a string", c)
		case c < utf8.RuneSelf:
			d.str = append(d.str, c)
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.in[d.pos:])
			if r == utf8.RuneError && n == 1 {
				return nil, d.fail("invalid UTF-8 in a string")
			}
			d.str = append(d.str, d.in[d.pos:d.pos+n]...)
			d.pos += n
		}
	}
	return nil, d.fail("unterminated string")
}

// escape reads the escape sequence at pos and appends the character it stands for to d.str.
func (d *jsonDecoder) escape() *Error {
	if d.pos+1 >= len(d.in) {
		return d.fail("unterminated string")
	}
	esc := d.in[d.pos+1]
	d.pos += 2
	switch esc {
	case '"', '\\', '/':
		d.str = append(d.str, esc)
	case 'b':
		d.str = append(d.str, '\b')
	case 'f':
		d.str = append(d.str, '\f')
	case 'n':
		d.str = append(d.str, '\n')
	case 'r':
		d.str = append(d.str, '\r')
	case 't':
		d.str = append(d.str, '\t')
	case 'u':
		r, ok := d.hex4()
		if !ok {
			return d.fail("bad \\u escape")
		}
		if utf16.IsSurrogate(r) {
			r = d.lowSurrogate(r)
		}
		d.str = utf8.AppendRune(d.str, r)
	default:
		d.pos -= 2
		return d.fail("bad escape \\%c", esc)
	}
	return nil
}

// lowSurrogate reads the \u escape that completes the surrogate pair high starts and returns the
// character they make. A pair is one character; a lone half becomes U+FFFD, as encoding/json does.
func (d *jsonDecoder) lowSurrogate(high rune) rune {
	save := d.pos
	if d.literal(`\u`) {
		if low, ok := d.hex4(); ok {
			if r := utf16.DecodeRune(high, low); r != utf8.RuneError {
				return r
			}
		}
	}
	d.pos = save
	return utf8.RuneError
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.in) {
		return 0, false
	}
	var r rune
	for _, c := range d.in[d.pos : d.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// skip reads and discards any JSON value (of an unknown field), checking its syntax.
func (d *jsonDecoder) skip() *Error {
	switch d.peek() {
	case '{':
		return d.skipObject()
	case '[':
		return d.skipArray()
	case '"':
		_, err := d.readString()
		return err
	case 't', 'f', 'n':
		if d.literal("true") || d.literal("false") || d.literal("null") {
			return nil
		}
		return d.fail("unknown literal")
	default:
		_, _, err := d.readNumberToken()
		return err
	}
}

func (d *jsonDecoder) skipObject() *Error {
	if empty, err := d.open('}'); empty || err != nil {
		return err
	}
	for {
		if _, err := d.key(); err != nil {
			return err
		}
		if err := d.skip(); err != nil {
			return err
		}
		if more, err := d.next('}', ""); !more {
			return err
		}
	}
}

func (d *jsonDecoder) skipArray() *Error {
	if empty, err := d.open(']'); empty || err != nil {
		return err
	}
	for {
		if err := d.skip(); err != nil {
			return err
		}
		if more, err := d.next(']', ""); !more {
			return err
		}
	}
}

// describe names a byte found where something else was expected.
func describe(c byte) string {
	if c == 0 {
		return "the end of the body"
	}
	return strconv.QuoteRune(rune(c))
}
