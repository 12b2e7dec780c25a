package telemetry_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// documented reads the metric table of docs/operations.md: each metric's type and label names.
func documented(t *testing.T) map[string]metric {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(tracestream_exporter_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")
	firstName := regexp.MustCompile("`([a-z_]+)`")
	out := map[string]metric{}
	for _, line := range strings.Split(string(doc), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for _, part := range strings.Split(m[3], ";") { // "`protocol`: `grpc`, `http`; `reason`"
			if l := firstName.FindStringSubmatch(part); l != nil {
				labels = append(labels, l[1])
			}
		}
		out[m[1]] = metric{typ: m[2], labels: labels}
	}
	if len(out) < 20 {
		t.Fatalf("found %d metrics in docs/operations.md's table: has its format changed?", len(out))
	}
	return out
}

type metric struct {
	typ    string
	labels []string
}

// scrape reads /metrics: each exporter metric's type, and the label names of its samples.
func scrape(t *testing.T, h http.Handler) map[string]metric {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	sample := regexp.MustCompile(`^(tracestream_exporter_[a-z_]+?)(_bucket|_sum|_count)?(\{[^}]*\})? `)
	label := regexp.MustCompile(`([a-z_]+)="`)
	out := map[string]metric{}
	sc := bufio.NewScanner(io.Reader(rec.Body))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "tracestream_exporter_") {
			out[f[2]] = metric{typ: f[3]}
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		if _, ok := out[name]; !ok {
			name += m[2] // a counter or gauge whose name ends like a histogram's series
		}
		got := out[name]
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			if l[1] != "le" && !contains(got.labels, l[1]) {
				got.labels = append(got.labels, l[1])
			}
		}
		out[name] = got
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type budget struct{}

func (budget) Used() int64    { return 1 }
func (budget) Limit() int64   { return 2 }
func (budget) Refused() int64 { return 3 }

// Every metric the operations guide documents is exposed, with its type and its labels, and
// nothing undocumented is: the table is what dashboards and alerts are written against.
func TestEveryDocumentedMetricIsExposedWithItsLabels(t *testing.T) {
	tel := telemetry.New()
	n := func() int64 { return 1 }
	tel.WatchQueue(func() telemetry.QueueStats { return telemetry.QueueStats{} })
	tel.WatchMemory(budget{})
	tel.WatchGRPCBuffered(n, 1, n)
	tel.WatchStreamKeys(func() (int, int64) { return 1, 1 }, 1)
	for _, protocol := range []string{"grpc", "http"} {
		tel.WatchConnections(protocol, n)
		tel.WatchEvictedConnections(protocol, n)
	}
	tel.WatchAdminConnections(n, n)
	// Labelled series appear once they have a value.
	tel.Received("grpc", 1)
	tel.Failed(telemetry.FailCanceled, 1)
	tel.Dropped(telemetry.DropRejected, 1)
	tel.RedisError(redisconn.ClassTimeout, 1)
	tel.Refused("http", "canceled")
	tel.BatchSize.Observe(1)
	tel.PipelineTime.Observe(0.001)

	want, got := documented(t), scrape(t, tel.Handler(nil))
	for name, d := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s is documented and not exposed", name)
		case g.typ != d.typ:
			t.Errorf("%s is a %s, documented as a %s", name, g.typ, d.typ)
		case strings.Join(g.labels, ",") != strings.Join(d.labels, ","):
			t.Errorf("%s has labels %q, documented %q", name, g.labels, d.labels)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is exposed and not documented in docs/operations.md", name)
		}
	}
}

// A failure is counted under its label, and /status sums every class and remembers the last
// Redis error's class by its label.
func TestFailuresAndRedisErrorsAreCountedByLabel(t *testing.T) {
	tel := telemetry.New()
	tel.Failed(telemetry.FailCanceled, 3)
	tel.Failed(redisconn.ClassAuth.Label(), 2)
	tel.RedisError(redisconn.ClassNoPerm, 1)
	body := scrapeText(t, tel.Handler(nil))
	for _, want := range []string{
		`tracestream_exporter_spans_failed_total{class="canceled"} 3`,
		`tracestream_exporter_spans_failed_total{class="auth"} 2`,
		`tracestream_exporter_redis_errors_total{class="noperm"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if s := tel.Snapshot(); s.SpansFailed != 5 || s.LastErrorClass != "noperm" {
		t.Errorf("/status has %d failed spans and last error class %q, want 5 and noperm", s.SpansFailed, s.LastErrorClass)
	}
}

func scrapeText(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// /status names the producer id the exporter writes with, and leaves it out while there is none.
func TestStatusShowsTheProducerID(t *testing.T) {
	tel := telemetry.New()
	if b, _ := json.Marshal(tel.Snapshot()); strings.Contains(string(b), "producerId") {
		t.Fatalf("/status without a producer id: %s", b)
	}
	tel.SetProducer("durable-2-9f3a1c7e")
	if b, _ := json.Marshal(tel.Snapshot()); !strings.Contains(string(b), `"producerId":"durable-2-9f3a1c7e"`) {
		t.Fatalf("/status %s does not name the producer id", b)
	}
}
