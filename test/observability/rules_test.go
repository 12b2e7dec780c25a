package observability

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// rulesTests is the promtool unit test file of the rules file (docs/alerts/tests); it stays out
// of the chart, which renders its PrometheusRule from values, not from docs/alerts.
const rulesTests = "../../docs/alerts/tests/tracestream.rules.test.yaml"

// promtool runs PROMTOOL (built from the Prometheus module go.mod pins, by make test-deps) and
// returns its output; it fails the test when PROMTOOL is not set.
func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("PROMTOOL")
	if bin == "" {
		t.Fatal("PROMTOOL: not set; run the tests with make test (it builds promtool)")
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestAlertRulesPassPromtool: promtool checks the rules file as Prometheus loads it, and runs the
// unit tests, whose series fire every alert with its labels and annotations and keep each quiet
// below its threshold or before its `for`.
func TestAlertRulesPassPromtool(t *testing.T) {
	t.Run("check rules", func(t *testing.T) {
		if out, err := promtool(t, "check", "rules", rulesFile); err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
		}
	})
	t.Run("test rules", func(t *testing.T) {
		out, err := promtool(t, "test", "rules", rulesTests)
		if err != nil {
			t.Errorf("promtool test rules %s: %v\n%s", rulesTests, err, out)
		}
		if !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool test rules %s did not report SUCCESS:\n%s", rulesTests, out)
		}
	})
}

// ruleTests is the part of a promtool test file this package reads.
type ruleTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			AlertName string           `json:"alertname"`
			ExpAlerts []map[string]any `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestEveryAlertHasUnitTests: every alert of the rules file has a case where it fires and one
// where it must not, so a new alert without tests fails here; and every alert the tests name
// exists (promtool alone would pass a test of a misspelt alert that expects nothing).
func TestEveryAlertHasUnitTests(t *testing.T) {
	b, err := os.ReadFile(rulesTests)
	if err != nil {
		t.Fatal(err)
	}
	var tests ruleTests
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTests, err)
	}
	if len(tests.RuleFiles) != 1 || filepath.Join(filepath.Dir(mustAbs(t, rulesTests)), tests.RuleFiles[0]) != mustAbs(t, rulesFile) {
		t.Errorf("rule_files %v: want the one rules file %s", tests.RuleFiles, rulesFile)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName]++
			} else {
				quiet[a.AlertName]++
			}
		}
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range loadRules(t, rules, rulesFile).Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if fires[r.Alert] == 0 || quiet[r.Alert] == 0 {
				t.Errorf("%s: %d cases fire it, %d expect it quiet; %s needs at least one of each",
					r.Alert, fires[r.Alert], quiet[r.Alert], rulesTests)
			}
		}
	}
	for _, tested := range []map[string]int{fires, quiet} {
		for name := range tested {
			if !slices.Contains(alerts, name) {
				t.Errorf("%s tests alert %s, which %s does not have", rulesTests, name, rulesFile)
			}
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
