//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// The durable queue on the local cluster (issue 15): a Persistent queue runs a StatefulSet whose
// replicas each own a claim on the default StorageClass (local-path). Redis is the host's
// redis-server 7, without idempotent XADD, so a record replayed after its entries reached Redis
// shows as a duplicate: the tests count them and bound them by the spans that were in a log.

// queueRTE is a resource with a persistent queue of 128Mi on volume, replicas pods.
func queueRTE(ns, name, redisAddr, volume string, replicas int32) *v1.RedisTraceExporter {
	size := resource.MustParse("128Mi")
	return &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{Addresses: []string{redisAddr}}, Replicas: ptr.To(replicas),
			Delivery: v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{Volume: volume, Size: &size}},
		},
	}
}

// statefulSetReady waits until the exporter StatefulSet runs want ready pods of its current
// revision, no others, and the resource is Ready.
func (h rteHandle) statefulSetReady(timeout time.Duration, want int32) {
	h.t.Helper()
	wait.For(h.t, timeout, fmt.Sprintf("%s: StatefulSet %d/%d", h.key, want, want), func() error {
		var s appsv1.StatefulSet
		if err := h.c.Get(context.Background(), h.key, &s); err != nil {
			return err
		}
		if s.Status.ObservedGeneration < s.Generation || s.Status.ReadyReplicas != want || s.Status.Replicas != want ||
			s.Status.CurrentRevision != s.Status.UpdateRevision {
			return fmt.Errorf("statefulset status %+v", s.Status)
		}
		pods, err := exporterPods(context.Background(), h.c, h.key.Namespace, h.key.Name)
		if err != nil || len(pods) != int(want) {
			return errors.Join(fmt.Errorf("%d exporter pods, want %d", len(pods), want), err)
		}
		return nil
	})
	h.ready(timeout)
}

// podSenders starts one sender per exporter pod, straight to its pod IP (a Service would give
// one gRPC connection to one pod), each with a service name, so a stream, of its own:
// traces:<resource>-<pod>. Every replica's log then holds records.
func podSenders(t *testing.T, c client.Client, key client.ObjectKey) map[string]*spanload.Sender {
	t.Helper()
	pods, err := exporterPods(context.Background(), c, key.Namespace, key.Name)
	if err != nil {
		t.Fatal(err)
	}
	senders := map[string]*spanload.Sender{}
	for _, p := range pods {
		if p.Status.PodIP == "" {
			t.Fatalf("pod %s has no IP", p.Name)
		}
		senders[p.Name] = spanload.Send(t, p.Status.PodIP+":4317", key.Name+"-"+p.Name, 2, 20, 20*time.Millisecond)
	}
	return senders
}

// waitAcked waits until every sender has n more spans acknowledged than in from (nil: than 0),
// and returns the counts then.
func waitAcked(t *testing.T, senders map[string]*spanload.Sender, from map[string]int, n int, why string) map[string]int {
	t.Helper()
	now := map[string]int{}
	wait.For(t, 2*time.Minute, why, func() error {
		for name, s := range senders {
			now[name] = s.Acked()
			if now[name]-from[name] < n {
				return fmt.Errorf("pod %s: %d spans acknowledged, want %d more than %d", name, now[name], n, from[name])
			}
		}
		return nil
	})
	return now
}

