package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/controller"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestDeletionWaitsForQueueClaims: what a deletion does with the claims of
// a Persistent queue (drain and delete them, keep them, leave them to a namespace's deletion), and
// that a resource without claims is deleted as before. envtest runs no StatefulSet, Job, garbage
// collector or namespace controller: the tests play them.
func TestDeletionWaitsForQueueClaims(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	c := env.Client
	t.Run("whenDeleted Delete drains and deletes every claim, then the resource goes", func(t *testing.T) { deletionDrains(t, c) })
	t.Run("whenDeleted Retain keeps the claims", func(t *testing.T) {
		deletionKeeps(t, c, "keep-retain", func(rte *v1.RedisTraceExporter) {
			rte.Spec.Delivery.PersistentQueue.ClaimRetentionPolicy = &v1.QueueClaimRetentionPolicy{WhenDeleted: v1.ClaimRetentionRetain}
		})
	})
	t.Run("the Keep annotation keeps the claims under whenDeleted Delete", func(t *testing.T) {
		deletionKeeps(t, c, "keep-annotation", func(rte *v1.RedisTraceExporter) {
			rte.Annotations = map[string]string{v1.QueueOnDeleteAnnotation: v1.QueueOnDeleteKeep}
		})
	})
	t.Run("a resource without claims never gets the finalizer", func(t *testing.T) { deletionWithoutClaims(t, c) })
	t.Run("a terminating namespace releases the resource", func(t *testing.T) { deletionInATerminatingNamespace(t, c) })
}

// deletionDrains, with whenDeleted Delete: the deleted resource
// stays (its finalizer) while its StatefulSet is scaled to 0, a pod that still stops keeps its
// claim from draining, a failed drain keeps it waiting (Ready False DrainingQueue), and it goes
// once every claim's Job succeeded and the claim was deleted.
func deletionDrains(t *testing.T, c client.Client) {
	ctx := context.Background()
	rte, key := durableWithClaims(t, c, "delete-drains", nil)
	pod0 := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "durable-0", Namespace: key.Namespace, Labels: render.SelectorLabels(rte)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "exporter", Image: "tracestream:test"}}}}
	if err := c.Create(ctx, pod0); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, rte); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, c, key, "scaled to 0, claim 1 draining, pod 0 stopping: Ready False DrainingQueue", func(obj *v1.RedisTraceExporter) error {
		sts := &appsv1.StatefulSet{}
		if !exists(t, c, key, sts) || ptr.Deref(sts.Spec.Replicas, -1) != 0 {
			return fmt.Errorf("StatefulSet not scaled to 0: %+v", sts.Spec.Replicas)
		}
		return expectDeleting(obj, 1, v1.ReasonDraining, "waiting for 1 exporter pods to stop")
	})
	if !exists(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-drain-1"}, &batchv1.Job{}) ||
		exists(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-drain-0"}, &batchv1.Job{}) {
		t.Fatal("want a drain Job for claim 1 only while pod 0 stops")
	}
	checkDrainJob(t, c, rte, 1)
	checkDrainOutlivesResource(t, c, rte, 1)
	if err := c.Delete(ctx, pod0); err != nil {
		t.Fatal(err)
	}
	finishJob(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-drain-1"}, true)
	finishJob(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-drain-0"}, false)
	waitQueue(t, c, key, "claim 1 deleted, claim 0's drain failed: still waiting", func(obj *v1.RedisTraceExporter) error {
		if claimLeft(t, c, key.Namespace, 1) {
			return fmt.Errorf("claim 1 drained but not deleted")
		}
		return expectDeleting(obj, 1, v1.ReasonDrainFailed, "queue drain failed for claims queue-durable-0")
	})
	// The user deletes the failed Job (its cause fixed), as kubectl does: the operator drains again.
	if err := c.Delete(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "durable-drain-0", Namespace: key.Namespace}},
		client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "a new drain Job for claim 0", func() error {
		job := &batchv1.Job{}
		if !exists(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-drain-0"}, job) || len(job.Status.Conditions) > 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	finishJob(t, c, client.ObjectKey{Namespace: key.Namespace, Name: "durable-drain-0"}, true)
	waitGone(t, c, key, "the resource gone once every claim is drained and deleted")
	if claimLeft(t, c, key.Namespace, 0) {
		t.Error("claim 0 drained but not deleted")
	}
}

// deletionKeeps: whenDeleted Retain, or the annotation queue-on-delete: Keep under the default
// Delete, releases the resource at once; the claims stay untouched (no drain Job), and an event
// names them.
func deletionKeeps(t *testing.T, c client.Client, ns string, edit func(*v1.RedisTraceExporter)) {
	rte, key := durableWithClaims(t, c, ns, edit)
	if err := c.Delete(context.Background(), rte); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, key, "the resource gone")
	for i := range 2 {
		if !claimLeft(t, c, key.Namespace, i) {
			t.Errorf("claim %d not kept", i)
		}
	}
	var jobs batchv1.JobList
	if err := c.List(context.Background(), &jobs, client.InNamespace(key.Namespace)); err != nil || len(jobs.Items) > 0 {
		t.Errorf("drain Jobs %d (%v), want none: kept claims are untouched", len(jobs.Items), err)
	}
	waitEvent(t, c, key.Namespace, v1.EventQueueClaimsKept, "kept queue claims queue-durable-0, queue-durable-1")
}

// deletionWithoutClaims: a resource whose queue is not Persistent never gets the
// finalizer, and goes at once as before.
func deletionWithoutClaims(t *testing.T, c client.Client) {
	ctx := context.Background()
	namespace(t, c, "no-claims")
	rte := queueRTE("no-claims", v1.QueueVolumeEphemeral)
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)
	waitQueue(t, c, key, "the pass done: Deployment applied, generation observed", func(obj *v1.RedisTraceExporter) error {
		if !exists(t, c, key, &appsv1.Deployment{}) || obj.Status.ObservedGeneration != obj.Generation {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	_, obj := kstatusOf(t, c, key)
	if len(obj.Finalizers) > 0 {
		t.Errorf("finalizers %v on a resource without claims", obj.Finalizers)
	}
	if err := c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, key, "the resource gone")
}

// deletionInATerminatingNamespace: no drain Job can be created in a namespace being deleted,
// so the finalizer goes and the claims are left to the namespace's deletion. (envtest runs no
// namespace controller: the namespace stays Terminating and the test deletes the resource.)
func deletionInATerminatingNamespace(t *testing.T, c client.Client) {
	ctx := context.Background()
	rte, key := durableWithClaims(t, c, "ns-gone", nil)
	if err := c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: key.Namespace}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, rte); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, key, "the resource gone")
	if !claimLeft(t, c, key.Namespace, 0) {
		t.Error("claim 0 deleted by the operator: the namespace's deletion owns it")
	}
}

