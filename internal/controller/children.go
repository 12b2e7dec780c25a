package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// FieldOwner is the server-side apply field manager of every child.
const FieldOwner = client.FieldOwner("tracestream-operator")

// prunable are the kinds of child the spec can stop asking for, as empty objects to read and
// delete.
var prunable = map[string]func() client.Object{
	// One of the two runs the pods (render.WorkloadKind): the other is deleted.
	render.KindDeployment:     func() client.Object { return &appsv1.Deployment{} },
	render.KindStatefulSet:    func() client.Object { return &appsv1.StatefulSet{} },
	"ConfigMap":               func() client.Object { return &corev1.ConfigMap{} },
	"ServiceAccount":          func() client.Object { return &corev1.ServiceAccount{} },
	"PodDisruptionBudget":     func() client.Object { return &policyv1.PodDisruptionBudget{} },
	"HorizontalPodAutoscaler": func() client.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// reconcileChildren applies every child with server-side apply and deletes the ones the spec no
// longer asks for.
func (r *Reconciler) reconcileChildren(ctx context.Context, obj *v1.RedisTraceExporter, children []render.Child) error {
	for _, c := range children {
		if c.Object != nil {
			if err := r.Apply(ctx, c.Object, FieldOwner, client.ForceOwnership); err != nil {
				return fmt.Errorf("applying %s %s/%s: %w", c.Kind, obj.Namespace, c.Name, err)
			}
			continue
		}
		newObject, ok := prunable[c.Kind]
		if !ok {
			return fmt.Errorf("no way to prune a %s: add it to prunable", c.Kind)
		}
		if err := r.prune(ctx, obj, newObject(), c.Name); err != nil {
			return err
		}
	}
	return nil
}

// prune deletes a child the spec no longer asks for, when this resource owns it.
func (r *Reconciler) prune(ctx context.Context, obj *v1.RedisTraceExporter, child client.Object, name string) error {
	kind := child.GetObjectKind().GroupVersionKind().Kind // set on an unstructured child only
	if kind == "" {
		kind = fmt.Sprintf("%T", child)
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: name}, child); err != nil {
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("reading %s %s/%s to prune it: %w", kind, obj.Namespace, name, err)
		}
		return nil
	}
	if !metav1.IsControlledBy(child, obj) {
		return nil
	}
	if err := r.Delete(ctx, child); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %s %s/%s that the spec no longer asks for: %w", kind, obj.Namespace, name, err)
	}
	return nil
}
