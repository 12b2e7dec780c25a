package controller

import (
	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// queueGateMessage says why a Persistent queue is refused, and what to use meanwhile.
const queueGateMessage = "spec.delivery.persistentQueue.volume: Persistent is not available yet: needs the drain of its claims on deletion " +
	"and the handover between a Deployment and a StatefulSet (without them, deleting the resource or changing the queue's volume " +
	"would strand or drop the replicas' logs); use Ephemeral or EmptyDir until then"

// queueGate refuses a Persistent queue (a StatefulSet with a claim per replica) unless
// EnablePersistentQueue is set. The builders, status and the drain of the claims of replicas
// scaled away (queue_drain.go, which runs only with the gate open) support it, but the rest is
// not built yet: the finalizer that drains the claims when the resource is deleted, and the
// handover between a Deployment and a StatefulSet that keeps the old pods until their logs are
// empty (issue 15, steps 7-8). The refusal is a spec error
// (Stalled, InvalidSpec), so nothing is applied: a workload already running keeps running.
func (r *Reconciler) queueGate(obj *v1.RedisTraceExporter) error {
	if r.EnablePersistentQueue || render.WorkloadKind(obj) != render.KindStatefulSet {
		return nil
	}
	return &specError{reason: v1.ReasonInvalidSpec, msg: queueGateMessage}
}