// durableWithClaims creates a Persistent queue of 2 replicas in a new namespace, waits for its
// finalizer and its StatefulSet (ready), and creates the two claims the StatefulSet would.
func durableWithClaims(t *testing.T, c client.Client, ns string, edit func(*v1.RedisTraceExporter)) (*v1.RedisTraceExporter, client.ObjectKey) {
	t.Helper()
	namespace(t, c, ns)
	rte := queueRTE(ns, v1.QueueVolumePersistent)
	if edit != nil {
		edit(rte)
	}
	if err := c.Create(context.Background(), rte); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(rte)
	statefulSetReady(t, c, key, 2)
	for i := range 2 {
		createClaim(t, c, rte, i)
	}
	waitQueue(t, c, key, "the finalizer and two claims in use", func(obj *v1.RedisTraceExporter) error {
		if !slices.Contains(obj.Finalizers, controller.PersistentQueueFinalizer) || obj.Status.Queue == nil || obj.Status.Queue.Claims != 2 {
			return fmt.Errorf("finalizers %v, queue %+v", obj.Finalizers, obj.Status.Queue)
		}
		return nil
	})
	_, obj := kstatusOf(t, c, key)
	return obj, key
}

// expectDeleting: the resource is deleted and kept by its finalizer, Ready False DrainingQueue
// saying msg, QueueDrained with reason drained and orphaned claims not known drained.
func expectDeleting(obj *v1.RedisTraceExporter, orphaned int32, drained, msg string) error {
	r := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReady)
	d := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionQueueDrained)
	switch {
	case obj.DeletionTimestamp == nil || !slices.Contains(obj.Finalizers, controller.PersistentQueueFinalizer):
		return fmt.Errorf("deletionTimestamp %v, finalizers %v", obj.DeletionTimestamp, obj.Finalizers)
	case r == nil || r.Status != metav1.ConditionFalse || r.Reason != v1.ReasonDrainingQueue || !strings.Contains(r.Message, msg):
		return fmt.Errorf("Ready %+v, want DrainingQueue saying %q", r, msg)
	case d == nil || d.Reason != drained || obj.Status.Queue == nil || obj.Status.Queue.OrphanedClaims != orphaned:
		return fmt.Errorf("QueueDrained %+v, queue %+v", d, obj.Status.Queue)
	}
	return nil
}

// claimLeft says replica i's claim exists and is not being deleted (envtest keeps a deleted
// claim Terminating: nothing removes its pvc-protection finalizer).
func claimLeft(t *testing.T, c client.Client, ns string, i int) bool {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	return exists(t, c, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("queue-durable-%d", i)}, pvc) && pvc.DeletionTimestamp == nil
}

// waitEvent waits for an event of the reason whose note says note.
func waitEvent(t *testing.T, c client.Client, ns, reason, note string) {
	t.Helper()
	wait.For(t, 20*time.Second, "event "+reason, func() error {
		var list eventsv1.EventList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Reason == reason && strings.Contains(e.Note, note) {
				return nil
			}
		}
		return fmt.Errorf("%d events, none %s saying %q", len(list.Items), reason, note)
	})
}

// waitGone waits until the resource is gone from the API server.
func waitGone(t *testing.T, c client.Client, key client.ObjectKey, what string) {
	t.Helper()
	wait.For(t, 30*time.Second, what, func() error {
		if exists(t, c, key, &v1.RedisTraceExporter{}) {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// checkDrainOutlivesResource: replica i's drain Job uses nothing a foreground deletion of the
// resource removes first (its ConfigMap, its own ServiceAccount): only its own ConfigMap, the
// namespace's default ServiceAccount, and the user's Secrets.
func checkDrainOutlivesResource(t *testing.T, c client.Client, rte *v1.RedisTraceExporter, i int) {
	t.Helper()
	var job batchv1.Job
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: rte.Namespace, Name: render.DrainJobName(rte, i)}, &job); err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	if pod.ServiceAccountName != "default" || pod.ServiceAccountName == render.OwnServiceAccountName(rte) {
		t.Errorf("drain pod ServiceAccount %q, want the namespace's default", pod.ServiceAccountName)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name != job.Name {
			t.Errorf("drain pod mounts ConfigMap %q, want only its own %q", v.ConfigMap.Name, job.Name)
		}
	}
}
