package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/redislag"
)

func readyDeployment(ready int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, ReadyReplicas: ready, AvailableReplicas: ready, UpdatedReplicas: 2},
	}
}

func readyStatefulSet(ready int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 3, Replicas: 2, ReadyReplicas: ready, AvailableReplicas: ready, UpdatedReplicas: 2,
			CurrentRevision: "durable-7c9f", UpdateRevision: "durable-7c9f"},
	}
}

// TestComputeStatus table-tests the conditions computed from what a pass observed.
func TestComputeStatus(t *testing.T) {
	lag := int64(7)
	report := &redislag.Report{TotalLag: 7, MaxLag: 7, Streams: []redislag.Stream{{Name: "traces:a", Length: 10,
		Groups: []redislag.Group{{Name: "g", Lag: &lag, Pending: 3, Consumers: 1}}}}}
	type want struct {
		ready, reconciling, stalled, redis metav1.ConditionStatus // "" = absent
		readyReason                        string
		observedGeneration                 int64
	}
	cases := map[string]struct {
		o    observed
		want want
	}{
		"everything ready is Ready and neither Reconciling nor Stalled": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(2)), desired: 2, redisChecked: true, lag: report},
			want{ready: "True", redis: "True", readyReason: v1.ReasonReady, observedGeneration: 5},
		},
		"pods not ready yet is Reconciling, not Ready": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(1)), desired: 2, redisChecked: true},
			want{ready: "False", reconciling: "True", redis: "True", readyReason: v1.ReasonDeploymentNotReady, observedGeneration: 5},
		},
		"a missing Secret is Stalled at the new generation, so kstatus says Failed": {
			observed{specErr: errors.New(`Secret "x" does not exist`), specReason: v1.ReasonSecretNotFound},
			want{ready: "False", stalled: "True", readyReason: v1.ReasonSecretNotFound, observedGeneration: 5},
		},
		"pods unready because Redis is unreachable report Unreachable, not a rollout": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(0)), desired: 2, redisChecked: true, redisErr: errors.New("dial"), redisCause: redisconn.CauseUnreachable},
			want{ready: "False", redis: "False", readyReason: v1.ReasonRedisUnreachable, observedGeneration: 5},
		},
		"Redis refusing credentials is not Ready, with the auth reason": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(2)), desired: 2, redisChecked: true, redisErr: errors.New("WRONGPASS"), redisCause: redisconn.CauseAuth},
			want{ready: "False", redis: "False", readyReason: v1.ReasonRedisAuthFailed, observedGeneration: 5},
		},
		"an unreachable Redis says Unreachable": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(2)), desired: 2, redisChecked: true, redisErr: errors.New("dial"), redisCause: redisconn.CauseUnreachable},
			want{ready: "False", redis: "False", readyReason: v1.ReasonRedisUnreachable, observedGeneration: 5},
		},
		"an invalid spec is Stalled with InvalidSpec": {
			observed{specErr: errors.New("stream.ttl: too short"), specReason: v1.ReasonInvalidSpec},
			want{ready: "False", stalled: "True", readyReason: v1.ReasonInvalidSpec, observedGeneration: 5},
		},
		"Redis not checked yet is not Ready": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(2)), desired: 2},
			want{ready: "False", readyReason: v1.ReasonRedisUnreachable, observedGeneration: 5},
		},
		"a StatefulSet whose pods are ready is Ready": {
			observed{applied: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(2)), desired: 2, redisChecked: true},
			want{ready: "True", redis: "True", readyReason: v1.ReasonReady, observedGeneration: 5},
		},
		"a StatefulSet with pods not ready yet is Reconciling, with the StatefulSet's reason": {
			observed{applied: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(1)), desired: 2, redisChecked: true},
			want{ready: "False", reconciling: "True", redis: "True", readyReason: v1.ReasonStatefulSetNotReady, observedGeneration: 5},
		},
		"a Deployment kept after the StatefulSet is available is Reconciling, WorkloadHandover": {
			observed{applied: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(2)), desired: 2, redisChecked: true,
				handover: "the Deployment d stays until its pod d-x reaches Redis"},
			want{ready: "False", reconciling: "True", redis: "True", readyReason: v1.ReasonWorkloadHandover, observedGeneration: 5},
		},
		"a scaled-down claim draining leaves Ready True (kstatus and Argo verdicts unchanged)": {
			observed{applied: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(2)), desired: 2, redisChecked: true, queueChecked: true,
				queue: &queueObserved{claims: 3, stallAfter: time.Minute, drains: []drainObserved{draining("queue-durable-2", 40, "", time.Time{})}}},
			want{ready: "True", redis: "True", readyReason: v1.ReasonReady, observedGeneration: 5},
		},
		"a failed drain Job is not Ready (QueueDrainStalled) and not Reconciling": {
			observed{applied: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(2)), desired: 2, redisChecked: true, queueChecked: true,
				queue: &queueObserved{claims: 3, stallAfter: time.Minute, drains: []drainObserved{{claim: "queue-durable-2", phase: v1.DrainFailed, message: "Job durable-drain-2 failed: BackoffLimitExceeded"}}}},
			want{ready: "False", redis: "True", readyReason: v1.ReasonQueueDrainStalled, observedGeneration: 5},
		},
		"a drain without progress and a Redis error past stallAfter is not Ready (QueueDrainStalled)": {
			observed{applied: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(2)), desired: 2, redisChecked: true, queueChecked: true,
				queue: &queueObserved{claims: 3, stallAfter: time.Minute, drains: []drainObserved{draining("queue-durable-2", 40, "oom", time.Now().Add(-2*time.Minute))}}},
			want{ready: "False", redis: "True", readyReason: v1.ReasonQueueDrainStalled, observedGeneration: 5},
		},
		"a deletion waiting for its queue claims' drains is DrainingQueue, neither Reconciling nor Stalled (kstatus says Terminating)": {
			observed{deleting: true, workloadKind: "StatefulSet", workload: statefulSetWorkload(readyStatefulSet(0)), queueChecked: true,
				queue: &queueObserved{claims: 2, stallAfter: time.Minute, drains: []drainObserved{draining("queue-durable-0", 40, "", time.Time{})}}},
			want{ready: "False", readyReason: v1.ReasonDrainingQueue, observedGeneration: 4},
		},
		"a deletion whose drain Redis refuses stays DrainingQueue, not QueueDrainStalled": {
			observed{deleting: true, workloadKind: "StatefulSet", redisChecked: true, redisErr: errors.New("dial"), redisCause: redisconn.CauseUnreachable, queueChecked: true,
				queue: &queueObserved{claims: 1, stallAfter: time.Minute, drains: []drainObserved{draining("queue-durable-0", 40, "connection", time.Now().Add(-time.Hour))}}},
			want{ready: "False", redis: "False", readyReason: v1.ReasonDrainingQueue, observedGeneration: 4},
		},
		"a deletion whose drains miss a Secret is DrainingQueue, not Stalled": {
			observed{deleting: true, workloadKind: "StatefulSet", deleteBlocked: errors.New(`Secret "auth" does not exist`)},
			want{ready: "False", readyReason: v1.ReasonDrainingQueue, observedGeneration: 4},
		},
		"a PodMonitor whose CRD is missing leaves Ready True: Ready is about the data path": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(2)), desired: 2, redisChecked: true, podMonitor: &podMonitorObserved{wanted: true, crdMissing: true}},
			want{ready: "True", redis: "True", readyReason: v1.ReasonReady, observedGeneration: 5},
		},
		"a PodMonitor that fails to apply leaves Ready True and is not Reconciling": {
			observed{applied: true, workload: deploymentWorkload(readyDeployment(2)), desired: 2, redisChecked: true, podMonitor: &podMonitorObserved{wanted: true, err: errors.New("forbidden")}},
			want{ready: "True", redis: "True", readyReason: v1.ReasonReady, observedGeneration: 5},
		},
		"a failed apply is Reconciling": {
			observed{applyErr: errors.New("applying Deployment: conflict")},
			want{ready: "False", reconciling: "True", readyReason: v1.ReasonApplyFailed, observedGeneration: 4},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obj := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Generation: 5}, Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"r:6379"}}}}
			obj.Status.ObservedGeneration = 4
			// A stale Stalled from an earlier pass must disappear once the cause is gone.
			apimeta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{Type: v1.ConditionStalled, Status: "True", Reason: "Old"})
			st := computeStatus(obj, tc.o, metav1.Now())
			get := func(typ string) metav1.ConditionStatus {
				if c := apimeta.FindStatusCondition(st.Conditions, typ); c != nil {
					return c.Status
				}
				return ""
			}
			if got := get(v1.ConditionReady); got != tc.want.ready {
				t.Errorf("Ready = %q, want %q", got, tc.want.ready)
			}
			if got := get(v1.ConditionReconciling); got != tc.want.reconciling {
				t.Errorf("Reconciling = %q, want %q", got, tc.want.reconciling)
			}
			if got := get(v1.ConditionStalled); got != tc.want.stalled {
				t.Errorf("Stalled = %q, want %q", got, tc.want.stalled)
			}
			if got := get(v1.ConditionRedisReachable); got != tc.want.redis {
				t.Errorf("RedisReachable = %q, want %q", got, tc.want.redis)
			}
			if c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionReady); c == nil || c.Reason != tc.want.readyReason {
				t.Errorf("Ready reason = %+v, want %s", c, tc.want.readyReason)
			}
			if st.ObservedGeneration != tc.want.observedGeneration {
				t.Errorf("observedGeneration = %d, want %d", st.ObservedGeneration, tc.want.observedGeneration)
			}
		})
	}
}

