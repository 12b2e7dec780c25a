package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/controller"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// startManager runs the real controller against the envtest API server until the test ends.
// Options change the Reconciler before it starts.
func startManager(t *testing.T, env *controlplane.Env, options ...func(*controller.Reconciler)) {
	t.Helper()
	startManagerAs(t, env, env.Config, options...)
}

// startManagerAs is startManager with the manager reaching the API server through cfg (a user
// with only the operator's ClusterRole, say).
func startManagerAs(t *testing.T, env *controlplane.Env, cfg *rest.Config, options ...func(*controller.Reconciler)) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		// Each test runs its own manager in the same process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	r := &controller.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("tracestream-operator"), Image: "tracestream:test",
	}
	for _, o := range options {
		o(r)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func kstatusOf(t *testing.T, c client.Client, key client.ObjectKey) (*status.Result, *v1.RedisTraceExporter) {
	t.Helper()
	var obj v1.RedisTraceExporter
	if err := c.Get(context.Background(), key, &obj); err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	if err != nil {
		t.Fatal(err)
	}
	return res, &obj
}

// TestReconcilerLifecycle drives one RedisTraceExporter through its life on a real API server
// and a real Redis: missing Secret, children and ownerRefs, kstatus InProgress then Current once
// the Deployment is ready, lag from real consumer groups (including an unknown lag), a Secret
// change rolling the pods, and pruning.
func TestReconcilerLifecycle(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	ctx := context.Background()
	c := env.Client
	redis := redistest.Standalone(t, redistest.WithACL(""))
	rdb := redis.Client(t)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lifecycle"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns.Name},
		Spec: v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{Addresses: []string{redis.Addr()},
				Auth: &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "redis-auth"}}},
			Replicas: ptr.To[int32](2),
			Lag:      v1.LagSpec{RefreshInterval: &metav1.Duration{Duration: time.Second}},
		},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)

	// 1. The auth Secret does not exist: Stalled, Ready=False, and no crash.
	wait.For(t, 20*time.Second, "Stalled on the missing Secret", func() error {
		res, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStalled)
		if res.Status != status.FailedStatus || cond == nil || cond.Reason != v1.ReasonSecretNotFound {
			return fmt.Errorf("kstatus %s, Stalled %+v", res.Status, cond)
		}
		return nil
	})

	// 2. The Secret appears: children are applied, owned by the resource.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-auth", Namespace: ns.Name},
		Data: map[string][]byte{"username": []byte(redis.ACL().Username()), "password": []byte(redis.ACL().Password())}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	dep := &appsv1.Deployment{}
	wait.For(t, 20*time.Second, "children applied", func() error {
		for _, o := range []client.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shop-config"}}, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "shop-exporter"}}, dep} {
			name := o.GetName()
			if name == "" {
				name = "shop"
			}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, o); err != nil {
				return err
			}
			if err := controlledBy(o, rte); err != nil {
				return err
			}
		}
		return nil
	})
	var cm corev1.ConfigMap
	_ = c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "shop-config"}, &cm)
	if strings.Contains(cm.Data[render.ConfigFile], redis.ACL().Password()) {
		t.Fatal("the password is in the ConfigMap")
	}

	// 3. Pods not ready yet: InProgress with Reconciling.
	wait.For(t, 20*time.Second, "InProgress while no pod is ready", func() error {
		res, obj := kstatusOf(t, c, key)
		if res.Status != status.InProgressStatus {
			return fmt.Errorf("kstatus = %s (%s)", res.Status, res.Message)
		}
		if obj.Status.Selector == "" {
			return fmt.Errorf("status.selector is empty: the scale subresource needs it")
		}
		return nil
	})

	// 4. Lag from real consumer groups: one known, one unknown (group created mid-stream).
	for i := range 10 {
		rdb.XAdd(ctx, redisXAdd{stream: "traces:shop", i: i}.args())
	}
	rdb.XGroupCreate(ctx, "traces:shop", "readers", "0")
	rdb.XReadGroup(ctx, readArgs("traces:shop", "readers", 3))
	ids := rdb.XRange(ctx, "traces:shop", "-", "+").Val()
	rdb.XGroupCreate(ctx, "traces:shop", "latecomers", ids[4].ID)

	// 5. Simulate the Deployment becoming ready (envtest runs no pods).
	wait.For(t, 10*time.Second, "Deployment status written", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return err
		}
		dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}
		return c.Status().Update(ctx, dep)
	})
	wait.For(t, 30*time.Second, "Ready, Current, lag reported", func() error {
		res, obj := kstatusOf(t, c, key)
		if res.Status != status.CurrentStatus {
			return fmt.Errorf("kstatus %s: %s", res.Status, res.Message)
		}
		if len(obj.Status.Streams) != 1 || len(obj.Status.Streams[0].Groups) != 2 {
			return fmt.Errorf("streams %+v", obj.Status.Streams)
		}
		g := obj.Status.Streams[0].Groups
		if g[1].Name != "readers" || g[1].Lag == nil || *g[1].Lag != 7 || g[1].Pending != 3 {
			return fmt.Errorf("readers group %+v", g[1])
		}
		if g[0].Name != "latecomers" || g[0].Lag != nil {
			return fmt.Errorf("latecomers group %+v: an unknown lag must be unset, never 0", g[0])
		}
		if obj.Status.TotalLag == nil || *obj.Status.TotalLag != 7 || obj.Status.UnknownLagGroups != 1 || obj.Status.ReplicasSummary != "2/2" {
			return fmt.Errorf("totals %v unknown %d replicas %s", obj.Status.TotalLag, obj.Status.UnknownLagGroups, obj.Status.ReplicasSummary)
		}
		return nil
	})
	_, obj := kstatusOf(t, c, key)
	out, _ := yaml.Marshal(obj.Status)
	t.Logf("status once ready:\n%s", out)
	// The same figures on the manager's metrics endpoint, for alerting.
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tracestream_redistraceexporter_ready", map[string]string{"namespace": ns.Name, "name": rte.Name}, 1},
		{"tracestream_redistraceexporter_stream_length", map[string]string{"namespace": ns.Name, "name": rte.Name, "stream": "traces:shop"}, 10},
		{"tracestream_redistraceexporter_group_lag", map[string]string{"namespace": ns.Name, "name": rte.Name, "stream": "traces:shop", "group": "readers"}, 7},
	} {
		if v, ok := gauge(t, m.name, m.labels); !ok || v != m.want {
			t.Errorf("%s%v = %v (present %v), want %v", m.name, m.labels, v, ok, m.want)
		}
	}
	if _, ok := gauge(t, "tracestream_redistraceexporter_group_lag", map[string]string{"namespace": ns.Name, "group": "latecomers"}); ok {
		t.Errorf("an unknown lag must have no series, never 0")
	}

	// Events on transitions only, however many passes ran in between (the refresh interval is 1 s).
	wait.For(t, 10*time.Second, "transition events", func() error {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns.Name)); err != nil {
			return err
		}
		reasons := map[string]int{}
		var notes []string
		for _, e := range evs.Items {
			if e.Regarding.Kind == "RedisTraceExporter" && e.Regarding.Name == rte.Name {
				reasons[e.Reason]++
				notes = append(notes, e.Reason+": "+e.Note)
			}
		}
		// SecretNotFound -> DeploymentNotAvailable -> Ready: three transitions, three events.
		if reasons[v1.ReasonSecretNotFound] != 1 || reasons[v1.ReasonReady] != 1 || len(notes) > 3 {
			return fmt.Errorf("events %q, want one per Ready transition", notes)
		}
		return nil
	})

	// 6. A Secret change rolls the pods through the pod-template hash.
	before := dep.Spec.Template.Annotations[render.ConfigHashKey]
	secret.Data["password"] = []byte("rotated-password")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "pod template hash changes with the Secret", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return err
		}
		if dep.Spec.Template.Annotations[render.ConfigHashKey] == before {
			return fmt.Errorf("hash still %s", before)
		}
		return nil
	})
	// The operator's own lag reader now fails to authenticate: RedisReachable says so.
	wait.For(t, 20*time.Second, "RedisReachable=False with AuthenticationFailed", func() error {
		_, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionRedisReachable)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1.ReasonRedisAuthFailed {
			return fmt.Errorf("RedisReachable %+v", cond)
		}
		if strings.Contains(cond.Message, "rotated-password") || strings.Contains(cond.Message, redis.ACL().Password()) {
			t.Fatalf("the condition message holds a password: %s", cond.Message)
		}
		return nil
	})

	// 7. Pruning: autoscaling on creates an HPA, off deletes it.
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Spec.Autoscaling = &v1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4}
	if err := c.Patch(ctx, obj, patch); err != nil {
		t.Fatal(err)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	wait.For(t, 20*time.Second, "HPA created", func() error { return c.Get(ctx, key, hpa) })
	_, obj = kstatusOf(t, c, key)
	patch = client.MergeFrom(obj.DeepCopy())
	obj.Spec.Autoscaling = nil
	if err := c.Patch(ctx, obj, patch); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "HPA pruned", func() error {
		if err := c.Get(ctx, key, hpa); err == nil {
			return fmt.Errorf("HPA still there")
		}
		return nil
	})

	// 8. Deleting the resource removes its metrics series.
	if err := c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "metrics series removed", func() error {
		if _, ok := gauge(t, "tracestream_redistraceexporter_ready", map[string]string{"namespace": ns.Name, "name": rte.Name}); ok {
			return fmt.Errorf("ready series still exported")
		}
		if _, ok := gauge(t, "tracestream_redistraceexporter_stream_length", map[string]string{"namespace": ns.Name}); ok {
			return fmt.Errorf("stream length series still exported")
		}
		return nil
	})
}

