package controller

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// DefaultDrainStallAfter is how long a drain may make no progress while its pod reports a Redis
// error before Ready turns False (QueueDrainStalled).
const DefaultDrainStallAfter = 2 * time.Minute

// drainRequeue is how often a pass runs while a drain is in progress, to follow its records
// (the drain pods are not watched: the Jobs are, for their outcome).
const drainRequeue = 10 * time.Second

// queueObserved is what a pass saw of a resource's queue claims.
type queueObserved struct {
	claims int32
	// stopping counts the claims whose replica is not wanted but whose pod still stops.
	stopping int32
	// drains are the orphaned claims, by name.
	drains     []drainObserved
	stallAfter time.Duration
}

// drainObserved is one orphaned claim's drain.
type drainObserved struct {
	claim   string
	phase   string
	records *int64
	message string
	// redisError is the class of the drain pod's last Redis error, when it came after its last
	// successful write; noProgressSince is when its records last went down.
	redisError      string
	noProgressSince time.Time
}

// active says a drain is still to finish (not Drained, not Failed).
func (q *queueObserved) active() bool {
	for _, d := range q.drains {
		if d.phase == v1.DrainPending || d.phase == v1.DrainDraining {
			return true
		}
	}
	return false
}

// drainStallAfter is DrainStallAfter, or its default.
func (r *Reconciler) drainStallAfter() time.Duration {
	if r.DrainStallAfter > 0 {
		return r.DrainStallAfter
	}
	return DefaultDrainStallAfter
}

// reconcileQueue finds the resource's orphaned queue claims (an ordinal at or past the desired
// replicas, or any when the queue is no longer Persistent, and no pod of that ordinal) and
// drains each with a Job; a drained claim is then deleted or kept as claimRetentionPolicy says.
// A claim whose ordinal is wanted again loses its drain Job, so the StatefulSet's pod can mount
// it.
func (r *Reconciler) reconcileQueue(ctx context.Context, obj *v1.RedisTraceExporter, in render.Inputs, o *observed) error {
	persistent := render.WorkloadKind(obj) == render.KindStatefulSet
	desired := 0
	if persistent {
		desired = int(o.desired)
	}
	q, err := r.drainOrphans(ctx, obj, in, desired, claimRetention(obj))
	if err != nil {
		return err
	}
	if persistent || q.claims > 0 {
		o.queue = q
	}
	o.queueChecked = true
	return nil
}

// drainOrphans moves every queue claim of the resource on, given the replicas wanted: a wanted
// ordinal's claim loses its drain Job, a claim whose pod still stops waits, the others are
// drained, then deleted or kept as retention says.
func (r *Reconciler) drainOrphans(ctx context.Context, obj *v1.RedisTraceExporter, in render.Inputs, desired int, retention string) (*queueObserved, error) {
	claims, jobs, pods, err := r.listQueue(ctx, obj)
	if err != nil {
		return nil, err
	}
	q := &queueObserved{stallAfter: r.drainStallAfter()}
	for i := range claims {
		pvc := &claims[i]
		ord, ok := render.QueueClaimOrdinal(obj, pvc.Name)
		if !ok || pvc.DeletionTimestamp != nil {
			continue
		}
		job := jobs[pvc.Name]
		switch {
		case ord < desired:
			q.claims++
			if err := r.deleteDrainJob(ctx, job); err != nil {
				return nil, err
			}
		case pods[obj.Name+"-"+strconv.Itoa(ord)]:
			q.claims++ // its pod still drains its log at SIGTERM
			q.stopping++
		default:
			d, gone, err := r.drainClaim(ctx, obj, in, pvc, ord, job, retention)
			if err != nil {
				return nil, err
			}
			if !gone {
				q.claims++
				q.drains = append(q.drains, d)
			}
		}
	}
	r.forgetDrains(obj, q)
	return q, nil
}

// listQueue lists the resource's queue claims, its drain Jobs by claim, and the names of its
// exporter pods.
func (r *Reconciler) listQueue(ctx context.Context, obj *v1.RedisTraceExporter) ([]corev1.PersistentVolumeClaim, map[string]*batchv1.Job, map[string]bool, error) {
	var claims corev1.PersistentVolumeClaimList
	if err := r.List(ctx, &claims, client.InNamespace(obj.Namespace), client.MatchingLabels(render.QueueClaimLabels(obj))); err != nil {
		return nil, nil, nil, fmt.Errorf("listing the queue claims: %w", err)
	}
	var jobList batchv1.JobList
	if err := r.List(ctx, &jobList, client.InNamespace(obj.Namespace), client.MatchingLabels(render.DrainLabels(obj))); err != nil {
		return nil, nil, nil, fmt.Errorf("listing the queue drain Jobs: %w", err)
	}
	jobs := map[string]*batchv1.Job{}
	for i := range jobList.Items {
		jobs[jobList.Items[i].Labels[render.DrainClaimLabel]] = &jobList.Items[i]
	}
	var podList corev1.PodList
	if err := r.List(ctx, &podList, client.InNamespace(obj.Namespace), client.MatchingLabels(render.SelectorLabels(obj))); err != nil {
		return nil, nil, nil, fmt.Errorf("listing the exporter pods: %w", err)
	}
	pods := map[string]bool{}
	for _, p := range podList.Items {
		pods[p.Name] = true
	}
	sort.Slice(claims.Items, func(i, j int) bool { return claims.Items[i].Name < claims.Items[j].Name })
	return claims.Items, jobs, pods, nil
}

