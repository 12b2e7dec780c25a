package encode_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/encode"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// invalidAtTheLastSpan returns a 100-span request whose last span, and nothing before it, is
// invalid in each of the ways otlpwire.Validate tells apart.
func invalidAtTheLastSpan(t testing.TB) map[string][]byte {
	t.Helper()
	realistic := func() *coltracepb.ExportTraceServiceRequest {
		req := Realistic(100) // of another service than batchWithOneEntry's, for its key
		req.ResourceSpans[0].Resource.Attributes[0] = KV("service.name", Str("refused"))
		return req
	}
	last := func(edit func(req []byte) []byte) []byte {
		return edit(Marshal(realistic()))
	}
	withName := func(name string) []byte {
		req := realistic()
		req.ResourceSpans[0].ScopeSpans[0].Spans[99].Name = name
		return Marshal(req)
	}
	cases := map[string][]byte{
		"a name that is not UTF-8": func() []byte {
			b := withName("bad ~ name")
			i := bytes.LastIndex(b, []byte("bad ~ name"))
			b[i+4] = 0xff
			return b
		}(),
		"a trace id of 15 bytes": func() []byte {
			req := realistic()
			req.ResourceSpans[0].ScopeSpans[0].Spans[99].TraceId = make([]byte, 15)
			return Marshal(req)
		}(),
		"a value nested too deeply": func() []byte {
			req := realistic()
			v := Str("leaf")
			for range otlpwire.MaxValueDepth {
				v = Array(v)
			}
			sp := req.ResourceSpans[0].ScopeSpans[0].Spans[99]
			sp.Attributes = append(sp.Attributes, KV("deep", v))
			return Marshal(req)
		}(),
		"a request cut in its last span": last(func(b []byte) []byte { return b[:len(b)-1] }),
	}
	for name, b := range cases {
		if _, err := otlpwire.Validate(b); err == nil || !strings.Contains(err.Error(), "spans[99]") && !strings.Contains(name, "cut") {
			t.Fatalf("%s: Validate = %v, want an error at spans[99] (the test input is not what it should be)", name, err)
		}
	}
	return cases
}

// TestAnInvalidRequestWritesNothing checks that a request found invalid only at its last span,
// after the other 99 have been encoded, leaves the batch as it was, takes no stream key, and
// gets otlpwire.Validate's error.
func TestAnInvalidRequestWritesNothing(t *testing.T) {
	for name, req := range invalidAtTheLastSpan(t) {
		_, want := otlpwire.Validate(req)
		for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
			e := newEncoder(t, format)
			batch := batchWithOneEntry(t, e)
			before := batch.Mark()
			r, err := e.EncodeRequest(batch, req, nil, 0)
			if err == nil || err.Error() != want.Error() || !errors.Is(err, errors.Unwrap(want)) {
				t.Errorf("%s, %s: error %v, want %v", name, format, err, want)
			}
			if batch.Mark() != before || batch.Len() != 1 || r != (encode.Result{}) {
				t.Errorf("%s, %s: %d entries and %d bytes after the request (%+v), want the batch as it was", name, format, batch.Len(), len(batch.Buf), r)
			}
			if live, _ := e.KeyStats(); live != 1 {
				t.Errorf("%s, %s: %d live keys, want 1 (the refused request's key not taken)", name, format, live)
			}
		}
	}
}

// batchWithOneEntry returns a batch holding the entry of one valid span, encoded by e.
func batchWithOneEntry(t *testing.T, e *encode.Encoder) *entry.Batch {
	t.Helper()
	var batch entry.Batch
	if r, err := e.EncodeRequest(&batch, Marshal(Realistic(1)), nil, 0); err != nil || r.Encoded != 1 || r.Spans != 1 {
		t.Fatalf("%+v, %v", r, err)
	}
	return &batch
}

// FuzzEncodeRequest checks EncodeRequest, which validates while it encodes, against
// otlpwire.Validate followed by EncodeTraces: the same error for an invalid request, with the
// batch left as it was; the same span count and the same entries for a valid one.
func FuzzEncodeRequest(f *testing.F) {
	for _, dir := range []string{"testdata/fuzz/FuzzEncodeJSON", "../otlpwire/testdata/fuzz/FuzzValidate"} {
		for _, seed := range readCorpus(f, dir) {
			f.Add(seed)
		}
	}
	for _, req := range invalidAtTheLastSpan(f) {
		f.Add(req)
	}
	encoders := map[string]*encode.Encoder{}
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		encoders[format] = newEncoder(f, format)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, verr := otlpwire.Validate(b)
		for format, e := range encoders {
			var got entry.Batch
			got.Buf = append(got.Buf, "before"...)
			r, err := e.EncodeRequest(&got, b, nil, 0)
			if verr != nil {
				if err == nil || err.Error() != verr.Error() || got.Len() != 0 || string(got.Buf) != "before" {
					t.Fatalf("%s: EncodeRequest = %v with %d entries, want %v and none", format, err, got.Len(), verr)
				}
				continue
			}
			var want entry.Batch
			want.Buf = append(want.Buf, "before"...)
			wr := e.EncodeTraces(&want, otlpwire.NewTraces(b), nil, 0)
			wr.Spans = spans
			if err != nil || !reflect.DeepEqual(r, wr) {
				t.Fatalf("%s: EncodeRequest = %+v, %v; want %+v", format, r, err, wr)
			}
			for i := range want.Len() {
				if string(got.Key(i)) != string(want.Key(i)) || !reflect.DeepEqual(fuzzedFields(t, &got, i), fuzzedFields(t, &want, i)) {
					t.Fatalf("%s: entry %d differs from EncodeTraces'", format, i)
				}
			}
		}
	})
}

