package observability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

var exporterBin, managerBin string

func TestMain(m *testing.M) {
	bins, cleanup, err := child.BuildMains("tracestream-observability-", "../../cmd/exporter", "../../cmd/manager")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin, managerBin = bins[0], bins[1]
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// TestEveryMetricTheShippedFilesUseIsServed scrapes a real exporter (once without and once
// with a persistent queue, since the queue's metrics exist only with one) and a real manager,
// each exercised until the labelled counters the files use have samples (a counter vector with
// no child is absent from a scrape), and checks every metric name of every shipped query
// against what they serve: tracestream_exporter_* against the exporters, everything else against
// the manager. The names are the scraped sample names, so a histogram's _bucket, _sum and _count
// are checked as such. The autoscaling examples read the manager's gauges by their labels, so
// the labels they match on must be labels the manager serves too.
func TestEveryMetricTheShippedFilesUseIsServed(t *testing.T) {
	used := usedMetrics(t)
	if len(used) < 20 {
		t.Fatalf("the shipped files use %d metrics: %v", len(used), keys(used))
	}
	exporterServes := exporterMetrics(t)
	managerServes, managerLabels := managerMetrics(t)
	for name, where := range used {
		serves, who := managerServes, "the manager"
		if strings.HasPrefix(name, "tracestream_exporter_") {
			serves, who = exporterServes, "the exporter"
		}
		if !serves[name] {
			t.Errorf("%s does not serve %s, used by:\n  %s", who, name, strings.Join(where, "\n  "))
		}
	}
	for _, q := range exampleQueries(t) {
		sel, err := selectors(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
		for metric, matchers := range sel {
			for label := range matchers {
				if !managerLabels[metric][label] {
					t.Errorf("%s: the manager serves %s with the labels %v, not %s", q.where, metric, keys(managerLabels[metric]), label)
				}
			}
		}
	}
}

// exporterMetrics runs the exporter binary twice against a real redis-server, sends spans that
// are exported, dropped as invalid, rejected by Redis (WRONGTYPE) and refused (malformed), then
// stops Redis and sends until spans fail; and returns the union of the sample names both scrapes
// served.
func exporterMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}

	queued := redistest.Standalone(t)
	e := startExporter(t, queued.Addr(), "--delivery.persistentQueue.directory="+t.TempDir())
	rs, _ := spanload.Spans("observability", 5)
	e.post(t, rs, http.StatusOK)
	wait.For(t, 20*time.Second, "the queued spans exported", func() error {
		return e.has(t, `tracestream_exporter_spans_exported_total 5`)
	})
	for n := range e.scrape(t) {
		names[n] = true
	}
	if !names["tracestream_exporter_queue_records"] {
		t.Fatalf("no queue metrics with a persistent queue: %v", slices.Sorted(maps.Keys(names)))
	}

	srv := redistest.Standalone(t)
	e = startExporter(t, srv.Addr(), "--delivery.requestTimeout=1s", "--delivery.stallTimeout=500ms")
	good, _ := spanload.Spans("observability", 3)
	e.post(t, good, http.StatusOK)
	invalid, _ := spanload.Spans("observability", 1)
	invalid[0].ScopeSpans[0].Spans[0].TraceId = nil
	e.post(t, invalid, http.StatusOK) // partial success
	rdb := srv.Client(t)
	if err := rdb.Set(context.Background(), "traces:wrongtype", "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rejected, _ := spanload.Spans("wrongtype", 1)
	e.post(t, rejected, http.StatusOK) // partial success
	resp, err := http.Post("http://"+e.http+"/v1/traces", "application/x-protobuf", strings.NewReader("not protobuf"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed request answered %d", resp.StatusCode)
	}
	srv.Stop()
	wait.For(t, 30*time.Second, "spans failing while Redis is down", func() error {
		rs, _ := spanload.Spans("observability", 1)
		e.post(t, rs, 0)
		return e.has(t, `tracestream_exporter_spans_failed_total{`)
	})
	for _, want := range []string{`tracestream_exporter_spans_dropped_total{reason="invalid"} 1`, `tracestream_exporter_spans_dropped_total{reason="rejected"} 1`,
		`tracestream_exporter_redis_errors_total{class="wrongtype"}`, `tracestream_exporter_requests_refused_total{protocol="http",reason="malformed"} 1`} {
		if err := e.has(t, want); err != nil {
			t.Error(err)
		}
	}
	for n := range e.scrape(t) {
		names[n] = true
	}
	return names
}

// managerMetrics runs the manager binary against envtest with one RedisTraceExporter whose lag
// streams hold a consumer group on a real redis-server, waits until the manager exports the
// resource's gauges, and returns the sample names it serves and the label names of each family.
func managerMetrics(t *testing.T) (names map[string]bool, labels map[string]map[string]bool) {
	t.Helper()
	ctx := context.Background()
	srv := redistest.Standalone(t)
	rdb := srv.Client(t)
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "traces:observability", Values: []string{"data", "{}"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XGroupCreate(ctx, "traces:observability", "readers", "0").Err(); err != nil {
		t.Fatal(err)
	}

	env := controlplane.Start(t)
	kc, err := env.KubeconfigFor("tracestream-manager", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	metrics := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "manager.log")
	startProcess(t, "manager", logPath, managerBin, "--kubeconfig", kubeconfig, "--metrics-bind-address", metrics,
		"--health-probe-bind-address", freeAddr(t), "--exporter-image", "tracestream/exporter:observability")

	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "observability"}}); err != nil {
		t.Fatal(err)
	}
	rte := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Namespace: "observability", Name: "dashboards"}}
	rte.Spec.Redis.Addresses = []string{srv.Addr()}
	rte.Spec.Lag.Streams = []string{"traces:observability"}
	if err := env.Client.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 60*time.Second, "the manager's gauges of the resource", func() error {
		body, err := get("http://" + metrics + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{
			`tracestream_redistraceexporter_ready{name="dashboards",namespace="observability"} 0`,
			`tracestream_redistraceexporter_stream_length{name="dashboards",namespace="observability",stream="traces:observability"} 1`,
			`tracestream_redistraceexporter_group_lag{group="readers",name="dashboards",namespace="observability",stream="traces:observability"} 1`,
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %s", want)
			}
		}
		names = sampleNames(body)
		labels, err = labelNames(body)
		return err
	})
	return names, labels
}

