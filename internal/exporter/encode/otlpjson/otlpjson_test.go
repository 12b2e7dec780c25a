package otlpjson

import (
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

func TestAppendStringEscapesWhatJSONAndJavaScriptRequire(t *testing.T) {
	tests := map[string]struct {
		in, want string
	}{
		"plain ASCII is written as it is":        {"GET /api/items", `"GET /api/items"`},
		"quotes and backslashes are escaped":     {`a"b\c`, `"a\"b\\c"`},
		"newline, return and tab are short":      {"a\nb\rc\td", `"a\nb\rc\td"`},
		"other control characters are \\u00XX":   {"\x00\x01\x1f\b\f", `"\u0000\u0001\u001f\u0008\u000c"`},
		"multi-byte UTF-8 is written as it is":   {"é世😀", `"é世😀"`},
		"U+2028 and U+2029 are escaped":          {"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		"each invalid UTF-8 byte becomes U+FFFD": {"a\xff\xfeb", `"a\ufffd\ufffdb"`},
		"a cut multi-byte sequence is replaced":  {"x\xe4\xb8", `"x\ufffd\ufffd"`},
		"the empty string is two quotes":         {"", `""`},
		"DEL is not a control character in JSON": {"\x7f", "\"\x7f\""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := string(AppendString([]byte("prefix"), []byte(tc.in)))
			if got != "prefix"+tc.want {
				t.Errorf("AppendString(%q) = %s, want %s", tc.in, got[len("prefix"):], tc.want)
			}
			var back string
			if err := json.Unmarshal([]byte(tc.want), &back); err != nil {
				t.Fatalf("%s is not a JSON string: %v", tc.want, err)
			}
		})
	}
}

// TestAppendStringReadsBackAsItsInput checks every byte value and a few runes: for valid UTF-8
// the JSON text decodes to the input.
func TestAppendStringReadsBackAsItsInput(t *testing.T) {
	var in []byte
	for c := 0; c < 0x80; c++ {
		in = append(in, byte(c))
	}
	in = append(in, "ü€𝄞\u2028\u2029\ufeff"...)
	var back string
	if err := json.Unmarshal(AppendString(nil, in), &back); err != nil {
		t.Fatalf("AppendString(all ASCII and some runes) is not JSON: %v", err)
	}
	if back != string(in) {
		t.Errorf("read back %q, want %q", back, in)
	}
}

func TestAppendFloatWritesNumbersAsEncodingJSONDoes(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 2.5, 1e-6, 1e-7, 123456789, 1e20, 1e21, 1.5e300, -3.25e-10, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendFloat(nil, f, false, false); string(got) != string(want) {
			t.Errorf("AppendFloat(%v) = %s, want %s (encoding/json)", f, got, want)
		}
	}
}

func TestAppendFloatKeepsTypeAndNamesSpecialValues(t *testing.T) {
	tests := map[string]struct {
		f                      float64
		keepType, quoteSpecial bool
		want                   string
	}{
		"an integral double keeps a .0 when asked":      {3, true, false, "3.0"},
		"an integral double is an integer otherwise":    {3, false, false, "3"},
		"a fraction needs no .0":                        {3.5, true, false, "3.5"},
		"exponent notation needs no .0":                 {1e21, true, false, "1e+21"},
		"negative zero keeps its sign":                  {math.Copysign(0, -1), true, false, "-0.0"},
		"NaN is named":                                  {math.NaN(), false, false, "NaN"},
		"NaN is quoted when asked":                      {math.NaN(), true, true, `"NaN"`},
		"positive infinity is Infinity":                 {math.Inf(1), false, true, `"Infinity"`},
		"negative infinity is -Infinity":                {math.Inf(-1), false, false, "-Infinity"},
		"a small exponent loses its leading zero digit": {1e-7, true, false, "1e-7"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := string(AppendFloat(nil, tc.f, tc.keepType, tc.quoteSpecial)); got != tc.want {
				t.Errorf("AppendFloat(%v, %v, %v) = %s, want %s", tc.f, tc.keepType, tc.quoteSpecial, got, tc.want)
			}
		})
	}
}

func TestAppendHexAndBase64(t *testing.T) {
	b := []byte{0x00, 0x1f, 0xab, 0xff}
	if got := string(AppendHex([]byte("x"), b)); got != "x001fabff" {
		t.Errorf("AppendHex = %s, want x001fabff (lowercase)", got)
	}
	if got := string(AppendBase64(nil, []byte("hi"))); got != "aGk=" {
		t.Errorf("AppendBase64 = %s, want aGk= (standard, padded)", got)
	}
}

