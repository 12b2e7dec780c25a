package controller

import (
	"fmt"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// observed is what one reconcile pass saw. Steps fill it; computeStatus turns it into status.
type observed struct {
	// specErr is a problem only the user can fix in the spec or its Secrets (Stalled).
	specErr    error
	specReason string
	// applyErr is a failure to apply children (retried).
	applyErr error
	applied  bool

	// workloadKind is the kind the spec asks to run the pods (render.WorkloadKind); workload is
	// that Deployment or StatefulSet, nil until it exists.
	workloadKind string
	workload     *workload
	desired      int32
	// handover says why the workload of the other kind is kept (handover.go); "" when it is not.
	handover string
	// seedReplicas is the old workload's replicas, for the new one created in this pass under
	// autoscaling (handover.go); 0 otherwise.
	seedReplicas int32
	selector     string

	redisChecked bool
	redisErr     error
	redisCause   redisconn.Cause
	lag          *redislag.Report
	lagTime      metav1.Time

	exporter *v1.ExporterStatus

	// podMonitor is what became of the PodMonitor; nil when the pass did not look at it, which
	// leaves PodMonitorApplied as it was.
	podMonitor *podMonitorObserved

	// queue is the queue claims and their drains once queueChecked; nil without claims unless
	// the queue is Persistent. A pass that did not get that far leaves status.queue as it was.
	queueChecked bool
	queue        *queueObserved

	// deleting says the resource is deleted and waits for its queue claims (its finalizer);
	// deleteBlocked is what keeps their drains from starting (a Secret they need is gone).
	deleting      bool
	deleteBlocked error
}

// computeStatus derives the whole status from what was observed: pure, table-tested. Each
// condition has one setter; the summary (Ready, Reconciling, Stalled) reads what they set.
func computeStatus(obj *v1.RedisTraceExporter, o observed, now metav1.Time) v1.RedisTraceExporterStatus {
	st := *obj.Status.DeepCopy()
	c := conditions{st: &st, gen: obj.Generation, now: now}
	workloadReady := setWorkloadAvailable(c, o)
	setRedisReachable(c, obj, o)
	setLag(&st, o)
	setExporterHealthy(c, o)
	setQueueDrained(c, o)
	setPodMonitorApplied(c, obj, o)
	setSummary(c, o, workloadReady)
	// The generation is observed once the pass reached a verdict on it: applied, or stalled on
	// something only the user can fix (so kstatus reports Failed rather than InProgress).
	if o.applied || o.specErr != nil {
		st.ObservedGeneration = obj.Generation
	}
	return st
}

// conditions sets and removes the conditions of one status at one generation and time.
type conditions struct {
	st  *v1.RedisTraceExporterStatus
	gen int64
	now metav1.Time
}

func (c conditions) set(typ string, s metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&c.st.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: c.gen, LastTransitionTime: c.now})
}

func (c conditions) remove(types ...string) {
	for _, t := range types {
		apimeta.RemoveStatusCondition(&c.st.Conditions, t)
	}
}

func (c conditions) get(typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(c.st.Conditions, typ)
}

// setWorkloadAvailable reports the Deployment's or StatefulSet's rollout and the replica
// counts; it returns whether every desired pod is up to date, ready and available.
func setWorkloadAvailable(c conditions, o observed) bool {
	st := c.st
	st.Replicas, st.ReadyReplicas = 0, 0
	if o.selector != "" {
		st.Selector = o.selector
	}
	w, kind := o.workload, o.kind()
	if w != nil {
		st.Replicas, st.ReadyReplicas = w.replicas, w.ready
	}
	st.ReplicasSummary = fmt.Sprintf("%d/%d", st.ReadyReplicas, o.desired)
	available, notAvailable := workloadReasons(kind)
	switch {
	case w == nil && o.applyErr != nil:
		c.set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, v1.ReasonApplyFailed, "applying the exporter's objects failed: "+o.applyErr.Error())
		return false
	case w == nil && o.specErr != nil:
		c.set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, o.specReason, "the exporter "+kind+" is not applied until the spec is fixed: "+o.specErr.Error())
		return false
	case w == nil:
		c.set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, notAvailable, "the exporter "+kind+" does not exist yet")
		return false
	}
	switch {
	case w.availableFor(o.desired) && o.handover != "":
		c.set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, v1.ReasonWorkloadHandover, o.handover)
		return false
	case w.availableFor(o.desired):
		c.set(v1.ConditionWorkloadAvailable, metav1.ConditionTrue, available, fmt.Sprintf("%d/%d exporter pods ready", w.ready, o.desired))
		return true
	}
	// During a rollout the old pods are ready but not up to date: count the updated ones.
	msg := fmt.Sprintf("%d/%d exporter pods up to date, %d/%d ready", w.updated, o.desired, w.ready, o.desired)
	if w.currentRevision != w.updateRevision {
		msg += fmt.Sprintf(", revision %s rolling out", w.updateRevision)
	}
	if o.handover != "" {
		msg += "; " + o.handover
	}
	c.set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, notAvailable, msg)
	return false
}

