package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// reconciled is this benchmark's definition: the status was computed from the current spec and
// carries a verdict. Ready itself stays False in envtest, where no pod ever runs.
func reconciled(obj *v1.RedisTraceExporter) bool {
	return obj.Generation > 0 && obj.Status.ObservedGeneration == obj.Generation &&
		apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReady) != nil
}

// tracker watches every RedisTraceExporter through an informer (one LIST and one WATCH, instead of
// polling the API server the manager is being measured against) and records when each one
// first counts as reconciled.
type tracker struct {
	cache   cache.Cache
	cancel  context.CancelFunc
	stopped chan struct{}

	mu           sync.Mutex
	want         int
	reconciledAt map[types.NamespacedName]time.Time
	all          chan struct{} // closed when want are reconciled
}

func startTracker(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, want int) (*tracker, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the watch cache: %w", err)
	}
	t := &tracker{cache: c, stopped: make(chan struct{}), want: want,
		reconciledAt: map[types.NamespacedName]time.Time{}, all: make(chan struct{})}
	inf, err := c.GetInformer(ctx, &v1.RedisTraceExporter{})
	if err != nil {
		return nil, fmt.Errorf("watching RedisTraceExporters: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
	}); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go func() {
		defer close(t.stopped)
		_ = c.Start(cctx)
	}()
	if !c.WaitForCacheSync(ctx) {
		t.stop()
		return nil, fmt.Errorf("waiting for the RedisTraceExporter watch to sync: %w", ctx.Err())
	}
	return t, nil
}

func (t *tracker) stop() {
	t.cancel()
	<-t.stopped
}

func (t *tracker) observe(o any) {
	obj, ok := o.(*v1.RedisTraceExporter)
	if !ok || !reconciled(obj) {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	if _, seen := t.reconciledAt[key]; seen {
		return
	}
	t.reconciledAt[key] = now
	if len(t.reconciledAt) == t.want {
		close(t.all)
	}
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.reconciledAt)
}

// times returns when each resource first counted as reconciled.
func (t *tracker) times() map[types.NamespacedName]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[types.NamespacedName]time.Time, len(t.reconciledAt))
	for k, v := range t.reconciledAt {
		out[k] = v
	}
	return out
}

// await waits until all are reconciled, printing progress every 5 s. When ctx ends first, the
// error says how many are left and what the first few look like.
func (t *tracker) await(ctx context.Context, lg *logger) error {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.all:
			return nil
		case <-tick.C:
			lg.printf("%d/%d reconciled", t.count(), t.want)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d RedisTraceExporters to be reconciled: %d still unreconciled%s: %w",
				t.want, t.want-t.count(), t.describeUnreconciled(), ctx.Err())
		}
	}
}

// describeUnreconciled names up to three resources that are not reconciled and their state.
func (t *tracker) describeUnreconciled() string {
	var list v1.RedisTraceExporterList
	if err := t.cache.List(context.Background(), &list); err != nil {
		return ""
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var out []string
	for i := range list.Items {
		obj := &list.Items[i]
		if reconciled(obj) {
			continue
		}
		state := fmt.Sprintf("generation %d, observedGeneration %d", obj.Generation, obj.Status.ObservedGeneration)
		if c := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReady); c != nil {
			state += fmt.Sprintf(", Ready %s/%s", c.Status, c.Reason)
		} else {
			state += ", no Ready condition"
		}
		out = append(out, client.ObjectKeyFromObject(obj).String()+" ("+state+")")
		if len(out) == 3 {
			break
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf(" (%d exist)", len(list.Items))
	}
	return fmt.Sprintf(" (%d exist; e.g. %s)", len(list.Items), strings.Join(out, "; "))
}

// list returns every RedisTraceExporter as the watch last saw it.
func (t *tracker) list(ctx context.Context) ([]v1.RedisTraceExporter, error) {
	var list v1.RedisTraceExporterList
	if err := t.cache.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}
