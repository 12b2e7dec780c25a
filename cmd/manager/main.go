// Command manager is Tracestream's operator: it reconciles RedisTraceExporter resources into
// exporter workloads.
//
// It runs the RedisTraceExporter reconciler under a controller-runtime manager with health
// probes, metrics and optional leader election. Secrets are cached by metadata only: their data
// is read from the API server when a RedisTraceExporter references them.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tracestreamv1alpha1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/controller"
	"github.com/tracestream/tracestream/internal/version"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tracestreamv1alpha1.AddToScheme(scheme))
}

// options are the manager's command-line settings.
type options struct {
	metricsAddr, probeAddr  string
	leaderElect             bool
	leaderElectionNamespace string
	watchNamespaces         string
	exporterImage           string
	zap                     zap.Options
}

func parseFlags() options {
	o := options{exporterImage: os.Getenv("TRACESTREAM_EXPORTER_IMAGE")}
	if o.exporterImage == "" {
		o.exporterImage = "ghcr.io/tracestream/tracestream:" + version.Version
	}
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address the metrics endpoint binds to (0 disables it)")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address the health probe endpoint binds to")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "enable leader election so that only one manager reconciles at a time")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the manager's own namespace, which only exists in a cluster)")
	flag.StringVar(&o.exporterImage, "exporter-image", o.exporterImage, "exporter image for RedisTraceExporters without spec.image (default: this operator's own image)")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "", "comma-separated namespaces whose RedisTraceExporters (and their Secrets) are reconciled; empty means all namespaces")
	o.zap.BindFlags(flag.CommandLine)
	flag.Parse()
	return o
}

// cacheOptions limits every watch (Secrets included) to the given namespaces, so that the
// manager needs only Roles in those namespaces instead of a ClusterRole that reads Secrets
// everywhere. Of the Jobs and PersistentVolumeClaims, only the operator's own (queue drains and
// claims) are cached, not every one of the cluster's.
func cacheOptions(watchNamespaces string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": "tracestream-operator"})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&batchv1.Job{}:                  {Label: managed},
		&corev1.PersistentVolumeClaim{}: {Label: managed},
	}}
	for ns := range strings.SplitSeq(watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if opts.DefaultNamespaces == nil {
				opts.DefaultNamespaces = map[string]cache.Config{}
			}
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

func main() {
	o := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")
	if err := run(o); err != nil {
		log.Error(err, "Manager failed")
		os.Exit(1)
	}
}

// run builds the manager with the RedisTraceExporter controller and its probes, and runs it
// until a signal stops it.
func run(o options) error {
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOptions(o.watchNamespaces),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "manager.tracestream.io",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// A manager that stops (SIGTERM, a rollout) hands the lease over at once instead of
		// leaving the others to wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := (&controller.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("tracestream-operator"),
		Image:     o.exporterImage,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the RedisTraceExporter controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the ready check: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "version", version.Version, "exporterImage", o.exporterImage, "watchNamespaces", o.watchNamespaces)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}
