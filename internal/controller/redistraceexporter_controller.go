// Package controller reconciles RedisTraceExporters into exporter workloads and reports their
// health, Redis reachability and stream lag in status.
package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// FieldOwner is the server-side apply field manager of every child.
const FieldOwner = client.FieldOwner("tracestream-operator")

// secretIndex indexes RedisTraceExporters by the names of the Secrets they reference.
const secretIndex = ".spec.secretRefs"

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

	mu     sync.Mutex
	memory map[types.NamespacedName]*memo
}

// memo is what the controller remembers of a resource between passes. It is forgotten when the
// resource is gone, and reset when a resource of the same name is created again (new UID).
type memo struct {
	uid       types.UID
	lag       *lagSample
	rate      *rateSample
	lastEvent string
	series    series
}

type lagSample struct {
	at         time.Time
	generation int64
	report     *redislag.Report
	err        error
	cause      redisconn.Cause
}

type rateSample struct {
	at                 time.Time
	received, exported int64
}

// +kubebuilder:rbac:groups=tracestream.io,resources=redistraceexporters,verbs=get;list;watch
// +kubebuilder:rbac:groups=tracestream.io,resources=redistraceexporters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
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
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // children go with their ownerReferences
	}
	before := obj.DeepCopy()
	var o observed
	defer func() {
		st := computeStatus(obj, o, metav1.Now())
		r.remember(obj, func(m *memo) { m.series = exportMetrics(req.NamespacedName, st, m.series) })
		if equality.Semantic.DeepEqual(before.Status, st) {
			return
		}
		patched := obj.DeepCopy()
		patched.Status = st
		if err := r.Status().Patch(ctx, patched, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("writing status: %w", err))
			return
		}
		r.recordTransition(patched, before)
	}()

	in, err := r.reconcileSecrets(ctx, obj)
	if err != nil {
		var se *secretError
		if errors.As(err, &se) {
			o.specErr, o.specReason = err, se.reason
			r.observeWorkload(ctx, obj, &o)
			return ctrl.Result{}, nil // the Secret watch brings us back when it appears
		}
		return ctrl.Result{}, err
	}
	if err := r.reconcileChildren(ctx, obj, in); err != nil {
		o.applyErr = err
		return ctrl.Result{}, err
	}
	o.applied = true
	r.observeWorkload(ctx, obj, &o)
	r.observeRedis(ctx, obj, &o)
	r.observeExporters(ctx, obj, &o)
	return ctrl.Result{RequeueAfter: render.LagRefresh(obj)}, nil
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

// secretError is a referenced Secret that is missing or lacks a key: the user must fix it.
type secretError struct {
	reason, msg string
}

func (e *secretError) Error() string { return e.msg }

// reconcileSecrets reads every referenced Secret (uncached), checks the keys the pods will mount
// and hashes their data, so that a change rolls the pods.
func (r *Reconciler) reconcileSecrets(ctx context.Context, obj *v1.RedisTraceExporter) (render.Inputs, error) {
	in := render.Inputs{Image: r.Image}
	var hashParts []string
	get := func(name, field string, required ...string) (*corev1.Secret, error) {
		s := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &secretError{v1.ReasonSecretNotFound, fmt.Sprintf("Secret %q referenced by %s does not exist", name, field)}
			}
			return nil, fmt.Errorf("reading Secret %s/%s: %w", obj.Namespace, name, err)
		}
		for _, k := range required {
			if len(s.Data[k]) == 0 {
				return nil, &secretError{v1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %q referenced by %s has no key %q", name, field, k)}
			}
		}
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			hashParts = append(hashParts, name, k, string(s.Data[k]))
		}
		return s, nil
	}
	sp := obj.Spec
	if a := sp.Redis.Auth; a != nil {
		user, pass := render.AuthKeys(a)
		s, err := get(a.SecretRef.Name, "spec.redis.auth.secretRef", pass)
		if err != nil {
			return in, err
		}
		in.HasUsername = len(s.Data[user]) > 0
	}
	if t := sp.Redis.TLS; t != nil && t.Enabled {
		if t.CASecretRef != nil {
			if _, err := get(t.CASecretRef.Name, "spec.redis.tls.caSecretRef", t.CASecretRef.Key); err != nil {
				return in, err
			}
		}
		if t.ClientCertSecretRef != nil {
			if _, err := get(t.ClientCertSecretRef.Name, "spec.redis.tls.clientCertSecretRef", "tls.crt", "tls.key"); err != nil {
				return in, err
			}
		}
	}
	if ref := sp.Receivers.TLSSecretRef; ref != nil {
		s, err := get(ref.Name, "spec.receivers.tlsSecretRef", "tls.crt", "tls.key")
		if err != nil {
			return in, err
		}
		in.ReceiverClientCA = len(s.Data["ca.crt"]) > 0
	}
	if ref := sp.Receivers.BearerTokenSecretRef; ref != nil {
		if _, err := get(ref.Name, "spec.receivers.bearerTokenSecretRef", ref.Key); err != nil {
			return in, err
		}
	}
	in.SecretsHash = render.Hash(hashParts...)
	return in, nil
}

