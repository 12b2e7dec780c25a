package controller

import (
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// recordTransition emits an event when Ready changes (status or reason), never on every pass. The
// last emitted transition is also remembered per resource: a pass that starts from a cached copy
// older than the previous pass's status write would otherwise announce the same transition twice.
func (r *Reconciler) recordTransition(now, before *v1.RedisTraceExporter) {
	if r.Recorder == nil {
		return
	}
	c := apimeta.FindStatusCondition(now.Status.Conditions, v1.ConditionReady)
	p := apimeta.FindStatusCondition(before.Status.Conditions, v1.ConditionReady)
	if c == nil || (p != nil && p.Status == c.Status && p.Reason == c.Reason) {
		return
	}
	key, dup := string(c.Status)+"/"+c.Reason, false
	r.remember(now, func(m *memo) { dup, m.lastEvent = m.lastEvent == key, key })
	if dup {
		return
	}
	kind := corev1.EventTypeNormal
	if c.Status != metav1.ConditionTrue {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(now, nil, kind, c.Reason, "Reconcile", "%s", c.Message)
}
