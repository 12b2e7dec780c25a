package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// TestDrainingQueueMessage table-tests what Ready says while a deleted resource waits for its
// queue claims: what it waits for, why the drains do not finish, and the way out.
func TestDrainingQueueMessage(t *testing.T) {
	now := time.Now()
	tests := map[string]struct {
		o    observed
		want []string
	}{
		"pods still stopping are waited for": {
			observed{deleting: true, queueChecked: true, queue: &queueObserved{claims: 2, stopping: 2}},
			[]string{"waiting for 2 exporter pods to stop (they drain their logs at SIGTERM)"},
		},
		"a drain in progress shows QueueDrained's records": {
			observed{deleting: true, queueChecked: true, queue: &queueObserved{claims: 1, stallAfter: time.Minute,
				drains: []drainObserved{draining("queue-durable-0", 12, "", now)}}},
			[]string{"draining 1 orphaned queue claims, 12 records left"},
		},
		"a drain Redis refuses says so, and the deletion still waits": {
			observed{deleting: true, queueChecked: true, queue: &queueObserved{claims: 1, stallAfter: time.Minute,
				drains: []drainObserved{draining("queue-durable-0", 12, "connection", now.Add(-5*time.Minute))}}},
			[]string{"queue drains make no progress: queue-durable-0: Redis error (connection), no progress for 5m0s"},
		},
		"a Secret the drains need is named": {
			observed{deleting: true, deleteBlocked: errors.New(`Secret "auth" does not exist`)},
			[]string{`the drains cannot start: Secret "auth" does not exist`},
		},
		"a failed step is named": {
			observed{deleting: true, applyErr: errors.New("scaling StatefulSet ns/durable to 0 replicas: conflict")},
			[]string{"scaling StatefulSet ns/durable to 0 replicas: conflict"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := &v1.RedisTraceExporter{Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"r:6379"}}}}
			st := computeStatus(obj, tc.o, metav1.NewTime(now))
			c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1.ReasonDrainingQueue {
				t.Fatalf("Ready = %+v, want False %s", c, v1.ReasonDrainingQueue)
			}
			want := append(tc.want, "once its queue claims are drained to Redis and deleted", "annotate it tracestream.io/queue-on-delete=Keep")
			for _, w := range want {
				if !strings.Contains(c.Message, w) {
					t.Errorf("Ready message %q does not say %q", c.Message, w)
				}
			}
		})
	}
}
