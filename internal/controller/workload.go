package controller

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// observeWorkload records the Deployment this resource owns, the replicas it should have and
// the pods' selector (for the scale subresource).
func (r *Reconciler) observeWorkload(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	logger := log.FromContext(ctx)
	o.desired = v1.DefaultReplicas
	if obj.Spec.Replicas != nil {
		o.desired = *obj.Spec.Replicas
	}
	d := &appsv1.Deployment{}
	switch err := r.Get(ctx, client.ObjectKeyFromObject(obj), d); {
	case err == nil && metav1.IsControlledBy(d, obj):
		o.deployment = d
		if d.Spec.Replicas != nil {
			o.desired = *d.Spec.Replicas // the HPA's choice when autoscaling
		}
	case err != nil && !apierrors.IsNotFound(err):
		// Status then says the Deployment is not available; the next pass reads it again.
		logger.Error(err, "Reading the exporter Deployment")
	}
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: render.SelectorLabels(obj)})
	if err != nil {
		logger.Error(err, "Building the pods' label selector")
		return
	}
	o.selector = sel.String()
}
