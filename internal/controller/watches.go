package controller

import (
	"context"
	"fmt"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// secretIndex indexes RedisTraceExporters by the names of the Secrets they reference.
const secretIndex = ".spec.secretRefs"

// SetupWithManager registers the controller: it owns the children, and watches Secrets by
// metadata only (no Secret data is cached) through an index of the Secrets each resource names.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Collect == nil {
		r.Collect = redislag.Collect
	}
	if r.HTTP == nil {
		r.HTTP = &http.Client{Timeout: 2 * time.Second}
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1.RedisTraceExporter{}, secretIndex, func(o client.Object) []string {
		return render.SecretNames(o.(*v1.RedisTraceExporter))
	}); err != nil {
		return fmt.Errorf("indexing RedisTraceExporters by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.RedisTraceExporter{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forSecret)).
		// A queue claim and a drain Job are owned by no resource (the claim by none, the Job by its
		// claim): they name theirs by the instance label.
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(forInstance)).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(forInstance)).
		Complete(r)
}

// forInstance maps an object the operator manages (a queue claim, a drain Job) to the resource
// its app.kubernetes.io/instance label names, in its namespace.
func forInstance(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if l["app.kubernetes.io/managed-by"] != "tracestream-operator" || l["app.kubernetes.io/instance"] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: l["app.kubernetes.io/instance"]}}}
}

// forSecret maps a Secret to the resources that reference it.
func (r *Reconciler) forSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.RedisTraceExporterList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretIndex: o.GetName()}); err != nil {
		// The Secret's change reaches no resource until their next pass: say which Secret it was.
		log.FromContext(ctx).Error(err, "Listing the RedisTraceExporters that reference a Secret", "secret", klog.KObj(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, it := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&it)})
	}
	return reqs
}
