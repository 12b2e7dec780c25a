package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/test/bench/internal/proc"
)

// The stream every RedisTraceExporter reports: seedEntries entries, of which the group has read
// seedRead, so that its lag is seedEntries-seedRead.
const (
	streamKey   = "traces:bench"
	groupName   = "bench"
	seedEntries = 1000
	seedRead    = 400
)

// settleTimeout bounds the wait for the follow-up passes (status writes and child creations
// enqueue a resource again) to drain after all are reconciled.
const settleTimeout = 30 * time.Second

// idleFor is how long the manager must run no reconcile pass, with an empty work queue, to count
// as being between two waves of passes: within a wave, passes follow each other in milliseconds.
const idleFor = time.Second

var setLoggerOnce sync.Once

// options are the command line's.
type options struct {
	CRs, Namespaces, Workers int
	Window, Timeout          time.Duration
	// Refresh is spec.lag.refreshInterval; 0 leaves it to the CRD's default.
	Refresh time.Duration
	// Log receives progress lines.
	Log io.Writer
}

func (o options) validate() error {
	switch {
	case o.CRs < 1:
		return fmt.Errorf("-crs %d: must be at least 1", o.CRs)
	case o.Namespaces < 1:
		return fmt.Errorf("-namespaces %d: must be at least 1", o.Namespaces)
	case o.Workers < 1:
		return fmt.Errorf("-workers %d: must be at least 1", o.Workers)
	case o.Window <= 0:
		return fmt.Errorf("-window %s: must be positive", o.Window)
	case o.Timeout <= 0:
		return fmt.Errorf("-timeout %s: must be positive", o.Timeout)
	case o.Refresh < 0:
		return fmt.Errorf("-refresh %s: must not be negative", o.Refresh)
	}
	return nil
}

type logger struct {
	w     io.Writer
	begin time.Time
}

func (l *logger) printf(format string, args ...any) {
	if l.w != nil {
		_, _ = fmt.Fprintf(l.w, "[%6.1fs] %s\n", time.Since(l.begin).Seconds(), fmt.Sprintf(format, args...))
	}
}

// run sets everything up, measures, tears everything down and returns what it measured. Every
// process it started is stopped by PID before it returns, on every path.
func run(ctx context.Context, o options) (res Result, retErr error) {
	if err := o.validate(); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	lg := &logger{w: o.Log, begin: time.Now()}
	setLoggerOnce.Do(func() {
		// The watch's client-go and controller-runtime logs; without a logger, controller-runtime
		// prints a stack trace the first time something logs after 30 s.
		log.SetLogger(funcr.New(func(prefix, args string) {
			fmt.Fprintln(os.Stderr, "operatorscale watch:", prefix, args)
		}, funcr.Options{}))
	})
	res.CRs, res.Namespaces, res.Workers, res.Window = o.CRs, o.Namespaces, o.Workers, o.Window
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAverage = strings.Join(strings.Fields(string(b))[:3], " ")
	}

	r := &rig{lg: lg, o: o, res: &res}
	defer func() { retErr = errors.Join(retErr, r.teardown()) }()
	if err := r.start(ctx); err != nil {
		return res, err
	}
	base, err := r.createAndReconcile(ctx)
	if err != nil {
		return res, err
	}
	if err := r.settle(ctx, base); err != nil {
		return res, err
	}
	if err := r.steadyState(ctx); err != nil {
		return res, err
	}
	// Not `return res, r.stopManager()`: Go does not say whether res is read before or after the
	// call that fills in its last fields.
	err = r.stopManager()
	return res, err
}

// rig is what run starts (a control plane, redis-server, the manager and a watch) and the Result
// it fills in, phase by phase.
type rig struct {
	lg  *logger
	o   options
	res *Result

	cp  *controlPlane
	rds *redisServer
	mgr *managerProcess
	tr  *tracker
	// undo stops what was started, in the reverse order.
	undo []func() error
}

// teardown runs undo last-in first-out and reports what failed.
func (r *rig) teardown() error {
	var errs error
	for i := len(r.undo) - 1; i >= 0; i-- {
		errs = errors.Join(errs, r.undo[i]())
	}
	return errs
}