// draining is a drain pod that reported records, with a Redis error class since noProgress.
func draining(claim string, records int64, redisError string, noProgress time.Time) drainObserved {
	if noProgress.IsZero() {
		noProgress = time.Now()
	}
	return drainObserved{claim: claim, phase: v1.DrainDraining, records: &records, redisError: redisError, noProgressSince: noProgress}
}

// TestSetQueueDrained table-tests QueueDrained and status.queue from the claims' drains.
func TestSetQueueDrained(t *testing.T) {
	now := time.Now()
	zero := int64(0)
	drained := drainObserved{claim: "queue-d-3", phase: v1.DrainDrained, records: &zero}
	tests := map[string]struct {
		q       *queueObserved
		status  metav1.ConditionStatus // "" = absent
		reason  string
		msg     string
		orphans int32
		records *int64 // nil = unset
	}{
		"no claims and no Persistent queue: no condition, no status.queue": {nil, "", "", "", 0, nil},
		"claims all in use: True": {&queueObserved{claims: 2}, "True", v1.ReasonNoOrphanedRecords,
			"2 queue claims, no orphaned claim holds records", 0, &zero},
		"a Retained drained claim counts as no orphaned records": {&queueObserved{claims: 3, drains: []drainObserved{drained}}, "True", v1.ReasonNoOrphanedRecords,
			"3 queue claims, no orphaned claim holds records", 0, &zero},
		"a drain pod not reporting yet leaves the records unset": {&queueObserved{claims: 3, stallAfter: time.Minute,
			drains: []drainObserved{draining("queue-d-1", 5, "", now), {claim: "queue-d-2", phase: v1.DrainPending}}},
			"False", v1.ReasonDraining, "draining 2 orphaned queue claims", 2, nil},
		"drains reporting records: Draining with the total": {&queueObserved{claims: 3, stallAfter: time.Minute,
			drains: []drainObserved{draining("queue-d-1", 5, "", now), draining("queue-d-2", 7, "connection", now.Add(-30*time.Second))}},
			"False", v1.ReasonDraining, "draining 2 orphaned queue claims, 12 records left", 2, ptr.To[int64](12)},
		"a Redis error without progress past stallAfter: DrainStalled": {&queueObserved{claims: 2, stallAfter: time.Minute,
			drains: []drainObserved{draining("queue-d-1", 5, "connection", now.Add(-90*time.Second))}},
			"False", v1.ReasonDrainStalled, "queue drains make no progress: queue-d-1: Redis error (connection), no progress for 1m30s", 1, ptr.To[int64](5)},
		"no progress without a Redis error is not stalled": {&queueObserved{claims: 2, stallAfter: time.Minute,
			drains: []drainObserved{draining("queue-d-1", 5, "", now.Add(-time.Hour))}},
			"False", v1.ReasonDraining, "draining 1 orphaned queue claims, 5 records left", 1, ptr.To[int64](5)},
		"a failed Job wins over a stall: DrainFailed": {&queueObserved{claims: 3, stallAfter: time.Minute,
			drains: []drainObserved{draining("queue-d-1", 5, "connection", now.Add(-time.Hour)), {claim: "queue-d-2", phase: v1.DrainFailed, message: "Job d-drain-2 failed: BackoffLimitExceeded"}}},
			"False", v1.ReasonDrainFailed, "queue drain failed for claims queue-d-2 (Job d-drain-2 failed: BackoffLimitExceeded); their logs stay on the claims: delete the failed Job to drain again", 2, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := &v1.RedisTraceExporterStatus{Queue: &v1.QueueStatus{Claims: 9}}
			apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionQueueDrained, Status: "True", Reason: "Old"})
			setQueueDrained(conditions{st: st, now: metav1.NewTime(now)}, observed{queueChecked: true, queue: tc.q})
			c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionQueueDrained)
			if tc.status == "" {
				if c != nil || st.Queue != nil {
					t.Fatalf("QueueDrained %+v, queue %+v; want neither", c, st.Queue)
				}
				return
			}
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || c.Message != tc.msg {
				t.Errorf("QueueDrained = %+v, want %s %s %q", c, tc.status, tc.reason, tc.msg)
			}
			q := st.Queue
			if q == nil || q.Claims != tc.q.claims || q.OrphanedClaims != tc.orphans || len(q.Drains) != len(tc.q.drains) {
				t.Fatalf("status.queue %+v, want %d claims, %d orphaned, %d drains", q, tc.q.claims, tc.orphans, len(tc.q.drains))
			}
			if (q.OrphanedRecords == nil) != (tc.records == nil) || (q.OrphanedRecords != nil && *q.OrphanedRecords != *tc.records) {
				t.Errorf("orphanedRecords = %v, want %v", ptr.Deref(q.OrphanedRecords, -1), ptr.Deref(tc.records, -1))
			}
		})
	}
}