// drainClaim moves one orphaned claim's drain on: a Job when it has none (or one left from an
// earlier claim of that name), its outcome once finished, else its pod's progress. A drained
// claim is deleted or kept as retention says; gone says it was deleted.
func (r *Reconciler) drainClaim(ctx context.Context, obj *v1.RedisTraceExporter, in render.Inputs, pvc *corev1.PersistentVolumeClaim, ord int, job *batchv1.Job, retention string) (d drainObserved, gone bool, err error) {
	d = drainObserved{claim: pvc.Name, phase: v1.DrainPending}
	claim := render.QueueClaim{Name: pvc.Name, UID: pvc.UID, Ordinal: ord, Size: pvc.Spec.Resources.Requests[corev1.ResourceStorage]}
	if job != nil && !metav1.IsControlledBy(job, pvc) {
		return d, false, r.deleteDrainJob(ctx, job) // the Job of a claim deleted since: gone by GC soon
	}
	switch cond := finished(job); {
	case job == nil:
		d.message = "drain Job created"
		return d, false, r.applyDrain(ctx, obj, in, claim)
	case cond != nil && cond.Type == batchv1.JobComplete:
		zero := int64(0)
		d.phase, d.records = v1.DrainDrained, &zero
		if retention == v1.ClaimRetentionRetain {
			return d, false, nil // the succeeded Job marks the claim drained
		}
		return d, true, r.deleteDrainedClaim(ctx, pvc, job)
	case cond != nil:
		d.phase, d.message = v1.DrainFailed, fmt.Sprintf("Job %s failed: %s", job.Name, cond.Message)
		return d, false, nil
	}
	// The ConfigMap again, in case the pass that created the Job stopped before it.
	if err := r.applyDrainConfig(ctx, obj, in, claim, job.UID); err != nil {
		return d, false, err
	}
	r.observeDrainPod(ctx, obj, &d)
	return d, false, nil
}

// finished is a Job's Complete or Failed condition when it is True, else nil.
func finished(job *batchv1.Job) *batchv1.JobCondition {
	if job == nil {
		return nil
	}
	for i, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// claimRetention is what becomes of a drained claim: whenScaled while the queue is Persistent,
// whenDeleted once it is not (the replicas are gone as a whole); Delete by default.
func claimRetention(obj *v1.RedisTraceExporter) string {
	q := obj.Spec.Delivery.PersistentQueue
	policy := ""
	if q != nil && q.ClaimRetentionPolicy != nil {
		policy = q.ClaimRetentionPolicy.WhenDeleted
		if render.WorkloadKind(obj) == render.KindStatefulSet {
			policy = q.ClaimRetentionPolicy.WhenScaled
		}
	}
	if policy == "" {
		return v1.DefaultClaimRetention
	}
	return policy
}

// applyDrain applies the drain Job, then its ConfigMap owned by it.
func (r *Reconciler) applyDrain(ctx context.Context, obj *v1.RedisTraceExporter, in render.Inputs, claim render.QueueClaim) error {
	job := render.DrainJob(obj, in, claim)
	if err := r.Apply(ctx, job, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying Job %s/%s: %w", obj.Namespace, *job.Name, err)
	}
	if job.UID == nil {
		return fmt.Errorf("applying Job %s/%s: the API server returned no UID", obj.Namespace, *job.Name)
	}
	log.FromContext(ctx).Info("Draining an orphaned queue claim", "claim", claim.Name, "job", *job.Name)
	return r.applyDrainConfig(ctx, obj, in, claim, *job.UID)
}

func (r *Reconciler) applyDrainConfig(ctx context.Context, obj *v1.RedisTraceExporter, in render.Inputs, claim render.QueueClaim, jobUID types.UID) error {
	cm, err := render.DrainConfigMap(obj, in, claim, jobUID)
	if err != nil {
		return err
	}
	if err := r.Apply(ctx, cm, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ConfigMap %s/%s: %w", obj.Namespace, *cm.Name, err)
	}
	return nil
}

// deleteDrainJob deletes a drain Job and its pod (SIGTERM: the drain stops with the rest kept in
// the log); nothing when job is nil.
func (r *Reconciler) deleteDrainJob(ctx context.Context, job *batchv1.Job) error {
	if job == nil {
		return nil
	}
	if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &job.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	log.FromContext(ctx).Info("Deleted a queue drain Job", "job", klog.KObj(job))
	return nil
}

// deleteDrainedClaim deletes a claim whose drain succeeded, and its Job first: the Job's
// completed pod still names the claim, and the claim's kubernetes.io/pvc-protection finalizer
// keeps it until no pod does, while garbage collection would delete the Job only once the claim
// is gone. The Job's ConfigMap goes with the Job.
func (r *Reconciler) deleteDrainedClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim, job *batchv1.Job) error {
	if err := r.deleteDrainJob(ctx, job); err != nil {
		return err
	}
	if err := r.Delete(ctx, pvc, client.Preconditions{UID: &pvc.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting drained claim %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	log.FromContext(ctx).Info("Deleted a drained queue claim", "claim", klog.KObj(pvc))
	return nil
}