// start builds the manager, starts kube-apiserver and etcd, a seeded redis-server, the manager
// and the watch that tracks the resources.
func (r *rig) start(ctx context.Context) error {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "operatorscale-")
	if err != nil {
		return err
	}
	// Registered first: runs after every process is gone.
	r.undo = append(r.undo, func() error { _ = os.RemoveAll(work); return nil })

	r.lg.printf("Building the manager")
	begin := time.Now()
	bin, err := buildManager(ctx, root, work)
	if err != nil {
		return err
	}
	r.res.BuildDuration = time.Since(begin)

	r.lg.printf("Starting kube-apiserver and etcd (envtest)")
	if r.cp, err = startControlPlane(); err != nil {
		return err
	}
	r.undo = append(r.undo, func() error {
		if err := r.cp.Stop(); err != nil {
			return fmt.Errorf("stopping kube-apiserver and etcd: %w", err)
		}
		return nil
	})
	r.res.KubeVersion = r.cp.version

	r.lg.printf("Starting redis-server")
	if r.rds, err = startRedis(ctx, work); err != nil {
		return err
	}
	r.undo = append(r.undo, func() error { r.rds.stop(); return nil })
	if r.res.RedisVersion, err = seedStream(ctx, r.rds.client); err != nil {
		return err
	}
	r.res.RedisAddr = r.rds.addr
	return r.startManager(ctx, bin, work)
}

// startManager runs the manager against the control plane and starts the watch.
func (r *rig) startManager(ctx context.Context, bin, work string) error {
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kubeconfig, r.cp.managerKubeconfig, 0o600); err != nil {
		return err
	}
	r.lg.printf("Starting the manager (redis-server pid %d on %s)", r.rds.PID(), r.rds.addr)
	mgr, err := startManager(bin, kubeconfig, work)
	if err != nil {
		return err
	}
	r.mgr = mgr
	// A no-op after the explicit stop in stopManager.
	r.undo = append(r.undo, func() error { _ = mgr.stop(managerStopGrace); return nil })
	if err := mgr.awaitReady(ctx); err != nil {
		return err
	}
	r.res.ManagerPID = mgr.PID()

	if r.tr, err = startTracker(ctx, r.cp.Config, r.cp.Scheme, r.o.CRs); err != nil {
		return err
	}
	r.undo = append(r.undo, func() error { r.tr.stop(); return nil })
	return nil
}

// baseline is what the manager had done before the first create.
type baseline struct {
	metrics, api metricSet
	cpu          float64
}

// createAndReconcile creates the resources and waits until the manager has reconciled all of
// them, recording the cost of that phase from the baseline it returns.
func (r *rig) createAndReconcile(ctx context.Context) (baseline, error) {
	res, mgr := r.res, r.mgr
	base, namespaces, err := r.takeBaseline(ctx)
	if err != nil {
		return base, err
	}
	r.lg.printf("Creating %d RedisTraceExporters in %d namespaces with %d goroutines", r.o.CRs, r.o.Namespaces, r.o.Workers)
	t0 := time.Now()
	createdAt, err := createAll(ctx, r.cp.Client, namespaces, r.o, r.rds.addr)
	if err != nil {
		return base, err
	}
	res.CreateDuration = time.Since(t0)
	r.lg.printf("Created %d in %.2fs; waiting for the manager to reconcile them", r.o.CRs, res.CreateDuration.Seconds())
	if err := r.tr.await(ctx, r.lg); err != nil {
		if exit := mgr.exitErr(); exit != nil {
			return base, errors.Join(err, exit)
		}
		return base, fmt.Errorf("%w\n%s", err, scanLog(mgr.logPath).errorReport())
	}
	reconciledAt := r.tr.times()
	var last time.Time
	for _, at := range reconciledAt {
		if at.After(last) {
			last = at
		}
	}
	res.ReconcileDuration = last.Sub(t0)
	res.Latency = latencies(createdAt, reconciledAt)
	cpu1, err := proc.CPUSeconds(mgr.PID())
	if err != nil {
		return base, err
	}
	res.CPUSeconds = cpu1 - base.cpu
	if res.RSSBytes, res.HWMBytes, err = proc.Memory(mgr.PID()); err != nil {
		return base, err
	}
	after, err := mgr.metrics(ctx)
	if err != nil {
		return base, err
	}
	res.Requests = requestsBetween(base.metrics, after)
	res.Reconciles = delta(base.metrics.by(reconcileTotal, reconcileResult), after.by(reconcileTotal, reconcileResult))
	r.lg.printf("All %d reconciled %.2fs after the first create", r.o.CRs, res.ReconcileDuration.Seconds())
	return base, nil
}

