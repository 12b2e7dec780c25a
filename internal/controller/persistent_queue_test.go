package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/controller"
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

// TestPersistentQueueIsRefusedUntilItsDrainExists: by default the operator refuses volume
// Persistent (Stalled, InvalidSpec, saying why), and a resource switched to it keeps its running
// Deployment untouched: nothing is applied or pruned, so no emptyDir log is dropped.
func TestPersistentQueueIsRefusedUntilItsDrainExists(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env)
	ctx := context.Background()
	c := env.Client
	namespace(t, c, "gated")
	rte := queueRTE("gated", v1.QueueVolumeEmptyDir)
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
	_, obj := kstatusOf(t, c, key)
	obj.Spec.Delivery.PersistentQueue.Volume = v1.QueueVolumePersistent
	if err := c.Update(ctx, obj); err != nil {
		t.Fatalf("the CRD refused volume Persistent, so the test would not reach the operator's gate: %v", err)
	}
	wait.For(t, 20*time.Second, "Stalled with InvalidSpec saying Persistent is not available yet", func() error {
		res, obj := kstatusOf(t, c, key)
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStalled)
		if res.Status != status.FailedStatus || cond == nil || cond.Reason != v1.ReasonInvalidSpec ||
			!strings.Contains(cond.Message, "not available yet: needs the handover between a Deployment and a StatefulSet") {
			return fmt.Errorf("kstatus %s, Stalled %+v", res.Status, cond)
		}
		return nil
	})
	if !exists(t, c, key, &appsv1.Deployment{}) {
		t.Error("the running Deployment was deleted for a spec the operator refuses")
	}
	if exists(t, c, key, &appsv1.StatefulSet{}) {
		t.Error("a StatefulSet was applied for a refused Persistent queue")
	}
}

// TestPersistentQueueRunsAStatefulSet, with the gate open: the StatefulSet replaces the
// Deployment, status reads its rollout (StatefulSet reasons, replicas), and a switch back prunes
// it. (Without the handover of step 8 the switch does not wait for the old pods' logs: that is
// why the gate is closed in the manager.)
func TestPersistentQueueRunsAStatefulSet(t *testing.T) {
	env := controlplane.Start(t)
	startManager(t, env, func(r *controller.Reconciler) { r.EnablePersistentQueue = true })
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
	wait.For(t, 20*time.Second, "the Deployment back and the StatefulSet pruned", func() error {
		if !exists(t, c, key, &appsv1.Deployment{}) || exists(t, c, key, &appsv1.StatefulSet{}) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
