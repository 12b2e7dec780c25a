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
	flag.DurationVar(&o.Window, "window", 60*time.Second, "steady-state measurement window after all are reconciled")
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
