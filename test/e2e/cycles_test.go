//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestDeletedResourcesLeaveNoChildren creates, updates (then once more with a stale copy, which
// the API server refuses with a conflict) and deletes RedisTraceExporters 1,000 times over 20
// names while the manager in the cluster reconciles them, deletes the last 20, and waits until
// the namespace holds nothing any of them made: no Deployment, ReplicaSet, Pod, ConfigMap,
// Service, EndpointSlice, ServiceAccount, PodDisruptionBudget or HorizontalPodAutoscaler. Unlike
// envtest (test/chaos), this cluster runs the garbage collector, so what is checked is that the
// children really go, not only that they carry owner references. Most cycles run no pods
// (replicas 0); every 100th runs two, so ReplicaSets with pods, the pods themselves and a
// PodDisruptionBudget have to be collected too, and every 10th deletes in the foreground. The
// manager must neither restart nor log a panic meanwhile.
func TestDeletedResourcesLeaveNoChildren(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	managerBefore := managerPods(t, c)
	since := time.Now()

	// Cycle i uses name i%names; worker w runs the cycles with i%workers == w, so each name's
	// cycles stay in order (workers divides names) while four names move at once.
	const cycles, names, workers = 1000, 20, 4
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for w := range workers {
		g.Go(func() error {
			for i := w; i < cycles; i += workers {
				if err := gctx.Err(); err != nil {
					return err
				}
				// Every cycle's stale update must be refused with a conflict, or cycle fails.
				if err := cycle(gctx, c, ns, cycleName(i, names), i, i < cycles-names); err != nil {
					return fmt.Errorf("cycle %d (%s): %w", i, cycleName(i, names), err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)

	// The last resource of each name lives on until now: let the manager finish with them (and
	// the one with replicas 2 run its pods), so the final delete has every kind of child to collect.
	var live v1.RedisTraceExporterList
	if err := c.List(ctx, &live, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(live.Items) != names {
		t.Fatalf("%d RedisTraceExporters after the cycles, want %d", len(live.Items), names)
	}
	for _, rte := range live.Items {
		wait.For(t, 2*time.Minute, rte.Name+" reconciled", func() error {
			var got v1.RedisTraceExporter
			if err := c.Get(ctx, client.ObjectKeyFromObject(&rte), &got); err != nil {
				return err
			}
			if got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
			}
			return nil
		})
	}
	lastWithPods := cycleName(cycles-1, names)
	// At least its 2 pods: a resource updated while its pods could not be Ready yet may have a
	// rollout under way, with a third pod (old and new ReplicaSets side by side), which is valid
	// and only adds children for the delete to collect.
	wait.For(t, 2*time.Minute, lastWithPods+"'s 2 pods running", func() error {
		pods, err := exporterPods(ctx, c, ns, lastWithPods)
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running < 2 {
			return fmt.Errorf("%d of %d pods running: %s", running, len(pods), podSummary(ctx, c, ns))
		}
		return nil
	})
	before, err := children(ctx, c, ns, false)
	if err != nil {
		t.Fatal(err)
	}
	checkLiveChildren(t, live.Items, before, lastWithPods)

	for _, rte := range live.Items {
		if err := c.Delete(ctx, &rte); err != nil {
			t.Fatalf("deleting %s: %v", rte.Name, err)
		}
	}
	deleted := time.Now()
	// Pods first: they go last (the kubelet stops them), so most polls stop at one list, and
	// the kind a poll stops at is the one still holding the namespace up.
	lastKind, lastSeen := "nothing", time.Duration(0)
	if err := wait.Until(5*time.Minute, func() error {
		left, err := children(ctx, c, ns, true)
		if err != nil {
			return err
		}
		if n := total(left); n > 0 {
			for kind := range left {
				lastKind, lastSeen = kind, time.Since(deleted)
			}
			return fmt.Errorf("%d %s left", n, lastKind)
		}
		return nil
	}); err != nil {
		left, lerr := children(ctx, c, ns, false)
		if lerr != nil {
			t.Fatalf("children of deleted RedisTraceExporters still there %s after the last delete (%v), and then: %v",
				time.Since(deleted).Round(time.Second), err, lerr)
		}
		t.Fatalf("children of deleted RedisTraceExporters still there %s after the last delete (%v):\n%s",
			time.Since(deleted).Round(time.Second), err, describe(left))
	}
	gone := time.Since(deleted)
	var rtes v1.RedisTraceExporterList
	if err := c.List(ctx, &rtes, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(rtes.Items) != 0 {
		t.Errorf("%d RedisTraceExporters still there after deleting them all", len(rtes.Items))
	}

	restarts, errorLines := checkManager(t, c, managerBefore, since)
	t.Logf("FIGURES %d create/update/stale-update/delete cycles over %d names (%d workers; every 100th with 2 pods, every 10th deleted in the foreground; every stale update refused with a conflict): %v; "+
		"%d children before the final delete (%s); "+
		"all children gone %.1fs after the last delete (the last %s seen at %.1fs); manager restarts %d, %d error log lines",
		cycles, names, workers, took.Round(time.Millisecond),
		total(before), counts(before), gone.Seconds(), lastKind, lastSeen.Seconds(), restarts, errorLines)
}

func cycleName(i, names int) string { return fmt.Sprintf("rte-%02d", i%names) }

// cycle creates RedisTraceExporter name (for the i-th time overall), updates it, updates it again from the copy it
// had before the first update (which must be refused with a conflict) and, when del, deletes it
// and waits until it is gone, so that the name can be created again. Every 100th cycle (the
// 99th, 199th...) runs 2 pods and waits until one exists; every 10th (5th, 15th...) deletes in
// the foreground.
func cycle(ctx context.Context, c client.Client, ns, name string, i int, del bool) error {
	withPods := i%100 == 99
	replicas := int32(0)
	if withPods {
		replicas = 1
	}
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{
			// The pod's own loopback: refused at once, and no packet leaves the pod.
			Redis:           v1.RedisSpec{Addresses: []string{"127.0.0.1:1"}},
			Replicas:        ptr.To(replicas),
			ImagePullPolicy: corev1.PullNever,
		},
	}
	if err := c.Create(ctx, rte); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	stale := rte.DeepCopy()
	// The manager's status writes also move the resourceVersion: retry those conflicts, so
	// the update is applied (the pod cycles need replicas 2) and the stale one below must fail.
	if err := wait.Until(30*time.Second, func() error {
		var fresh v1.RedisTraceExporter
		if err := c.Get(ctx, client.ObjectKeyFromObject(rte), &fresh); err != nil {
			return err
		}
		// A new pod template (so a new ReplicaSet) on every update.
		fresh.Spec.PodAnnotations = map[string]string{"e2e.tracestream.io/cycle": strconv.Itoa(i)}
		if withPods {
			fresh.Spec.Replicas = ptr.To[int32](2) // a PodDisruptionBudget too
		}
		if err := c.Update(ctx, &fresh); err != nil {
			return err
		}
		*rte = fresh
		return nil
	}); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	stale.Spec.PodAnnotations = map[string]string{"e2e.tracestream.io/cycle": "stale"}
	switch err := c.Update(ctx, stale); {
	case apierrors.IsConflict(err):
	case err == nil:
		return errors.New("an update from a stale copy was accepted")
	default:
		return fmt.Errorf("stale update: %w", err)
	}
	if withPods {
		if err := wait.Until(2*time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(rte), &policyv1.PodDisruptionBudget{}); err != nil {
				return fmt.Errorf("PodDisruptionBudget: %w", err)
			}
			pods, err := exporterPods(ctx, c, ns, rte.Name)
			if err != nil {
				return err
			}
			if len(pods) == 0 {
				return fmt.Errorf("no pod yet: %s", replicaSetSummary(ctx, c, ns))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if !del {
		return nil
	}
	policy := metav1.DeletePropagationBackground // what kubectl delete does
	if i%10 == 5 {
		policy = metav1.DeletePropagationForeground
	}
	if err := c.Delete(ctx, rte, client.PropagationPolicy(policy)); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := wait.Until(2*time.Minute, func() error {
		err := c.Get(ctx, client.ObjectKeyFromObject(rte), &v1.RedisTraceExporter{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (get: %w)", err)
	}); err != nil {
		return fmt.Errorf("waiting for the %s delete: %w", policy, err)
	}
	return nil
}

// exporterPods are the pods of RedisTraceExporter name that are not being deleted.
func exporterPods(ctx context.Context, c client.Client, ns, name string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	selector := render.SelectorLabels(&v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(selector)); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// replicaSetSummary says why a ReplicaSet made no pod (a Pod Security refusal shows here).
func replicaSetSummary(ctx context.Context, c client.Client, ns string) string {
	var rss appsv1.ReplicaSetList
	if err := c.List(ctx, &rss, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var parts []string
	for _, rs := range rss.Items {
		if ptr.Deref(rs.Spec.Replicas, 0) == 0 {
			continue
		}
		s := fmt.Sprintf("%s %d/%d", rs.Name, rs.Status.Replicas, ptr.Deref(rs.Spec.Replicas, 0))
		for _, cond := range rs.Status.Conditions {
			s += fmt.Sprintf(" %s: %s", cond.Reason, cond.Message)
		}
		parts = append(parts, s)
	}
	return "ReplicaSets with replicas: " + strings.Join(parts, "; ")
}

// childKinds are the kinds a RedisTraceExporter leaves in its namespace: what the manager
// applies, and what the controllers acting on those make (ReplicaSets, Pods, EndpointSlices).
// Pods come first: they are the last to go.
var childKinds = []struct {
	kind string
	list func() client.ObjectList
}{
	{"Pod", func() client.ObjectList { return &corev1.PodList{} }},
	{"ReplicaSet", func() client.ObjectList { return &appsv1.ReplicaSetList{} }},
	{"Deployment", func() client.ObjectList { return &appsv1.DeploymentList{} }},
	{"PodDisruptionBudget", func() client.ObjectList { return &policyv1.PodDisruptionBudgetList{} }},
	{"HorizontalPodAutoscaler", func() client.ObjectList { return &autoscalingv2.HorizontalPodAutoscalerList{} }},
	{"Service", func() client.ObjectList { return &corev1.ServiceList{} }},
	{"EndpointSlice", func() client.ObjectList { return &discoveryv1.EndpointSliceList{} }},
	{"ConfigMap", func() client.ObjectList { return &corev1.ConfigMapList{} }},
	{"ServiceAccount", func() client.ObjectList { return &corev1.ServiceAccountList{} }},
}

// children lists, by kind, the objects in ns that are not the namespace's own (its default
// ServiceAccount and its kube-root-ca.crt ConfigMap). With firstOnly it stops at the first kind
// that has any, to keep polling cheap.
func children(ctx context.Context, c client.Client, ns string, firstOnly bool) (map[string][]client.Object, error) {
	out := map[string][]client.Object{}
	for _, k := range childKinds {
		list := k.list()
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing %ss in %s: %w", k.kind, ns, err)
		}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, o := range items {
			obj := o.(client.Object)
			if (k.kind == "ServiceAccount" && obj.GetName() == "default") || (k.kind == "ConfigMap" && obj.GetName() == "kube-root-ca.crt") {
				continue
			}
			out[k.kind] = append(out[k.kind], obj)
		}
		if firstOnly && len(out[k.kind]) > 0 {
			break
		}
	}
	return out, nil
}

func total(objs map[string][]client.Object) int {
	n := 0
	for _, l := range objs {
		n += len(l)
	}
	return n
}

// counts is "3 Pod, 20 Deployment, ..." in childKinds order.
func counts(objs map[string][]client.Object) string {
	var parts []string
	for _, k := range childKinds {
		if n := len(objs[k.kind]); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k.kind))
		}
	}
	return strings.Join(parts, ", ")
}

// describe lists each object with its owners and, when it is being deleted, since when.
func describe(objs map[string][]client.Object) string {
	var b strings.Builder
	for _, k := range childKinds {
		for _, o := range objs[k.kind] {
			var owners []string
			for _, ref := range o.GetOwnerReferences() {
				owners = append(owners, fmt.Sprintf("%s/%s uid %s", ref.Kind, ref.Name, ref.UID))
			}
			fmt.Fprintf(&b, "  %s %s (owners: %s", k.kind, o.GetName(), strings.Join(owners, ", "))
			if ts := o.GetDeletionTimestamp(); ts != nil {
				fmt.Fprintf(&b, "; deleting for %s, finalizers %v", time.Since(ts.Time).Round(time.Second), o.GetFinalizers())
			}
			b.WriteString(")\n")
		}
	}
	return b.String()
}

// checkLiveChildren checks that each live resource has its ConfigMap, ServiceAccount, Service
// and Deployment, controlled by it, and that name runs its PodDisruptionBudget: without them the
// final delete would have nothing to collect and the test could not fail.
func checkLiveChildren(t *testing.T, live []v1.RedisTraceExporter, objs map[string][]client.Object, withPDB string) {
	t.Helper()
	byKey := map[string]client.Object{}
	for kind, l := range objs {
		for _, o := range l {
			byKey[kind+"/"+o.GetName()] = o
		}
	}
	for _, rte := range live {
		want := []string{"ConfigMap/" + render.ConfigMapName(&rte), "ServiceAccount/" + render.OwnServiceAccountName(&rte),
			"Service/" + rte.Name, "Deployment/" + rte.Name}
		if rte.Name == withPDB {
			want = append(want, "PodDisruptionBudget/"+rte.Name)
		}
		for _, key := range want {
			o, ok := byKey[key]
			switch {
			case !ok:
				t.Errorf("%s of %s is missing before the final delete", key, rte.Name)
			case !metav1.IsControlledBy(o, &rte):
				// Reported, not fatal: the final check still shows whether it is collected.
				t.Errorf("%s is not controlled by %s (uid %s): owners %v", key, rte.Name, rte.UID, o.GetOwnerReferences())
			}
		}
	}
}

// managerPods are the manager's pods that are not being deleted.
func managerPods(t *testing.T, c client.Client) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "tracestream-manager"}, &d); err != nil {
		t.Fatalf("getting the manager Deployment: %v", err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no manager pod in %s", operatorNamespace)
	}
	return out
}

func restartCount(p corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}

// checkManager fails the test when the manager's pods were replaced or restarted since before,
// or logged a panic since since, and returns the restarts and the error lines logged.
func checkManager(t *testing.T, c client.Client, before []corev1.Pod, since time.Time) (restarts int32, errorLines int) {
	t.Helper()
	after := managerPods(t, c)
	var uidsBefore, uidsAfter []string
	for _, p := range before {
		uidsBefore = append(uidsBefore, string(p.UID))
	}
	for _, p := range after {
		uidsAfter = append(uidsAfter, string(p.UID))
	}
	sort.Strings(uidsBefore)
	sort.Strings(uidsAfter)
	if strings.Join(uidsBefore, ",") != strings.Join(uidsAfter, ",") {
		t.Errorf("the manager's pods were replaced during the test: %v, then %v", uidsBefore, uidsAfter)
	}
	old := map[string]int32{}
	for _, p := range before {
		old[string(p.UID)] = restartCount(p)
	}
	kubectl := os.Getenv("E2E_KUBECTL")
	for _, p := range after {
		n := restartCount(p) - old[string(p.UID)]
		restarts += n
		if n != 0 {
			t.Errorf("manager pod %s restarted %d times during the test (%d in its life)\n%s", p.Name, n, restartCount(p), managerLogs())
		}
		out, err := exec.Command(kubectl, "logs", "-n", operatorNamespace, p.Name, "--since-time="+since.UTC().Format(time.RFC3339)).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl logs %s: %v\n%s", p.Name, err, out)
		}
		text := string(out)
		errorLines += strings.Count(text, `"level":"error"`)
		if strings.Contains(strings.ToLower(text), "panic") {
			t.Errorf("manager pod %s logged a panic:\n%s", p.Name, text)
		}
	}
	return restarts, errorLines
}
