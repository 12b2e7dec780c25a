package install

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// valuePaths returns the dotted path of every leaf of values.yaml: a scalar, a list, or an empty
// map (a map the user fills in, such as podLabels).
func valuePaths(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{prefix}
	}
	var out []string
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = append(out, valuePaths(p, child)...)
	}
	return out
}

// readmeKey matches a backticked key in the first column of the README's values table.
var readmeKey = regexp.MustCompile("`([^`]+)`")

// readmeKeys returns the keys the chart README's values table documents. A key may stand for
// every alert (`prometheusRule.rules.<alert>.for`), and `.x` after a key names its sibling x.
func readmeKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Values\n")
	if !ok {
		t.Fatal("the chart README has no Values section")
	}
	var keys []string
	for line := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		for _, m := range readmeKey.FindAllStringSubmatch(cells[1], -1) {
			k := m[1]
			if strings.HasPrefix(k, ".") && len(keys) > 0 {
				prev := keys[len(keys)-1]
				k = prev[:strings.LastIndex(prev, ".")] + k
			}
			keys = append(keys, k)
		}
	}
	return keys
}

// documents reports whether the README key k documents the value path p: k is p or a parent of
// it, each <...> segment of k standing for any one segment.
func documents(k, p string) bool {
	ks, ps := strings.Split(k, "."), strings.Split(p, ".")
	if len(ks) > len(ps) {
		return false
	}
	for i := range ks {
		wildcard := strings.HasPrefix(ks[i], "<") && strings.HasSuffix(ks[i], ">")
		if ks[i] != ps[i] && !wildcard {
			return false
		}
	}
	return true
}

// TestChartREADMEListsEveryValue: the values table of charts/tracestream/README.md documents
// every value of values.yaml, and documents no value that does not exist.
func TestChartREADMEListsEveryValue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	paths := valuePaths("", values)
	keys := readmeKeys(t)
	if len(paths) < 50 || len(keys) < 40 {
		t.Fatalf("%d values, %d README keys: the parsing lost some", len(paths), len(keys))
	}
	for _, p := range paths {
		if !slices.ContainsFunc(keys, func(k string) bool { return documents(k, p) }) {
			t.Errorf("values.yaml has %s; the chart README's values table does not list it", p)
		}
	}
	for _, k := range keys {
		if !slices.ContainsFunc(paths, func(p string) bool { return documents(k, p) }) {
			t.Errorf("the chart README lists %s, which values.yaml does not have", k)
		}
	}
}
