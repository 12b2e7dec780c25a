//go:build corpusgen

package otlpwire_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// TestWriteSeedCorpus regenerates the seed corpora (go test -tags corpusgen -run TestWriteSeedCorpus .). Seeds are checked in so that plain `go test` runs them
// and `go test -fuzz` starts from well-formed requests instead of from nothing.
func TestWriteSeedCorpus(t *testing.T) {
	traceJSON, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	small := Realistic(2)
	seeds := map[string]map[string][]byte{
		"FuzzValidate": {
			"full":              Marshal(Full()),
			"realistic":         Marshal(small),
			"empty":             {},
			"truncated":         Marshal(small)[:40],
			"bad-utf8-name":     inSpan(validTraceID, strField(5, "GET \xff/")),
			"short-trace-id":    inSpan(strField(1, "0123456789abcde"), validSpanID),
			"too-deep":          inSpan(msgField(9, attr("deep", nested(otlpwire.MaxValueDepth+1)))),
			"unknown-and-group": inSpan(validTraceID, varintField(40, 1), strField(42, "x"), cat(tag(44, 3), varintField(1, 1), tag(44, 4))),
		},
		"FuzzFromJSON": {
			"trace-json": traceJSON,
			"full":       otlpJSON(t, Full(), false, true),
			"escapes":    []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"q\"\u00e9\ud83d\ude00","kind":"SPAN_KIND_SERVER","attributes":[{"key":"d","value":{"doubleValue":"NaN"}}]}]}]}]}`),
			"unknown":    []byte(`{"x":[1,{"y":null}],"resourceSpans":[]}`),
		},
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