// takeBaseline waits for the manager to go quiet (once its caches have synced, it makes no
// request until there is something to reconcile), then reads its counters and creates the
// namespaces.
func (r *rig) takeBaseline(ctx context.Context) (baseline, []string, error) {
	var base baseline
	r.lg.printf("Waiting for the manager (pid %d) to go quiet", r.mgr.PID())
	var err error
	if base.metrics, err = awaitQuiet(ctx, r.mgr); err != nil {
		return base, nil, err
	}
	if base.api, err = apiserverMetrics(ctx, r.cp.discovery.RESTClient()); err != nil {
		return base, nil, err
	}
	namespaces, err := createNamespaces(ctx, r.cp.Client, r.o.Namespaces)
	if err != nil {
		return base, nil, err
	}
	if base.cpu, err = proc.CPUSeconds(r.mgr.PID()); err != nil {
		return base, nil, err
	}
	return base, namespaces, nil
}

// settle waits for the tail (each status write and each child created enqueues the resource
// again) and records the cost from the baseline to there.
func (r *rig) settle(ctx context.Context, base baseline) error {
	res, mgr := r.res, r.mgr
	settleBegin := time.Now()
	settled, err := awaitIdle(ctx, mgr, settleTimeout, 0)
	if err != nil {
		return err
	}
	res.Settled, res.SettleDuration = settled != nil, time.Since(settleBegin)
	if settled == nil {
		if settled, err = mgr.metrics(ctx); err != nil {
			return err
		}
	}
	res.SettledRequests = requestsBetween(base.metrics, settled)
	res.SettledReconciles = delta(base.metrics.by(reconcileTotal, reconcileResult), settled.by(reconcileTotal, reconcileResult))
	cpu2, err := proc.CPUSeconds(mgr.PID())
	if err != nil {
		return err
	}
	res.SettledCPUSeconds = cpu2 - base.cpu
	apiAfter, err := apiserverMetrics(ctx, r.cp.discovery.RESTClient())
	if err != nil {
		return err
	}
	res.APIServerCreate = delta(base.api.by(apiserverRequest, verbAndResource), apiAfter.by(apiserverRequest, verbAndResource))
	return nil
}

// steadyState measures the refresh-only window and then reads the resources' final status.
func (r *rig) steadyState(ctx context.Context) error {
	res := r.res
	items, err := r.tr.list(ctx)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return errors.New("the RedisTraceExporters vanished from the watch")
	}
	res.RefreshPeriod = render.LagRefresh(&items[0]) // what the controller requeues after

	if res.Steady, err = measureSteady(ctx, r.lg, r.o, r.mgr, r.rds, r.cp.discovery.RESTClient(), res.Settled, res.RefreshPeriod); err != nil {
		return err
	}
	if items, err = r.tr.list(ctx); err != nil {
		return err
	}
	res.Final = summarise(items)
	return nil
}

// stopManager sends SIGTERM and records how the manager exited and what it logged.
func (r *rig) stopManager() error {
	mgr := r.mgr
	r.lg.printf("Stopping the manager (SIGTERM to pid %d)", mgr.PID())
	exitErr := mgr.stop(managerStopGrace)
	r.res.ManagerExitCode = mgr.ExitCode()
	r.res.ManagerStopDuration = mgr.stopped
	r.res.ManagerLog = scanLog(mgr.logPath)
	if exitErr != nil {
		return fmt.Errorf("the manager did not exit cleanly after SIGTERM: %w\n%s", exitErr, mgr.logTail())
	}
	return nil
}

