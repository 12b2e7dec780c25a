package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/render"
)

// rateSample is the pods' span counters at one pass, to turn the next pass's into rates.
type rateSample struct {
	at                 time.Time
	received, exported int64
}

// observeExporters summarises the pods' own /status (readiness, counters, last error).
func (r *Reconciler) observeExporters(ctx context.Context, obj *v1.RedisTraceExporter, o *observed) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(obj.Namespace), client.MatchingLabels(render.SelectorLabels(obj))); err != nil {
		// ExporterHealthy keeps its last value; the next pass lists again.
		log.FromContext(ctx).Error(err, "Listing the exporter pods")
		return
	}
	es := &v1.ExporterStatus{}
	var received, exported int64
	var lastErr time.Time
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		s, err := r.fetchStatus(ctx, p.Status.PodIP)
		if err != nil {
			// Expected while a pod starts or stops: it counts as not ready.
			log.FromContext(ctx).V(1).Info("Exporter pod did not report its status", "pod", p.Name, "error", err.Error())
			es.Pods = append(es.Pods, v1.PodHealth{Name: p.Name, Ready: false})
			continue
		}
		es.Pods = append(es.Pods, v1.PodHealth{Name: p.Name, Ready: s.Ready})
		received += s.SpansReceived
		exported += s.SpansExported
		es.SpansFailed += s.SpansFailed
		es.SpansDropped += s.SpansDropped
		if s.LastWrite != nil && (es.LastSuccessfulWrite == nil || s.LastWrite.After(es.LastSuccessfulWrite.Time)) {
			t := metav1.NewTime(s.LastWrite.Truncate(time.Second))
			es.LastSuccessfulWrite = &t
		}
		if s.LastErrorTime != nil && s.LastErrorTime.After(lastErr) {
			lastErr, es.LastErrorClass = *s.LastErrorTime, s.LastErrorClass
		}
	}
	sort.Slice(es.Pods, func(i, j int) bool { return es.Pods[i].Name < es.Pods[j].Name })
	r.measureRates(obj, es, received, exported)
	o.exporter = es
}

// measureRates turns the pods' counters into per-second rates since the previous pass.
func (r *Reconciler) measureRates(obj *v1.RedisTraceExporter, es *v1.ExporterStatus, received, exported int64) {
	now := time.Now()
	r.remember(obj, func(m *memo) {
		if prev := m.rate; prev != nil && now.Sub(prev.at) > time.Second && received >= prev.received {
			secs := now.Sub(prev.at).Seconds()
			es.SpansAcceptedPerSecond = int64(float64(received-prev.received) / secs)
			es.SpansExportedPerSecond = int64(float64(exported-prev.exported) / secs)
		}
		m.rate = &rateSample{at: now, received: received, exported: exported}
	})
}

// fetchStatus reads one pod's /status on its admin port.
func (r *Reconciler) fetchStatus(ctx context.Context, ip string) (*telemetry.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, strconv.Itoa(render.AdminPort))+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/status of %s answered %s", ip, resp.Status)
	}
	// A pod is not trusted to bound its answer: read at most maxStatusBytes of it.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading /status of %s: %w", ip, err)
	}
	if len(body) > maxStatusBytes {
		return nil, fmt.Errorf("/status of %s is larger than %d bytes", ip, maxStatusBytes)
	}
	// The exporter's own /status type: one contract, defined where it is served.
	var s telemetry.Status
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("decoding /status of %s: %w", ip, err)
	}
	return &s, nil
}

// maxStatusBytes bounds what the manager reads of one pod's /status; a real one is a few KiB.
const maxStatusBytes = 1 << 20
