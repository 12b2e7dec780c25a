package controller_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/controller"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestPodMonitor drives spec.observability.metrics.podMonitor on a real API server, with the
// manager running as a user that holds only the operator's generated ClusterRole
// (config/rbac/role.yaml), so the podmonitors verbs it grants are proven enough. Without the
// prometheus-operator's CRD the pass does not fail and Ready goes True with the data path, while
// PodMonitorApplied says the CRD is missing (one Warning event). The real PodMonitor CRD is then
// installed into the running API server: the PodMonitor appears without a restart, selects this
// resource's pods, scrapes port admin and keeps app.kubernetes.io/instance; a deleted one comes
// back, a changed spec updates it, and disabling it deletes it.
func TestPodMonitor(t *testing.T) {
	crds := prometheusOperatorCRDs(t)
	env := controlplane.Start(t)
	startManagerAs(t, env, managerRoleConfig(t, env), func(r *controller.Reconciler) { r.KindRecheck = time.Second })
	ctx := context.Background()
	c := env.Client
	redis := redistest.Standalone(t)
	namespace(t, c, "monitored")
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "monitored"},
		Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{redis.Addr()}},
			Lag: v1.LagSpec{RefreshInterval: &metav1.Duration{Duration: time.Second}},
			Observability: v1.ObservabilitySpec{Metrics: v1.MetricsSpec{PodMonitor: &v1.PodMonitorSpec{Enabled: true,
				Interval: &metav1.Duration{Duration: 30 * time.Second}, Labels: map[string]string{"release": "kube-prometheus-stack"}}}}},
	}
	errorsBefore := counter(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": "redistraceexporter"})
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)

	// 1. No CRD: PodMonitorApplied says so, and the data path goes Ready all the same.
	waitPodMonitorApplied(t, c, key, metav1.ConditionFalse, v1.ReasonPodMonitorCRDNotInstalled)
	markDeploymentReady(t, c, key)
	wait.For(t, 30*time.Second, "Ready and Current without the PodMonitor CRD", func() error {
		res, obj := kstatusOf(t, c, key)
		if res.Status != status.CurrentStatus {
			return fmt.Errorf("kstatus %s: %s", res.Status, res.Message)
		}
		if cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionPodMonitorApplied); cond == nil || cond.Reason != v1.ReasonPodMonitorCRDNotInstalled {
			return fmt.Errorf("PodMonitorApplied %+v", cond)
		}
		return nil
	})
	if n := counter(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": "redistraceexporter"}); n != errorsBefore {
		t.Errorf("%v reconcile errors without the CRD, want none", n-errorsBefore)
	}
	// More passes (one a second), none of which may announce the missing CRD again.
	passes := counter(t, "controller_runtime_reconcile_total", map[string]string{"controller": "redistraceexporter"})
	wait.For(t, 20*time.Second, "three more passes", func() error {
		if n := counter(t, "controller_runtime_reconcile_total", map[string]string{"controller": "redistraceexporter"}); n < passes+3 {
			return fmt.Errorf("%v passes", n-passes)
		}
		return nil
	})
	expectEvents(t, c, rte, map[string]int{v1.ReasonPodMonitorCRDNotInstalled: 1})

	// 2. The CRD is installed into the running API server: the PodMonitor appears.
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{ErrorIfPathMissing: true,
		Paths: []string{filepath.Join(crds, "monitoring.coreos.com_podmonitors.yaml")}}); err != nil {
		t.Fatalf("installing the PodMonitor CRD: %v", err)
	}
	pm := waitPodMonitor(t, c, key, func(pm *unstructured.Unstructured) error { return nil })
	checkPodMonitor(t, c, key, pm)
	waitPodMonitorApplied(t, c, key, metav1.ConditionTrue, v1.ReasonPodMonitorApplied)
	expectEvents(t, c, rte, map[string]int{v1.ReasonPodMonitorCRDNotInstalled: 1, v1.ReasonPodMonitorApplied: 1})

	// 3. A deleted PodMonitor comes back with the periodic pass (there is no watch on them).
	if err := c.Delete(ctx, pm); err != nil {
		t.Fatal(err)
	}
	waitPodMonitor(t, c, key, func(got *unstructured.Unstructured) error {
		if got.GetUID() == pm.GetUID() {
			return fmt.Errorf("still the deleted PodMonitor")
		}
		return nil
	})

	// 4. A changed spec updates it: the new interval, timeout and labels, the old label gone.
	updatePodMonitorSpec(t, c, key, func(s *v1.PodMonitorSpec) {
		s.Interval, s.ScrapeTimeout = &metav1.Duration{Duration: time.Minute}, &metav1.Duration{Duration: 20 * time.Second}
		s.Labels = map[string]string{"team": "observability"}
	})
	waitPodMonitor(t, c, key, func(pm *unstructured.Unstructured) error {
		ep := endpoint(pm)
		if ep["interval"] != "1m" || ep["scrapeTimeout"] != "20s" {
			return fmt.Errorf("endpoint %v", ep)
		}
		if l := pm.GetLabels(); l["team"] != "observability" || l["release"] != "" {
			return fmt.Errorf("labels %v", l)
		}
		return nil
	})

	// 5. Disabled: the PodMonitor is deleted and the condition goes with it.
	updatePodMonitorSpec(t, c, key, func(s *v1.PodMonitorSpec) { s.Enabled = false })
	wait.For(t, 20*time.Second, "PodMonitor pruned, PodMonitorApplied gone", func() error {
		switch err := c.Get(ctx, key, podMonitorObject()); {
		case err == nil:
			return fmt.Errorf("PodMonitor still there")
		case !apierrors.IsNotFound(err):
			return err
		}
		_, obj := kstatusOf(t, c, key)
		if cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionPodMonitorApplied); cond != nil {
			return fmt.Errorf("PodMonitorApplied %+v", cond)
		}
		return nil
	})
	if n := counter(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": "redistraceexporter"}); n != errorsBefore {
		t.Errorf("%v reconcile errors, want none", n-errorsBefore)
	}
}