// TestQueueStatusKeptWhenNotChecked: a pass that did not reach the claims (an apply failed)
// keeps status.queue and QueueDrained rather than dropping them.
func TestQueueStatusKeptWhenNotChecked(t *testing.T) {
	st := &v1.RedisTraceExporterStatus{Queue: &v1.QueueStatus{Claims: 3, OrphanedClaims: 1}}
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionQueueDrained, Status: "False", Reason: v1.ReasonDraining})
	setQueueDrained(conditions{st: st, now: metav1.Now()}, observed{applyErr: errors.New("conflict")})
	if st.Queue == nil || st.Queue.OrphanedClaims != 1 || apimeta.FindStatusCondition(st.Conditions, v1.ConditionQueueDrained) == nil {
		t.Errorf("queue %+v, conditions %+v: want both kept", st.Queue, st.Conditions)
	}
}

// TestComputeStatusReportsUnknownLagAsUnset keeps a NULL lag unset (never 0) in status.
func TestComputeStatusReportsUnknownLagAsUnset(t *testing.T) {
	r := &redislag.Report{UnknownLagGroups: 1, Streams: []redislag.Stream{{Name: "s", Groups: []redislag.Group{{Name: "g"}}}}}
	st := computeStatus(&v1.RedisTraceExporter{}, observed{lag: r, redisChecked: true}, metav1.Now())
	if g := st.Streams[0].Groups[0]; g.Lag != nil {
		t.Errorf("lag = %d, want unset", *g.Lag)
	}
	if st.UnknownLagGroups != 1 || st.TotalLag == nil || *st.TotalLag != 0 {
		t.Errorf("unknownLagGroups %d totalLag %v", st.UnknownLagGroups, st.TotalLag)
	}
}