// kind is the workload kind status speaks of: the one observed, else the one the spec asks for.
func (o observed) kind() string {
	switch {
	case o.workload != nil:
		return o.workload.kind
	case o.workloadKind != "":
		return o.workloadKind
	}
	return render.KindDeployment
}

// setRedisReachable reports the lag reader's last connection to Redis, once it tried one.
func setRedisReachable(c conditions, obj *v1.RedisTraceExporter, o observed) {
	switch {
	case !o.redisChecked:
	case o.redisErr == nil:
		c.set(v1.ConditionRedisReachable, metav1.ConditionTrue, v1.ReasonRedisReachable, "Redis answers with the configured credentials")
	default:
		reason, msg := redisUnreachable(obj, o.redisCause)
		c.set(v1.ConditionRedisReachable, metav1.ConditionFalse, reason, msg)
	}
}

// setLag copies a new lag report into status; without one, the last report stays.
func setLag(st *v1.RedisTraceExporterStatus, o observed) {
	if o.lag == nil {
		return
	}
	st.Streams = streamsStatus(o.lag)
	st.StreamsTruncated = o.lag.Truncated
	total, maxLag := o.lag.TotalLag, o.lag.MaxLag
	st.TotalLag, st.MaxLag = &total, &maxLag
	st.UnknownLagGroups = int32(o.lag.UnknownLagGroups)
	st.LagUpdateTime = &o.lagTime
}

// setExporterHealthy reports the pods' own readiness from their /status, once they were listed.
func setExporterHealthy(c conditions, o observed) {
	if o.exporter == nil {
		return
	}
	c.st.Exporter = o.exporter
	var failing []string
	for _, p := range o.exporter.Pods {
		if !p.Ready {
			failing = append(failing, p.Name)
		}
	}
	switch {
	case len(o.exporter.Pods) == 0:
		c.st.Exporter = nil
		c.set(v1.ConditionExporterHealthy, metav1.ConditionUnknown, v1.ReasonExportersUnknown, "no exporter pod reported its status yet")
	case len(failing) == 0:
		c.set(v1.ConditionExporterHealthy, metav1.ConditionTrue, v1.ReasonExportersHealthy, fmt.Sprintf("%d exporter pods accept spans and reach Redis", len(o.exporter.Pods)))
	default:
		msg := fmt.Sprintf("exporter pods not ready: %s", strings.Join(failing, ", "))
		if o.exporter.LastErrorClass != "" {
			msg += fmt.Sprintf(" (last Redis error class: %s)", o.exporter.LastErrorClass)
		}
		c.set(v1.ConditionExporterHealthy, metav1.ConditionFalse, v1.ReasonExportersFailing, msg)
	}
}

// maxDrains bounds status.queue.drains (the CRD's MaxItems).
const maxDrains = 1000