// reconcileChildren applies every child with server-side apply and deletes the ones the spec no
// longer asks for.
func (r *Reconciler) reconcileChildren(ctx context.Context, obj *v1.RedisTraceExporter, in render.Inputs) error {
	cm, err := render.ConfigMap(obj, in)
	if err != nil {
		return err
	}
	y, err := render.ConfigYAML(obj, in)
	if err != nil {
		return err
	}
	apply := func(kind string, ac runtime.ApplyConfiguration) error {
		if err := r.Apply(ctx, ac, FieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", kind, obj.Namespace, obj.Name, err)
		}
		return nil
	}
	if err := apply("ConfigMap", cm); err != nil {
		return err
	}
	if sa := render.ServiceAccount(obj); sa != nil {
		if err := apply("ServiceAccount", sa); err != nil {
			return err
		}
	} else if err := r.prune(ctx, obj, &corev1.ServiceAccount{}, render.OwnServiceAccountName(obj)); err != nil {
		return err
	}
	if err := apply("Deployment", render.Deployment(obj, in, y)); err != nil {
		return err
	}
	if err := apply("Service", render.Service(obj)); err != nil {
		return err
	}
	if pdb := render.PodDisruptionBudget(obj); pdb != nil {
		if err := apply("PodDisruptionBudget", pdb); err != nil {
			return err
		}
	} else if err := r.prune(ctx, obj, &policyv1.PodDisruptionBudget{}, obj.Name); err != nil {
		return err
	}
	if hpa := render.HorizontalPodAutoscaler(obj); hpa != nil {
		if err := apply("HorizontalPodAutoscaler", hpa); err != nil {
			return err
		}
	} else if err := r.prune(ctx, obj, &autoscalingv2.HorizontalPodAutoscaler{}, obj.Name); err != nil {
		return err
	}
	return nil
}

// prune deletes a child the spec no longer asks for, when this resource owns it.
func (r *Reconciler) prune(ctx context.Context, obj *v1.RedisTraceExporter, child client.Object, name string) error {
	if err := r.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: name}, child); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(child, obj) {
		return nil
	}
	if err := r.Delete(ctx, child); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %T %s/%s that the spec no longer asks for: %w", child, obj.Namespace, name, err)
	}
	return nil
}

func (r *Reconciler) observeWorkload(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	o.desired = 1
	if obj.Spec.Replicas != nil {
		o.desired = *obj.Spec.Replicas
	}
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), d); err == nil && metav1.IsControlledBy(d, obj) {
		o.deployment = d
		if d.Spec.Replicas != nil {
			o.desired = *d.Spec.Replicas // the HPA's choice when autoscaling
		}
	}
	sel, _ := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: render.SelectorLabels(obj)})
	o.selector = sel.String()
}