// TestMemoryIsPerResourceAndForgotten checks that what the controller remembers between passes
// (lag samples, rates, the last event) is dropped when the resource is deleted and not inherited
// by a new resource of the same name: the manager must not grow with every CR ever created.
func TestMemoryIsPerResourceAndForgotten(t *testing.T) {
	r := &Reconciler{}
	obj := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", UID: "uid-1"}}
	r.remember(obj, func(m *memo) { m.lastEvent = map[string]string{v1.ConditionReady: "True/Ready"} })
	r.remember(obj, func(m *memo) {
		if m.lastEvent[v1.ConditionReady] != "True/Ready" {
			t.Errorf("memo lost between passes: %+v", m)
		}
	})
	recreated := obj.DeepCopy()
	recreated.UID = "uid-2"
	r.remember(recreated, func(m *memo) {
		if len(m.lastEvent) != 0 {
			t.Errorf("a new resource of the same name inherited %v", m.lastEvent)
		}
	})
	r.forget(client.ObjectKeyFromObject(obj))
	if len(r.memory) != 0 {
		t.Errorf("memory after forget: %v", r.memory)
	}
}

// TestSetWorkloadAvailable table-tests the WorkloadAvailable condition and its message.
func TestSetWorkloadAvailable(t *testing.T) {
	rolling := readyDeployment(2)
	rolling.Status.UpdatedReplicas = 1 // old pods still ready, one new pod so far
	stsRolling := readyStatefulSet(2)
	stsRolling.Status.UpdatedReplicas, stsRolling.Status.UpdateRevision = 1, "durable-5d2a"
	// Every pod counted as updated and ready, but the StatefulSet has not closed the rollout:
	// a pod of the old revision is still there (scaling down, or the status lags).
	stsClosing := readyStatefulSet(2)
	stsClosing.Status.UpdateRevision = "durable-5d2a"
	stsUnobserved := readyStatefulSet(2)
	stsUnobserved.Generation = 4
	sts := func(s *appsv1.StatefulSet) observed {
		return observed{workloadKind: "StatefulSet", workload: statefulSetWorkload(s), desired: 2}
	}
	tests := map[string]struct {
		o          observed
		status     metav1.ConditionStatus
		reason     string
		msg        string
		wantsReady bool
	}{
		"every StatefulSet pod ready is available": {sts(readyStatefulSet(2)),
			"True", v1.ReasonStatefulSetReady, "2/2 exporter pods ready", true},
		"a StatefulSet rollout counts the pods of the update revision": {sts(stsRolling),
			"False", v1.ReasonStatefulSetNotReady, "1/2 exporter pods up to date, 2/2 ready, revision durable-5d2a rolling out", false},
		"a StatefulSet is not up to date until its current revision is the update revision": {sts(stsClosing),
			"False", v1.ReasonStatefulSetNotReady, "2/2 exporter pods up to date, 2/2 ready, revision durable-5d2a rolling out", false},
		"a StatefulSet whose controller has not seen the new generation is not available": {sts(stsUnobserved),
			"False", v1.ReasonStatefulSetNotReady, "2/2 exporter pods up to date, 2/2 ready", false},
		"no StatefulSet yet": {observed{workloadKind: "StatefulSet", desired: 3},
			"False", v1.ReasonStatefulSetNotReady, "the exporter StatefulSet does not exist yet", false},
		"a refused Persistent queue names the StatefulSet that is not applied": {observed{workloadKind: "StatefulSet", specErr: errors.New("no"), specReason: v1.ReasonInvalidSpec, desired: 1},
			"False", v1.ReasonInvalidSpec, "the exporter StatefulSet is not applied until the spec is fixed: no", false},
		"every pod ready is available": {observed{workload: deploymentWorkload(readyDeployment(2)), desired: 2},
			"True", v1.ReasonDeploymentReady, "2/2 exporter pods ready", true},
		"a rollout counts the updated pods, not the ready old ones": {observed{workload: deploymentWorkload(rolling), desired: 2},
			"False", v1.ReasonDeploymentNotReady, "1/2 exporter pods up to date, 2/2 ready", false},
		"a failed apply says the apply failed, not that the Deployment is yet to come": {observed{applyErr: errors.New("applying Deployment ns/a: conflict"), desired: 1},
			"False", v1.ReasonApplyFailed, "applying the exporter's objects failed: applying Deployment ns/a: conflict", false},
		"an invalid spec says nothing is applied until it is fixed": {observed{specErr: errors.New("stream.ttl: too short"), specReason: v1.ReasonInvalidSpec, desired: 1},
			"False", v1.ReasonInvalidSpec, "the exporter Deployment is not applied until the spec is fixed: stream.ttl: too short", false},
		"no Deployment yet": {observed{desired: 1},
			"False", v1.ReasonDeploymentNotReady, "the exporter Deployment does not exist yet", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := v1.RedisTraceExporterStatus{}
			ready := setWorkloadAvailable(conditions{st: &st}, tc.o)
			c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionWorkloadAvailable)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || c.Message != tc.msg {
				t.Errorf("WorkloadAvailable = %+v, want %s %s %q", c, tc.status, tc.reason, tc.msg)
			}
			if ready != tc.wantsReady {
				t.Errorf("workload ready = %v, want %v", ready, tc.wantsReady)
			}
		})
	}
}