// attributesOf is a view of kvs, read from their protobuf encoding as the encoders read them.
func attributesOf(t testing.TB, kvs []*commonpb.KeyValue) otlpwire.Attributes {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: kvs},
	}}}
	for rs := range otlpwire.NewTraces(otlpwiretest.Marshal(req)).ResourceSpans() {
		return rs.Resource().Attributes()
	}
	t.Fatal("the request has no ResourceSpans")
	return otlpwire.Attributes{}
}

func TestAppendObjectWritesEveryValueType(t *testing.T) {
	w := otlpwiretest.KV
	a := attributesOf(t, []*commonpb.KeyValue{
		w("s", otlpwiretest.Str("x\"y")),
		w("b", otlpwiretest.Bool(true)),
		w("i", otlpwiretest.Int(-42)),
		w("big", otlpwiretest.Int(math.MaxInt64)),
		w("d", otlpwiretest.Double(2)),
		w("nan", otlpwiretest.Double(math.NaN())),
		w("bytes", otlpwiretest.Bytes([]byte("hi"))),
		w("arr", otlpwiretest.Array(otlpwiretest.Str("a"), otlpwiretest.Int(1), otlpwiretest.Array())),
		w("kv", otlpwiretest.KVList(w("in", otlpwiretest.Str("x")), w("deep", otlpwiretest.KVList()))),
		w("empty", &commonpb.AnyValue{}),
		w("dup", otlpwiretest.Int(1)),
		w("dup", otlpwiretest.Int(2)),
	})
	want := `{"s":"x\"y","b":true,"i":-42,"big":9223372036854775807,"d":2.0,"nan":"NaN","bytes":"aGk=",` +
		`"arr":["a",1,[]],"kv":{"in":"x","deep":{}},"empty":null,"dup":1,"dup":2}`
	got := AppendObject(nil, a)
	if string(got) != want {
		t.Errorf("AppendObject =\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) {
		t.Errorf("AppendObject wrote invalid JSON: %s", got)
	}
	if got := string(AppendObject(nil, attributesOf(t, nil))); got != "{}" {
		t.Errorf("AppendObject(no attributes) = %s, want {}", got)
	}
}

// TestAppendObjectIsValidJSONForEveryAttributeOfFull covers the values of the test corpus
// (unicode keys, an empty key, nested lists): whatever they hold, the text is JSON.
func TestAppendObjectIsValidJSONForEveryAttributeOfFull(t *testing.T) {
	a := attributesOf(t, otlpwiretest.AllTypes())
	got := AppendObject(nil, a)
	var back map[string]any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("AppendObject(AllTypes) is not JSON: %v\n%s", err, got)
	}
	if back["ключ \"q\""] != "unicode key" || back[""] != "empty key" {
		t.Errorf("keys not read back: %v", back)
	}
}

func TestAppendingAnObjectDoesNotAllocate(t *testing.T) {
	a := attributesOf(t, otlpwiretest.AllTypes())
	dst := make([]byte, 0, 64<<10)
	if n := testing.AllocsPerRun(100, func() { dst = AppendObject(dst[:0], a) }); n != 0 {
		t.Errorf("AppendObject allocates %v times per call into a large enough buffer, want 0", n)
	}
}

// TestAppendStringEscapesEveryByteAtEveryPosition checks the eight-bytes-at-once path of
// AppendString against encoding/json: each byte value at each position of a 17-byte ASCII
// string (two words and one more byte), so that every byte of a word is tested.
func TestAppendStringEscapesEveryByteAtEveryPosition(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			s := []byte("abcdefghijklmnopq")
			s[pos] = byte(c)
			got := AppendString(nil, s)
			if c >= utf8.RuneSelf {
				// A lone byte of 0x80 or above is invalid UTF-8: U+FFFD, escaped.
				want := `"` + string(s[:pos]) + `\ufffd` + string(s[pos+1:]) + `"`
				if string(got) != want {
					t.Fatalf("byte 0x%02x at %d: %s, want %s", c, pos, got, want)
				}
				continue
			}
			var back string
			if err := json.Unmarshal(got, &back); err != nil || back != string(s) {
				t.Fatalf("byte 0x%02x at %d: %s reads back as %q (%v)", c, pos, got, back, err)
			}
			if safe := c >= 0x20 && c != '"' && c != '\\'; safe != (len(got) == len(s)+2) {
				t.Fatalf("byte 0x%02x at %d: %s (escaped: %v, want %v)", c, pos, got, !safe, safe)
			}
		}
	}
}
