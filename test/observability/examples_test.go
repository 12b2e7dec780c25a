package observability

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/tracestream/tracestream/internal/testing/manifest"
)

const (
	// autoscalingExamples scale a consumer Deployment on a group's lag (KEDA with the Prometheus
	// or the redis-streams scaler, or an HPA on an External metric).
	autoscalingExamples = "../../examples/autoscaling"
	// adapterValues is the one file there that is not a manifest: values of the
	// prometheus-adapter chart.
	adapterValues = autoscalingExamples + "/prometheus-adapter-values.yaml"
)

// adapterRule is an external rule of prometheus-adapter, as its chart takes it (rules.external).
type adapterRule struct {
	SeriesQuery string `json:"seriesQuery"`
	Resources   struct {
		Overrides map[string]struct {
			Resource string `json:"resource"`
		} `json:"overrides"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

// examples are the autoscaling example files, decoded.
type examples struct {
	objects []*unstructured.Unstructured // every manifest, with its file in the annotation "file"
	rules   []adapterRule
}

func loadExamples(t *testing.T) examples {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(autoscalingExamples, "*.yaml"))
	var ex examples
	for _, p := range paths {
		if p == adapterValues {
			continue
		}
		objs, err := manifest.ReadFile(p)
		if err != nil || len(objs) == 0 {
			t.Fatalf("%s: %v objects, %v", p, len(objs), err)
		}
		for _, o := range objs {
			o.SetAnnotations(map[string]string{"file": filepath.Base(p)})
		}
		ex.objects = append(ex.objects, objs...)
	}
	b, err := os.ReadFile(adapterValues)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Prometheus map[string]any `json:"prometheus"`
		Rules      struct {
			External []adapterRule `json:"external"`
		} `json:"rules"`
	}
	if err := yaml.UnmarshalStrict(b, &values, yaml.DisallowUnknownFields); err != nil {
		t.Fatalf("%s: %v", adapterValues, err)
	}
	ex.rules = values.Rules.External
	if len(ex.rules) == 0 {
		t.Fatalf("%s: no rules.external", adapterValues)
	}
	return ex
}

// find returns the one object of a kind (in file, when not empty), failing the test otherwise.
func (ex examples) find(t *testing.T, kind, file string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range ex.objects {
		if o.GetKind() == kind && (file == "" || o.GetAnnotations()["file"] == file) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s in %s %s, want one", len(found), kind, autoscalingExamples, file)
	}
	return found[0]
}

// trigger returns the ScaledObject's one trigger and its metadata.
func trigger(t *testing.T, so *unstructured.Unstructured) (typ string, metadata map[string]string) {
	t.Helper()
	ts, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	if len(ts) != 1 {
		t.Fatalf("%s: triggers %v, want one", so.GetAnnotations()["file"], ts)
	}
	tr := ts[0].(map[string]any)
	md, _, _ := unstructured.NestedStringMap(tr, "metadata")
	typ, _ = tr["type"].(string)
	return typ, md
}

// exampleQueries are the PromQL expressions of the autoscaling examples: the Prometheus
// scaler's query, and the adapter rule's series query and the metrics query it sends for the
// HPA (its template filled in as the adapter does for the HPA's namespace and selector).
func exampleQueries(t *testing.T) []query {
	t.Helper()
	ex := loadExamples(t)
	so := ex.find(t, "ScaledObject", "keda-prometheus.yaml")
	_, md := trigger(t, so)
	out := []query{{"keda-prometheus.yaml query", md["query"]}}
	hpa := ex.find(t, "HorizontalPodAutoscaler", "")
	for i, r := range ex.rules {
		where := fmt.Sprintf("%s rules.external[%d]", filepath.Base(adapterValues), i)
		out = append(out, query{where + " seriesQuery", r.SeriesQuery})
		q, err := adapterQuery(r, hpa)
		if err != nil {
			t.Errorf("%s metricsQuery: %v", where, err)
			continue
		}
		out = append(out, query{where + " metricsQuery for hpa.yaml", q})
	}
	return out
}

// adapterQuery fills in a rule's metrics query as prometheus-adapter does for an External
// metric of an HPA: the template with << >> delimiters, Series the name of the series the
// rule's series query finds, LabelMatchers the HPA's namespace and its selector's labels,
// GroupBy empty.
func adapterQuery(r adapterRule, hpa *unstructured.Unstructured) (string, error) {
	tmpl, err := template.New("metrics-query").Delims("<<", ">>").Parse(r.MetricsQuery)
	if err != nil {
		return "", err
	}
	series, err := metricNames(r.SeriesQuery)
	if err != nil {
		return "", fmt.Errorf("series query %q: %w", r.SeriesQuery, err)
	}
	if len(series) != 1 {
		return "", fmt.Errorf("series query %q names %v, want one metric", r.SeriesQuery, series)
	}
	matchLabels := hpaSelector(hpa)
	matchers := []string{fmt.Sprintf("namespace=%q", hpa.GetNamespace())}
	for _, k := range slices.Sorted(maps.Keys(matchLabels)) {
		matchers = append(matchers, fmt.Sprintf("%s=%q", k, matchLabels[k]))
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"Series": series[0], "LabelMatchers": strings.Join(matchers, ","),
		"GroupBy": "", "GroupBySlice": []string{}, "LabelValuesByName": map[string][]string{},
	})
	return b.String(), err
}

// hpaSelector returns the matchLabels of the HPA's one External metric.
func hpaSelector(hpa *unstructured.Unstructured) map[string]string {
	ms, _, _ := unstructured.NestedSlice(hpa.Object, "spec", "metrics")
	if len(ms) != 1 {
		return nil
	}
	l, _, _ := unstructured.NestedStringMap(ms[0].(map[string]any), "external", "metric", "selector", "matchLabels")
	return l
}

// selectors returns the equality matchers of every selector of expr, by metric name.
func selectors(expr string) (map[string]map[string]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name, eq := vs.Name, map[string]string{}
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name == model.MetricNameLabel:
				name = m.Value
			case m.Type == labels.MatchEqual:
				eq[m.Name] = m.Value
			default:
				eq[m.Name] = ""
			}
		}
		out[name] = eq
		return nil
	})
	return out, nil
}

// target is what every autoscaling example must agree on: the consumer Deployment, the stream
// and group it reads, the RedisTraceExporter reporting them and the Secret with the password.
type target struct {
	namespace, deployment, stream, group, resource, secret string
}

// consumerTarget reads the target from the consumer Deployment and the RedisTraceExporter.
func consumerTarget(t *testing.T, ex examples) target {
	t.Helper()
	dep := ex.find(t, "Deployment", "consumer.yaml")
	rte := ex.find(t, "RedisTraceExporter", "exporter.yaml")
	tg := target{namespace: dep.GetNamespace(), deployment: dep.GetName(), resource: rte.GetName()}
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--stream="); ok {
			tg.stream = v
		}
		if v, ok := strings.CutPrefix(a, "--group="); ok {
			tg.group = v
		}
	}
	vs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
	for _, v := range vs {
		if name, ok, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName"); ok {
			tg.secret = name
		}
	}
	if tg.stream == "" || tg.group == "" || tg.secret == "" {
		t.Fatalf("consumer.yaml: stream %q, group %q, Secret %q: want all three", tg.stream, tg.group, tg.secret)
	}
	streams, _, _ := unstructured.NestedStringSlice(rte.Object, "spec", "lag", "streams")
	groups, _, _ := unstructured.NestedStringSlice(rte.Object, "spec", "lag", "groups")
	secret, _, _ := unstructured.NestedString(rte.Object, "spec", "redis", "auth", "secretRef", "name")
	if !slices.Contains(streams, tg.stream) || !slices.Contains(groups, tg.group) || secret != tg.secret ||
		rte.GetNamespace() != tg.namespace {
		t.Errorf("exporter.yaml: %s/%s reports streams %v, groups %v with Secret %q; want %s, %s and %s in %s",
			rte.GetNamespace(), rte.GetName(), streams, groups, secret, tg.stream, tg.group, tg.secret, tg.namespace)
	}
	return tg
}

// TestAutoscalingExamplesAgree: the three ways to scale name the same Deployment, stream, group
// and resource, so that an edit of one file cannot leave another scaling on something else; and
// the Prometheus path keeps what the README recommends for unknown lag.
func TestAutoscalingExamplesAgree(t *testing.T) {
	ex := loadExamples(t)
	tg := consumerTarget(t, ex)
	for _, o := range ex.objects {
		if o.GetNamespace() != tg.namespace {
			t.Errorf("%s %s in namespace %q, want %s", o.GetAnnotations()["file"], o.GetKind(), o.GetNamespace(), tg.namespace)
		}
	}
	t.Run("KEDA Prometheus scaler", func(t *testing.T) { checkPrometheusScaler(t, ex, tg) })
	t.Run("KEDA redis-streams scaler", func(t *testing.T) { checkRedisStreamsScaler(t, ex, tg) })
	t.Run("HPA with prometheus-adapter", func(t *testing.T) { checkHPA(t, ex, tg) })
}

func checkPrometheusScaler(t *testing.T, ex examples, tg target) {
	so := ex.find(t, "ScaledObject", "keda-prometheus.yaml")
	checkScaleTarget(t, so, tg)
	typ, md := trigger(t, so)
	sel, err := selectors(md["query"])
	if typ != "prometheus" || err != nil {
		t.Fatalf("trigger %s, query %q: %v", typ, md["query"], err)
	}
	want := map[string]string{"namespace": tg.namespace, "name": tg.resource, "stream": tg.stream, "group": tg.group}
	if got := sel["tracestream_redistraceexporter_group_lag"]; !maps.Equal(got, want) {
		t.Errorf("query %q selects %v, want %v", md["query"], got, want)
	}
	// An empty result (unknown lag) must be an error that holds the replicas, not a lag of 0.
	behavior, _, _ := unstructured.NestedString(so.Object, "spec", "fallback", "behavior")
	if md["ignoreNullValues"] != "false" || behavior != "currentReplicas" {
		t.Errorf("ignoreNullValues %q, fallback.behavior %q: want false and currentReplicas", md["ignoreNullValues"], behavior)
	}
}

func checkRedisStreamsScaler(t *testing.T, ex examples, tg target) {
	so := ex.find(t, "ScaledObject", "keda-redis-streams.yaml")
	checkScaleTarget(t, so, tg)
	typ, md := trigger(t, so)
	if typ != "redis-streams" || md["stream"] != tg.stream || md["consumerGroup"] != tg.group {
		t.Errorf("trigger %s on stream %q, group %q: want redis-streams on %s, %s", typ, md["stream"], md["consumerGroup"], tg.stream, tg.group)
	}
	if n, err := strconv.Atoi(md["lagCount"]); err != nil || n <= 0 {
		t.Errorf("lagCount %q: want a positive count (without it the scaler counts pending entries)", md["lagCount"])
	}
	ta := ex.find(t, "TriggerAuthentication", "keda-redis-streams.yaml")
	ts, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	ref, _, _ := unstructured.NestedString(ts[0].(map[string]any), "authenticationRef", "name")
	refs, _, _ := unstructured.NestedSlice(ta.Object, "spec", "secretTargetRef")
	if ref != ta.GetName() || len(refs) != 1 || refs[0].(map[string]any)["parameter"] != "password" ||
		refs[0].(map[string]any)["name"] != tg.secret {
		t.Errorf("authenticationRef %q, TriggerAuthentication %s with %v: want the password from Secret %s", ref, ta.GetName(), refs, tg.secret)
	}
}

func checkHPA(t *testing.T, ex examples, tg target) {
	var hpa autoscalingv2.HorizontalPodAutoscaler
	u := ex.find(t, "HorizontalPodAutoscaler", "hpa.yaml")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &hpa, true); err != nil {
		t.Fatalf("hpa.yaml: %v", err)
	}
	if hpa.Spec.ScaleTargetRef.Name != tg.deployment || len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].External == nil {
		t.Fatalf("hpa.yaml scales %q on %+v, want %s on one External metric", hpa.Spec.ScaleTargetRef.Name, hpa.Spec.Metrics, tg.deployment)
	}
	metric := hpa.Spec.Metrics[0].External.Metric
	if got, want := hpaSelector(u), map[string]string{"name": tg.resource, "group": tg.group}; !maps.Equal(got, want) {
		t.Errorf("hpa.yaml selects %v, want %v", got, want)
	}
	// The API server accepts any selector here; the HPA controller turns it into a label
	// selector on every sync (LabelSelectorAsSelector), which refuses a value that is not a label
	// value, such as a stream name with ':'.
	if _, err := metav1.LabelSelectorAsSelector(metric.Selector); err != nil {
		t.Errorf("hpa.yaml: the HPA controller cannot use the selector: %v", err)
	}
	var served []string
	for _, r := range ex.rules {
		served = append(served, r.Name.As)
	}
	if !slices.Contains(served, metric.Name) {
		t.Errorf("hpa.yaml reads the External metric %q, the adapter rules serve %v", metric.Name, served)
	}
}

func checkScaleTarget(t *testing.T, so *unstructured.Unstructured, tg target) {
	t.Helper()
	if name, _, _ := unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name"); name != tg.deployment {
		t.Errorf("%s scales %q, want %s", so.GetAnnotations()["file"], name, tg.deployment)
	}
}
