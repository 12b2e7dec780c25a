package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/render"
)

// drainProgress is the records a claim's drain reported, and since when they have not gone down.
type drainProgress struct {
	records int64
	since   time.Time
}

// drainTermination is the termination message of exporter --drain (service.DrainResult): the
// records left when it exited.
type drainTermination struct {
	Records *int64 `json:"records"`
}

// observeDrainPod reads the drain's pod: not scheduled or starting (Pending, with why), or
// running, with the records its /status reports (or its last exit's termination message when
// /status does not answer).
func (r *Reconciler) observeDrainPod(ctx context.Context, obj *v1.RedisTraceExporter, d *drainObserved) {
	var pods corev1.PodList
	sel := render.DrainLabels(obj)
	sel[render.DrainClaimLabel] = d.claim
	if err := r.List(ctx, &pods, client.InNamespace(obj.Namespace), client.MatchingLabels(sel)); err != nil {
		log.FromContext(ctx).Error(err, "Listing the queue drain pods", "claim", d.claim)
		d.message = "drain pod not read: " + err.Error()
		return
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp == nil && (pod == nil || p.CreationTimestamp.After(pod.CreationTimestamp.Time)) {
			pod = p
		}
	}
	switch {
	case pod == nil:
		d.message = "waiting for the drain pod"
		return
	case pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "":
		d.message = fmt.Sprintf("pod %s %s%s", pod.Name, pod.Status.Phase, waitingFor(pod))
		return
	}
	d.phase = v1.DrainDraining
	d.records = terminationRecords(pod)
	s, err := r.fetchStatus(ctx, pod.Status.PodIP)
	if err != nil {
		d.message = fmt.Sprintf("pod %s did not report its status%s", pod.Name, waitingFor(pod))
		return
	}
	if s.PersistentQueue != nil {
		n := s.PersistentQueue.Records
		d.records = &n
	}
	if redisFailing(s) {
		d.redisError = s.LastErrorClass
		d.message = fmt.Sprintf("pod %s: Redis error (%s)", pod.Name, s.LastErrorClass)
	}
	if d.records != nil {
		d.noProgressSince = r.drainProgressed(obj, d.claim, *d.records)
	}
}

// redisFailing says the pod's last Redis error came after its last successful write.
func redisFailing(s *telemetry.Status) bool {
	return s.LastErrorClass != "" && s.LastErrorTime != nil && (s.LastWrite == nil || s.LastErrorTime.After(*s.LastWrite))
}

// waitingFor is why the pod's container is not running, or why the pod is not scheduled.
func waitingFor(pod *corev1.Pod) string {
	for _, c := range pod.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			return fmt.Sprintf(": %s %s", w.Reason, w.Message)
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return fmt.Sprintf(": %s %s", c.Reason, c.Message)
		}
	}
	return ""
}

// terminationRecords is the records of the drain container's last exit (SIGTERM keeps them), nil
// when it has not exited or said nothing.
func terminationRecords(pod *corev1.Pod) *int64 {
	for _, c := range pod.Status.ContainerStatuses {
		for _, t := range []*corev1.ContainerStateTerminated{c.State.Terminated, c.LastTerminationState.Terminated} {
			var m drainTermination
			if t != nil && json.Unmarshal([]byte(t.Message), &m) == nil && m.Records != nil {
				return m.Records
			}
		}
	}
	return nil
}

// drainProgressed remembers a claim's records and returns since when they have not gone down.
func (r *Reconciler) drainProgressed(obj *v1.RedisTraceExporter, claim string, records int64) time.Time {
	now := time.Now()
	var since time.Time
	r.remember(obj, func(m *memo) {
		if m.drains == nil {
			m.drains = map[string]drainProgress{}
		}
		p, ok := m.drains[claim]
		if !ok || records < p.records {
			p.since = now
		}
		p.records = records
		m.drains[claim] = p
		since = p.since
	})
	return since
}

// forgetDrains drops the progress of claims no longer draining.
func (r *Reconciler) forgetDrains(obj *v1.RedisTraceExporter, q *queueObserved) {
	draining := map[string]bool{}
	for _, d := range q.drains {
		draining[d.claim] = d.phase == v1.DrainDraining
	}
	r.remember(obj, func(m *memo) {
		for claim := range m.drains {
			if !draining[claim] {
				delete(m.drains, claim)
			}
		}
	})
}
