// Package otlpjson appends OTLP attribute values as JSON text: the json stream format writes
// them, the flat format writes non-string values with them, and stream key templates render
// arrays and kvlists with them, so all three agree on the text of a value.
//
// Every function appends to dst and returns it, so that JSON is written straight into the
// caller's buffer with no intermediate values, no reflection and no allocation (encoding/json
// costs ~6 µs and 52 allocations per span on the reference machine).
package otlpjson

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// safeASCII marks the ASCII bytes that appear in a JSON string as themselves.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as a quoted JSON string. Control characters, quotes and backslashes are
// escaped, and so are U+2028 and U+2029 (valid JSON, but line terminators to JavaScript, as
// encoding/json does). Invalid UTF-8, which Validate rejects, becomes U+FFFD so that the output
// is valid JSON whatever the input.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && plainASCII8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// The SWAR masks of plainASCII8: a byte's high bit, and each byte value repeated eight times.
const (
	highBits = 0x8080808080808080
	ones     = 0x0101010101010101
)

// plainASCII8 reports whether the eight bytes of x (most strings' common case) all appear in a
// JSON string as themselves: ASCII, no control character, no quote, no backslash, testing the
// eight at once. For ASCII bytes the classic tricks are exact: (v - n) &^ v sets the high bit of
// some byte exactly when some byte of v is below n, and v = x ^ c has a zero byte exactly where x
// has byte c; a byte with its high bit set fails the test by itself.
func plainASCII8(x uint64) bool {
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	control := (x - ones*0x20) &^ x
	special := (quote-ones)&^quote | (backslash-ones)&^backslash
	return (x|control|special)&highBits == 0
}

// appendStr appends a constant (plain ASCII) as a JSON string.
func appendStr(dst []byte, s string) []byte {
	// Strings here are field names and constants: plain ASCII, no escaping needed.
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// AppendHex appends b in lowercase hex.
func AppendHex(dst, b []byte) []byte { return hex.AppendEncode(dst, b) }

// AppendBase64 appends b in standard base64 (with padding), as proto3's JSON mapping writes bytes.
func AppendBase64(dst, b []byte) []byte { return base64.StdEncoding.AppendEncode(dst, b) }

// AppendFloat appends f as JSON writes numbers: the shortest text that reads back as the same
// double, in plain notation between 1e-6 and 1e21 and in exponent notation outside (as
// encoding/json and JavaScript do). With keepType, an integral value gets a ".0" so that typed
// consumers (Python's json, for one) read it back as a double, not an int. NaN and the
// infinities have no JSON number: they are written as NaN, Infinity, -Infinity (proto3's JSON
// names), in quotes when quoteSpecial is set, so that the document stays valid JSON.
func AppendFloat(dst []byte, f float64, keepType, quoteSpecial bool) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		name := "NaN"
		if math.IsInf(f, 1) {
			name = "Infinity"
		} else if math.IsInf(f, -1) {
			name = "-Infinity"
		}
		if quoteSpecial {
			return appendStr(dst, name)
		}
		return append(dst, name...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7, as encoding/json writes it.
		if n := len(dst); n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	if keepType {
		for _, c := range dst[start:] {
			if c == '.' {
				return dst
			}
		}
		dst = append(dst, '.', '0')
	}
	return dst
}

// AppendValue appends an attribute value as JSON: strings, bools, ints (as numbers, not as
// OTLP/JSON's strings: consumers want to compare and sum them), doubles, bytes (base64 strings),
// arrays, kvlists (objects), empty values (null).
func AppendValue(dst []byte, v otlpwire.AnyValue) []byte { return appendValue(dst, v, 1) }

// AppendObject appends attributes as a JSON object. Keys are written in order; OTLP requires them
// to be unique, and duplicates are passed through rather than silently dropped.
func AppendObject(dst []byte, a otlpwire.Attributes) []byte { return appendObject(dst, a, 1) }

// appendValue is AppendValue for a value at depth (an attribute's value is at 1). Past
// otlpwire.MaxValueDepth it writes null and goes no deeper: validation refuses such a value, but
// the encoder may meet it first (a resource that follows its spans in the message), and the
// recursion must stay bounded whatever the request holds.
func appendValue(dst []byte, v otlpwire.AnyValue, depth int) []byte {
	if depth > otlpwire.MaxValueDepth {
		return append(dst, "null"...)
	}
	switch v.Type() {
	case otlpwire.ValueString:
		return AppendString(dst, v.Str())
	case otlpwire.ValueBool:
		return strconv.AppendBool(dst, v.Bool())
	case otlpwire.ValueInt:
		return strconv.AppendInt(dst, v.Int(), 10)
	case otlpwire.ValueDouble:
		return AppendFloat(dst, v.Double(), true, true)
	case otlpwire.ValueBytes:
		dst = append(dst, '"')
		dst = AppendBase64(dst, v.Bytes())
		return append(dst, '"')
	case otlpwire.ValueArray:
		dst = append(dst, '[')
		first := true
		for e := range v.Array().All() {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendValue(dst, e, depth+1)
		}
		return append(dst, ']')
	case otlpwire.ValueKVList:
		return appendObject(dst, v.KVList(), depth+1)
	}
	return append(dst, "null"...)
}

// appendObject is AppendObject for attributes whose values are at depth.
func appendObject(dst []byte, a otlpwire.Attributes, depth int) []byte {
	dst = append(dst, '{')
	first := true
	for kv := range a.All() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendString(dst, kv.Key)
		dst = append(dst, ':')
		dst = appendValue(dst, kv.Value, depth)
	}
	return append(dst, '}')
}
