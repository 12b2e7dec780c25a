package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunReconcilesTenExporters runs the benchmark small: the real manager against envtest and
// redis-server reconciles 10 RedisTraceExporters, reads their lag, refreshes it every 2 s during
// the 5 s window, and exits cleanly on SIGTERM; the BENCH line holds every field `make bench`
// parses.
func TestRunReconcilesTenExporters(t *testing.T) {
	const (
		n       = 10
		refresh = 2 * time.Second
	)
	res, err := run(context.Background(), options{
		CRs: n, Namespaces: 3, Workers: 4, Window: 5 * time.Second, Refresh: refresh, Timeout: 3 * time.Minute,
		Log: testWriter{t},
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var summary strings.Builder
	res.WriteSummary(&summary)
	t.Log("\n" + summary.String())

	f := res.Final
	if f.Total != n || f.Reconciled != n {
		t.Errorf("%d of %d resources reconciled at the end (%d exist), want all", f.Reconciled, n, f.Total)
	}
	if f.RedisReachable != n {
		t.Errorf("RedisReachable=True on %d of %d, want all: the lag reads failed", f.RedisReachable, n)
	}
	if f.LagReported != n {
		t.Errorf("lag %d of %s/%s reported on %d of %d, want all", seedEntries-seedRead, streamKey, groupName, f.LagReported, n)
	}
	if res.ReconcileDuration <= 0 || res.ReconcileDuration < res.Latency.Max-time.Second {
		t.Errorf("reconcile duration %s (latency max %s), want positive and at least the slowest resource's", res.ReconcileDuration, res.Latency.Max)
	}
	if got := res.perCR(res.Requests.Total); got <= 0 {
		t.Errorf("API requests per resource = %v, want > 0", got)
	}
	if res.RSSBytes <= 0 || res.HWMBytes < res.RSSBytes {
		t.Errorf("manager VmRSS %d, VmHWM %d: want RSS > 0 and HWM >= RSS", res.RSSBytes, res.HWMBytes)
	}
	if res.CPUSeconds <= 0 {
		t.Errorf("manager CPU %vs during the reconciles, want > 0", res.CPUSeconds)
	}
	if res.RefreshPeriod != refresh {
		t.Errorf("refresh period %s, want spec.lag.refreshInterval %s", res.RefreshPeriod, refresh)
	}
	// Each resource is requeued once per refresh period and nothing else changes: more passes
	// than that mean something enqueues it again (a status write that never settles, say).
	passes := res.perCRMinute(sumValues(res.Steady.Reconciles))
	if limit := 1.5 * time.Minute.Seconds() / refresh.Seconds(); passes <= 0 || passes > limit {
		t.Errorf("%.1f steady-state passes per resource per minute, want some and at most %.0f (one per %s)", passes, limit, refresh)
	}
	for _, cmd := range []string{"xinfo|stream", "xinfo|groups"} {
		if res.Steady.RedisCommands[cmd] <= 0 {
			t.Errorf("no %s during the steady state: Redis commands %v", cmd, res.Steady.RedisCommands)
		}
	}
	if res.ManagerExitCode != 0 {
		t.Errorf("manager exit code %d after SIGTERM, want 0", res.ManagerExitCode)
	}
	if n := res.ManagerLog.Levels["error"]; n != 0 {
		t.Errorf("manager logged %d errors: %v", n, res.ManagerLog.Errors)
	}

	line := res.BenchLine()
	re := regexp.MustCompile(`^BENCH operatorscale crs=(\d+)((?: [a-z_]+=[0-9.]+)+)$`)
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("BENCH line %q does not parse", line)
	}
	if m[1] != strconv.Itoa(n) {
		t.Errorf("BENCH line crs=%s, want %d", m[1], n)
	}
	var keys []string
	for _, kv := range strings.Fields(m[2]) {
		k, v, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			t.Errorf("BENCH line %s=%q is not a number", k, v)
		}
	}
	want := "reconcile_s manager_rss_mb manager_hwm_mb api_requests_per_cr cpu_ms_per_cr refresh_period_s steady_cpu_ms_per_cr_min steady_api_requests_per_cr_min redis_cmds_per_cr_min"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("BENCH line fields %q, want %q", got, want)
	}
}

// TestParseMetrics reads the label escapes and value forms of the text format.
func TestParseMetrics(t *testing.T) {
	text := `# HELP rest_client_requests_total Number of HTTP requests.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:1",method="GET"} 7
rest_client_requests_total{code="201",host="127.0.0.1:1",method="POST"} 3
odd{msg="a \"quoted\", comma} and \\ slash"} 1.5e+06
workqueue_depth 0
`
	m, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.sum(restRequests); got != 10 {
		t.Errorf("sum = %v, want 10", got)
	}
	if got := m.by(restRequests, methodAndCode); got["GET 200"] != 7 || got["POST 201"] != 3 {
		t.Errorf("by method and code = %v", got)
	}
	if got := m.by("odd", func(l map[string]string) string { return l["msg"] }); got[`a "quoted", comma} and \ slash`] != 1.5e6 {
		t.Errorf("escaped label = %v", got)
	}
	if _, err := parseMetrics(`bad{x="unterminated} 1`); err == nil {
		t.Error("an unterminated label value parsed")
	}
}
