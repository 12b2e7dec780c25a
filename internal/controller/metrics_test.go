package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// TestExportMetricsKeepsWhatStillExists: a pass re-sets the series that still exist and deletes
// only those whose stream or group is gone; forgetting the resource deletes the rest.
func TestExportMetricsKeepsWhatStillExists(t *testing.T) {
	key := types.NamespacedName{Namespace: "metrics-test", Name: "rte"}
	status := func(groups ...string) v1.RedisTraceExporterStatus {
		st := v1.RedisTraceExporterStatus{Streams: []v1.StreamStatus{{Name: "traces:a", Length: 10}}}
		for _, g := range groups {
			st.Streams[0].Groups = append(st.Streams[0].Groups, v1.GroupStatus{Name: g, Lag: ptr.To[int64](3)})
		}
		return st
	}
	s := exportMetrics(key, status("g1", "g2"), series{})
	if got := seriesOf(groupLagGauge, key.Namespace); len(got) != 2 || got["traces:a/g1"] != 3 {
		t.Fatalf("group series %v, want g1 and g2 with lag 3", got)
	}
	s = exportMetrics(key, status("g1"), s)
	if got := seriesOf(groupLagGauge, key.Namespace); len(got) != 1 || got["traces:a/g1"] != 3 {
		t.Errorf("group series %v after g2 went away, want g1 only", got)
	}
	exportMetrics(key, v1.RedisTraceExporterStatus{}, s)
	if n := len(seriesOf(streamLengthGauge, key.Namespace)) + len(seriesOf(groupLagGauge, key.Namespace)); n != 0 {
		t.Errorf("%d stream and group series after the stream went away, want 0", n)
	}
	forgetMetrics(key)
	if got := seriesOf(readyGauge, key.Namespace); len(got) != 0 {
		t.Errorf("ready series %v after forgetting, want none", got)
	}
}

// TestExportMetricsSaysHowMuchLagIsKnownAndWhen: unknown-lag groups are a count per resource,
// and the time of the last lag change is a timestamp gauge, absent before the first read.
func TestExportMetricsSaysHowMuchLagIsKnownAndWhen(t *testing.T) {
	key := types.NamespacedName{Namespace: "lag-state-test", Name: "rte"}
	exportMetrics(key, v1.RedisTraceExporterStatus{}, series{})
	if got := seriesOf(lagUpdateGauge, key.Namespace); len(got) != 0 {
		t.Errorf("lag update series %v before any read, want none", got)
	}
	at := metav1.NewTime(time.Unix(1772443021, 0))
	exportMetrics(key, v1.RedisTraceExporterStatus{UnknownLagGroups: 2, LagUpdateTime: &at}, series{})
	if got := seriesOf(unknownLagGauge, key.Namespace); got["/"] != 2 {
		t.Errorf("unknown lag groups %v, want 2", got)
	}
	if got := seriesOf(lagUpdateGauge, key.Namespace); got["/"] != 1772443021 {
		t.Errorf("lag update timestamp %v, want 1772443021", got)
	}
	forgetMetrics(key)
	if n := len(seriesOf(unknownLagGauge, key.Namespace)) + len(seriesOf(lagUpdateGauge, key.Namespace)); n != 0 {
		t.Errorf("%d lag state series after forgetting, want 0", n)
	}
}

// seriesOf returns the values of c's series in namespace ns (other tests' resources share the
// registry), keyed by their stream/group labels.
func seriesOf(c prometheus.Collector, ns string) map[string]float64 {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			panic(err)
		}
		labels := map[string]string{}
		for _, l := range pb.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["namespace"] == ns {
			out[labels["stream"]+"/"+labels["group"]] = pb.GetGauge().GetValue()
		}
	}
	return out
}