// seedStream fills the stream and gives its group a known lag, so that every lag refresh reads
// something. It returns the server's version.
func seedStream(ctx context.Context, c *redis.Client) (string, error) {
	pipe := c.Pipeline()
	for i := range seedEntries {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: streamKey, Values: []any{"traceparent", fmt.Sprintf("00-%032x-%016x-01", i+1, i+1), "data", `{"name":"bench"}`}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("XADD %s: %w", streamKey, err)
	}
	if err := c.XGroupCreate(ctx, streamKey, groupName, "0").Err(); err != nil {
		return "", fmt.Errorf("XGROUP CREATE %s %s: %w", streamKey, groupName, err)
	}
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: groupName, Consumer: "bench-0", Streams: []string{streamKey, ">"}, Count: seedRead}).Err(); err != nil {
		return "", fmt.Errorf("XREADGROUP %s %s: %w", streamKey, groupName, err)
	}
	groups, err := c.XInfoGroups(ctx, streamKey).Result()
	if err != nil {
		return "", err
	}
	if len(groups) != 1 || groups[0].Lag != seedEntries-seedRead {
		return "", fmt.Errorf("XINFO GROUPS %s: %+v, want one group with lag %d", streamKey, groups, seedEntries-seedRead)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// awaitQuiet returns a scrape taken once the manager has made no API request for a second.
func awaitQuiet(ctx context.Context, mgr *managerProcess) (metricSet, error) {
	var last metricSet
	lastTotal, quiet := -1.0, 0
	err := poll(ctx, 250*time.Millisecond, "waiting for the manager to stop making API requests after start-up", func() error {
		m, err := mgr.metrics(ctx)
		if err != nil {
			return err
		}
		total := m.sum(restRequests)
		if total > 0 && total == lastTotal {
			quiet++
		} else {
			quiet = 0
		}
		last, lastTotal = m, total
		if quiet < 4 {
			return fmt.Errorf("%.0f requests so far, still changing", total)
		}
		return nil
	})
	return last, err
}

// awaitIdle returns a scrape taken once the manager has run no reconcile pass and had an empty
// work queue for idleFor, after at least one pass beyond passesAbove (reconcile_total), or nil
// when that takes longer than bound.
func awaitIdle(ctx context.Context, mgr *managerProcess, bound time.Duration, passesAbove float64) (metricSet, error) {
	bctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var (
		last       metricSet
		lastPasses = -1.0
		idleSince  time.Time
	)
	err := poll(bctx, 200*time.Millisecond, "waiting for the manager to go idle", func() error {
		m, err := mgr.metrics(ctx)
		if err != nil {
			return err
		}
		passes := m.sum(reconcileTotal)
		if passes != lastPasses || m.sum(workqueueDepth) > 0 || m.sum(activeWorkers) > 0 {
			idleSince = time.Now()
		}
		last, lastPasses = m, passes
		switch {
		case passes <= passesAbove:
			return errors.New("no new pass yet")
		case time.Since(idleSince) < idleFor:
			return errors.New("busy")
		}
		return nil
	})
	switch {
	case err == nil:
		return last, nil
	case ctx.Err() != nil:
		return nil, err
	case mgr.exitErr() != nil:
		return nil, mgr.exitErr()
	default:
		return nil, nil
	}
}

func createNamespaces(ctx context.Context, c client.Client, n int) ([]string, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%02d", i)
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", names[i], err)
		}
	}
	return names, nil
}

// createAll creates o.CRs RedisTraceExporters round-robin over namespaces from o.Workers
// goroutines and returns when each create began.
func createAll(ctx context.Context, c client.Client, namespaces []string, o options, redisAddr string) (map[client.ObjectKey]time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range o.CRs {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu        sync.Mutex
		createdAt = make(map[client.ObjectKey]time.Time, o.CRs)
		firstErr  error
		wg        sync.WaitGroup
	)
	for range o.Workers {
		wg.Go(func() {
			for i := range next {
				obj := benchExporter(fmt.Sprintf("rte-%04d", i), namespaces[i%len(namespaces)], redisAddr, o.Refresh)
				at := time.Now()
				err := c.Create(ctx, obj)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("creating RedisTraceExporter %s/%s: %w", obj.Namespace, obj.Name, err)
					cancel()
				}
				createdAt[client.ObjectKeyFromObject(obj)] = at
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return createdAt, firstErr
}

// benchExporter is a standalone exporter reporting the lag of the seeded stream and group, every
// refresh (the CRD's default when 0).
func benchExporter(name, namespace, redisAddr string, refresh time.Duration) *v1.RedisTraceExporter {
	obj := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{Mode: v1.RedisModeStandalone, Addresses: []string{redisAddr}},
			Lag:   v1.LagSpec{Streams: []string{streamKey}, Groups: []string{groupName}},
		},
	}
	if refresh > 0 {
		obj.Spec.Lag.RefreshInterval = &metav1.Duration{Duration: refresh}
	}
	return obj
}

// measureSteady measures the manager while nothing changes but the lag it refreshes.
//
// The resources were created together, so their refreshes come in waves, one per refresh period:
// a window that cut a wave would count part of it. When the queue drained after the reconciles,
// the window starts there, at the end of a wave, and it ends at the end of the first wave that
// finishes after o.Window: it spans whole refresh periods.
func measureSteady(ctx context.Context, lg *logger, o options, mgr *managerProcess, rds *redisServer, api rest.Interface, settled bool, refresh time.Duration) (Steady, error) {
	st := Steady{Aligned: settled}
	lg.printf("Steady state: measuring for %s, then to the end of a refresh wave", o.Window)
	cpuA, err := proc.CPUSeconds(mgr.PID())
	if err != nil {
		return st, err
	}
	mA, err := mgr.metrics(ctx)
	if err != nil {
		return st, err
	}
	apiA, err := apiserverMetrics(ctx, api)
	if err != nil {
		return st, err
	}
	rA, err := readRedisStats(ctx, rds.client)
	if err != nil {
		return st, err
	}
	begin := time.Now()
	if err := awaitWindow(ctx, lg, o.Window, mgr, begin, mA.sum(reconcileTotal)); err != nil {
		return st, err
	}
	mB, err := mgr.metrics(ctx)
	if err != nil {
		return st, err
	}
	if st.Aligned {
		end, aligned, err := awaitWaveEnd(ctx, mgr, mB, refresh)
		if err != nil {
			return st, err
		}
		mB, st.Aligned = end, aligned
	}
	cpuB, err := proc.CPUSeconds(mgr.PID())
	if err != nil {
		return st, err
	}
	rB, err := readRedisStats(ctx, rds.client)
	if err != nil {
		return st, err
	}
	apiB, err := apiserverMetrics(ctx, api)
	if err != nil {
		return st, err
	}
	st.Window = time.Since(begin)
	st.CPUSeconds = cpuB - cpuA
	st.Requests = requestsBetween(mA, mB)
	st.Reconciles = delta(mA.by(reconcileTotal, reconcileResult), mB.by(reconcileTotal, reconcileResult))
	st.APIServer = delta(apiA.by(apiserverRequest, verbAndResource), apiB.by(apiserverRequest, verbAndResource))
	st.RedisCommands, st.RedisConnections = redisDelta(rA, rB)
	return st, nil
}

// awaitWindow waits for window from begin, logging the reconcile passes beyond passesA every
// 5 s; it ends early when the manager exits or ctx ends.
func awaitWindow(ctx context.Context, lg *logger, window time.Duration, mgr *managerProcess, begin time.Time, passesA float64) error {
	timer := time.NewTimer(window)
	defer timer.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-timer.C:
			return nil
		case <-tick.C:
			if m, err := mgr.metrics(ctx); err == nil {
				lg.printf("%.0fs into the window: %.0f reconcile passes", time.Since(begin).Seconds(), m.sum(reconcileTotal)-passesA)
			}
		case <-mgr.Done():
			return mgr.exitErr()
		case <-ctx.Done():
			return fmt.Errorf("measuring the steady state for %s: %w", window, ctx.Err())
		}
	}
}

