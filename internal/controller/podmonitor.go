package controller

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
)

// podMonitorObserved is what became of the PodMonitor of spec.observability.metrics.
type podMonitorObserved struct {
	// wanted says the spec asks for it; otherwise the pass deleted the one this resource owns.
	wanted bool
	// crdMissing says the cluster has no monitoring.coreos.com/v1 PodMonitor kind.
	crdMissing bool
	// err is a failed lookup, apply or delete.
	err error
}

// reconcilePodMonitor applies the PodMonitor the spec asks for, or deletes the one it no longer
// asks for, and records what became of it for PodMonitorApplied. It runs before the workload's
// steps, on every pass with a valid spec, and never fails the pass: a missing CRD or a failure
// is retried by the pass's own requeue (spec.lag.refreshInterval), so a CRD installed later is
// picked up without a restart (the manager's RESTMapper looks the group version up again on a
// miss, at most once per KindRecheck: a miss costs a discovery of the whole API). PodMonitors are
// not watched, since their kind may not exist when the manager starts (Owns would fail); that
// same requeue puts back a PodMonitor that was changed or deleted.
func (r *Reconciler) reconcilePodMonitor(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	c := render.PodMonitorChild(obj)
	wanted := c.Object != nil
	// Not asked for, and PodMonitorApplied says none is left from an earlier pass: no lookup, so
	// that a cluster without the CRD sees no discovery request per resource and pass.
	if !wanted && apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionPodMonitorApplied) == nil {
		return
	}
	pm := &podMonitorObserved{wanted: wanted}
	o.podMonitor = pm
	if r.podMonitorKindMissing() {
		pm.crdMissing = true
		return
	}
	_, err := r.RESTMapper().RESTMapping(render.PodMonitorGVK.GroupKind(), render.PodMonitorGVK.Version)
	switch {
	case apimeta.IsNoMatchError(err):
		pm.crdMissing = true
	case err != nil:
		pm.err = fmt.Errorf("looking up the PodMonitor kind (%s): %w", render.PodMonitorGVK.GroupVersion(), err)
	case wanted:
		pm.err = r.Apply(ctx, c.Object, FieldOwner, client.ForceOwnership)
		// A kind the mapper still knows answers NotFound once its CRD is deleted.
		if apimeta.IsNoMatchError(pm.err) || apierrors.IsNotFound(pm.err) {
			pm.crdMissing, pm.err = true, nil
		} else if pm.err != nil {
			pm.err = fmt.Errorf("applying PodMonitor %s/%s: %w", obj.Namespace, c.Name, pm.err)
		}
	default:
		pm.err = r.prune(ctx, obj, podMonitorObject(), c.Name)
	}
	if pm.crdMissing {
		r.rememberPodMonitorKindMissing()
	}
	if pm.err != nil {
		log.FromContext(ctx).Error(pm.err, "Reconciling the PodMonitor")
	}
}

// DefaultKindRecheck is how long a missing PodMonitor kind is believed missing before the
// RESTMapper is asked again.
const DefaultKindRecheck = time.Minute

// podMonitorKindMissing says the PodMonitor kind was found missing less than KindRecheck ago:
// every miss of the RESTMapper runs a discovery of the whole API, so one per manager and
// KindRecheck, not one per resource and pass.
func (r *Reconciler) podMonitorKindMissing() bool {
	recheck := r.KindRecheck
	if recheck <= 0 {
		recheck = DefaultKindRecheck
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.podMonitorMissingAt.IsZero() && time.Since(r.podMonitorMissingAt) < recheck
}

// rememberPodMonitorKindMissing starts a KindRecheck without lookups.
func (r *Reconciler) rememberPodMonitorKindMissing() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.podMonitorMissingAt = time.Now()
}

// podMonitorObject is an empty PodMonitor to read and delete.
func podMonitorObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(render.PodMonitorGVK)
	return u
}
