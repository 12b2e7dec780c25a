package install

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/manifest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

const (
	chart     = "../../charts/tracestream"
	release   = "tracestream"
	namespace = "tracestream-system"
)

// tool returns the path of a binary the Makefile installs, or fails the test saying how to get it.
func tool(t *testing.T, name string) string {
	t.Helper()
	var path string
	switch name {
	case "helm":
		path = os.Getenv("HELM")
	case "kubectl":
		if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
			path = filepath.Join(dir, "kubectl")
		}
	}
	if path == "" {
		t.Fatalf("%s: not configured; run the tests with make test (it installs and passes helm and kubectl)", name)
	}
	return path
}

// run runs a tool and returns its stdout; stderr is part of the error.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tool(t, name), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helmTemplate renders the chart with the CRDs, as `helm install` would create them.
func helmTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, mustRun(t, "helm", append([]string{"template", release, chart, "--namespace", namespace, "--include-crds"}, args...)...))
}

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, mustRun(t, "kubectl", "kustomize", dir))
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifest.Decode(manifests)
	if err != nil {
		t.Fatalf("decoding rendered manifests: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	return objs
}

func key(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s/%s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
}

func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		m[key(u)] = u
	}
	return m
}

func TestChartLints(t *testing.T) {
	out := mustRun(t, "helm", "lint", "--strict", chart)
	if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
}