// observeRedis reads streams and lag, at most once per refresh interval (and at once after a
// spec change): the operator's load on Redis is bounded whatever the event rate.
func (r *Reconciler) observeRedis(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	var last *lagSample
	r.remember(obj, func(m *memo) { last = m.lag })
	if last == nil || last.generation != obj.Generation || time.Since(last.at) >= render.LagRefresh(obj) {
		last = r.collectLag(ctx, obj)
		r.remember(obj, func(m *memo) { m.lag = last })
	}
	o.redisChecked, o.redisErr, o.redisCause = true, last.err, last.cause
	if last.report != nil {
		o.lag, o.lagTime = last.report, metav1.NewTime(last.at)
		// Keep the old timestamp when nothing changed, so that an idle exporter's status is not
		// rewritten every interval.
		if obj.Status.LagUpdateTime != nil && equality.Semantic.DeepEqual(streamsStatus(last.report), obj.Status.Streams) {
			o.lagTime = *obj.Status.LagUpdateTime
		}
	}
}

// collectLag reads the streams and groups of the resource's Redis once.
func (r *Reconciler) collectLag(ctx context.Context, obj *v1.RedisTraceExporter) *lagSample {
	target, err := r.redisTarget(ctx, obj)
	sample := &lagSample{at: time.Now(), generation: obj.Generation}
	if err != nil {
		sample.err, sample.cause = err, redisconn.CauseOther
	} else {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rep, err := r.Collect(cctx, target, lagQuery(obj))
		cancel()
		if err != nil {
			sample.err, sample.cause = err, redisconn.Classify(err).Cause()
			log.FromContext(ctx).Info("Redis not reachable", "cause", sample.cause.String())
		} else {
			sample.report = &rep
		}
	}
	return sample
}

// lagQuery reports the explicit streams, or those matching the key template with every
// placeholder as a wildcard.
func lagQuery(obj *v1.RedisTraceExporter) redislag.Query {
	q := redislag.Query{Streams: obj.Spec.Lag.Streams, Groups: obj.Spec.Lag.Groups, MaxStreams: render.LagMaxStreams(obj)}
	if len(q.Streams) == 0 {
		tmpl := obj.Spec.Stream.KeyTemplate
		if tmpl == "" {
			tmpl = "traces:{service.name}"
		}
		q.Pattern = KeyPattern(tmpl)
	}
	return q
}