// setQueueDrained reports the queue claims and whether the orphaned ones' logs are in Redis: a
// failed drain Job (DrainFailed), else a drain without progress for stallAfter while its pod
// reports a Redis error (DrainStalled), else drains in progress (Draining), else True. Without
// claims of a Persistent queue both status.queue and the condition go; when the pass did not
// look at the claims, both stay as they were.
func setQueueDrained(c conditions, o observed) {
	q := o.queue
	if !o.queueChecked {
		return
	}
	if q == nil {
		c.st.Queue = nil
		c.remove(v1.ConditionQueueDrained)
		return
	}
	st := &v1.QueueStatus{Claims: q.claims}
	var total int64
	known := true
	var failed, stalled []string
	for _, d := range q.drains {
		cd := v1.ClaimDrain{Claim: d.claim, Phase: d.phase, Records: d.records, Message: d.message}
		if d.phase != v1.DrainDrained {
			st.OrphanedClaims++
			if d.records == nil {
				known = false
			} else {
				total += *d.records
			}
		}
		switch {
		case d.phase == v1.DrainFailed:
			failed = append(failed, d.claim+" ("+d.message+")")
		case d.redisError != "" && !d.noProgressSince.IsZero() && c.now.Sub(d.noProgressSince) >= q.stallAfter:
			cd.Message = fmt.Sprintf("Redis error (%s), no progress for %s", d.redisError, c.now.Sub(d.noProgressSince).Truncate(time.Second))
			stalled = append(stalled, d.claim+": "+cd.Message)
		}
		if len(st.Drains) < maxDrains {
			st.Drains = append(st.Drains, cd)
		}
	}
	if known {
		st.OrphanedRecords = &total
	}
	c.st.Queue = st
	switch {
	case len(failed) > 0:
		c.set(v1.ConditionQueueDrained, metav1.ConditionFalse, v1.ReasonDrainFailed, "queue drain failed for claims "+strings.Join(failed, ", ")+
			"; their logs stay on the claims: delete the failed Job to drain again")
	case len(stalled) > 0:
		c.set(v1.ConditionQueueDrained, metav1.ConditionFalse, v1.ReasonDrainStalled, "queue drains make no progress: "+strings.Join(stalled, "; "))
	case st.OrphanedClaims > 0:
		msg := fmt.Sprintf("draining %d orphaned queue claims", st.OrphanedClaims)
		if known {
			msg += fmt.Sprintf(", %d records left", total)
		}
		c.set(v1.ConditionQueueDrained, metav1.ConditionFalse, v1.ReasonDraining, msg)
	default:
		c.set(v1.ConditionQueueDrained, metav1.ConditionTrue, v1.ReasonNoOrphanedRecords, fmt.Sprintf("%d queue claims, no orphaned claim holds records", st.Claims))
	}
}

// queueStalled says a drain failed or stalled (QueueDrained's reason).
func queueStalled(c conditions) bool {
	q := c.get(v1.ConditionQueueDrained)
	return q != nil && (q.Reason == v1.ReasonDrainFailed || q.Reason == v1.ReasonDrainStalled)
}

// setPodMonitorApplied reports the PodMonitor once the pass looked at it: applied, its CRD not
// installed, or a failed apply or delete; the condition goes with the PodMonitor when the spec
// stops asking for it. setSummary does not read it: Ready is about the spans' path to Redis, and
// a cluster without the prometheus-operator runs the exporter just as well.
func setPodMonitorApplied(c conditions, obj *v1.RedisTraceExporter, o observed) {
	pm := o.podMonitor
	switch {
	case pm == nil:
	case pm.err != nil:
		c.set(v1.ConditionPodMonitorApplied, metav1.ConditionFalse, v1.ReasonPodMonitorApplyFailed, pm.err.Error())
	case !pm.wanted:
		c.remove(v1.ConditionPodMonitorApplied)
	case pm.crdMissing:
		c.set(v1.ConditionPodMonitorApplied, metav1.ConditionFalse, v1.ReasonPodMonitorCRDNotInstalled,
			"the PodMonitor CRD (monitoring.coreos.com/v1) is not installed: install the prometheus-operator's CRDs and the PodMonitor is "+
				"created within spec.lag.refreshInterval, or set spec.observability.metrics.podMonitor.enabled to false")
	default:
		c.set(v1.ConditionPodMonitorApplied, metav1.ConditionTrue, v1.ReasonPodMonitorApplied,
			fmt.Sprintf("PodMonitor %s scrapes /metrics on the exporter pods' admin port", obj.Name))
	}
}

