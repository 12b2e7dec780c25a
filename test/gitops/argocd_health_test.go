package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// healthDir is laid out as in Argo CD's repository (resource_customizations/<group>/<kind>), so
// that the check can be contributed upstream unchanged.
const healthDir = "../../docs/gitops/argocd/resource_customizations/tracestream.io/RedisTraceExporter"

// healthTest is one entry of health_test.yaml, in Argo CD's format.
type healthTest struct {
	HealthStatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"healthStatus"`
	InputPath string `json:"inputPath"`
}

func readHealthTests(t *testing.T) []healthTest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(healthDir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tests []healthTest `json:"tests"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		t.Fatalf("parsing health_test.yaml: %v", err)
	}
	if len(file.Tests) == 0 {
		t.Fatal("health_test.yaml lists no tests")
	}
	return file.Tests
}

// loadObject reads a testdata object as the API server hands it to clients: integers are int64,
// which kstatus insists on (Argo CD turns both int64 and float64 into Lua numbers).
func loadObject(t *testing.T, inputPath string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(healthDir, inputPath))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", inputPath, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", inputPath, err)
	}
	return u
}

// argoHealthStatuses are the statuses Argo CD accepts from a health script; anything else
// becomes Unknown, which a script should never produce on purpose.
var argoHealthStatuses = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing"}

// runHealthLua runs script as Argo CD runs a health check from argocd-cm: no standard libraries
// but package, base and table (Argo CD adds a reduced os library that the script does not use),
// a one-second budget, the object in the global obj, and the returned table's status and message.
func runHealthLua(script string, obj map[string]any) (status, message string, err error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", fmt.Errorf("opening Lua library %q: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)

	value, err := toLua(l, obj)
	if err != nil {
		return "", "", fmt.Errorf("converting the object to Lua: %w", err)
	}
	l.SetGlobal("obj", value)
	if err := l.DoString(script); err != nil {
		return "", "", fmt.Errorf("running health.lua: %w", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua returned %s, want a table", l.Get(-1).Type())
	}
	s, ok := hs.RawGetString("status").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("hs.status is %s, want a string", hs.RawGetString("status").Type())
	}
	m, ok := hs.RawGetString("message").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("hs.message is %s, want a string", hs.RawGetString("message").Type())
	}
	if !slices.Contains(argoHealthStatuses, string(s)) {
		return "", "", fmt.Errorf("hs.status %q is not one of %v", s, argoHealthStatuses)
	}
	return string(s), string(m), nil
}

// toLua converts an object as Argo CD does: maps become tables, lists 1-based array tables.
func toLua(l *lua.LState, v any) (lua.LValue, error) {
	switch v := v.(type) {
	case nil:
		return lua.LNil, nil
	case bool:
		return lua.LBool(v), nil
	case string:
		return lua.LString(v), nil
	case int64:
		return lua.LNumber(v), nil
	case float64:
		return lua.LNumber(v), nil
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			lv, err := toLua(l, item)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	case []any:
		t := l.CreateTable(len(v), 0)
		for i, item := range v {
			lv, err := toLua(l, item)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			t.Append(lv)
		}
		return t, nil
	default:
		return nil, fmt.Errorf("unexpected %T", v)
	}
}

func readHealthScript(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile(filepath.Join(healthDir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(script)
}

// TestArgoCDHealthCheck is Argo CD's own test of a resource customization: every case of
// health_test.yaml, status and message exactly. Test names are the testdata file names.
func TestArgoCDHealthCheck(t *testing.T) {
	script := readHealthScript(t)
	for _, tc := range readHealthTests(t) {
		t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml"), func(t *testing.T) {
			obj := loadObject(t, tc.InputPath)
			status, message, err := runHealthLua(script, obj.Object)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.HealthStatus.Status || message != tc.HealthStatus.Message {
				t.Errorf("health = %s %q, want %s %q", status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			}
		})
	}
}

// TestArgoCDHealthCheckEdges covers what the realistic testdata does not: shapes the operator
// does not write today but a script must survive (an error in a health script shows as Unknown).
func TestArgoCDHealthCheckEdges(t *testing.T) {
	script := readHealthScript(t)
	cond := func(typ, status, reason, message string, gen int64) map[string]any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": message, "observedGeneration": gen}
	}
	object := func(generation int64, status map[string]any) map[string]any {
		o := map[string]any{
			"apiVersion": "tracestream.io/v1alpha1",
			"kind":       "RedisTraceExporter",
			"metadata":   map[string]any{"name": "traces", "namespace": "tracing", "generation": generation},
		}
		if status != nil {
			o["status"] = status
		}
		return o
	}
	tests := map[string]struct {
		obj         map[string]any
		wantStatus  string
		wantMessage string
	}{
		"an empty conditions list still waits for the operator": {
			obj:        object(1, map[string]any{"conditions": []any{}}),
			wantStatus: "Progressing", wantMessage: "Waiting for the operator to report status",
		},
		"a stall about an older generation waits for the new one": {
			obj: object(5, map[string]any{"observedGeneration": int64(3), "conditions": []any{
				cond("Stalled", "True", "SecretNotFound", `Secret "old" referenced by spec.redis.auth.secretRef does not exist`, 4),
				cond("Ready", "False", "SecretNotFound", `Secret "old" referenced by spec.redis.auth.secretRef does not exist`, 4),
			}}),
			wantStatus: "Progressing", wantMessage: "Waiting for the operator to observe generation 5",
		},
		"a Ready condition of Unknown waits for Ready": {
			obj: object(2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "Unknown", "Progressing", "", 2),
			}}),
			wantStatus: "Progressing", wantMessage: "Waiting for the Ready condition",
		},
		"a Degraded message falls back to the reason when the message is empty": {
			obj: object(2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "False", "RedisError", "", 2),
			}}),
			wantStatus: "Degraded", wantMessage: "RedisError",
		},
		"Reconciling wins over a Ready of True, as in kstatus": {
			obj: object(2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "True", "Ready", "2/2 exporter pods ready, Redis reachable", 2),
				cond("Reconciling", "True", "Progressing", "2/3 exporter pods up to date, 2/3 ready", 2),
			}}),
			wantStatus: "Progressing", wantMessage: "2/3 exporter pods up to date, 2/3 ready",
		},
		"a False Reconciling or Stalled is ignored": {
			obj: object(2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Stalled", "False", "Ready", "", 2),
				cond("Reconciling", "False", "Ready", "", 2),
				cond("Ready", "True", "Ready", "1/1 exporter pods ready, Redis reachable", 2),
			}}),
			wantStatus: "Healthy", wantMessage: "1/1 exporter pods ready, Redis reachable",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, message, err := runHealthLua(script, tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus || message != tc.wantMessage {
				t.Errorf("health = %s %q, want %s %q", status, message, tc.wantStatus, tc.wantMessage)
			}
		})
	}
}