// awaitWaveEnd extends the window to the end of the refresh wave under way, and returns the
// scrape taken there and true; or mB and false when none ends within two refresh periods and
// settleTimeout: waves may also merge into a steady stream (no idle second), and then any end will
// do.
func awaitWaveEnd(ctx context.Context, mgr *managerProcess, mB metricSet, refresh time.Duration) (metricSet, bool, error) {
	idle, err := awaitIdle(ctx, mgr, 2*refresh+settleTimeout, mB.sum(reconcileTotal))
	if err != nil {
		return mB, false, err
	}
	if idle == nil {
		return mB, false, nil
	}
	return idle, true, nil
}

func requestsBetween(a, b metricSet) Requests {
	return Requests{
		Total:     b.sum(restRequests) - a.sum(restRequests),
		ByRequest: delta(a.by(restRequests, methodAndCode), b.by(restRequests, methodAndCode)),
	}
}

// latencies summarises, per resource, the time from the start of its create to the first time it
// counted as reconciled.
func latencies(createdAt, reconciledAt map[client.ObjectKey]time.Time) Latency {
	var d []time.Duration
	for k, at := range reconciledAt {
		if c, ok := createdAt[k]; ok {
			d = append(d, at.Sub(c))
		}
	}
	if len(d) == 0 {
		return Latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
	return Latency{P50: q(0.5), P90: q(0.9), Max: d[len(d)-1]}
}

// summarise counts the final verdicts.
func summarise(items []v1.RedisTraceExporter) Final {
	f := Final{Total: len(items), Ready: map[string]int{}}
	for i := range items {
		obj := &items[i]
		if reconciled(obj) {
			f.Reconciled++
		}
		if c := apimeta.FindStatusCondition(obj.Status.Conditions, v1.ConditionReady); c != nil {
			f.Ready[string(c.Status)+"/"+c.Reason]++
		}
		if apimeta.IsStatusConditionTrue(obj.Status.Conditions, v1.ConditionRedisReachable) {
			f.RedisReachable++
		}
		for _, s := range obj.Status.Streams {
			for _, g := range s.Groups {
				if s.Name == streamKey && g.Name == groupName && g.Lag != nil && *g.Lag == seedEntries-seedRead {
					f.LagReported++
				}
			}
		}
	}
	return f
}