// pauseWrites holds every write of Redis (CLIENT PAUSE WRITE) until the returned function is
// called; the 10-minute timeout frees Redis only if the test dies.
func pauseWrites(t *testing.T, rdb *redis.Client) (resume func()) {
	t.Helper()
	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", (10 * time.Minute).Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	resume = func() {
		if err := rdb.Do(context.Background(), "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(resume)
	return resume
}

// queueClaims lists the resource's queue claims by name.
func queueClaims(t *testing.T, c client.Client, obj *v1.RedisTraceExporter) []string {
	t.Helper()
	var list corev1.PersistentVolumeClaimList
	if err := c.List(context.Background(), &list, client.InNamespace(obj.Namespace), client.MatchingLabels(render.QueueClaimLabels(obj))); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// checkSenders stops the senders and compares what each acknowledged with its stream.
func checkSenders(t *testing.T, rdb *redis.Client, name string, senders map[string]*spanload.Sender) spanload.Outcome {
	t.Helper()
	var o spanload.Outcome
	for pod, s := range senders {
		o.Add(s.Check(t, rdb, "traces:"+name+"-"+pod))
	}
	return o
}

// kubectlScale scales the resource through its scale subresource, as a user does.
func kubectlScale(t *testing.T, key client.ObjectKey, replicas int) {
	t.Helper()
	out, err := exec.Command(os.Getenv("E2E_KUBECTL"), "scale", "rte/"+key.Name, "-n", key.Namespace,
		fmt.Sprintf("--replicas=%d", replicas)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
}

// TestDurableQueueKeepsWhatADeletedPodAndAScaleDownLeave: a Persistent queue with 3 replicas
// acknowledges spans from its logs while Redis holds writes; one pod is deleted (its replacement
// mounts the same claim and replays it), then the resource is scaled to 1 with kubectl. Status
// says how many records wait in the two orphaned logs; once Redis takes writes again their drain
// Jobs write them, the claims go (whenScaled Delete, the default) and every acknowledged span is
// in Redis.
func TestDurableQueueKeepsWhatADeletedPodAndAScaleDownLeave(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr, rdb := hostRedis(t, bridgeIP)
	rte := queueRTE(ns, "durable", redisAddr, v1.QueueVolumePersistent, 3)
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
	h.statefulSetReady(4*time.Minute, 3)
	if got := queueClaims(t, c, rte); len(got) != 3 {
		t.Fatalf("claims %v, want one per replica", got)
	}
	senders := podSenders(t, c, h.key)
	acked := waitAcked(t, senders, nil, 100, "spans flowing to each pod")

	resume := pauseWrites(t, rdb)
	paused := time.Now()
	waitAcked(t, senders, acked, 200, "spans acknowledged from each pod's log while Redis holds writes")
	fromLogs := 0
	for name, s := range senders {
		s.Stop()
		fromLogs += s.Acked() - acked[name]
	}

	// A deleted pod comes back on the same claim.
	old := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "durable-1"}, old); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 3*time.Minute, "durable-1 replaced, on its claim", func() error {
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "durable-1"}, &p); err != nil {
			return err
		}
		if p.UID == old.UID || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s %s", p.UID, p.Status.Phase)
		}
		return nil
	})

	kubectlScale(t, h.key, 1)
	var waiting *v1.QueueStatus
	wait.For(t, 4*time.Minute, "status.queue: 2 drains held by Redis, with the records they wait to write", func() error {
		q := h.get().Status.Queue
		if q == nil || q.OrphanedClaims != 2 || q.OrphanedRecords == nil || *q.OrphanedRecords == 0 || !draining(q, 2) {
			return fmt.Errorf("status.queue %+v", q)
		}
		waiting = q
		return nil
	})
	held := time.Since(paused)
	resume()

	wait.For(t, 4*time.Minute, "the orphaned claims drained and deleted", func() error {
		if got := queueClaims(t, c, rte); len(got) != 1 || got[0] != "queue-durable-0" {
			return fmt.Errorf("claims %v", got)
		}
		return nil
	})
	h.ready(2 * time.Minute)
	o := checkSenders(t, rdb, "durable", senders)
	t.Logf("durable queue, delete a pod and scale 3 -> 1 with Redis holding writes for %v: %d records in 2 orphaned logs (%s); after Redis: %s; %d spans were acknowledged from the logs",
		held.Round(time.Second), *waiting.OrphanedRecords, drainSummary(waiting), o, fromLogs)
	if o.Lost > 0 {
		t.Errorf("%d acknowledged spans are not in Redis", o.Lost)
	}
	if o.Duplicates > fromLogs {
		t.Errorf("%d duplicates, more than the %d spans acknowledged from the logs", o.Duplicates, fromLogs)
	}
}

