package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/controller"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// queueRTE is a resource with a persistent queue on the given volume, and no Redis to reach.
func queueRTE(ns, volume string) *v1.RedisTraceExporter {
	return &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "durable", Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"127.0.0.1:1"}}, Replicas: ptr.To[int32](2),
			Delivery: v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{Volume: volume}}},
	}
}

func namespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// exists says whether the object is there, failing the test on any other error.
func exists(t *testing.T, c client.Client, key client.ObjectKey, o client.Object) bool {
	t.Helper()
	err := c.Get(context.Background(), key, o)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestHandoverKeepsTheDeploymentUntilItsLogsCanDrain: a resource moved from an emptyDir queue to
// a Persistent one keeps its Deployment (Reconciling, WorkloadHandover, saying what it waits for)
// until the StatefulSet is available, then until every Deployment pod with a log writes it to
// Redis, so that deleting it makes the pods drain their logs at SIGTERM rather than lose them.
// The Deployment's ConfigMap stays with it (its pods may restart meanwhile); a pod without a
// queue volume is not waited for.
func TestHandoverKeepsTheDeploymentUntilItsLogsCanDrain(t *testing.T) {
	var mu sync.Mutex
	st := telemetry.Status{PersistentQueue: &telemetry.QueueStats{Records: 5}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, noQueueIP) {
			http.Error(w, "the pod without a queue is never asked", http.StatusInternalServerError)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	env := controlplane.Start(t)
	startManager(t, env, func(r *controller.Reconciler) { r.HTTP = &http.Client{Transport: toServer(srv.URL)} })
	ctx := context.Background()
	c := env.Client
	namespace(t, c, "handover")
	rte := queueRTE("handover", v1.QueueVolumeEmptyDir)
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)
	wait.For(t, 20*time.Second, "the Deployment applied", func() error {
		if !exists(t, c, key, &appsv1.Deployment{}) {
			return fmt.Errorf("no Deployment yet")
		}
		return nil
	})
	oldPod(t, c, rte, "old", "10.1.2.3", true)
	oldPod(t, c, rte, "noqueue", noQueueIP, false) // would hold the handover if asked
	_, obj := kstatusOf(t, c, key)
	obj.Spec.Delivery.PersistentQueue.Volume = v1.QueueVolumePersistent
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{}
	waitHandover(t, c, key, v1.ReasonStatefulSetNotReady, "the Deployment durable stays until the StatefulSet that replaces it is available")
	if !exists(t, c, key, sts) || !exists(t, c, key, &appsv1.Deployment{}) {
		t.Fatal("want the StatefulSet applied beside the Deployment")
	}
	// envtest runs no StatefulSet controller: write the status it would.
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
		UpdatedReplicas: 2, CurrentReplicas: 2, CurrentRevision: "durable-1", UpdateRevision: "durable-1"}
	if err := c.Status().Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	waitHandover(t, c, key, v1.ReasonWorkloadHandover, "its pod durable-old writes its log (5 records) to Redis (it drains the log at SIGTERM)")
	// Redis answers PING but takes no write (paused, out of memory): still held.
	stale := time.Now().Add(-time.Minute)
	mu.Lock()
	st.RedisReachable, st.LastWrite = true, &stale
	mu.Unlock()
	time.Sleep(2 * time.Second) // a pass or two with the new answer; the hold must not end
	waitHandover(t, c, key, v1.ReasonWorkloadHandover, "its pod durable-old writes its log (5 records) to Redis (it drains the log at SIGTERM)")
	if !exists(t, c, key, &appsv1.Deployment{}) || !exists(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-config"}, &corev1.ConfigMap{}) {
		t.Fatal("the Deployment or its ConfigMap went while its pod could not drain its log")
	}
	mu.Lock()
	now := time.Now()
	st.LastWrite = &now
	mu.Unlock()
	wait.For(t, 30*time.Second, "the Deployment and its ConfigMap deleted once its pod writes to Redis", func() error {
		if exists(t, c, key, &appsv1.Deployment{}) || exists(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-config"}, &corev1.ConfigMap{}) {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// noQueueIP is the pod IP of an old pod without a queue volume.
const noQueueIP = "10.1.2.4"

// oldPod makes a running pod of the resource's Deployment (envtest runs no ReplicaSet
// controller), with or without a queue volume, whose /status the test server answers.
func oldPod(t *testing.T, c client.Client, rte *v1.RedisTraceExporter, suffix, ip string, queue bool) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: rte.Name + "-" + suffix, Namespace: rte.Namespace, Labels: render.SelectorLabels(rte),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rte.Name + "-rs", UID: "rs-uid", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "exporter", Image: "tracestream:test"}}}}
	if queue {
		pod.Spec.Volumes = []corev1.Volume{{Name: render.QueueVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	if err := c.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip}
	if err := c.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

// waitHandover waits for WorkloadAvailable False with reason and a message naming what the old
// workload waits for, and kstatus InProgress.
func waitHandover(t *testing.T, c client.Client, key client.ObjectKey, reason, waitsFor string) {
	t.Helper()
	wait.For(t, 20*time.Second, reason+" waiting until "+waitsFor, func() error {
		res, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionWorkloadAvailable)
		if res.Status != status.InProgressStatus || cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != reason ||
			!strings.HasSuffix(cond.Message, waitsFor) {
			return fmt.Errorf("kstatus %s, WorkloadAvailable %+v", res.Status, cond)
		}
		return nil
	})
}

// toServer sends every request, whatever its pod IP, to the test server at raw.
type toServer string

func (s toServer) RoundTrip(req *http.Request) (*http.Response, error) {
	u, err := url.Parse(string(s))
	if err != nil {
		return nil, err
	}
	req.URL.Scheme, req.URL.Host = u.Scheme, u.Host
	return http.DefaultTransport.RoundTrip(req)
}

// TestPersistentQueueRunsAStatefulSet: a Persistent queue runs a StatefulSet, status reads its
// rollout (StatefulSet reasons, replicas), and a switch back keeps the StatefulSet until the
// Deployment is available, then prunes it (its claims stay, drained as orphans).
func TestPersistentQueueRunsAStatefulSet(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	ctx := context.Background()
	c := env.Client
	namespace(t, c, "durable")
	rte := queueRTE("durable", v1.QueueVolumePersistent)
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)
	sts := &appsv1.StatefulSet{}
	wait.For(t, 20*time.Second, "a StatefulSet, not available yet", func() error {
		_, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionWorkloadAvailable)
		if !exists(t, c, key, sts) || cond == nil || cond.Reason != v1.ReasonStatefulSetNotReady {
			return fmt.Errorf("WorkloadAvailable %+v", cond)
		}
		return nil
	})
	if !metav1.IsControlledBy(sts, rte) {
		t.Errorf("StatefulSet owners %+v", sts.OwnerReferences)
	}
	if exists(t, c, key, &appsv1.Deployment{}) {
		t.Error("a Deployment runs beside the StatefulSet")
	}
	// envtest runs no StatefulSet controller: write the status it would.
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
		UpdatedReplicas: 2, CurrentReplicas: 2, CurrentRevision: "durable-1", UpdateRevision: "durable-1"}
	if err := c.Status().Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the StatefulSet available, 2/2", func() error {
		_, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionWorkloadAvailable)
		if cond == nil || cond.Reason != v1.ReasonStatefulSetReady || obj.Status.ReplicasSummary != "2/2" || obj.Status.Replicas != 2 {
			return fmt.Errorf("WorkloadAvailable %+v, replicas %d %q", cond, obj.Status.Replicas, obj.Status.ReplicasSummary)
		}
		return nil
	})
	_, obj := kstatusOf(t, c, key)
	obj.Spec.Delivery.PersistentQueue.Volume = v1.QueueVolumeEphemeral
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitHandover(t, c, key, v1.ReasonDeploymentNotReady, "the StatefulSet durable stays until the Deployment that replaces it is available")
	d := &appsv1.Deployment{}
	if !exists(t, c, key, d) || !exists(t, c, key, &appsv1.StatefulSet{}) {
		t.Fatal("want the Deployment applied beside the StatefulSet")
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}
	if err := c.Status().Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the StatefulSet pruned once the Deployment is available", func() error {
		if exists(t, c, key, &appsv1.StatefulSet{}) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// TestHandoverUnderAutoscalingStartsAtTheOldReplicas: under autoscaling the children leave