// TestChartRejectsBadValues: values.schema.json turns a wrong value into an install error that
// names it, instead of a broken Deployment.
func TestChartRejectsBadValues(t *testing.T) {
	for name, tc := range map[string]struct {
		set, want string
	}{
		"a negative replica count is refused":            {"replicas=-1", "/replicas"},
		"an unknown pull policy is refused":              {"image.pullPolicy=Sometimes", "/image/pullPolicy"},
		"a misspelt top-level value is refused":          {"replica=2", "additional properties 'replica' not allowed"},
		"a misspelt nested value is refused":             {"metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"},
		"an unknown log level is refused":                {"logLevel=verbose", "/logLevel"},
		"a namespace that is not a DNS label is refused": {"watchNamespaces={Team_A}", "/watchNamespaces/0"},
		"the metrics port cannot take the probe port":    {"metrics.port=8081", "/metrics/port"},
		"a memory limit must be a quantity":              {"resources.limits.memory=lots", "/resources/limits/memory"},
		"an empty image repository is refused":           {"image.repository=", "/image/repository"},
		"a misspelt rule value is refused":               {"prometheusRule.rules.exporterNotReady.severty=page", "additional properties 'severty' not allowed"},
		"an alert's for must be a duration":              {"prometheusRule.rules.redisErrors.for=soon", "/prometheusRule/rules/redisErrors/for"},
		"a dashboard label must be a label key":          {"dashboards.label=grafana dashboard", "/dashboards/label"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := run(t, "helm", "template", release, chart, "--set", tc.set)
			if err == nil {
				t.Fatalf("helm template --set %s rendered:\n%s", tc.set, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestChartRendersWhatValuesAsk checks the values a user is most likely to set.
func TestChartRendersWhatValuesAsk(t *testing.T) {
	t.Run("the exporter image defaults to the chart's own image", func(t *testing.T) {
		dep := index(helmTemplate(t, "--set", "image.repository=registry.example/ts", "--set", "image.tag=1.2.3"))["Deployment/"+namespace+"/tracestream-manager"]
		c := container(t, dep)
		if c.Image != "registry.example/ts:1.2.3" || env(c, "TRACESTREAM_EXPORTER_IMAGE") != "registry.example/ts:1.2.3" {
			t.Errorf("image %s, exporter image %s", c.Image, env(c, "TRACESTREAM_EXPORTER_IMAGE"))
		}
	})
	t.Run("the image tag defaults to the chart's appVersion", func(t *testing.T) {
		chartYAML, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ AppVersion string }
		if err := yaml.Unmarshal(chartYAML, &meta); err != nil {
			t.Fatal(err)
		}
		c := container(t, index(helmTemplate(t))["Deployment/"+namespace+"/tracestream-manager"])
		if want := "ghcr.io/tracestream/tracestream:" + meta.AppVersion; c.Image != want {
			t.Errorf("image %s, want %s", c.Image, want)
		}
	})
	t.Run("watchNamespaces gives Roles in those namespaces and no ClusterRole that reads Secrets", func(t *testing.T) {
		objs := index(helmTemplate(t, "--set", "watchNamespaces={team-a,team-b}"))
		for _, ns := range []string{"team-a", "team-b"} {
			if objs["Role/"+ns+"/tracestream-manager"] == nil || objs["RoleBinding/"+ns+"/tracestream-manager"] == nil {
				t.Errorf("no Role and RoleBinding in %s: %v", ns, slices.Sorted(maps.Keys(objs)))
			}
		}
		for k, u := range objs {
			if u.GetKind() == "ClusterRole" && strings.Contains(fmt.Sprint(u.Object["rules"]), "secrets") {
				t.Errorf("%s can read Secrets cluster-wide", k)
			}
		}
		c := container(t, objs["Deployment/"+namespace+"/tracestream-manager"])
		if !slices.Contains(c.Args, "--watch-namespaces=team-a,team-b") {
			t.Errorf("manager args %v", c.Args)
		}
	})
	t.Run("the ServiceMonitor is off by default and scrapes the metrics port when on", func(t *testing.T) {
		if sm := index(helmTemplate(t))["ServiceMonitor/"+namespace+"/tracestream-manager"]; sm != nil {
			t.Errorf("ServiceMonitor rendered by default")
		}
		sm := index(helmTemplate(t, "--set", "metrics.serviceMonitor.enabled=true"))["ServiceMonitor/"+namespace+"/tracestream-manager"]
		if sm == nil {
			t.Fatal("no ServiceMonitor")
		}
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" {
			t.Errorf("endpoints %v", eps)
		}
	})
	t.Run("the manager runs restricted", func(t *testing.T) {
		dep := index(helmTemplate(t))["Deployment/"+namespace+"/tracestream-manager"]
		var d struct {
			Spec struct {
				Template corev1.PodTemplateSpec
			}
		}
		b, _ := yaml.Marshal(dep.Object)
		if err := yaml.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		pod := d.Spec.Template.Spec
		sc := pod.Containers[0].SecurityContext
		if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
			pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
			sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("pod security %+v, container %+v", pod.SecurityContext, sc)
		}
		if pod.Containers[0].Resources.Requests.Cpu().IsZero() || pod.Containers[0].Resources.Limits.Memory().IsZero() {
			t.Errorf("resources %+v", pod.Containers[0].Resources)
		}
		if !slices.Contains(pod.Containers[0].Args, "--leader-elect=true") {
			t.Errorf("leader election off: %v", pod.Containers[0].Args)
		}
	})
}

// TestChartAndKustomizeInstallTheSameObjects: the chart with its defaults and config/default are
// one install. Differences allowed: the Namespace (kustomize creates it, helm install
// --create-namespace does), the tool's own labels, and the CRD's labels.
func TestChartAndKustomizeInstallTheSameObjects(t *testing.T) {
	helm := index(helmTemplate(t))
	kust := index(kustomize(t, "../../config/default"))
	if ns := kust["Namespace//"+namespace]; ns == nil {
		t.Errorf("kustomize does not create the namespace %s", namespace)
	}
	delete(kust, "Namespace//"+namespace)
	if got, want := slices.Sorted(maps.Keys(kust)), slices.Sorted(maps.Keys(helm)); !reflect.DeepEqual(got, want) {
		t.Fatalf("kustomize renders\n  %v\nhelm renders\n  %v", got, want)
	}
	for k, h := range helm {
		hk, kk := normalise(h), normalise(kust[k])
		if !reflect.DeepEqual(hk, kk) {
			hb, _ := yaml.Marshal(hk)
			kb, _ := yaml.Marshal(kk)
			t.Errorf("%s differs:\n--- helm\n%s\n--- kustomize\n%s", k, hb, kb)
		}
	}
}

// normalise drops what legitimately differs between the two tools.
func normalise(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	labels := c.GetLabels()
	for _, l := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "app.kubernetes.io/part-of"} {
		delete(labels, l)
	}
	if c.GetKind() == "CustomResourceDefinition" {
		labels = nil
	}
	c.SetLabels(labels)
	if len(labels) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	}
	return c.Object
}