// setSummary sets the kstatus conditions. The first verdict that holds wins, in this order:
// a deletion waiting for the queue claims (DrainingQueue: kstatus says Terminating anyway), a spec only the user can fix (Stalled), a failed apply (Reconciling, retried), Redis refusing
// or unreachable (before unready pods, whose readiness includes Redis; not Reconciling, since
// nothing progresses until Redis or the spec is fixed), pods rolling out or moving to the other
// workload kind (Reconciling, with WorkloadAvailable's reason), an
// orphaned claim's drain failed or stalled (not Reconciling: it waits for Redis or the user; a
// drain in progress changes nothing, so a scale-down keeps its verdict), Redis not checked yet,
// then Ready.
func setSummary(c conditions, o observed, workloadReady bool) {
	redis := c.get(v1.ConditionRedisReachable)
	redisOK := redis != nil && redis.Status == metav1.ConditionTrue
	switch {
	case o.deleting:
		c.remove(v1.ConditionStalled, v1.ConditionReconciling)
		c.set(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonDrainingQueue, deletingMessage(c, o))
	case o.specErr != nil:
		c.remove(v1.ConditionReconciling)
		c.set(v1.ConditionStalled, metav1.ConditionTrue, o.specReason, o.specErr.Error())
		c.set(v1.ConditionReady, metav1.ConditionFalse, o.specReason, o.specErr.Error())
	case o.applyErr != nil:
		c.remove(v1.ConditionStalled)
		c.set(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonApplyFailed, o.applyErr.Error())
		c.set(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonApplyFailed, o.applyErr.Error())
	case o.redisChecked && !redisOK:
		c.remove(v1.ConditionStalled, v1.ConditionReconciling)
		c.set(v1.ConditionReady, metav1.ConditionFalse, redis.Reason, redis.Message)
	case !workloadReady:
		c.remove(v1.ConditionStalled)
		w := c.get(v1.ConditionWorkloadAvailable)
		reason, progressing := w.Reason, v1.ReasonProgressing
		if reason == v1.ReasonWorkloadHandover {
			progressing = reason
		}
		c.set(v1.ConditionReconciling, metav1.ConditionTrue, progressing, w.Message)
		c.set(v1.ConditionReady, metav1.ConditionFalse, reason, w.Message)
	case queueStalled(c):
		c.remove(v1.ConditionStalled, v1.ConditionReconciling)
		c.set(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonQueueDrainStalled, c.get(v1.ConditionQueueDrained).Message)
	case !redisOK:
		c.remove(v1.ConditionStalled, v1.ConditionReconciling)
		reason, msg := v1.ReasonRedisUnreachable, "Redis has not been checked yet"
		if redis != nil {
			reason, msg = redis.Reason, redis.Message
		}
		c.set(v1.ConditionReady, metav1.ConditionFalse, reason, msg)
	default:
		c.remove(v1.ConditionStalled, v1.ConditionReconciling)
		c.set(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonReady, fmt.Sprintf("%d/%d exporter pods ready, Redis reachable", c.st.ReadyReplicas, o.desired))
	}
}

// deletingMessage says what a deletion waits for: a Secret the drains need, pods that stop, the
// drains (QueueDrained's message), and the way out.
func deletingMessage(c conditions, o observed) string {
	msg := "the resource is deleted once its queue claims are drained to Redis and deleted"
	switch q := o.queue; {
	case o.deleteBlocked != nil:
		msg += "; the drains cannot start: " + o.deleteBlocked.Error()
	case o.applyErr != nil:
		msg += "; " + o.applyErr.Error()
	case q != nil && q.stopping > 0:
		msg += fmt.Sprintf("; waiting for %d exporter pods to stop (they drain their logs at SIGTERM)", q.stopping)
	}
	if d := c.get(v1.ConditionQueueDrained); o.queue != nil && d != nil && d.Status != metav1.ConditionTrue {
		msg += "; " + d.Message
	}
	return msg + "; to keep the claims instead, annotate it " + v1.QueueOnDeleteAnnotation + "=" + v1.QueueOnDeleteKeep
}

// redisUnreachable is the reason and message of a RedisReachable condition that is False: what
// failed, without any credential (the addresses and the cause only).
func redisUnreachable(obj *v1.RedisTraceExporter, cause redisconn.Cause) (reason, msg string) {
	addrs := strings.Join(obj.Spec.Redis.Addresses, ", ")
	switch cause {
	case redisconn.CauseAuth:
		return v1.ReasonRedisAuthFailed, fmt.Sprintf("Redis at %s refused the credentials from Secret %q (check the username/password keys and the ACL user)", addrs, authSecretName(obj))
	case redisconn.CauseTLS:
		return v1.ReasonRedisTLSFailed, fmt.Sprintf("TLS handshake with Redis at %s failed (check spec.redis.tls: CA, client certificate, server name)", addrs)
	case redisconn.CauseUnreachable:
		return v1.ReasonRedisUnreachable, fmt.Sprintf("cannot connect to Redis at %s (check spec.redis.addresses and network policies)", addrs)
	default:
		return v1.ReasonRedisError, fmt.Sprintf("Redis at %s answered with an error while reading stream status", addrs)
	}
}

func authSecretName(obj *v1.RedisTraceExporter) string {
	if obj.Spec.Redis.Auth == nil {
		return ""
	}
	return obj.Spec.Redis.Auth.SecretRef.Name
}

func streamsStatus(r *redislag.Report) []v1.StreamStatus {
	out := make([]v1.StreamStatus, 0, len(r.Streams))
	for _, s := range r.Streams {
		ss := v1.StreamStatus{Name: s.Name, Length: s.Length, LastEntryID: s.LastEntryID}
		for _, g := range s.Groups {
			ss.Groups = append(ss.Groups, v1.GroupStatus{Name: g.Name, Lag: g.Lag, Pending: g.Pending, Consumers: g.Consumers, LastDeliveredID: g.LastDeliveredID})
		}
		out = append(out, ss)
	}
	return out
}