// replicas to the HPA, so a StatefulSet created by a change of volume would start with 1 pod and
// release a Deployment the HPA had at 4; it starts at 4 instead, and later passes keep it there.
func TestHandoverUnderAutoscalingStartsAtTheOldReplicas(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	ctx := context.Background()
	c := env.Client
	namespace(t, c, "seeded")
	rte := queueRTE("seeded", v1.QueueVolumeEmptyDir)
	rte.Spec.Replicas = nil
	rte.Spec.Autoscaling = &v1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 10}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)
	d := &appsv1.Deployment{}
	wait.For(t, 20*time.Second, "the Deployment applied", func() error {
		if !exists(t, c, key, d) {
			return fmt.Errorf("no Deployment yet")
		}
		return nil
	})
	// What the HPA does: the scale subresource.
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 4}}
	if err := c.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(scale)); err != nil {
		t.Fatal(err)
	}
	_, obj := kstatusOf(t, c, key)
	obj.Spec.Delivery.PersistentQueue.Volume = v1.QueueVolumePersistent
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{}
	wait.For(t, 20*time.Second, "the StatefulSet at the Deployment's 4 replicas", func() error {
		if !exists(t, c, key, sts) || sts.Spec.Replicas == nil || *sts.Spec.Replicas != 4 {
			return fmt.Errorf("statefulset replicas %v", sts.Spec.Replicas)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // more passes: none may reset the replicas
	if !exists(t, c, key, sts) || *sts.Spec.Replicas != 4 {
		t.Errorf("statefulset replicas %d after more passes, want 4", *sts.Spec.Replicas)
	}
}
