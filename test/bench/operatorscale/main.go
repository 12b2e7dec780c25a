// Command operatorscale measures the operator at scale: it runs the real manager binary against a
// real kube-apiserver and etcd (envtest) and a real redis-server, creates many RedisTraceExporters
// at once, and reports how long the manager takes to reconcile them all, what that costs it (CPU,
// memory, API requests) and what it costs while nothing changes (lag refreshes).
//
//	export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
//	go run ./test/bench/operatorscale -crs 500 -window 60s
//
// A RedisTraceExporter counts as reconciled when status.observedGeneration equals
// metadata.generation and status has a Ready condition. Ready itself stays False
// (DeploymentNotAvailable): envtest has no controller-manager and no kubelet, so no pod ever runs.
//
// What it measures, on the manager process (rest_client_requests_total and
// controller_runtime_reconcile_total from its /metrics, utime+stime and VmRSS/VmHWM from /proc):
//
//   - create -> reconciled: from the first create to the last resource counting as reconciled,
//     the CPU and API requests in between, and memory at the end. The passes that follow (each
//     status write and each new child enqueues a resource again) are reported after it, up to the
//     moment the manager goes idle; the BENCH line's per-CR figures stop at "all reconciled".
//   - steady state: nothing changes, the controller only requeues each resource every
//     spec.lag.refreshInterval (-refresh, default the CRD's 30s) to read lag again. The resources
//     were created together, so these passes come in waves; the window (-window) is extended to
//     the end of a wave so that it spans whole refresh periods. Redis commands come from
//     INFO commandstats, status writes from kube-apiserver's apiserver_request_total.
//
// The human-readable summary goes to stdout, progress to stderr, and the last line of stdout is
// the one `make bench` parses:
//
//	BENCH operatorscale crs=<N> reconcile_s=<float> manager_rss_mb=<float> ...
//
// Every process it starts (redis-server and the manager; envtest starts kube-apiserver and etcd)
// is stopped by its PID when it returns, fails, times out (-timeout) or is interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// teardownGrace bounds how long main waits for run to stop its processes after -timeout: the
// manager gets 40 s to shut down, envtest 20 s per process.
const teardownGrace = 2 * time.Minute

func main() {
	o := options{Log: os.Stderr}
	flag.IntVar(&o.CRs, "crs", 500, "number of RedisTraceExporters to create")
	flag.IntVar(&o.Namespaces, "namespaces", 10, "number of namespaces the RedisTraceExporters are spread over")
	flag.IntVar(&o.Workers, "workers", 8, "goroutines creating RedisTraceExporters")
	flag.DurationVar(&o.Window, "window", 60*time.Second, "steady-state measurement window after all are reconciled (extended to the end of a wave of lag refreshes)")
	flag.DurationVar(&o.Refresh, "refresh", 0, "spec.lag.refreshInterval of every RedisTraceExporter (0: the CRD's default, 30s)")
	flag.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "overall time limit, setup and teardown included")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "operatorscale: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal run tears down; a second one gets Go's default behaviour (exit).
	context.AfterFunc(ctx, stop)

	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := run(ctx, o)
		done <- outcome{res, err}
	}()
	var out outcome
	select {
	case out = <-done:
	case <-time.After(o.Timeout + teardownGrace):
		fmt.Fprintf(os.Stderr, "operatorscale: teardown still running %s after the %s timeout; giving up\n", teardownGrace, o.Timeout)
		os.Exit(1)
	}
	if out.err != nil {
		switch {
		case errors.Is(out.err, context.DeadlineExceeded):
			fmt.Fprintf(os.Stderr, "operatorscale: timed out after %s: %v\n", o.Timeout, out.err)
		case errors.Is(out.err, context.Canceled):
			fmt.Fprintf(os.Stderr, "operatorscale: interrupted: %v\n", out.err)
		default:
			fmt.Fprintf(os.Stderr, "operatorscale: %v\n", out.err)
		}
		os.Exit(1)
	}
	out.res.WriteSummary(os.Stdout)
	fmt.Println(out.res.BenchLine())
}
