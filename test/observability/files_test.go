package observability

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/tracestream/tracestream/internal/testing/manifest"
)

const chart = "../../charts/tracestream"

func TestDashboardsAreGrafanaDashboards(t *testing.T) {
	uids := map[string]string{}
	for file, d := range loadDashboards(t) {
		t.Run(file, func(t *testing.T) {
			if d.UID == "" || d.Title == "" || d.SchemaVersion != 39 {
				t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and schema 39", d.UID, d.Title, d.SchemaVersion)
			}
			if other, ok := uids[d.UID]; ok {
				t.Errorf("uid %q is also %s's", d.UID, other)
			}
			uids[d.UID] = file
			vars := map[string]string{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v.Type
			}
			if vars["datasource"] != "datasource" || vars["namespace"] != "query" {
				t.Errorf("variables %v: want datasource (type datasource) and namespace (type query)", vars)
			}
			ids := map[int]bool{}
			var walk func([]panel)
			walk = func(ps []panel) {
				for _, p := range ps {
					if ids[p.ID] {
						t.Errorf("panel id %d twice", p.ID)
					}
					ids[p.ID] = true
					walk(p.Panels)
				}
			}
			walk(d.Panels)
			if len(ids) < 5 {
				t.Errorf("%d panels", len(ids))
			}
		})
	}
}

// TestEveryQueryParses parses every dashboard target, variable query and alert expression with
// the Prometheus parser, Grafana's variables substituted.
func TestEveryQueryParses(t *testing.T) {
	qs := allQueries(t)
	if len(qs) < 30 {
		t.Errorf("%d queries: the dashboards and rules lost some", len(qs))
	}
	for _, q := range qs {
		if _, err := promql.ParseExpr(q.expr); err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
		}
	}
}

// TestChartDashboardsAreTheDocsDashboards: docs/dashboards is the one source; the chart ships a
// copy because helm reads only files inside the chart.
func TestChartDashboardsAreTheDocsDashboards(t *testing.T) {
	docs, _ := filepath.Glob(filepath.Join(docsDashboards, "*.json"))
	inChart, _ := filepath.Glob(filepath.Join(chartDashboards, "*.json"))
	if len(docs) == 0 || len(docs) != len(inChart) {
		t.Fatalf("docs has %v, the chart %v: cp docs/dashboards/*.json charts/tracestream/files/dashboards/", docs, inChart)
	}
	for _, p := range docs {
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(chartDashboards, filepath.Base(p)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the chart's copy (%v): cp docs/dashboards/*.json charts/tracestream/files/dashboards/", p, err)
		}
	}
}

func TestChartShipsTheDashboards(t *testing.T) {
	t.Run("no ConfigMap by default", func(t *testing.T) {
		for _, u := range helmTemplate(t) {
			if u.GetKind() == "ConfigMap" {
				t.Errorf("ConfigMap %s rendered by default", u.GetName())
			}
		}
	})
	t.Run("one ConfigMap per dashboard, labelled for the Grafana sidecar, holding the file", func(t *testing.T) {
		cms := configMaps(helmTemplate(t, "--set", "dashboards.enabled=true"))
		docs, _ := filepath.Glob(filepath.Join(docsDashboards, "*.json"))
		if len(cms) != len(docs) {
			t.Fatalf("ConfigMaps %v for %v", keys(cms), docs)
		}
		for _, p := range docs {
			name := strings.TrimSuffix(filepath.Base(p), ".json")
			cm := cms["tracestream-dashboard-"+name]
			if cm == nil {
				t.Errorf("no ConfigMap for %s: %v", p, keys(cms))
				continue
			}
			if got := cm.GetLabels()["grafana_dashboard"]; got != "1" {
				t.Errorf("%s: label grafana_dashboard=%q", cm.GetName(), got)
			}
			want, _ := os.ReadFile(p)
			data, _, _ := unstructured.NestedString(cm.Object, "data", "tracestream-"+name+".json")
			if data != strings.TrimSuffix(string(want), "\n") {
				t.Errorf("%s: data differs from %s", cm.GetName(), p)
			}
		}
	})
	t.Run("the label, its value and the namespace are values", func(t *testing.T) {
		cms := configMaps(helmTemplate(t, "--set", "dashboards.enabled=true", "--set", "dashboards.label=team/dashboard",
			"--set-string", "dashboards.labelValue=tracing", "--set", "dashboards.namespace=monitoring"))
		for _, cm := range cms {
			if cm.GetLabels()["team/dashboard"] != "tracing" || cm.GetLabels()["grafana_dashboard"] != "" || cm.GetNamespace() != "monitoring" {
				t.Errorf("%s: namespace %s, labels %v", cm.GetName(), cm.GetNamespace(), cm.GetLabels())
			}
		}
	})
}

