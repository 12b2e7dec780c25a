// Package controller reconciles RedisTraceExporters into exporter workloads and reports their
// health, Redis reachability and stream lag in status.
package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// Reconciler reconciles RedisTraceExporters.
type Reconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server: the manager caches only their
	// metadata, never their data.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Image is the exporter image used when spec.image is empty: the operator's own.
	Image string
	// HTTP fetches the exporter pods' /status.
	HTTP *http.Client
	// Collect reads streams and lag from Redis (redislag.Collect; replaceable in tests).
	Collect func(context.Context, redislag.Target, redislag.Query) (redislag.Report, error)
	// DrainStallAfter is how long an orphaned claim's drain may make no progress with a Redis
	// error before Ready turns False (DefaultDrainStallAfter when zero; tests shorten it).
	DrainStallAfter time.Duration

	// KindRecheck is how long a missing PodMonitor kind is remembered before the RESTMapper is
	// asked again (DefaultKindRecheck when zero; tests shorten it).
	KindRecheck time.Duration

	mu     sync.Mutex
	memory map[types.NamespacedName]*memo
	// podMonitorMissingAt is when the PodMonitor kind was last found missing.
	podMonitorMissingAt time.Time
}

// memo is what the controller remembers of a resource between passes. It is forgotten when the
// resource is gone, and reset when a resource of the same name is created again (new UID).
type memo struct {
	uid  types.UID
	lag  *lagSample
	rate *rateSample
	// lastEvent is the last transition announced, by condition type (events.go).
	lastEvent map[string]string
	series    series
	// drains is the progress of the orphaned claims' drains, by claim.
	drains map[string]drainProgress
}

// +kubebuilder:rbac:groups=tracestream.io,resources=redistraceexporters,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tracestream.io,resources=redistraceexporters/finalizers,verbs=update
// +kubebuilder:rbac:groups=tracestream.io,resources=redistraceexporters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one RedisTraceExporter's children to what its spec asks and writes its status
// once, at the end of the pass, only when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	defer func() {
		// A pass cut short by the manager's shutdown is not a failure: whatever call it was in
		// returns "context canceled", and the next manager to start reconciles the resource again.
		if retErr != nil && errors.Is(ctx.Err(), context.Canceled) {
			log.FromContext(ctx).V(1).Info("reconcile interrupted by shutdown", "cause", retErr.Error())
			res, retErr = ctrl.Result{}, nil
		}
	}()
	obj := &v1.RedisTraceExporter{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	logger := log.FromContext(ctx).WithValues("redistraceexporter", klog.KObj(obj))
	ctx = log.IntoContext(ctx, logger)
	deleting := !obj.DeletionTimestamp.IsZero()
	if deleting && !controllerutil.ContainsFinalizer(obj, PersistentQueueFinalizer) {
		return ctrl.Result{}, nil // children go with their ownerReferences
	}
	if deleting && keepOnDelete(obj) {
		return ctrl.Result{}, r.keepClaims(ctx, obj) // nothing to wait for, nothing to report
	}
	if !deleting && r.wantsFinalizer(obj, &observed{}) {
		// Before the StatefulSet can create a claim; it goes only once the claims were looked
		// at. Before the status write: a conflict retries the pass without a status built from
		// nothing.
		if err := r.setFinalizer(ctx, obj, true); err != nil {
			return ctrl.Result{}, err
		}
	}
	var o observed
	defer r.writeStatus(ctx, obj, &o, &retErr)
	if deleting {
		return r.reconcileDelete(ctx, obj, &o)
	}
	return r.reconcile(ctx, obj, &o)
}

// reconcile runs the steps of one pass; each records what it observed in o.
func (r *Reconciler) reconcile(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) (ctrl.Result, error) {
	in, s, err := r.reconcileSecrets(ctx, obj)
	var children []render.Child
	if err == nil {
		children, err = render.Children(obj, in)
	}
	var spec *specError
	var invalid *render.InvalidConfigError
	switch {
	case errors.As(err, &spec):
		o.specErr, o.specReason = err, spec.reason
	case errors.As(err, &invalid):
		o.specErr, o.specReason = err, v1.ReasonInvalidSpec
	case err != nil:
		return ctrl.Result{}, err
	}
	if o.specErr != nil {
		// Nothing is applied, so no pod rolls out to crash; the watches (the resource, its
		// Secrets) bring us back once the user fixes it.
		r.observeWorkload(ctx, obj, o)
		return ctrl.Result{}, nil
	}
	// Before the workload: a failing apply below retries the pass without reaching this.
	r.reconcilePodMonitor(ctx, obj, o)
	children, err = r.handover(ctx, obj, children, o)
	if err == nil {
		err = r.reconcileChildren(ctx, obj, children)
	}
	if err != nil {
		o.applyErr = err
		r.observeWorkload(ctx, obj, o)
		return ctrl.Result{}, err
	}
	o.applied = true
	r.seedReplicas(ctx, obj, o)
	r.observeWorkload(ctx, obj, o)
	if err := r.reconcileQueue(ctx, obj, in, o); err != nil {
		o.applyErr = err
		return ctrl.Result{}, err
	}
	if err := r.setFinalizer(ctx, obj, r.wantsFinalizer(obj, o)); err != nil {
		return ctrl.Result{}, err
	}
	r.observeRedis(ctx, obj, s, o)
	r.observeExporters(ctx, obj, o)
	requeue := render.LagRefresh(obj)
	if (o.queue != nil && o.queue.active()) || o.handover != "" {
		// Neither the drain pods' nor the old pods' /status is watched: look again soon.
		requeue = min(requeue, drainRequeue)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// writeStatus computes the status from what the pass observed and writes it, only when it
// changed; the manager's gauges and the transition event follow it.
func (r *Reconciler) writeStatus(ctx context.Context, obj *v1.RedisTraceExporter, o *observed, retErr *error) {
	before := obj.DeepCopy()
	st := computeStatus(obj, *o, metav1.Now())
	key := client.ObjectKeyFromObject(obj)
	r.remember(obj, func(m *memo) { m.series = exportMetrics(key, st, m.series) })
	if equality.Semantic.DeepEqual(before.Status, st) {
		return
	}
	patched := obj.DeepCopy()
	patched.Status = st
	if err := r.Status().Patch(ctx, patched, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		*retErr = errors.Join(*retErr, fmt.Errorf("writing status: %w", err))
		return
	}
	r.recordTransition(patched, before)
}

// remember runs f on the resource's memo under the lock.
func (r *Reconciler) remember(obj *v1.RedisTraceExporter, f func(m *memo)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memory == nil {
		r.memory = map[types.NamespacedName]*memo{}
	}
	key := client.ObjectKeyFromObject(obj)
	m := r.memory[key]
	if m == nil || m.uid != obj.UID {
		if m != nil {
			forgetMetrics(key) // a new resource of the same name starts with no series
		}
		m = &memo{uid: obj.UID}
		r.memory[key] = m
	}
	f(m)
}

// forget drops what the controller remembers of a resource that is gone, and its metrics.
func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.memory, key)
	forgetMetrics(key)
}
