//go:build corpusgen

package encode_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

// TestWriteSeedCorpus regenerates the seed corpora (go test -tags corpusgen -run TestWriteSeedCorpus .).
func TestWriteSeedCorpus(t *testing.T) {
	traceJSON, err := os.ReadFile("../otlpwire/testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	tracePB, err := otlpwire.FromJSON(traceJSON)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string]map[string]string{
		"FuzzKeyTemplate": {
			"hash-tag":   "traces:{{{service.name}}}",
			"two":        "t:{tenant}:{service.name}",
			"literal":    "a{{b}}c",
			"unclosed":   "t:{x",
			"stray":      "t}",
			"empty":      "{}",
			"nested":     "{a{b}}",
			"plain":      "traces",
			"unicode":    "трасы:{сервис}",
			"many-brace": "{{{{{{x}}}}}}",
		},
		"FuzzEncodeJSON": {
			"full":       string(Marshal(Full())),
			"realistic":  string(Marshal(Realistic(2))),
			"trace-json": string(tracePB),
			"template":   string(Marshal(templateRequest())),
		},
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		typ := "[]byte"
		if target == "FuzzKeyTemplate" {
			typ = "string"
		}
		for name, v := range files {
			content := fmt.Sprintf("go test fuzz v1\n%s(%s)\n", typ, strconv.Quote(v))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