// draining says status.queue shows n drains in progress, each with the records its pod reports.
func draining(q *v1.QueueStatus, n int) bool {
	held := 0
	for _, d := range q.Drains {
		if d.Phase == v1.DrainDraining && d.Records != nil && *d.Records > 0 {
			held++
		}
	}
	return held == n
}

// drainSummary is "claim phase records" for each drain in status.queue.
func drainSummary(q *v1.QueueStatus) string {
	var parts []string
	for _, d := range q.Drains {
		records := "?"
		if d.Records != nil {
			records = fmt.Sprint(*d.Records)
		}
		parts = append(parts, fmt.Sprintf("%s %s %s records", d.Claim, d.Phase, records))
	}
	return strings.Join(parts, ", ")
}

// TestDurableQueueDeletionWaitsForRedis: a resource deleted while Redis holds writes stays
// (finalizer, Ready False DrainingQueue) with its claims until their logs are in Redis; then it
// goes with its claims (whenDeleted Delete, the default), and no acknowledged span is lost.
func TestDurableQueueDeletionWaitsForRedis(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr, rdb := hostRedis(t, bridgeIP)
	rte := queueRTE(ns, "doomed", redisAddr, v1.QueueVolumePersistent, 2)
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
	h.statefulSetReady(4*time.Minute, 2)
	senders := podSenders(t, c, h.key)
	acked := waitAcked(t, senders, nil, 100, "spans flowing to each pod")
	resume := pauseWrites(t, rdb)
	paused := time.Now()
	waitAcked(t, senders, acked, 200, "spans acknowledged from each pod's log while Redis holds writes")
	fromLogs := 0
	for name, s := range senders {
		s.Stop()
		fromLogs += s.Acked() - acked[name]
	}

	if err := c.Delete(ctx, h.get()); err != nil {
		t.Fatal(err)
	}
	var msg string
	wait.For(t, 4*time.Minute, "the deleted resource waiting for its claims' drains", func() error {
		obj := h.get()
		cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReady)
		pods, err := exporterPods(ctx, c, ns, "doomed")
		if err != nil || len(pods) > 0 || cond == nil || cond.Reason != v1.ReasonDrainingQueue || obj.Status.Queue == nil ||
			obj.Status.Queue.OrphanedRecords == nil || *obj.Status.Queue.OrphanedRecords == 0 || !draining(obj.Status.Queue, 2) {
			return errors.Join(fmt.Errorf("%d exporter pods, Ready %+v, status.queue %+v", len(pods), cond, obj.Status.Queue), err)
		}
		msg = cond.Message
		return nil
	})
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 2 {
		t.Errorf("drain Jobs: %d (%v), want 2", len(jobs.Items), err)
	}
	held := time.Since(paused)
	resume()
	resumed := time.Now()
	wait.For(t, 4*time.Minute, "the resource and its claims gone", func() error {
		err := c.Get(ctx, h.key, &v1.RedisTraceExporter{})
		if !apierrors.IsNotFound(err) {
			return errors.Join(errors.New("resource still there"), err)
		}
		if got := queueClaims(t, c, rte); len(got) > 0 {
			return fmt.Errorf("claims %v", got)
		}
		return nil
	})
	o := checkSenders(t, rdb, "doomed", senders)
	t.Logf("durable queue, resource deleted with Redis holding writes for %v: Ready said %q; gone %v after Redis came back; %s; %d spans were acknowledged from the logs",
		held.Round(time.Second), msg, time.Since(resumed).Round(time.Second), o, fromLogs)
	if o.Lost > 0 {
		t.Errorf("%d acknowledged spans are not in Redis", o.Lost)
	}
	if o.Duplicates > fromLogs {
		t.Errorf("%d duplicates, more than the %d spans acknowledged from the logs", o.Duplicates, fromLogs)
	}
}

