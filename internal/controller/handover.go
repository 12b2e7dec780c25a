package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// handover keeps the workload of the kind the spec no longer asks for (the other of Deployment
// and StatefulSet, after a change of the persistent queue's volume) out of the children to
// prune until it can go without losing what its pods acknowledged:
//   - the new workload must be available, so the pods' traffic has somewhere to go;
//   - a Deployment's pods keep their logs on volumes that go with them (emptyDir, or an
//     ephemeral claim), so each pod that has a log must report Redis reachable: deleting it then
//     makes it drain its log at SIGTERM, as a rollout does.
//
// A StatefulSet needs no more: its claims stay (retention Retain) and are drained as orphans
// (queue_drain.go), Redis down or not. It returns the children to apply and prune, and records
// why it holds in o.handover.
func (r *Reconciler) handover(ctx context.Context, obj *v1.RedisTraceExporter, children []render.Child, o *observed) ([]render.Child, error) {
	want := render.WorkloadKind(obj)
	for i, c := range children {
		if c.Object != nil || (c.Kind != render.KindDeployment && c.Kind != render.KindStatefulSet) || c.Kind == want {
			continue
		}
		old, err := r.readWorkload(ctx, obj, c.Kind)
		if err != nil || old == nil {
			return children, err
		}
		why, err := r.holdOld(ctx, obj, want, c.Kind)
		if err != nil || why == "" {
			return children, err
		}
		o.handover = fmt.Sprintf("the %s %s stays until %s", c.Kind, obj.Name, why)
		log.FromContext(ctx).V(1).Info("Holding the old exporter workload", "kind", c.Kind, "reason", why)
		return append(children[:i:i], children[i+1:]...), nil
	}
	return children, nil
}

// holdOld says why the old workload of kind old cannot go yet ("" when it can).
func (r *Reconciler) holdOld(ctx context.Context, obj *v1.RedisTraceExporter, want, old string) (string, error) {
	nw, err := r.readWorkload(ctx, obj, want)
	if err != nil {
		return "", err
	}
	desired := v1.DefaultReplicas
	if obj.Spec.Replicas != nil {
		desired = *obj.Spec.Replicas
	}
	if nw != nil && nw.specReplicas != nil {
		desired = *nw.specReplicas
	}
	if nw == nil || !nw.availableFor(desired) {
		return fmt.Sprintf("the %s that replaces it is available", want), nil
	}
	if old != render.KindDeployment {
		return "", nil
	}
	return r.deploymentLogsHeld(ctx, obj)
}

// deploymentLogsHeld names the first pod of the resource's Deployment that has a log and does
// not report Redis reachable, or one that does not answer /status ("" when every pod can drain).
func (r *Reconciler) deploymentLogsHeld(ctx context.Context, obj *v1.RedisTraceExporter) (string, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(obj.Namespace), client.MatchingLabels(render.SelectorLabels(obj))); err != nil {
		return "", fmt.Errorf("listing the exporter pods: %w", err)
	}
	for _, p := range pods.Items {
		owner := metav1.GetControllerOf(&p)
		if owner == nil || owner.Kind != "ReplicaSet" || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		s, err := r.fetchStatus(ctx, p.Status.PodIP)
		switch {
		case err != nil:
			return fmt.Sprintf("its pod %s reports its status (%v)", p.Name, err), nil
		case s.PersistentQueue != nil && !s.RedisReachable:
			return fmt.Sprintf("its pod %s, whose log holds %d records, reaches Redis (it drains the log at SIGTERM)",
				p.Name, s.PersistentQueue.Records), nil
		}
	}
	return "", nil
}
