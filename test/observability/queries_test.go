package observability

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	docsDashboards  = "../../docs/dashboards"
	chartDashboards = "../../charts/tracestream/files/dashboards"
	rulesFile       = "../../docs/alerts/tracestream.rules.yaml"
)

// promql parses as Prometheus does by default (no experimental functions).
var promql = parser.NewParser(parser.Options{})

// query is one PromQL expression of a shipped file, with where it comes from for messages.
type query struct {
	where, expr string
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Panels     []panel     `json:"panels"` // a collapsed row's
	Targets    []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(docsDashboards, "*.json"))
	if len(paths) < 2 {
		t.Fatalf("dashboards in %s: %v, want the exporter's and the resources'", docsDashboards, paths)
	}
	out := map[string]dashboard{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = d
	}
	return out
}

// grafanaVariable matches $name, ${name} and ${name:format} in a Grafana query.
var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// substitute replaces Grafana's variables by values of the kind Grafana puts there: a range for
// the interval variables, a regular expression for the dashboard's own (multi-value, with All).
// An unknown variable is an error: Grafana would leave it in the query.
func substitute(expr string, own []string) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		switch {
		case name == "__rate_interval" || name == "__interval" || name == "__range":
			return "2m"
		case slices.Contains(own, name):
			return "tracing|default"
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variables %v", unknown)
	}
	return out, nil
}

// labelValues matches Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// dashboardQueries returns every PromQL expression of a dashboard, its variable queries included
// (as the selector of label_values), with variables substituted; it fails on an empty target, a
// panel or target without the data source variable, and a variable that is not defined.
func dashboardQueries(t *testing.T, file string, d dashboard) []query {
	t.Helper()
	var own []string
	for _, v := range d.Templating.List {
		own = append(own, v.Name)
	}
	var out []query
	add := func(where, expr string) {
		s, err := substitute(expr, own)
		if err != nil {
			t.Errorf("%s: %v in %s", where, err, expr)
			return
		}
		out = append(out, query{where, s})
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("%s variable %s: query %s: %v", file, v.Name, v.Query, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s variable %s: query %q is not label_values(selector, label)", file, v.Name, q.Query)
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("%s variable %s: data source %+v, want ${datasource}", file, v.Name, v.Datasource)
		}
		add(fmt.Sprintf("%s variable %s", file, v.Name), m[1])
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			where := fmt.Sprintf("%s panel %d %q", file, p.ID, p.Title)
			if len(p.Targets) == 0 {
				t.Errorf("%s: no targets", where)
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: data source %+v, want the prometheus variable ${datasource}", where, p.Datasource)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s target %s: no expression", where, tg.RefID)
					continue
				}
				add(where+" target "+tg.RefID, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return out
}

func loadRules(t *testing.T, content []byte, name string) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("%s: %v", name, err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatalf("%s: no rule groups", name)
	}
	return groups
}

func ruleQueries(file string, groups *rulefmt.RuleGroups) []query {
	var out []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out = append(out, query{fmt.Sprintf("%s group %s alert %s", file, g.Name, r.Alert), r.Expr})
		}
	}
	return out
}

// allQueries is every PromQL expression that ships: the dashboards', the rules' and the
// autoscaling examples'.
func allQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for file, d := range loadDashboards(t) {
		out = append(out, dashboardQueries(t, file, d)...)
	}
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, ruleQueries(filepath.Base(rulesFile), loadRules(t, b, rulesFile))...)
	return append(out, exampleQueries(t)...)
}

// metricNames parses expr and returns the metric names its selectors name; a selector without
// an exact name (only a regular expression on __name__, or none) is an error, since it cannot be
// checked against what the binaries serve.
func metricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

// usedMetrics maps every metric name the shipped files use to the places that use it.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	for _, q := range allQueries(t) {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
			continue
		}
		for _, n := range names {
			used[n] = append(used[n], q.where)
		}
	}
	return used
}
