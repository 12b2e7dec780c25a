package encode_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

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