// TestChartRulesAreTheRulesFile: with its default values the chart's PrometheusRule holds the
// rules of docs/alerts, and the values change the thresholds, durations and severities.
func TestChartRulesAreTheRulesFile(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := normaliseRules(t, loadRules(t, b, rulesFile))
	t.Run("no PrometheusRule by default", func(t *testing.T) {
		if r := prometheusRule(t, helmTemplate(t)); r != nil {
			t.Errorf("PrometheusRule %s rendered by default", r.GetName())
		}
	})
	t.Run("the default values render the rules file", func(t *testing.T) {
		got := normaliseRules(t, chartRules(t, "--set", "prometheusRule.enabled=true"))
		if !reflect.DeepEqual(got, want) {
			gb, _ := yaml.Marshal(got)
			wb, _ := yaml.Marshal(want)
			t.Errorf("chart:\n%s\nrules file:\n%s", gb, wb)
		}
	})
	t.Run("thresholds, for and severity are values", func(t *testing.T) {
		got := normaliseRules(t, chartRules(t, "--set", "prometheusRule.enabled=true",
			"--set", "prometheusRule.rules.consumerGroupLagHigh.threshold=500",
			"--set", "prometheusRule.rules.consumerGroupLagHigh.for=1h",
			"--set-json", "prometheusRule.rules.spansFailing.threshold=0.05",
			"--set", "prometheusRule.rules.pipelineLatencyHigh.thresholdSeconds=2",
			"--set", "prometheusRule.rules.exporterNotReady.severity=page",
			"--set", "prometheusRule.rules.redisErrors.enabled=false"))
		lag := got["TracestreamConsumerGroupLagHigh"]
		if !strings.Contains(lag.Expr, "> 500") || lag.For != "1h" {
			t.Errorf("lag alert %+v", lag)
		}
		if !strings.Contains(got["TracestreamSpansFailing"].Expr, "> 0.05") {
			t.Errorf("failing alert %s", got["TracestreamSpansFailing"].Expr)
		}
		if !strings.Contains(got["TracestreamPipelineLatencyHigh"].Expr, "> 2") {
			t.Errorf("latency alert %s", got["TracestreamPipelineLatencyHigh"].Expr)
		}
		if got["TracestreamExporterNotReady"].Labels["severity"] != "page" {
			t.Errorf("not-ready alert labels %v", got["TracestreamExporterNotReady"].Labels)
		}
		if _, ok := got["TracestreamRedisErrors"]; ok || len(got) != len(want)-1 {
			t.Errorf("alerts %v after disabling TracestreamRedisErrors", keys(got))
		}
	})
	t.Run("a threshold that is not a number is refused", func(t *testing.T) {
		if _, err := helm(t, "template", "x", chart, "--set", "prometheusRule.rules.spansFailing.threshold=2"); err == nil ||
			!strings.Contains(err.Error(), "/prometheusRule/rules/spansFailing/threshold") {
			t.Errorf("a failing share of 2 rendered, or the error does not name it: %v", err)
		}
	})
}

// rule is an alert as compared: the expression printed by the parser, so layout does not count.
type rule struct {
	Group, Expr, For    string
	Labels, Annotations map[string]string
}

func normaliseRules(t *testing.T, groups *rulefmt.RuleGroups) map[string]rule {
	t.Helper()
	out := map[string]rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			e, err := promql.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			out[r.Alert] = rule{Group: g.Name, Expr: e.String(), For: r.For.String(), Labels: r.Labels, Annotations: r.Annotations}
		}
	}
	return out
}

// chartRules renders the chart's PrometheusRule and loads its spec as a rules file.
func chartRules(t *testing.T, args ...string) *rulefmt.RuleGroups {
	t.Helper()
	r := prometheusRule(t, helmTemplate(t, args...))
	if r == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	spec, _, _ := unstructured.NestedMap(r.Object, "spec")
	b, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return loadRules(t, b, "the chart's PrometheusRule")
}

func prometheusRule(t *testing.T, objs []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "PrometheusRule" {
			if found != nil {
				t.Fatalf("PrometheusRules %s and %s", found.GetName(), u.GetName())
			}
			found = u
		}
	}
	return found
}

func configMaps(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		if u.GetKind() == "ConfigMap" {
			out[u.GetName()] = u
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// helm runs HELM and returns its stdout; stderr is part of the error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		t.Fatal("HELM: not set; run the tests with make test (it installs helm)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func helmTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "tracestream", chart, "--namespace", "tracestream-system"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Decode(out)
	if err != nil {
		t.Fatalf("decoding rendered manifests: %v", err)
	}
	return objs
}
