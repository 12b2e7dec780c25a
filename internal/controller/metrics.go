package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// The manager's own gauges, served with controller-runtime's metrics on the manager's metrics
// endpoint, so that lag can be alerted on without reading every CR's status (Flux exposes its
// resources' conditions the same way).
var (
	readyGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tracestream_redistraceexporter_ready",
		Help: "1 when the RedisTraceExporter's Ready condition is True, else 0.",
	}, []string{"namespace", "name"})
	streamLengthGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tracestream_redistraceexporter_stream_length",
		Help: "Length (XLEN) of each stream reported in the RedisTraceExporter's status.",
	}, []string{"namespace", "name", "stream"})
	groupLagGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tracestream_redistraceexporter_group_lag",
		Help: "Entries of the stream not yet delivered to the consumer group; absent when Redis cannot tell.",
	}, []string{"namespace", "name", "stream", "group"})
)

func init() {
	metrics.Registry.MustRegister(readyGauge, streamLengthGauge, groupLagGauge)
}

// exportMetrics replaces the resource's series with what st reports.
func exportMetrics(key types.NamespacedName, st v1.RedisTraceExporterStatus) {
	forgetMetrics(key)
	ready := 0.0
	if meta.IsStatusConditionTrue(st.Conditions, v1.ConditionReady) {
		ready = 1
	}
	readyGauge.WithLabelValues(key.Namespace, key.Name).Set(ready)
	for _, s := range st.Streams {
		streamLengthGauge.WithLabelValues(key.Namespace, key.Name, s.Name).Set(float64(s.Length))
		for _, g := range s.Groups {
			if g.Lag != nil {
				groupLagGauge.WithLabelValues(key.Namespace, key.Name, s.Name, g.Name).Set(float64(*g.Lag))
			}
		}
	}
}

// forgetMetrics removes every series of the resource.
func forgetMetrics(key types.NamespacedName) {
	l := prometheus.Labels{"namespace": key.Namespace, "name": key.Name}
	readyGauge.DeletePartialMatch(l)
	streamLengthGauge.DeletePartialMatch(l)
	groupLagGauge.DeletePartialMatch(l)
}
