package controller

import (
	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// queueGateMessage says why a Persistent queue is refused, and what to use meanwhile.
const queueGateMessage = "spec.delivery.persistentQueue.volume: Persistent is not available yet: needs the handover between a " +
	"Deployment and a StatefulSet (without it, changing the queue's volume would drop the old pods' logs); use Ephemeral or " +
	"EmptyDir until then"

// queueGate refuses a Persistent queue (a StatefulSet with a claim per replica) unless
// EnablePersistentQueue is set. The builders, status, the drain of the claims of replicas
// scaled away (queue_drain.go, which runs only with the gate open) and the finalizer that drains
// or keeps them when the resource is deleted (queue_delete.go) support it, but the handover
// between a Deployment and a StatefulSet that keeps the old pods until their logs are empty is
// not built yet (issue 15, step 8). The refusal is a spec error
// (Stalled, InvalidSpec), so nothing is applied: a workload already running keeps running.
func (r *Reconciler) queueGate(obj *v1.RedisTraceExporter) error {
	if r.EnablePersistentQueue || render.WorkloadKind(obj) != render.KindStatefulSet {
		return nil
	}
	return &specError{reason: v1.ReasonInvalidSpec, msg: queueGateMessage}
}
