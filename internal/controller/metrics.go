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
	unknownLagGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tracestream_redistraceexporter_unknown_lag_groups",
		Help: "Consumer groups whose lag Redis cannot tell (status.unknownLagGroups): they have no group_lag series.",
	}, []string{"namespace", "name"})
	lagUpdateGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tracestream_redistraceexporter_lag_update_timestamp_seconds",
		Help: "When the reported streams and lag last changed (status.lagUpdateTime), as Unix seconds; absent before the first read.",
	}, []string{"namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(readyGauge, streamLengthGauge, groupLagGauge, unknownLagGauge, lagUpdateGauge)
}

// series are the label values a resource's stream and group gauges were last set with.
type series struct {
	streams, groups map[[2]string]bool // {stream, ""} and {stream, group}
}

// exportMetrics sets the resource's gauges to what st reports and deletes only the series st no
// longer has (prev, returned by the previous call): a scrape never sees a series missing that
// still exists, which would reset the `for:` of alerts on it.
func exportMetrics(key types.NamespacedName, st v1.RedisTraceExporterStatus, prev series) series {
	ready := 0.0
	if meta.IsStatusConditionTrue(st.Conditions, v1.ConditionReady) {
		ready = 1
	}
	readyGauge.WithLabelValues(key.Namespace, key.Name).Set(ready)
	exportLagState(key, st)
	now := series{streams: map[[2]string]bool{}, groups: map[[2]string]bool{}}
	for _, s := range st.Streams {
		streamLengthGauge.WithLabelValues(key.Namespace, key.Name, s.Name).Set(float64(s.Length))
		now.streams[[2]string{s.Name}] = true
		for _, g := range s.Groups {
			if g.Lag != nil {
				groupLagGauge.WithLabelValues(key.Namespace, key.Name, s.Name, g.Name).Set(float64(*g.Lag))
				now.groups[[2]string{s.Name, g.Name}] = true
			}
		}
	}
	for k := range prev.streams {
		if !now.streams[k] {
			streamLengthGauge.DeleteLabelValues(key.Namespace, key.Name, k[0])
		}
	}
	for k := range prev.groups {
		if !now.groups[k] {
			groupLagGauge.DeleteLabelValues(key.Namespace, key.Name, k[0], k[1])
		}
	}
	return now
}

// exportLagState sets the gauges that say how much of the lag is known and how fresh it is.
func exportLagState(key types.NamespacedName, st v1.RedisTraceExporterStatus) {
	unknownLagGauge.WithLabelValues(key.Namespace, key.Name).Set(float64(st.UnknownLagGroups))
	if st.LagUpdateTime == nil {
		lagUpdateGauge.DeleteLabelValues(key.Namespace, key.Name)
		return
	}
	lagUpdateGauge.WithLabelValues(key.Namespace, key.Name).Set(float64(st.LagUpdateTime.Unix()))
}

// forgetMetrics removes every series of the resource.
func forgetMetrics(key types.NamespacedName) {
	l := prometheus.Labels{"namespace": key.Namespace, "name": key.Name}
	readyGauge.DeletePartialMatch(l)
	streamLengthGauge.DeletePartialMatch(l)
	groupLagGauge.DeletePartialMatch(l)
	unknownLagGauge.DeletePartialMatch(l)
	lagUpdateGauge.DeletePartialMatch(l)
}