// TestSetRedisReachable table-tests RedisReachable: absent until checked, then the cause's reason.
func TestSetRedisReachable(t *testing.T) {
	tests := map[string]struct {
		o      observed
		status metav1.ConditionStatus // "" = absent
		reason string
	}{
		"not checked yet leaves it absent": {observed{}, "", ""},
		"an answer is reachable":           {observed{redisChecked: true}, "True", v1.ReasonRedisReachable},
		"refused credentials":              {observed{redisChecked: true, redisErr: errors.New("WRONGPASS"), redisCause: redisconn.CauseAuth}, "False", v1.ReasonRedisAuthFailed},
		"a failed handshake":               {observed{redisChecked: true, redisErr: errors.New("x509"), redisCause: redisconn.CauseTLS}, "False", v1.ReasonRedisTLSFailed},
		"no connection":                    {observed{redisChecked: true, redisErr: errors.New("dial"), redisCause: redisconn.CauseUnreachable}, "False", v1.ReasonRedisUnreachable},
		"another error":                    {observed{redisChecked: true, redisErr: errors.New("ERR"), redisCause: redisconn.CauseOther}, "False", v1.ReasonRedisError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := v1.RedisTraceExporterStatus{}
			setRedisReachable(conditions{st: &st}, &v1.RedisTraceExporter{}, tc.o)
			c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionRedisReachable)
			switch {
			case tc.status == "" && c != nil:
				t.Errorf("RedisReachable = %+v, want absent", c)
			case tc.status != "" && (c == nil || c.Status != tc.status || c.Reason != tc.reason):
				t.Errorf("RedisReachable = %+v, want %s %s", c, tc.status, tc.reason)
			}
		})
	}
}

