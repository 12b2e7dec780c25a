package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestScaleDownDrainsOrphanedClaims, for each whenScaled: a scale from 3 to
// 1 replicas drains claims 1 and 2 with Jobs owned by the claims, without changing Ready; a
// succeeded drain deletes its claim (Delete) or keeps it (Retain); a failed one sets Ready False
// (QueueDrainStalled) without Reconciling; a scale back to 3 deletes the drain Jobs so the
// StatefulSet's pods can mount their claims. envtest runs no StatefulSet, Job or garbage
// collector controller: the test writes their statuses and creates the claims itself.
func TestScaleDownDrainsOrphanedClaims(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	redis := redistest.Standalone(t)
	for _, retention := range []string{v1.ClaimRetentionDelete, v1.ClaimRetentionRetain} {
		t.Run(retention, func(t *testing.T) { scaleDownDrains(t, env.Client, redis.Addr(), retention) })
	}
}

func scaleDownDrains(t *testing.T, c client.Client, redisAddr, retention string) {
	ctx := context.Background()
	ns := "drain-" + strings.ToLower(retention)
	namespace(t, c, ns)
	rte := queueRTE(ns, v1.QueueVolumePersistent)
	rte.Spec.Redis.Addresses, rte.Spec.Replicas = []string{redisAddr}, ptr.To[int32](3)
	rte.Spec.Delivery.PersistentQueue.ClaimRetentionPolicy = &v1.QueueClaimRetentionPolicy{WhenScaled: retention}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)
	statefulSetReady(t, c, key, 3)
	for i := range 3 {
		createClaim(t, c, rte, i)
	}
	waitQueue(t, c, key, "three claims in use, QueueDrained True, Ready", func(obj *v1.RedisTraceExporter) error {
		return expectQueue(obj, 3, 0, v1.ReasonNoOrphanedRecords, v1.ReasonReady)
	})

	// Pod 2 still stops (its own drain at SIGTERM): its claim is not orphaned until it is gone.
	pod2 := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "durable-2", Namespace: ns, Labels: render.SelectorLabels(rte)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "exporter", Image: "tracestream:test"}}}}
	if err := c.Create(ctx, pod2); err != nil {
		t.Fatal(err)
	}
	scale(t, c, key, 1)
	statefulSetReady(t, c, key, 1)
	waitQueue(t, c, key, "one drain while pod 2 stops", func(obj *v1.RedisTraceExporter) error {
		return expectQueue(obj, 3, 1, v1.ReasonDraining, v1.ReasonReady)
	})
	if exists(t, c, client.ObjectKey{Namespace: ns, Name: "durable-drain-2"}, &batchv1.Job{}) {
		t.Error("claim 2 is drained while its pod still runs")
	}
	if err := c.Delete(ctx, pod2); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, c, key, "two drains, Ready unchanged", func(obj *v1.RedisTraceExporter) error {
		return expectQueue(obj, 3, 2, v1.ReasonDraining, v1.ReasonReady)
	})
	if res, _ := kstatusOf(t, c, key); res.Status != status.CurrentStatus {
		t.Errorf("kstatus %s while claims drain after a scale-down, want Current (unchanged)", res.Status)
	}
	for _, i := range []int{1, 2} {
		checkDrainJob(t, c, rte, i)
	}
	if exists(t, c, client.ObjectKey{Namespace: ns, Name: "durable-drain-0"}, &batchv1.Job{}) {
		t.Error("claim 0's replica is wanted: it has a drain Job")
	}

	finishJob(t, c, client.ObjectKey{Namespace: ns, Name: "durable-drain-1"}, true)
	claim1 := client.ObjectKey{Namespace: ns, Name: "queue-durable-1"}
	waitQueue(t, c, key, "claim 1 drained, "+retention, func(obj *v1.RedisTraceExporter) error {
		var pvc corev1.PersistentVolumeClaim
		kept := exists(t, c, claim1, &pvc) && pvc.DeletionTimestamp == nil
		if kept != (retention == v1.ClaimRetentionRetain) {
			return fmt.Errorf("claim 1 kept %v under whenScaled %s", kept, retention)
		}
		// Deleted before the claim: its completed pod would hold the claim's pvc-protection
		// finalizer, and garbage collection waits for the claim to be gone.
		if job := (&batchv1.Job{}); !kept && exists(t, c, client.ObjectKey{Namespace: ns, Name: "durable-drain-1"}, job) && job.DeletionTimestamp == nil {
			return fmt.Errorf("claim 1 deleted but its drain Job kept")
		}
		claims := int32(2)
		if kept {
			claims = 3
		}
		return expectQueue(obj, claims, 1, v1.ReasonDraining, v1.ReasonReady)
	})

	finishJob(t, c, client.ObjectKey{Namespace: ns, Name: "durable-drain-2"}, false)
	waitQueue(t, c, key, "a failed drain: Ready False QueueDrainStalled, not Reconciling", func(obj *v1.RedisTraceExporter) error {
		if err := expectQueue(obj, -1, 1, v1.ReasonDrainFailed, v1.ReasonQueueDrainStalled); err != nil {
			return err
		}
		if apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReconciling) != nil {
			return fmt.Errorf("Reconciling is set: Argo would show Progressing, not Degraded")
		}
		return nil
	})
	res, _ := kstatusOf(t, c, key)
	if res.Status != status.InProgressStatus {
		t.Errorf("kstatus %s with a failed drain, want InProgress", res.Status)
	}

	scale(t, c, key, 3)
	waitQueue(t, c, key, "the scale-up deleted the drain Jobs", func(*v1.RedisTraceExporter) error {
		for _, name := range []string{"durable-drain-1", "durable-drain-2"} {
			if exists(t, c, client.ObjectKey{Namespace: ns, Name: name}, &batchv1.Job{}) && (retention == v1.ClaimRetentionRetain || name == "durable-drain-2") {
				return fmt.Errorf("Job %s still there", name)
			}
		}
		return nil
	})
}