// exporter is one exporter process with its three listeners.
type exporter struct {
	http, admin string
}

func startExporter(t *testing.T, redisAddr string, extra ...string) *exporter {
	t.Helper()
	e := &exporter{http: freeAddr(t), admin: freeAddr(t)}
	args := append([]string{"--receivers.grpc.endpoint=" + freeAddr(t), "--receivers.http.endpoint=" + e.http,
		"--admin.endpoint=" + e.admin, "--redis.addresses=" + redisAddr}, extra...)
	startProcess(t, "exporter", filepath.Join(t.TempDir(), "exporter.log"), exporterBin, args...)
	wait.For(t, 20*time.Second, "the exporter ready", func() error {
		_, err := get("http://" + e.admin + "/readyz")
		return err
	})
	return e
}

// post sends spans as OTLP/HTTP protobuf and checks the status when want is not 0.
func (e *exporter) post(t *testing.T, rs []*tracepb.ResourceSpans, want int) {
	t.Helper()
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+e.http+"/v1/traces", "application/x-protobuf", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if want != 0 && resp.StatusCode != want {
		t.Errorf("POST /v1/traces: %d, want %d", resp.StatusCode, want)
	}
}

func (e *exporter) scrape(t *testing.T) map[string]bool {
	t.Helper()
	body, err := get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return sampleNames(body)
}

// has reports whether a line of the exporter's /metrics starts with prefix.
func (e *exporter) has(t *testing.T, prefix string) error {
	t.Helper()
	body, err := get("http://" + e.admin + "/metrics")
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			return nil
		}
	}
	return fmt.Errorf("no line %s in /metrics", prefix)
}

// sampleNames returns the metric names of the samples in a text exposition.
func sampleNames(body string) map[string]bool {
	names := map[string]bool{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// labelNames returns the label names of each metric family of a text exposition.
func labelNames(body string) (map[string]map[string]bool, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for name, f := range families {
		out[name] = map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				out[name][l.GetName()] = true
			}
		}
	}
	return out, nil
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), nil
}

// startProcess runs a binary with its output in logPath, killed when the test ends; the log is
// printed when the test failed.
func startProcess(t *testing.T, name, logPath, bin string, args ...string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := child.Start(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