// controlledBy checks that o's controller reference is exactly owner: kind, name, UID and
// controller=true (metav1.IsControlledBy compares the UID only).
func controlledBy(o client.Object, owner *v1.RedisTraceExporter) error {
	ref := metav1.GetControllerOf(o)
	if ref == nil {
		return fmt.Errorf("%T %s has no controller reference (owners %+v)", o, o.GetName(), o.GetOwnerReferences())
	}
	want := metav1.OwnerReference{APIVersion: v1.GroupVersion.String(), Kind: "RedisTraceExporter", Name: owner.Name, UID: owner.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	if !equality.Semantic.DeepEqual(*ref, want) {
		return fmt.Errorf("%T %s is controlled by %+v, want %+v", o, o.GetName(), *ref, want)
	}
	return nil
}

// TestInvalidSpecStallsWithoutRollingOut: a spec the CRD accepts but the exporter would refuse
// at start-up (a stream TTL below EXPIRE's resolution of 1s) ends Stalled with InvalidSpec naming
// the field, and no Deployment is created, instead of pods crash-looping.
func TestInvalidSpecStallsWithoutRollingOut(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	ctx := context.Background()
	c := env.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "invalid"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns.Name},
		Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"127.0.0.1:1"}},
			Stream: v1.StreamSpec{TTL: &metav1.Duration{Duration: 500 * time.Millisecond}}},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatalf("the CRD refused the spec, so the test would not reach the operator's check: %v", err)
	}
	key := client.ObjectKeyFromObject(rte)
	wait.For(t, 20*time.Second, "Stalled with InvalidSpec naming stream.ttl", func() error {
		res, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStalled)
		if res.Status != status.FailedStatus || cond == nil || cond.Reason != v1.ReasonInvalidSpec || !strings.Contains(cond.Message, "stream.ttl") {
			return fmt.Errorf("kstatus %s, Stalled %+v", res.Status, cond)
		}
		return nil
	})
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 0 {
		t.Errorf("%d Deployments rolled out for a spec the exporter refuses", len(deps.Items))
	}
}