// KeyPattern turns a key template into a SCAN MATCH glob: placeholders become *, literal
// braces stay, glob metacharacters in literals are escaped.
func KeyPattern(tmpl string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		switch {
		case c == '{' && i+1 < len(tmpl) && tmpl[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(tmpl) && tmpl[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				b.WriteByte('*')
				return b.String()
			}
			b.WriteByte('*')
			i += end
		case c == '*' || c == '?' || c == '[' || c == ']' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// redisTarget builds the lag reader's connection from the spec and the Secrets, in memory.
func (r *Reconciler) redisTarget(ctx context.Context, obj *v1.RedisTraceExporter) (redislag.Target, error) {
	sp := obj.Spec.Redis
	t := redislag.Target{Mode: sp.Mode, Addresses: sp.Addresses, DB: int(sp.DB)}
	if t.Mode == "" {
		t.Mode = v1.RedisModeStandalone
	}
	if sp.Sentinel != nil {
		t.MasterName = sp.Sentinel.MasterName
	}
	read := func(name string) (*corev1.Secret, error) {
		s := &corev1.Secret{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: name}, s)
		return s, err
	}
	if a := sp.Auth; a != nil {
		s, err := read(a.SecretRef.Name)
		if err != nil {
			return t, err
		}
		user, pass := render.AuthKeys(a)
		t.Username, t.Password = strings.TrimSpace(string(s.Data[user])), strings.TrimSpace(string(s.Data[pass]))
	}
	secure := false
	for _, a := range sp.Addresses {
		secure = secure || strings.HasPrefix(a, "rediss://")
	}
	if tl := sp.TLS; (tl != nil && tl.Enabled) || secure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if tl != nil {
			cfg.ServerName, cfg.InsecureSkipVerify = tl.ServerName, tl.InsecureSkipVerify //nolint:gosec // the user's explicit opt-in
			if tl.CASecretRef != nil {
				s, err := read(tl.CASecretRef.Name)
				if err != nil {
					return t, err
				}
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(s.Data[tl.CASecretRef.Key])
				cfg.RootCAs = pool
			}
			if tl.ClientCertSecretRef != nil {
				s, err := read(tl.ClientCertSecretRef.Name)
				if err != nil {
					return t, err
				}
				cert, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
				if err != nil {
					return t, fmt.Errorf("client certificate in Secret %q: %w", tl.ClientCertSecretRef.Name, err)
				}
				cfg.Certificates = []tls.Certificate{cert}
			}
		}
		t.TLS = cfg
	}
	return t, nil
}

// observeExporters summarises the pods' own /status (readiness, counters, last error).
func (r *Reconciler) observeExporters(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(obj.Namespace), client.MatchingLabels(render.SelectorLabels(obj))); err != nil {
		return
	}
	es := &v1.ExporterStatus{}
	var received, exported int64
	var lastErr time.Time
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		s, err := r.fetchStatus(ctx, p.Status.PodIP)
		if err != nil {
			es.Pods = append(es.Pods, v1.PodHealth{Name: p.Name, Ready: false})
			continue
		}
		es.Pods = append(es.Pods, v1.PodHealth{Name: p.Name, Ready: s.Ready})
		received += s.SpansReceived
		exported += s.SpansExported
		es.SpansFailed += s.SpansFailed
		es.SpansDropped += s.SpansDropped
		if s.LastWrite != nil && (es.LastSuccessfulWrite == nil || s.LastWrite.After(es.LastSuccessfulWrite.Time)) {
			t := metav1.NewTime(s.LastWrite.Truncate(time.Second))
			es.LastSuccessfulWrite = &t
		}
		if s.LastErrorTime != nil && s.LastErrorTime.After(lastErr) {
			lastErr, es.LastErrorClass = *s.LastErrorTime, s.LastErrorClass
		}
	}
	sort.Slice(es.Pods, func(i, j int) bool { return es.Pods[i].Name < es.Pods[j].Name })
	now := time.Now()
	r.remember(obj, func(m *memo) {
		if prev := m.rate; prev != nil && now.Sub(prev.at) > time.Second && received >= prev.received {
			secs := now.Sub(prev.at).Seconds()
			es.SpansAcceptedPerSecond = int64(float64(received-prev.received) / secs)
			es.SpansExportedPerSecond = int64(float64(exported-prev.exported) / secs)
		}
		m.rate = &rateSample{at: now, received: received, exported: exported}
	})
	o.exporter = es
}

func (r *Reconciler) fetchStatus(ctx context.Context, ip string) (*telemetry.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, strconv.Itoa(render.AdminPort))+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	// The exporter's own /status type: one contract, defined where it is served.
	var s telemetry.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

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

// secretNames lists the Secrets a resource references, for the watch index.
func secretNames(obj *v1.RedisTraceExporter) []string {
	var names []string
	sp := obj.Spec
	if sp.Redis.Auth != nil {
		names = append(names, sp.Redis.Auth.SecretRef.Name)
	}
	if t := sp.Redis.TLS; t != nil {
		if t.CASecretRef != nil {
			names = append(names, t.CASecretRef.Name)
		}
		if t.ClientCertSecretRef != nil {
			names = append(names, t.ClientCertSecretRef.Name)
		}
	}
	if sp.Receivers.TLSSecretRef != nil {
		names = append(names, sp.Receivers.TLSSecretRef.Name)
	}
	if sp.Receivers.BearerTokenSecretRef != nil {
		names = append(names, sp.Receivers.BearerTokenSecretRef.Name)
	}
	return names
}

// SetupWithManager registers the controller: it owns the children, and watches Secrets by
// metadata only (no Secret data is cached) through an index of the Secrets each resource names.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Collect == nil {
		r.Collect = redislag.Collect
	}
	if r.HTTP == nil {
		r.HTTP = &http.Client{Timeout: 2 * time.Second}
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1.RedisTraceExporter{}, secretIndex, func(o client.Object) []string {
		return secretNames(o.(*v1.RedisTraceExporter))
	}); err != nil {
		return fmt.Errorf("indexing RedisTraceExporters by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.RedisTraceExporter{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.Deployment{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forSecret), builder.WithPredicates()).
		Complete(r)
}

func (r *Reconciler) forSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.RedisTraceExporterList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretIndex: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, it := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&it)})
	}
	return reqs
}
