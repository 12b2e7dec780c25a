package telemetry

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the admin endpoint: /healthz (the process is alive), /readyz (it accepts work
// and Redis is reachable), /metrics (Prometheus) and /status (the JSON summary the operator
// reads). extra, when not nil, is mounted too (the debug /spans endpoint).
func (t *Telemetry) Handler(extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s := t.Snapshot()
		switch {
		case s.Ready:
			_, _ = w.Write([]byte("ok\n"))
		case !t.ready.Load():
			http.Error(w, "not accepting work (starting or draining)", http.StatusServiceUnavailable)
		default:
			http.Error(w, "redis unreachable (last error class: "+s.LastErrorClass+")", http.StatusServiceUnavailable)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(t.Snapshot())
	})
	for path, h := range extra {
		mux.Handle(path, h)
	}
	return mux
}

// WatchAdminConnections registers the connections open on the admin endpoint and those closed,
// between requests, to make room for a new one at admin.maxConnections; both are read at each
// scrape. Call it before serving.
func (t *Telemetry) WatchAdminConnections(open, evicted func() int64) {
	ns := "tracestream_exporter"
	t.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "admin_connections",
			Help: "Connections open on the admin endpoint (bounded by admin.maxConnections)."}, func() float64 { return float64(open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "admin_connections_evicted_total",
			Help: "Admin connections closed between requests to make room for a new one at admin.maxConnections."},
			func() float64 { return float64(evicted()) }),
	)
}
