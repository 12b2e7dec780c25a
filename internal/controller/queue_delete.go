package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// PersistentQueueFinalizer keeps a deleted resource until its queue claims are drained and
// deleted, or kept (whenDeleted Retain, the QueueOnDeleteAnnotation). Only a resource that may
// have claims carries it: a Persistent queue, or claims left from one.
const PersistentQueueFinalizer = "tracestream.io/persistent-queue"

// wantsFinalizer says the resource may have queue claims to wait for when it is deleted: its
// queue is Persistent, or claims of an earlier Persistent queue remain.
func (r *Reconciler) wantsFinalizer(obj *v1.RedisTraceExporter, o *observed) bool {
	return render.WorkloadKind(obj) == render.KindStatefulSet || (o.queue != nil && o.queue.claims > 0)
}

// setFinalizer adds or removes PersistentQueueFinalizer. The patch carries the resourceVersion,
// so a concurrent change of the finalizers fails it and the pass is retried, rather than one
// write dropping the other's finalizer.
func (r *Reconciler) setFinalizer(ctx context.Context, obj *v1.RedisTraceExporter, want bool) error {
	if controllerutil.ContainsFinalizer(obj, PersistentQueueFinalizer) == want {
		return nil
	}
	before := obj.DeepCopy()
	verb := "adding"
	if want {
		controllerutil.AddFinalizer(obj, PersistentQueueFinalizer)
	} else {
		verb = "removing"
		controllerutil.RemoveFinalizer(obj, PersistentQueueFinalizer)
	}
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("%s finalizer %s: %w", verb, PersistentQueueFinalizer, err)
	}
	log.FromContext(ctx).V(1).Info("Set the persistent-queue finalizer", "present", want)
	return nil
}

// keepOnDelete says the deleted resource's claims stay untouched: whenDeleted Retain, or the
// annotation.
func keepOnDelete(obj *v1.RedisTraceExporter) bool {
	if obj.Annotations[v1.QueueOnDeleteAnnotation] == v1.QueueOnDeleteKeep {
		return true
	}
	q := obj.Spec.Delivery.PersistentQueue
	return q != nil && q.ClaimRetentionPolicy != nil && q.ClaimRetentionPolicy.WhenDeleted == v1.ClaimRetentionRetain
}

// reconcileDelete runs while a resource with PersistentQueueFinalizer is being deleted and its
// claims are not kept (keepOnDelete: keepClaims releases it at once). The StatefulSet is scaled
// to 0 (its pods drain their logs at SIGTERM), every claim whose pod is gone is drained by a Job
// and deleted, and the finalizer goes when no claim is left. It waits as long as Redis refuses the logs: no
// timeout drops them. In a namespace being deleted no Job can be created: the claims go with it.
func (r *Reconciler) reconcileDelete(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) (ctrl.Result, error) {
	o.deleting = true
	err := r.scaleToZero(ctx, obj)
	r.observeWorkload(ctx, obj, o)
	o.desired = 0
	if err != nil {
		o.applyErr = err
		return ctrl.Result{}, err
	}
	in, _, err := r.reconcileSecrets(ctx, obj)
	var spec *specError
	if errors.As(err, &spec) {
		o.deleteBlocked = err // the Secret watch brings us back
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	q, err := r.drainOrphans(ctx, obj, in, 0, v1.ClaimRetentionDelete)
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return ctrl.Result{}, r.releaseWithNamespace(ctx, obj)
	} else if err != nil {
		o.applyErr = err
		return ctrl.Result{}, err
	}
	o.queue, o.queueChecked = q, true
	if q.claims > 0 {
		// Pods that stop and drain pods are not watched: follow them.
		return ctrl.Result{RequeueAfter: drainRequeue}, nil
	}
	log.FromContext(ctx).Info("Every queue claim is drained and deleted: releasing the resource")
	return ctrl.Result{}, r.setFinalizer(ctx, obj, false)
}

// scaleToZero scales the resource's StatefulSet to 0 replicas so its pods stop and drain their
// logs at SIGTERM, after deleting its HorizontalPodAutoscaler, which would scale it up again.
// A merge patch of spec.replicas alone: an apply would drop every other field the operator owns.
func (r *Reconciler) scaleToZero(ctx context.Context, obj *v1.RedisTraceExporter) error {
	if err := r.prune(ctx, obj, &autoscalingv2.HorizontalPodAutoscaler{}, obj.Name); err != nil {
		return err
	}
	sts := &appsv1.StatefulSet{}
	key := client.ObjectKeyFromObject(obj)
	if err := r.Get(ctx, key, sts); err != nil {
		return ignoreNotFound(err, render.KindStatefulSet, key)
	}
	if !sts.DeletionTimestamp.IsZero() || sts.Spec.Replicas != nil && *sts.Spec.Replicas == 0 || !metav1.IsControlledBy(sts, obj) {
		return nil
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":0}}`))
	if err := r.Patch(ctx, sts, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("scaling StatefulSet %s to 0 replicas: %w", key, err)
	}
	log.FromContext(ctx).Info("Scaled the StatefulSet to 0 replicas: its pods drain their queues before the claims are drained and deleted")
	return nil
}

// keepClaims leaves the claims (and any drain running on them) untouched, names them in an
// event, and releases the resource.
func (r *Reconciler) keepClaims(ctx context.Context, obj *v1.RedisTraceExporter) error {
	claims, _, _, err := r.listQueue(ctx, obj)
	if err != nil {
		return err
	}
	var names []string
	for _, pvc := range claims {
		if _, ok := render.QueueClaimOrdinal(obj, pvc.Name); ok && pvc.DeletionTimestamp.IsZero() {
			names = append(names, pvc.Name)
		}
	}
	if len(names) > 0 && r.Recorder != nil {
		why := "whenDeleted is Retain"
		if obj.Annotations[v1.QueueOnDeleteAnnotation] == v1.QueueOnDeleteKeep {
			why = v1.QueueOnDeleteAnnotation + " is " + v1.QueueOnDeleteKeep
		}
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, v1.EventQueueClaimsKept, "Delete",
			"kept queue claims %s (%s): a resource created again as %s replays their logs; deleting them drops whatever they hold",
			strings.Join(names, ", "), why, obj.Name)
	}
	log.FromContext(ctx).Info("Keeping the queue claims of a deleted resource", "claims", names)
	return r.setFinalizer(ctx, obj, false)
}

// releaseWithNamespace removes the finalizer of a resource whose namespace is being deleted: no
// drain Job can be created there, and the namespace's deletion takes the claims.
func (r *Reconciler) releaseWithNamespace(ctx context.Context, obj *v1.RedisTraceExporter) error {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, v1.EventQueueDeletedWithNamespace, "Delete",
			"namespace %s is being deleted: no queue drain can run there, so the queue claims and what their logs hold go with it", obj.Namespace)
	}
	log.FromContext(ctx).Info("Namespace being deleted: releasing the resource without draining its queue claims")
	return r.setFinalizer(ctx, obj, false)
}
