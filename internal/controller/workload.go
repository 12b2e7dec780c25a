package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// workload is what status needs of the Deployment or StatefulSet that runs the exporter pods,
// read the same way from either kind.
type workload struct {
	kind                                string
	generation, observedGeneration      int64
	specReplicas                        *int32
	replicas, ready, available, updated int32
	// currentRevision and updateRevision are the StatefulSet's (empty for a Deployment): they
	// differ until every pod runs the newest template.
	currentRevision, updateRevision string
}

func deploymentWorkload(d *appsv1.Deployment) *workload {
	return &workload{kind: render.KindDeployment, generation: d.Generation, observedGeneration: d.Status.ObservedGeneration,
		specReplicas: d.Spec.Replicas, replicas: d.Status.Replicas, ready: d.Status.ReadyReplicas,
		available: d.Status.AvailableReplicas, updated: d.Status.UpdatedReplicas}
}

func statefulSetWorkload(s *appsv1.StatefulSet) *workload {
	return &workload{kind: render.KindStatefulSet, generation: s.Generation, observedGeneration: s.Status.ObservedGeneration,
		specReplicas: s.Spec.Replicas, replicas: s.Status.Replicas, ready: s.Status.ReadyReplicas,
		available: s.Status.AvailableReplicas, updated: s.Status.UpdatedReplicas,
		currentRevision: s.Status.CurrentRevision, updateRevision: s.Status.UpdateRevision}
}

// upToDate says the workload's controller saw the newest spec and desired pods run its
// template. A StatefulSet counts updatedReplicas against updateRevision and moves
// currentRevision to it only when the rollout is complete, so both must agree as well.
func (w *workload) upToDate(desired int32) bool {
	if w.observedGeneration < w.generation || w.updated < desired {
		return false
	}
	return w.kind != render.KindStatefulSet || w.currentRevision == w.updateRevision
}

// availableFor says desired pods run the newest template and are ready and available.
func (w *workload) availableFor(desired int32) bool {
	return w.upToDate(desired) && w.ready >= desired && w.available >= desired
}

// workloadReasons are the WorkloadAvailable reasons of a kind: each names the kind to inspect.
func workloadReasons(kind string) (available, notAvailable string) {
	if kind == render.KindStatefulSet {
		return v1.ReasonStatefulSetReady, v1.ReasonStatefulSetNotReady
	}
	return v1.ReasonDeploymentReady, v1.ReasonDeploymentNotReady
}

// observeWorkload records the workload of the kind the spec asks for (render.WorkloadKind) when
// this resource owns it, the replicas it should have and the pods' selector (for the scale
// subresource).
func (r *Reconciler) observeWorkload(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	logger := log.FromContext(ctx)
	o.desired = v1.DefaultReplicas
	if obj.Spec.Replicas != nil {
		o.desired = *obj.Spec.Replicas
	}
	o.workloadKind = render.WorkloadKind(obj)
	w, err := r.readWorkload(ctx, obj, o.workloadKind)
	if err != nil {
		// Status then says the workload is not available; the next pass reads it again.
		logger.Error(err, "Reading the exporter workload", "kind", o.workloadKind)
	}
	if w != nil {
		o.workload = w
		if w.specReplicas != nil {
			o.desired = *w.specReplicas // the HPA's choice when autoscaling
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: render.SelectorLabels(obj)})
	if err != nil {
		logger.Error(err, "Building the pods' label selector")
		return
	}
	o.selector = sel.String()
}

// readWorkload reads the resource's Deployment or StatefulSet; nil when it does not exist or
// another owner controls it.
func (r *Reconciler) readWorkload(ctx context.Context, obj *v1.RedisTraceExporter, kind string) (*workload, error) {
	key := client.ObjectKeyFromObject(obj)
	if kind == render.KindStatefulSet {
		s := &appsv1.StatefulSet{}
		if err := r.Get(ctx, key, s); err != nil || !metav1.IsControlledBy(s, obj) {
			return nil, ignoreNotFound(err, kind, key)
		}
		return statefulSetWorkload(s), nil
	}
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, key, d); err != nil || !metav1.IsControlledBy(d, obj) {
		return nil, ignoreNotFound(err, kind, key)
	}
	return deploymentWorkload(d), nil
}

// ignoreNotFound wraps a read error other than NotFound with what was read.
func ignoreNotFound(err error, kind string, key client.ObjectKey) error {
	if client.IgnoreNotFound(err) == nil {
		return nil
	}
	return fmt.Errorf("reading %s %s: %w", kind, key, err)
}