// TestEveryTestdataFileIsACase keeps health_test.yaml and testdata/ in step: a file nobody
// references tests nothing, and a reference to a missing file would only fail in Argo CD's CI.
func TestEveryTestdataFileIsACase(t *testing.T) {
	referenced := map[string]bool{}
	for _, tc := range readHealthTests(t) {
		if filepath.Dir(tc.InputPath) != "testdata" {
			t.Errorf("inputPath %q is not in testdata/", tc.InputPath)
		}
		if referenced[tc.InputPath] {
			t.Errorf("inputPath %q is listed twice", tc.InputPath)
		}
		referenced[tc.InputPath] = true
	}
	entries, err := os.ReadDir(filepath.Join(healthDir, "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, e := range entries {
		p := filepath.Join("testdata", e.Name())
		present[p] = true
		if !referenced[p] {
			t.Errorf("%s is not referenced by health_test.yaml", p)
		}
	}
	for p := range referenced {
		if !present[p] {
			t.Errorf("health_test.yaml references %s, which does not exist", p)
		}
	}
}

// TestTestdataObjectsAreRedisTraceExporters decodes every testdata object strictly into the API
// type and checks its conditions against the API's types and reasons, so a misspelt or invented
// field cannot make a case pass that the operator could never produce.
func TestTestdataObjectsAreRedisTraceExporters(t *testing.T) {
	conditionTypes := []string{v1.ConditionReady, v1.ConditionReconciling, v1.ConditionStalled,
		v1.ConditionRedisReachable, v1.ConditionWorkloadAvailable, v1.ConditionExporterHealthy,
		v1.ConditionQueueDrained}
	reasons := []string{v1.ReasonReady, v1.ReasonProgressing, v1.ReasonSecretNotFound,
		v1.ReasonSecretKeyMissing, v1.ReasonInvalidSpec, v1.ReasonApplyFailed, v1.ReasonRedisReachable,
		v1.ReasonRedisAuthFailed, v1.ReasonRedisTLSFailed, v1.ReasonRedisUnreachable, v1.ReasonRedisError,
		v1.ReasonDeploymentReady, v1.ReasonDeploymentNotReady, v1.ReasonExportersHealthy,
		v1.ReasonExportersFailing, v1.ReasonExportersUnknown, v1.ReasonNoOrphanedRecords, v1.ReasonDraining,
		v1.ReasonDrainStalled, v1.ReasonDrainFailed, v1.ReasonQueueDrainStalled, v1.ReasonStatefulSetReady,
		v1.ReasonStatefulSetNotReady, v1.ReasonWorkloadHandover, v1.ReasonDrainingQueue}
	for _, tc := range readHealthTests(t) {
		t.Run(filepath.Base(tc.InputPath), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(healthDir, tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			var rte v1.RedisTraceExporter
			if err := yaml.UnmarshalStrict(data, &rte); err != nil {
				t.Fatalf("not a RedisTraceExporter: %v", err)
			}
			if got := rte.APIVersion + "/" + rte.Kind; got != v1.GroupVersion.String()+"/RedisTraceExporter" {
				t.Errorf("apiVersion/kind = %s", got)
			}
			if rte.Generation == 0 {
				t.Error("metadata.generation is not set")
			}
			for _, c := range rte.Status.Conditions {
				if !slices.Contains(conditionTypes, c.Type) {
					t.Errorf("condition type %q is not one the operator sets", c.Type)
				}
				if !slices.Contains(reasons, c.Reason) {
					t.Errorf("condition %s has reason %q, which is not in api/v1alpha1/conditions.go", c.Type, c.Reason)
				}
				if c.ObservedGeneration == 0 || c.LastTransitionTime.IsZero() {
					t.Errorf("condition %s lacks observedGeneration or lastTransitionTime, which the operator always sets", c.Type)
				}
			}
		})
	}
}
