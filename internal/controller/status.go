package controller

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/redislag"
)

// observed is what one reconcile pass saw. Steps fill it; computeStatus turns it into status.
type observed struct {
	// specErr is a problem only the user can fix in the spec or its Secrets (Stalled).
	specErr    error
	specReason string
	// applyErr is a failure to apply children (retried).
	applyErr error
	applied  bool

	deployment *appsv1.Deployment
	desired    int32
	selector   string

	redisChecked bool
	redisErr     error
	redisCause   redisconn.Cause
	lag          *redislag.Report
	lagTime      metav1.Time

	exporter *v1.ExporterStatus
}

// computeStatus derives the whole status from what was observed: pure, table-tested.
func computeStatus(obj *v1.RedisTraceExporter, o observed, now metav1.Time) v1.RedisTraceExporterStatus {
	st := *obj.Status.DeepCopy()
	gen := obj.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: now})
	}

	// Workload.
	st.Replicas, st.ReadyReplicas = 0, 0
	workloadReady := false
	if d := o.deployment; d != nil {
		st.Replicas = d.Status.Replicas
		st.ReadyReplicas = d.Status.ReadyReplicas
		upToDate := d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= o.desired
		workloadReady = upToDate && d.Status.ReadyReplicas >= o.desired && d.Status.AvailableReplicas >= o.desired
		if workloadReady {
			set(v1.ConditionWorkloadAvailable, metav1.ConditionTrue, v1.ReasonDeploymentReady, fmt.Sprintf("%d/%d exporter pods ready", d.Status.ReadyReplicas, o.desired))
		} else {
			set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, v1.ReasonDeploymentNotReady, fmt.Sprintf("%d/%d exporter pods ready and up to date", d.Status.ReadyReplicas, o.desired))
		}
	} else {
		set(v1.ConditionWorkloadAvailable, metav1.ConditionFalse, v1.ReasonDeploymentNotReady, "the exporter Deployment does not exist yet")
	}
	st.ReplicasSummary = fmt.Sprintf("%d/%d", st.ReadyReplicas, o.desired)
	if o.selector != "" {
		st.Selector = o.selector
	}

	// Redis.
	if o.redisChecked {
		if o.redisErr == nil {
			set(v1.ConditionRedisReachable, metav1.ConditionTrue, v1.ReasonRedisReachable, "Redis answers with the configured credentials")
		} else {
			reason, msg := redisUnreachable(obj, o.redisCause)
			set(v1.ConditionRedisReachable, metav1.ConditionFalse, reason, msg)
		}
	}
	if o.lag != nil {
		st.Streams = streamsStatus(o.lag)
		st.StreamsTruncated = o.lag.Truncated
		total, maxLag := o.lag.TotalLag, o.lag.MaxLag
		st.TotalLag, st.MaxLag = &total, &maxLag
		st.UnknownLagGroups = int32(o.lag.UnknownLagGroups)
		st.LagUpdateTime = &o.lagTime
	}
	if o.exporter != nil {
		st.Exporter = o.exporter
		if len(o.exporter.Pods) == 0 {
			st.Exporter = nil
		}
		healthy, failing := 0, []string{}
		for _, p := range o.exporter.Pods {
			if p.Ready {
				healthy++
			} else {
				failing = append(failing, p.Name)
			}
		}
		switch {
		case len(o.exporter.Pods) == 0:
			set(v1.ConditionExporterHealthy, metav1.ConditionUnknown, v1.ReasonExportersUnknown, "no exporter pod reported its status yet")
		case len(failing) == 0:
			set(v1.ConditionExporterHealthy, metav1.ConditionTrue, v1.ReasonExportersHealthy, fmt.Sprintf("%d exporter pods accept spans and reach Redis", healthy))
		default:
			msg := fmt.Sprintf("exporter pods not ready: %s", strings.Join(failing, ", "))
			if o.exporter.LastErrorClass != "" {
				msg += fmt.Sprintf(" (last Redis error class: %s)", o.exporter.LastErrorClass)
			}
			set(v1.ConditionExporterHealthy, metav1.ConditionFalse, v1.ReasonExportersFailing, msg)
		}
	}

	// Summary: kstatus Ready / Reconciling / Stalled.
	redisOK := apimeta.IsStatusConditionTrue(st.Conditions, v1.ConditionRedisReachable)
	switch {
	case o.specErr != nil:
		set(v1.ConditionStalled, metav1.ConditionTrue, o.specReason, o.specErr.Error())
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		set(v1.ConditionReady, metav1.ConditionFalse, o.specReason, o.specErr.Error())
	case o.applyErr != nil:
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
		set(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonApplyFailed, o.applyErr.Error())
		set(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonApplyFailed, o.applyErr.Error())
	case o.redisChecked && !redisOK:
		// Redis refuses or cannot be reached: that is the reason to report, before unready pods
		// (whose readiness includes Redis). Not Reconciling: nothing progresses until Redis or
		// the spec is fixed, and GitOps tools should show it as unhealthy, not as still rolling.
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionRedisReachable)
		set(v1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
	case !workloadReady:
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
		c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionWorkloadAvailable)
		set(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonProgressing, c.Message)
		set(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonDeploymentNotReady, c.Message)
	case !redisOK:
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionRedisReachable)
		reason, msg := v1.ReasonRedisUnreachable, "Redis has not been checked yet"
		if c != nil {
			reason, msg = c.Reason, c.Message
		}
		set(v1.ConditionReady, metav1.ConditionFalse, reason, msg)
	default:
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionStalled)
		apimeta.RemoveStatusCondition(&st.Conditions, v1.ConditionReconciling)
		set(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonReady, fmt.Sprintf("%d/%d exporter pods ready, Redis reachable", st.ReadyReplicas, o.desired))
	}
	// The generation is observed once the pass reached a verdict on it: applied, or stalled on
	// something only the user can fix (so kstatus reports Failed rather than InProgress).
	if o.applied || o.specErr != nil {
		st.ObservedGeneration = gen
	}
	return st
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
