package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/render"
)

const (
	// handoverBacklogBytes is the most a Deployment pod's log may hold when its Deployment is
	// deleted: what a pod writing to Redis drains in a few seconds of its grace period.
	handoverBacklogBytes = 64 << 20
	// handoverWriteAge is how recent a pod's last successful write must be, while its log holds
	// records, for it to count as draining.
	handoverWriteAge = 10 * time.Second
	// handoverFieldOwner sets the new workload's first replica count under autoscaling: not the
	// children's field owner, so their applies (which leave replicas to the HPA) do not reset it.
	handoverFieldOwner = client.FieldOwner("tracestream-handover")
)

// handover keeps the workload of the kind the spec no longer asks for (the other of Deployment
// and StatefulSet, after a change of the persistent queue's volume), and its ConfigMap, out of
// the children to prune until it can go without losing what its pods acknowledged:
//   - the new workload must be available, so the pods' traffic has somewhere to go;
//   - a Deployment's pods keep their logs on volumes that go with them (emptyDir, or an
//     ephemeral claim), so each pod that has a log must be writing it to Redis, with a backlog
//     it can drain at SIGTERM, when deleting the Deployment makes it drain.
//
// A StatefulSet needs no more: its claims stay (retention Retain) and are drained as orphans
// (queue_drain.go), Redis down or not. It returns the children to apply and prune, and records
// why it holds in o.handover.
func (r *Reconciler) handover(ctx context.Context, obj *v1.RedisTraceExporter, children []render.Child, o *observed) ([]render.Child, error) {
	want := render.WorkloadKind(obj)
	old := render.KindDeployment
	if want == render.KindDeployment {
		old = render.KindStatefulSet
	}
	ow, err := r.readWorkload(ctx, obj, old)
	if err != nil || ow == nil {
		return children, err
	}
	nw, err := r.readWorkload(ctx, obj, want)
	if err != nil {
		return children, err
	}
	if nw == nil && ow.specReplicas != nil && render.HorizontalPodAutoscaler(obj) != nil {
		o.seedReplicas = *ow.specReplicas // created this pass: start where the HPA had the old one
	}
	why, err := r.holdOld(ctx, obj, nw, old)
	if err != nil || why == "" {
		return children, err
	}
	o.handover = fmt.Sprintf("the %s %s stays until %s", old, obj.Name, why)
	log.FromContext(ctx).V(1).Info("Holding the old exporter workload", "kind", old, "reason", why)
	kept := children[:0:0]
	for _, c := range children {
		if c.Object == nil && (c.Kind == old || (c.Kind == "ConfigMap" && c.Name == render.ConfigMapNameFor(obj, old))) {
			continue
		}
		kept = append(kept, c)
	}
	return kept, nil
}

// holdOld says why the old workload of kind old cannot go yet ("" when it can), given the new
// one (nil until it exists).
func (r *Reconciler) holdOld(ctx context.Context, obj *v1.RedisTraceExporter, nw *workload, old string) (string, error) {
	want := render.WorkloadKind(obj)
	if nw == nil || nw.specReplicas == nil || !nw.availableFor(*nw.specReplicas) {
		return fmt.Sprintf("the %s that replaces it is available", want), nil
	}
	if old != render.KindDeployment {
		return "", nil
	}
	return r.deploymentLogsHeld(ctx, obj)
}

// deploymentLogsHeld names the first pod of the resource's Deployment that has a log and is not
// draining it (or does not answer /status); "" when every pod can drain at SIGTERM.
func (r *Reconciler) deploymentLogsHeld(ctx context.Context, obj *v1.RedisTraceExporter) (string, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(obj.Namespace), client.MatchingLabels(render.SelectorLabels(obj))); err != nil {
		return "", fmt.Errorf("listing the exporter pods: %w", err)
	}
	for _, p := range pods.Items {
		owner := metav1.GetControllerOf(&p)
		if owner == nil || owner.Kind != "ReplicaSet" || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !hasQueueVolume(&p) {
			continue
		}
		if p.Status.PodIP == "" {
			return fmt.Sprintf("its pod %s has an IP to report its log from", p.Name), nil
		}
		s, err := r.fetchStatus(ctx, p.Status.PodIP)
		if err != nil {
			return fmt.Sprintf("its pod %s reports its status (%v)", p.Name, err), nil
		}
		if why := logHeld(s, time.Now()); why != "" {
			return fmt.Sprintf("its pod %s %s (it drains the log at SIGTERM)", p.Name, why), nil
		}
	}
	return "", nil
}

// logHeld says what keeps a pod with this /status from draining its log within its grace
// period: Redis out of reach, failing or not taking writes while the log holds records, or a
// backlog larger than handoverBacklogBytes. "" when nothing does, or the pod has no log.
func logHeld(s *telemetry.Status, now time.Time) string {
	q := s.PersistentQueue
	switch {
	case q == nil:
		return ""
	case !s.RedisReachable || (q.Records > 0 && (redisFailing(s) || s.LastWrite == nil || now.Sub(*s.LastWrite) > handoverWriteAge)):
		return fmt.Sprintf("writes its log (%d records) to Redis", q.Records)
	case q.Bytes > handoverBacklogBytes:
		return fmt.Sprintf("has less than %d MiB in its log (%d bytes)", handoverBacklogBytes>>20, q.Bytes)
	}
	return ""
}

// hasQueueVolume says the pod mounts a persistent queue on a volume that goes with it.
func hasQueueVolume(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.Name == render.QueueVolumeName {
			return true
		}
	}
	return false
}

// seedReplicas gives a workload the handover just created the old one's replica count, under
// autoscaling (the children leave replicas to the HPA, and a new workload starts at 1): the old
// pods are released only once as many new ones are ready. The HPA takes over from there.
func (r *Reconciler) seedReplicas(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	if o.seedReplicas <= 1 {
		return
	}
	target := prunable[render.WorkloadKind(obj)]()
	target.SetNamespace(obj.Namespace)
	target.SetName(obj.Name)
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, o.seedReplicas))
	if err := r.Patch(ctx, target, patch, handoverFieldOwner); err != nil {
		log.FromContext(ctx).Error(err, "Giving the new exporter workload the old one's replicas", "replicas", o.seedReplicas)
	}
}