// TestSetExporterHealthy table-tests ExporterHealthy from the pods' /status.
func TestSetExporterHealthy(t *testing.T) {
	tests := map[string]struct {
		pods   []v1.PodHealth
		status metav1.ConditionStatus
		reason string
	}{
		"no pod reported":   {nil, "Unknown", v1.ReasonExportersUnknown},
		"every pod ready":   {[]v1.PodHealth{{Name: "a", Ready: true}, {Name: "b", Ready: true}}, "True", v1.ReasonExportersHealthy},
		"one pod not ready": {[]v1.PodHealth{{Name: "a", Ready: true}, {Name: "b"}}, "False", v1.ReasonExportersFailing},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := v1.RedisTraceExporterStatus{}
			setExporterHealthy(conditions{st: &st}, observed{exporter: &v1.ExporterStatus{Pods: tc.pods}})
			c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionExporterHealthy)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason {
				t.Errorf("ExporterHealthy = %+v, want %s %s", c, tc.status, tc.reason)
			}
			if (st.Exporter == nil) != (len(tc.pods) == 0) {
				t.Errorf("status.exporter = %+v with %d pods", st.Exporter, len(tc.pods))
			}
		})
	}
}

// TestReplicasComeFromTheStatefulSet: status.replicas, readyReplicas and the summary read the
// StatefulSet as they read the Deployment.
func TestReplicasComeFromTheStatefulSet(t *testing.T) {
	s := readyStatefulSet(1)
	s.Spec.Replicas = ptr.To[int32](3)
	s.Status.Replicas = 3
	st := v1.RedisTraceExporterStatus{}
	setWorkloadAvailable(conditions{st: &st}, observed{workloadKind: "StatefulSet", workload: statefulSetWorkload(s), desired: 3, selector: "a=b"})
	if st.Replicas != 3 || st.ReadyReplicas != 1 || st.ReplicasSummary != "1/3" || st.Selector != "a=b" {
		t.Errorf("replicas %d, ready %d, summary %q, selector %q; want 3, 1, 1/3, a=b", st.Replicas, st.ReadyReplicas, st.ReplicasSummary, st.Selector)
	}
}

