package controller

import (
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// recordTransition emits an event when Ready or PodMonitorApplied changes (status or reason),
// never on every pass: Normal when it turns True, Warning otherwise.
func (r *Reconciler) recordTransition(now, before *v1.RedisTraceExporter) {
	if r.Recorder == nil {
		return
	}
	for _, typ := range []string{v1.ConditionReady, v1.ConditionPodMonitorApplied} {
		r.recordConditionTransition(now, before, typ)
	}
}

// recordConditionTransition emits the event of one condition's transition. The last emitted
// transition of each condition is also remembered per resource: a pass that starts from a cached
// copy older than the previous pass's status write would otherwise announce the same transition
// twice.
func (r *Reconciler) recordConditionTransition(now, before *v1.RedisTraceExporter, typ string) {
	c := apimeta.FindStatusCondition(now.Status.Conditions, typ)
	p := apimeta.FindStatusCondition(before.Status.Conditions, typ)
	if c == nil || (p != nil && p.Status == c.Status && p.Reason == c.Reason) {
		return
	}
	key, dup := string(c.Status)+"/"+c.Reason, false
	r.remember(now, func(m *memo) {
		if m.lastEvent == nil {
			m.lastEvent = map[string]string{}
		}
		dup, m.lastEvent[typ] = m.lastEvent[typ] == key, key
	})
	if dup {
		return
	}
	kind := corev1.EventTypeNormal
	if c.Status != metav1.ConditionTrue {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(now, nil, kind, c.Reason, "Reconcile", "%s", c.Message)
}
