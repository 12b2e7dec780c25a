// Command manager is Tracestream's operator: it reconciles RedisTraceExporter resources into
// exporter workloads.
//
// It runs the RedisTraceExporter reconciler under a controller-runtime manager with health
// probes, metrics and optional leader election. Secrets are cached by metadata only: their data
// is read from the API server when a RedisTraceExporter references them.
package main

import (
	"flag"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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

func main() {
	var metricsAddr, probeAddr string
	var leaderElect bool
	var leaderElectionNamespace, watchNamespaces string
	exporterImage := os.Getenv("TRACESTREAM_EXPORTER_IMAGE")
	if exporterImage == "" {
		exporterImage = "ghcr.io/tracestream/tracestream:" + version.Version
	}
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address the metrics endpoint binds to (0 disables it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address the health probe endpoint binds to")
	flag.BoolVar(&leaderElect, "leader-elect", false, "enable leader election so that only one manager reconciles at a time")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the manager's own namespace, which only exists in a cluster)")
	flag.StringVar(&exporterImage, "exporter-image", exporterImage, "exporter image for RedisTraceExporters without spec.image (default: this operator's own image)")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces whose RedisTraceExporters (and their Secrets) are reconciled; empty means all namespaces")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	// With namespaces given, every watch (Secrets included) is namespaced, so the manager needs
	// only Roles in those namespaces instead of a ClusterRole that reads Secrets everywhere.
	var cacheOpts cache.Options
	for ns := range strings.SplitSeq(watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if cacheOpts.DefaultNamespaces == nil {
				cacheOpts.DefaultNamespaces = map[string]cache.Config{}
			}
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "manager.tracestream.io",
		LeaderElectionNamespace: leaderElectionNamespace,
		// A manager that stops (SIGTERM, a rollout) hands the lease over at once instead of
		// leaving the others to wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "Unable to create manager")
		os.Exit(1)
	}
	if err := (&controller.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("tracestream-operator"),
		Image:     exporterImage,
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Unable to set up the RedisTraceExporter controller")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Unable to add health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Unable to add ready check")
		os.Exit(1)
	}
	log.Info("Starting manager", "version", version.Version, "exporterImage", exporterImage, "watchNamespaces", watchNamespaces)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}