// TestQueueVolumeChangesLoseNoAcknowledgedSpan moves a loaded exporter from an emptyDir queue
// (Deployment) to a Persistent one (StatefulSet), with Redis holding writes at first, and back.
// Each move keeps the old workload until the new one is available (and, for the Deployment, its
// pods write their logs to Redis), then deletes it; the
// pods drain their logs at SIGTERM and the claims left by the StatefulSet are drained by Jobs and
// deleted. Every acknowledged span is in Redis.
func TestQueueVolumeChangesLoseNoAcknowledgedSpan(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr, rdb := hostRedis(t, bridgeIP)
	rte := queueRTE(ns, "moving", redisAddr, v1.QueueVolumeEmptyDir, 2)
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
	h.ready(3 * time.Minute)
	h.rolledOut(time.Minute)
	sender := spanload.Send(t, serviceIP(t, c, h.key)+":4317", "moving", 4, 20, 20*time.Millisecond)
	flowing := func(why string) {
		from := sender.Acked()
		wait.For(t, 2*time.Minute, why, func() error {
			if n := sender.Acked() - from; n < 400 {
				return fmt.Errorf("%d spans acknowledged", n)
			}
			return nil
		})
	}
	flowing("spans flowing on the emptyDir queue")

	// The move to Persistent with Redis holding writes: the StatefulSet becomes available (its
	// pods acknowledge into their logs), but the Deployment stays while its pods cannot write
	// their own logs to Redis; it goes once they can.
	resume := pauseWrites(t, rdb)
	start := time.Now()
	h.update(func(o *v1.RedisTraceExporter) { o.Spec.Delivery.PersistentQueue.Volume = v1.QueueVolumePersistent })
	var held string
	wait.For(t, 4*time.Minute, "the Deployment held while Redis holds writes", func() error {
		cond := apimeta.FindStatusCondition(h.get().Status.Conditions, v1.ConditionWorkloadAvailable)
		if cond == nil || cond.Reason != v1.ReasonWorkloadHandover || !strings.Contains(cond.Message, "to Redis") {
			return fmt.Errorf("WorkloadAvailable %+v", cond)
		}
		held = cond.Message
		return nil
	})
	if err := c.Get(ctx, h.key, &appsv1.Deployment{}); err != nil {
		t.Fatalf("the Deployment went while Redis held writes: %v", err)
	}
	resume()
	wait.For(t, 4*time.Minute, "the Deployment handed over to the StatefulSet", func() error {
		if err := c.Get(ctx, h.key, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			return errors.Join(errors.New("deployment still there"), err)
		}
		return nil
	})
	h.statefulSetReady(2*time.Minute, 2)
	toDurable := time.Since(start)
	flowing("spans flowing on the Persistent queue")

	start = time.Now()
	h.update(func(o *v1.RedisTraceExporter) { o.Spec.Delivery.PersistentQueue.Volume = v1.QueueVolumeEmptyDir })
	wait.For(t, 4*time.Minute, "the StatefulSet handed over to the Deployment, its claims drained and deleted", func() error {
		if err := c.Get(ctx, h.key, &appsv1.StatefulSet{}); !apierrors.IsNotFound(err) {
			return errors.Join(errors.New("statefulset still there"), err)
		}
		if got := queueClaims(t, c, rte); len(got) > 0 {
			return fmt.Errorf("claims %v", got)
		}
		return nil
	})
	h.rolledOut(2 * time.Minute)
	h.ready(time.Minute)
	back := time.Since(start)
	flowing("spans flowing on the emptyDir queue again")

	o := sender.Check(t, rdb, "traces:moving")
	t.Logf("queue volume emptyDir -> Persistent in %v (Redis holding writes at first: %q), Persistent -> emptyDir (claims drained and deleted) in %v, under load: %s",
		toDurable.Round(time.Second), held, back.Round(time.Second), o)
	if o.Lost > 0 {
		t.Errorf("%d acknowledged spans are not in Redis", o.Lost)
	}
}
