package render

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// KindPodMonitor is the prometheus-operator's PodMonitor. Its Go types are not a dependency of
// this module: the builder writes the few fields it sets as an unstructured object.
const KindPodMonitor = "PodMonitor"

// PodMonitorGVK is the PodMonitor's API: the cluster has it only where the prometheus-operator's
// CRDs are installed.
var PodMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: KindPodMonitor}

// PodMonitorChild is the PodMonitor as a child. It is not one of Children, since its API may be
// missing from the cluster (the prometheus-operator's CRD): the controller applies it before the
// workload, so that a failing workload apply does not keep it from being reached, and neither a
// missing CRD nor a failed apply fails the pass or touches Ready (the condition
// PodMonitorApplied says what became of it). As in Children, a nil Object means "not asked
// for": the controller deletes the one this resource owns.
func PodMonitorChild(rte *v1.RedisTraceExporter) Child {
	pm := PodMonitor(rte)
	if pm == nil {
		return Child{KindPodMonitor, rte.Name, nil}
	}
	// The apply configuration controller-runtime's client applies for a kind it has no Go type
	// of; building it does no I/O.
	return Child{KindPodMonitor, rte.Name, client.ApplyConfigurationFromUnstructured(pm)}
}

// PodMonitor scrapes /metrics on the admin port of exactly this resource's exporter pods (the
// admin port is not on the Service, hence a PodMonitor rather than a ServiceMonitor). The pod
// label app.kubernetes.io/instance, the resource's name, becomes the series label
// app_kubernetes_io_instance that docs/alerts and docs/dashboards group by. Nil unless
// spec.observability.metrics.podMonitor.enabled.
func PodMonitor(rte *v1.RedisTraceExporter) *unstructured.Unstructured {
	spec := rte.Spec.Observability.Metrics.PodMonitor
	if spec == nil || !spec.Enabled {
		return nil
	}
	// The admin endpoint serves plain HTTP only (no TLS setting exists for it).
	endpoint := map[string]any{"port": AdminPortName, "path": "/metrics", "scheme": "http"}
	if spec.Interval != nil {
		endpoint["interval"] = promDuration(spec.Interval.Duration)
	}
	if spec.ScrapeTimeout != nil {
		endpoint["scrapeTimeout"] = promDuration(spec.ScrapeTimeout.Duration)
	}
	selector := map[string]any{}
	for k, v := range SelectorLabels(rte) {
		selector[k] = v
	}
	pm := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"selector":            map[string]any{"matchLabels": selector},
		"podTargetLabels":     []any{InstanceLabel},
		"podMetricsEndpoints": []any{endpoint},
	}}}
	pm.SetGroupVersionKind(PodMonitorGVK)
	pm.SetName(rte.Name)
	pm.SetNamespace(rte.Namespace)
	pm.SetLabels(mergeLabels(Labels(rte), spec.Labels))
	pm.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(rte, v1.GroupVersion.WithKind("RedisTraceExporter"))})
	return pm
}

// promDuration writes d the way the PodMonitor's CRD accepts durations (1h30m, 45s, 1500ms):
// Go's own form (1m30s is fine, 1.5s is not) can be refused by its pattern.
func promDuration(d time.Duration) string {
	ms := d.Milliseconds()
	if ms%1000 != 0 {
		return fmt.Sprintf("%dms", ms)
	}
	var b strings.Builder
	s := ms / 1000
	for _, u := range []struct {
		seconds int64
		unit    string
	}{{3600, "h"}, {60, "m"}, {1, "s"}} {
		if s >= u.seconds {
			fmt.Fprintf(&b, "%d%s", s/u.seconds, u.unit)
			s %= u.seconds
		}
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}