// createClaim creates replica i's claim as the StatefulSet's template would.
func createClaim(t *testing.T, c client.Client, rte *v1.RedisTraceExporter, i int) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: render.QueueClaimName(rte, i), Namespace: rte.Namespace, Labels: render.QueueClaimLabels(rte)},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	if err := c.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
}

// statefulSetReady writes the status the StatefulSet controller would once n pods are ready.
func statefulSetReady(t *testing.T, c client.Client, key client.ObjectKey, n int32) {
	t.Helper()
	wait.For(t, 20*time.Second, fmt.Sprintf("StatefulSet at %d replicas, status written", n), func() error {
		sts := &appsv1.StatefulSet{}
		if err := c.Get(context.Background(), key, sts); err != nil {
			return err
		}
		if ptr.Deref(sts.Spec.Replicas, 0) != n {
			return fmt.Errorf("replicas %d", ptr.Deref(sts.Spec.Replicas, 0))
		}
		sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: n, ReadyReplicas: n, AvailableReplicas: n,
			UpdatedReplicas: n, CurrentReplicas: n, CurrentRevision: "durable-1", UpdateRevision: "durable-1"}
		return c.Status().Update(context.Background(), sts)
	})
}

func scale(t *testing.T, c client.Client, key client.ObjectKey, n int32) {
	t.Helper()
	_, obj := kstatusOf(t, c, key)
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Spec.Replicas = &n
	if err := c.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}

func waitQueue(t *testing.T, c client.Client, key client.ObjectKey, what string, check func(*v1.RedisTraceExporter) error) {
	t.Helper()
	wait.For(t, 30*time.Second, what, func() error {
		_, obj := kstatusOf(t, c, key)
		return check(obj)
	})
}

// expectQueue checks status.queue (claims -1: any), QueueDrained's reason and Ready's.
func expectQueue(obj *v1.RedisTraceExporter, claims, orphaned int32, drained, ready string) error {
	q := obj.Status.Queue
	d := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionQueueDrained)
	r := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReady)
	if q == nil || (claims >= 0 && q.Claims != claims) || q.OrphanedClaims != orphaned || d == nil || d.Reason != drained || r == nil || r.Reason != ready {
		return fmt.Errorf("queue %+v, QueueDrained %+v, Ready %+v", q, d, r)
	}
	return nil
}

// checkDrainJob: replica i's drain Job is controlled by its claim, runs exporter --drain on it,
// and its ConfigMap is owned by the Job.
func checkDrainJob(t *testing.T, c client.Client, rte *v1.RedisTraceExporter, i int) {
	t.Helper()
	ctx := context.Background()
	name := render.DrainJobName(rte, i)
	var job batchv1.Job
	var pvc corev1.PersistentVolumeClaim
	var cm corev1.ConfigMap
	for _, o := range []struct {
		name string
		obj  client.Object
	}{{name, &job}, {render.QueueClaimName(rte, i), &pvc}, {name, &cm}} {
		if err := c.Get(ctx, client.ObjectKey{Namespace: rte.Namespace, Name: o.name}, o.obj); err != nil {
			t.Fatal(err)
		}
	}
	if ref := metav1.GetControllerOf(&job); ref == nil || ref.Kind != "PersistentVolumeClaim" || ref.UID != pvc.UID {
		t.Errorf("Job %s controller %+v, want claim %s", name, ref, pvc.Name)
	}
	if ref := metav1.GetControllerOf(&cm); ref == nil || ref.Kind != "Job" || ref.UID != job.UID {
		t.Errorf("ConfigMap %s controller %+v, want Job %s", name, ref, name)
	}
	pod := job.Spec.Template.Spec
	if cmd := strings.Join(pod.Containers[0].Command, " "); !strings.HasSuffix(cmd, "--drain") || pod.Containers[0].Image != "tracestream:test" {
		t.Errorf("drain container %s %q", pod.Containers[0].Image, cmd)
	}
	if v := pod.Volumes[len(pod.Volumes)-1]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("queue volume %+v, want claim %s", v, pvc.Name)
	}
}

// finishJob writes the status the Job controller would when the Job succeeded or failed.
func finishJob(t *testing.T, c client.Client, key client.ObjectKey, succeeded bool) {
	t.Helper()
	wait.For(t, 20*time.Second, "Job "+key.Name+" finished", func() error {
		job := &batchv1.Job{}
		if err := c.Get(context.Background(), key, job); err != nil {
			return err
		}
		now := metav1.Now()
		job.Status.StartTime = &now
		cond := func(typ batchv1.JobConditionType, reason string) batchv1.JobCondition {
			return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: reason, LastProbeTime: now, LastTransitionTime: now}
		}
		if succeeded {
			job.Status.Succeeded, job.Status.CompletionTime = 1, &now
			job.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), cond(batchv1.JobComplete, "CompletionsReached")}
		} else {
			job.Status.Failed = 1
			job.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded"), cond(batchv1.JobFailed, "BackoffLimitExceeded")}
		}
		return c.Status().Update(context.Background(), job)
	})
}
