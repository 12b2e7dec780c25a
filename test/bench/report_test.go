package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteBetweenMarkersKeepsTheProse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "performance.md")
	if err := os.WriteFile(path, []byte("# Performance\n\nintro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{"first results", "second results"} {
		if err := writeBetweenMarkers(path, doc); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(b, "\n## Analysis\nhand-written\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeBetweenMarkers(path, "third results"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	want := "# Performance\n\nintro\n\n" + beginMarker + "\nthird results\n" + endMarker + "\n## Analysis\nhand-written\n"
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}

func TestRatioIsTheMedianOfSameRoundRatios(t *testing.T) {
	k := runKey{"json", "grpc", 100}
	r := &report{
		opts:     options{formats: []string{"json"}, protocols: []string{"grpc"}, sizes: []int{100}, rounds: 3},
		exporter: map[runKey][]window{k: {{spansPerSec: 100}, {spansPerSec: 300}, {spansPerSec: 90}}},
		rb:       map[rbKey][]rbRun{{"json", 100}: {{xaddPerSec: 200}, {xaddPerSec: 400}, {xaddPerSec: 100}}},
	}
	// Same-round ratios 0.5, 0.75, 0.9: the median is 0.75, whereas the ratio of medians would be 0.5.
	if got := r.ratio(k); got != 0.75 {
		t.Fatalf("ratio %v, want 0.75", got)
	}
	if md := r.markdown(); !strings.Contains(md, "| json | grpc | 100 |") || !strings.Contains(md, "**0.75**") {
		t.Fatalf("the table does not show the run:\n%s", md)
	}
}

func TestParseBenchLine(t *testing.T) {
	out := "some log\nBENCH other a=1\nBENCH operatorscale crs=500 reconcile_s=12.5\n"
	got := parseBenchLine(out, "operatorscale")
	if got["crs"] != "500" || got["reconcile_s"] != "12.5" || len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	if parseBenchLine(out, "missing") != nil {
		t.Fatal("a missing line must give nil")
	}
}