// prometheusOperatorCRDs is the directory of the prometheus-operator's CRDs at the pinned version.
func prometheusOperatorCRDs(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PROMETHEUS_OPERATOR_CRDS")
	if dir == "" {
		t.Fatal("PROMETHEUS_OPERATOR_CRDS: not set; run the tests with make test, or set it to the output of hack/prometheus-operator-crds.sh")
	}
	return dir
}

// managerRoleConfig binds the operator's generated ClusterRole (config/rbac/role.yaml) to a new
// user and returns a config that authenticates as that user.
func managerRoleConfig(t *testing.T, env *controlplane.Env) *rest.Config {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatal(err)
	}
	role.Name = "tracestream-manager"
	const user = "tracestream-manager"
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	for _, o := range []client.Object{&role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := env.KubeconfigFor(user)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// markDeploymentReady writes the status of a ready Deployment (envtest runs no pods).
func markDeploymentReady(t *testing.T, c client.Client, key client.ObjectKey) {
	t.Helper()
	wait.For(t, 20*time.Second, "Deployment status written", func() error {
		dep := &appsv1.Deployment{}
		if err := c.Get(context.Background(), key, dep); err != nil {
			return err
		}
		dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 1}
		return c.Status().Update(context.Background(), dep)
	})
}

func waitPodMonitorApplied(t *testing.T, c client.Client, key client.ObjectKey, want metav1.ConditionStatus, reason string) {
	t.Helper()
	wait.For(t, 30*time.Second, fmt.Sprintf("PodMonitorApplied %s %s", want, reason), func() error {
		_, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionPodMonitorApplied)
		if cond == nil || cond.Status != want || cond.Reason != reason {
			return fmt.Errorf("PodMonitorApplied %+v", cond)
		}
		// Not a failed pass: nothing is Stalled or retried with ApplyFailed.
		for _, typ := range []string{v1.ConditionStalled, v1.ConditionReconciling} {
			if cond := apimeta.FindStatusCondition(obj.Status.Conditions, typ); cond != nil && cond.Reason != v1.ReasonProgressing {
				t.Fatalf("%s %+v", typ, cond)
			}
		}
		return nil
	})
}

func podMonitorObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(render.PodMonitorGVK)
	return u
}

// waitPodMonitor waits for the resource's PodMonitor to exist and pass check, and returns it.
func waitPodMonitor(t *testing.T, c client.Client, key client.ObjectKey, check func(*unstructured.Unstructured) error) *unstructured.Unstructured {
	t.Helper()
	pm := podMonitorObject()
	wait.For(t, 30*time.Second, "the PodMonitor", func() error {
		if err := c.Get(context.Background(), key, pm); err != nil {
			return err
		}
		return check(pm)
	})
	return pm
}

// endpoint is the PodMonitor's only endpoint.
func endpoint(pm *unstructured.Unstructured) map[string]any {
	eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(eps) != 1 {
		return nil
	}
	ep, _ := eps[0].(map[string]any)
	return ep
}

// checkPodMonitor checks what the alerts and dashboards rely on: exactly this resource's pods,
// the admin port's /metrics, the instance label kept; and the resource as controller owner.
func checkPodMonitor(t *testing.T, c client.Client, key client.ObjectKey, pm *unstructured.Unstructured) {
	t.Helper()
	var rte v1.RedisTraceExporter
	if err := c.Get(context.Background(), key, &rte); err != nil {
		t.Fatal(err)
	}
	if err := controlledBy(pm, &rte); err != nil {
		t.Error(err)
	}
	sel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	if fmt.Sprint(sel) != fmt.Sprint(render.SelectorLabels(&rte)) {
		t.Errorf("selector %v, want the pods' %v", sel, render.SelectorLabels(&rte))
	}
	ep := endpoint(pm)
	if ep["port"] != "admin" || ep["path"] != "/metrics" || ep["scheme"] != "http" || ep["interval"] != "30s" {
		t.Errorf("endpoint %v", ep)
	}
	if targets, _, _ := unstructured.NestedStringSlice(pm.Object, "spec", "podTargetLabels"); fmt.Sprint(targets) != "[app.kubernetes.io/instance]" {
		t.Errorf("podTargetLabels %v", targets)
	}
	if l := pm.GetLabels(); l["release"] != "kube-prometheus-stack" || l["app.kubernetes.io/instance"] != "shop" {
		t.Errorf("labels %v", l)
	}
}

func updatePodMonitorSpec(t *testing.T, c client.Client, key client.ObjectKey, change func(*v1.PodMonitorSpec)) {
	t.Helper()
	_, obj := kstatusOf(t, c, key)
	patch := client.MergeFrom(obj.DeepCopy())
	change(obj.Spec.Observability.Metrics.PodMonitor)
	if err := c.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}

// expectEvents checks the events about the resource with the given reasons: that many, each
// emitted once (no series of repeats).
func expectEvents(t *testing.T, c client.Client, rte *v1.RedisTraceExporter, want map[string]int) {
	t.Helper()
	wait.For(t, 10*time.Second, fmt.Sprintf("events %v", want), func() error {
		var evs eventsv1.EventList
		if err := c.List(context.Background(), &evs, client.InNamespace(rte.Namespace)); err != nil {
			return err
		}
		got := map[string]int{}
		for _, e := range evs.Items {
			if e.Regarding.Kind != "RedisTraceExporter" || e.Regarding.Name != rte.Name {
				continue
			}
			if _, ok := want[e.Reason]; !ok && e.Reason != v1.ReasonPodMonitorApplyFailed {
				continue
			}
			got[e.Reason]++
			if e.Series != nil {
				got[e.Reason] += int(e.Series.Count)
			}
			if e.Reason == v1.ReasonPodMonitorCRDNotInstalled && e.Type != corev1.EventTypeWarning {
				t.Errorf("event %s is %s, want Warning", e.Reason, e.Type)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("events by reason %v", got)
		}
		return nil
	})
}

// counter reads the sum of the counter series of the manager's metrics registry whose labels
// include labels.
func counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