// TestSetPodMonitorApplied table-tests PodMonitorApplied: present while the spec asks for a
// PodMonitor (or one is left to delete), kept as it was when the pass did not look.
func TestSetPodMonitorApplied(t *testing.T) {
	applied := metav1.Condition{Type: v1.ConditionPodMonitorApplied, Status: metav1.ConditionTrue, Reason: v1.ReasonPodMonitorApplied}
	cases := map[string]struct {
		before *metav1.Condition
		pm     *podMonitorObserved
		// want is the condition's status and reason; empty means absent.
		wantStatus metav1.ConditionStatus
		wantReason string
		wantInMsg  string
	}{
		"an applied PodMonitor is True and named": {nil, &podMonitorObserved{wanted: true},
			metav1.ConditionTrue, v1.ReasonPodMonitorApplied, "PodMonitor shop scrapes /metrics"},
		"a missing CRD is False and says how to get out of it": {&applied, &podMonitorObserved{wanted: true, crdMissing: true},
			metav1.ConditionFalse, v1.ReasonPodMonitorCRDNotInstalled, "install the prometheus-operator's CRDs"},
		"a failed apply is False with the error": {nil, &podMonitorObserved{wanted: true, err: errors.New("applying PodMonitor ns/shop: forbidden")},
			metav1.ConditionFalse, v1.ReasonPodMonitorApplyFailed, "forbidden"},
		"a PodMonitor no longer asked for and deleted takes the condition with it":    {&applied, &podMonitorObserved{}, "", "", ""},
		"a PodMonitor no longer asked for whose CRD went takes the condition with it": {&applied, &podMonitorObserved{crdMissing: true}, "", "", ""},
		"a failed delete keeps the condition, False": {&applied, &podMonitorObserved{err: errors.New("deleting PodMonitor ns/shop: forbidden")},
			metav1.ConditionFalse, v1.ReasonPodMonitorApplyFailed, "deleting"},
		"a pass that did not look keeps the condition as it was": {&applied, nil, metav1.ConditionTrue, v1.ReasonPodMonitorApplied, ""},
		"a pass that did not look adds none":                     {nil, nil, "", "", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obj := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: "shop", Generation: 2}}
			if tc.before != nil {
				obj.Status.Conditions = []metav1.Condition{*tc.before}
			}
			st := computeStatus(obj, observed{podMonitor: tc.pm}, metav1.Now())
			c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionPodMonitorApplied)
			switch {
			case tc.wantStatus == "" && c != nil:
				t.Fatalf("PodMonitorApplied = %+v, want none", c)
			case tc.wantStatus == "":
			case c == nil:
				t.Fatalf("no PodMonitorApplied, want %s %s", tc.wantStatus, tc.wantReason)
			case c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantInMsg):
				t.Errorf("PodMonitorApplied = %s %s %q, want %s %s containing %q", c.Status, c.Reason, c.Message, tc.wantStatus, tc.wantReason, tc.wantInMsg)
			}
		})
	}
}