// readCorpus reads the []byte inputs of a seed corpus directory of go test -fuzz.
func readCorpus(t testing.TB, dir string) [][]byte {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(dir, file.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, value, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(value, "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file.Name(), err)
		}
		seeds = append(seeds, []byte(s))
	}
	if len(seeds) == 0 {
		t.Fatalf("no seeds in %s", dir)
	}
	return seeds
}

// TestAResourceAfterItsSpansIsEncodedWithBoundedDepth: protobuf fields may come in any order, so
// the encoder meets a span before its resource has been validated when the resource follows the
// spans. A resource whose service.name nests a million arrays deep must then cost no deeper
// recursion than a valid value (the stack is capped for the test, so an unbounded recursion dies),
// and the request gets Validate's error.
func TestAResourceAfterItsSpansIsEncodedWithBoundedDepth(t *testing.T) {
	req := resourceAfterSpans(1_000_000)
	_, want := otlpwire.Validate(req)
	if !errors.Is(want, otlpwire.ErrTooDeep) {
		t.Fatalf("Validate = %v, want ErrTooDeep (the test input is not what it should be)", want)
	}
	defer debug.SetMaxStack(debug.SetMaxStack(64 << 20))
	for _, format := range []string{config.FormatJSON, config.FormatFlat, config.FormatOTLP} {
		e, err := encode.New(config.Stream{KeyTemplate: "traces:{service.name}", Format: format})
		if err != nil {
			t.Fatal(err)
		}
		var batch entry.Batch
		if _, err := e.EncodeRequest(&batch, req, nil, 0); err == nil || err.Error() != want.Error() || batch.Len() != 0 {
			t.Errorf("%s: EncodeRequest = %v with %d entries, want %v and none", format, err, batch.Len(), want)
		}
	}
}

// resourceAfterSpans is a request of one ResourceSpans whose scope_spans (one valid span) come
// before its resource, whose service.name is an array nested depth deep. Built from the inside
// out in linear time: each level is a tag and a length before the level inside it.
func resourceAfterSpans(depth int) []byte {
	leaf := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("x")) // AnyValue{string_value}
	sizes := make([]int, depth+1)
	sizes[0] = len(leaf)
	for i := 1; i <= depth; i++ {
		inner := sizes[i-1]
		arr := 1 + protowire.SizeVarint(uint64(inner)) + inner // ArrayValue{values: 1}
		sizes[i] = 1 + protowire.SizeVarint(uint64(arr)) + arr // AnyValue{array_value: 5}
	}
	value := make([]byte, 0, sizes[depth])
	for i := depth; i >= 1; i-- {
		inner := sizes[i-1]
		arr := 1 + protowire.SizeVarint(uint64(inner)) + inner
		value = protowire.AppendVarint(protowire.AppendTag(value, 5, protowire.BytesType), uint64(arr))
		value = protowire.AppendVarint(protowire.AppendTag(value, 1, protowire.BytesType), uint64(inner))
	}
	value = append(value, leaf...)
	kv := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("service.name"))
	kv = protowire.AppendBytes(protowire.AppendTag(kv, 2, protowire.BytesType), value)
	resource := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), kv)
	span := Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: Realistic(1).ResourceSpans})
	_, _, n := protowire.ConsumeField(span) // the ResourceSpans of a valid one-span request
	rs, _ := protowire.ConsumeBytes(span[protowire.SizeTag(1):n])
	var scopeSpans []byte
	for len(rs) > 0 {
		num, _, m := protowire.ConsumeField(rs)
		if num == 2 {
			scopeSpans = append(scopeSpans, rs[:m]...)
		}
		rs = rs[m:]
	}
	body := append(scopeSpans, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), resource)...)
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), body)
}

// TestATooLargeRequestTakesNoStreamKey: a request past maxBytes is refused as a whole, so the
// keys of its spans must not take places under stream.maxKeys (with no TTL they are never given
// back): a client sending too-large requests under many service names would otherwise push every
// later service into the overflow stream.
func TestATooLargeRequestTakesNoStreamKey(t *testing.T) {
	e, err := encode.New(config.Stream{KeyTemplate: "traces:{service.name}", Format: config.FormatJSON, MaxKeys: 10, OverflowKey: "traces:overflow"})
	if err != nil {
		t.Fatal(err)
	}
	req := Realistic(100)
	req.ResourceSpans[0].Resource.Attributes[0] = KV("service.name", Str("too-large"))
	var batch entry.Batch
	r, err := e.EncodeRequest(&batch, Marshal(req), nil, 4096)
	if err != nil || !r.TooLarge {
		t.Fatalf("EncodeRequest = %+v, %v; want TooLarge", r, err)
	}
	if live, _ := e.KeyStats(); live != 0 {
		t.Errorf("%d live keys after a request refused as too large, want 0", live)
	}
}