// gauge reads the first gauge series of the manager's metrics registry whose labels include labels.
func gauge(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
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
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestLagInClusterMode reports streams from every master of a real Redis Cluster.
func TestLagInClusterMode(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	ctx := context.Background()
	c := env.Client
	rc := redistest.Cluster(t, redistest.WithReplicas(0))
	rdb := rc.Client(t)
	services := []string{"a", "b", "c", "d", "e", "f"}
	for _, svc := range services {
		rdb.XAdd(ctx, redisXAdd{stream: "traces:" + svc}.args())
	}
	// The six streams really are spread over the masters.
	used := 0
	for _, m := range rc.Masters() {
		if n := m.Client(t).DBSize(ctx).Val(); n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("streams on %d masters: the test would not show a multi-master scan", used)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, m := range rc.Masters() {
		addrs = append(addrs, m.Addr())
	}
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "clustered", Namespace: ns.Name},
		Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Mode: v1.RedisModeCluster, Addresses: addrs},
			Lag: v1.LagSpec{RefreshInterval: &metav1.Duration{Duration: time.Second}}},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "all six streams in status", func() error {
		_, obj := kstatusOf(t, c, client.ObjectKeyFromObject(rte))
		if len(obj.Status.Streams) != len(services) {
			return fmt.Errorf("streams %+v", obj.Status.Streams)
		}
		for i, s := range obj.Status.Streams {
			if s.Name != "traces:"+services[i] || s.Length != 1 {
				return fmt.Errorf("stream %d = %+v", i, s)
			}
		}
		return nil
	})
}

// TestReconcileCutShortByShutdownIsNotAnError: when the manager stops, the pass in progress
// sees its context cancelled; that is not a reconcile error to log (it failed the operator
// scale test's "no error lines" check in one of two CI runs).
func TestReconcileCutShortByShutdownIsNotAnError(t *testing.T) {
	env := controlplane.Start(t)
	r := &controller.Reconciler{Client: env.Client, APIReader: env.Client, Image: "tracestream:test"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "default", Name: "shop"}}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatalf("Reconcile with the manager's context cancelled = %v, want nil", err)
	}
}