// TestChartCRDsAreConfigCRDs: the chart ships the CRDs that controller-gen generated.
func TestChartCRDsAreConfigCRDs(t *testing.T) {
	want, _ := filepath.Glob("../../config/crd/bases/*.yaml")
	got, _ := filepath.Glob(filepath.Join(chart, "crds", "*.yaml"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("config/crd/bases has %v, the chart %v", want, got)
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(chart, "crds", filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the chart's copy (%v): run make manifests", w, err)
		}
	}
}

// TestInstallsApplyToARealAPIServer sends every rendered object to a real kube-apiserver with
// server-side apply in dry-run mode: schema, RBAC references and CRD validation all run.
func TestInstallsApplyToARealAPIServer(t *testing.T) {
	env := controlplane.Start(t)
	ctx := context.Background()
	installPrometheusOperatorCRDs(t, env.Client)
	for _, ns := range []string{namespace, "team-a", "team-b"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for name, objs := range map[string][]*unstructured.Unstructured{
		"the chart with its defaults":     helmTemplate(t),
		"the chart for two namespaces":    helmTemplate(t, "--set", "watchNamespaces={team-a,team-b}"),
		"the chart with a ServiceMonitor": helmTemplate(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "replicas=2"),
		"the chart with dashboards and alert rules": helmTemplate(t, "--set", "dashboards.enabled=true",
			"--set", "prometheusRule.enabled=true", "--set", "metrics.serviceMonitor.enabled=true"),
		"kustomize config/default":    kustomize(t, "../../config/default"),
		"kustomize config/prometheus": kustomize(t, "../../config/prometheus"),
		"kustomize config/samples":    kustomize(t, "../../config/samples"),
	} {
		t.Run(name, func(t *testing.T) {
			for _, u := range objs {
				if u.GetNamespace() == "system" || (u.GetNamespace() == "" && isNamespaced(u)) {
					u.SetNamespace(namespace)
				}
				err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner("install-test"), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("%s: %v", key(u), err)
				}
			}
		})
	}
}

// isNamespaced knows the namespaced kinds our installs and samples contain.
func isNamespaced(u *unstructured.Unstructured) bool {
	switch u.GetKind() {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding":
		return false
	}
	return true
}

// installPrometheusOperatorCRDs installs the prometheus-operator's real ServiceMonitor and
// PrometheusRule CRDs (PROMETHEUS_OPERATOR_CRDS, set by make test from
// hack/prometheus-operator-crds.sh).
func installPrometheusOperatorCRDs(t *testing.T, c client.Client) {
	t.Helper()
	installCRDs(t, c, "PROMETHEUS_OPERATOR_CRDS", "monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
}

// installCRDs applies CRD files of the directory that the environment variable env names (make
// test sets it from a hack/ script) and waits until each is established.
func installCRDs(t *testing.T, c client.Client, env string, files ...string) {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		t.Fatalf("%s: not set; run the tests with make test", env)
	}
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		crd := decode(t, string(b))[0]
		ctx := context.Background()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(crd), client.FieldOwner("install-test")); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, "the CRD "+crd.GetName()+" established", func() error {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(crd.GroupVersionKind())
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, cond := range conds {
				if m := cond.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("conditions %v", conds)
		})
	}
}

func container(t *testing.T, dep *unstructured.Unstructured) corev1.Container {
	t.Helper()
	if dep == nil {
		t.Fatal("no manager Deployment rendered")
	}
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("containers %v", cs)
	}
	b, _ := yaml.Marshal(cs[0])
	var c corev1.Container
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
