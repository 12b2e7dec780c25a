// Package telemetry is the exporter's view of itself: Prometheus metrics, the health state behind
// /healthz and /readyz, and the /status summary that the operator reads.
package telemetry

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/version"
)

// Reasons a span is dropped (never written, and the client told so or it asked for it).
const (
	DropFiltered = "filtered" // excluded by the service filter: the user asked for it
	DropInvalid  = "invalid"  // rejected as invalid (OTLP partial success)
	DropRejected = "rejected" // Redis refused it permanently (e.g. WRONGTYPE), reported as partial success
)

// Reasons a request's spans are counted in spans_failed_total when no Redis error class
// (redisconn.Class.Label) says why the request was answered with an error.
const (
	FailBusy          = "busy"            // past delivery.maxInFlightSpans
	FailMemory        = "memory"          // its entries did not fit in delivery.maxInFlightBytes
	FailStalled       = "stalled"         // Redis made no progress for delivery.stallTimeout
	FailTimeout       = "timeout"         // not acknowledged in time, and no Redis error seen
	FailCanceled      = "canceled"        // the client canceled the request before the answer
	FailQueueFull     = "queue_full"      // the persistent queue is full
	FailQueueTooLarge = "queue_too_large" // more than the persistent queue can ever hold
	FailQueue         = "queue"           // the persistent queue failed to write
	FailShutdown      = "shutdown"        // the persistent queue closed: the exporter is stopping
)

// Telemetry holds the exporter's metrics and health. Safe for concurrent use.
type Telemetry struct {
	Registry *prometheus.Registry

	SpansReceived *prometheus.CounterVec // by protocol: grpc, http
	SpansExported prometheus.Counter
	SpansFailed   *prometheus.CounterVec // by class: answered with a retryable error
	SpansDropped  *prometheus.CounterVec // by reason
	RedisErrors   *prometheus.CounterVec // by class
	// RequestsRefused counts requests answered with an error, by protocol and reason.
	RequestsRefused *prometheus.CounterVec
	BatchSize       prometheus.Histogram
	PipelineTime    prometheus.Histogram
	InFlight        prometheus.Gauge
	// QueueUnreadable counts persistent queue records whose checksum matched but whose
	// contents could not be decoded (registered by WatchQueue).
	QueueUnreadable prometheus.Counter
	queue           func() QueueStats

	received, exported, failed, dropped atomic.Int64
	ready                               atomic.Bool
	redisReachable                      atomic.Bool
	lastWrite                           atomic.Int64 // unix nanos

	mu        sync.Mutex
	lastClass string
	lastError time.Time
	refusals  map[string]int64 // "protocol/reason"
	producer  string
}

// New registers the metrics on a fresh registry.
func New() *Telemetry {
	t := &Telemetry{Registry: prometheus.NewRegistry()}
	ns := "tracestream_exporter"
	t.SpansReceived = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spans_received_total",
		Help: "Spans received, by protocol."}, []string{"protocol"})
	t.SpansExported = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "spans_exported_total",
		Help: "Spans acknowledged by Redis."})
	t.SpansFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spans_failed_total",
		Help: "Spans whose request was answered with a retryable error, by error class."}, []string{"class"})
	t.SpansDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spans_dropped_total",
		Help: "Spans not written, by reason (filtered, invalid, rejected)."}, []string{"reason"})
	t.RedisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "redis_errors_total",
		Help: "Redis command errors, by class."}, []string{"class"})
	t.RequestsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_refused_total",
		Help: "Requests answered with an error, by protocol and reason (content_type, encoding, malformed, too_large, read_timeout, method, auth, memory, busy, unavailable, shutting_down, canceled)."},
		[]string{"protocol", "reason"})
	t.BatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "pipeline_entries",
		Help: "Entries per Redis pipeline.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)})
	t.PipelineTime = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "pipeline_duration_seconds",
		Help: "Time from sending a pipeline to reading all its replies.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)})
	t.InFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "inflight_spans",
		Help: "Spans accepted and not yet acknowledged by Redis."})
	t.QueueUnreadable = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "queue_unreadable_records_total",
		Help: "Persistent queue records with a valid checksum that could not be decoded; skipped."})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Build information; always 1."}, []string{"version"})
	build.WithLabelValues(version.Version).Set(1)
	t.Registry.MustRegister(t.SpansReceived, t.SpansExported, t.SpansFailed, t.SpansDropped, t.RedisErrors, t.RequestsRefused,
		t.BatchSize, t.PipelineTime, t.InFlight, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return t
}

// QueueStats is what the persistent queue reports about itself.
type QueueStats struct {
	Bytes          int64 `json:"bytes"`
	CapacityBytes  int64 `json:"capacityBytes"`
	Records        int64 `json:"records"`
	CorruptRecords int64 `json:"corruptRecords"`
	CorruptBytes   int64 `json:"corruptBytes"`
}

// WatchQueue registers the persistent queue's metrics, read from stats at each scrape, and adds
// them to /status. Call it before serving.
func (t *Telemetry) WatchQueue(stats func() QueueStats) {
	ns := "tracestream_exporter"
	t.queue = stats
	t.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_size_bytes",
			Help: "Bytes of the persistent queue's log on disk."}, func() float64 { return float64(stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_capacity_bytes",
			Help: "The persistent queue's bound (delivery.persistentQueue.maxBytes)."}, func() float64 { return float64(stats().CapacityBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_records",
			Help: "Records (requests) in the persistent queue not yet acknowledged by Redis."}, func() float64 { return float64(stats().Records) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "queue_corrupt_records_total",
			Help: "Damaged stretches of the persistent queue (torn or failing their checksum) skipped since start."}, func() float64 { return float64(stats().CorruptRecords) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "queue_corrupt_bytes_total",
			Help: "Bytes of the persistent queue skipped as damaged since start."}, func() float64 { return float64(stats().CorruptBytes) }),
		t.QueueUnreadable,
	)
}

// MemoryBudget is delivery.maxInFlightBytes as the metrics read it.
type MemoryBudget interface {
	Used() int64
	Limit() int64
	Refused() int64
}

// WatchMemory registers the metrics of the requests' memory budget. Call it before serving.
func (t *Telemetry) WatchMemory(b MemoryBudget) {
	ns := "tracestream_exporter"
	t.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "inflight_bytes",
			Help: "Bytes held by requests in flight: bodies being read and decoded, entries waiting for Redis or the persistent queue."},
			func() float64 { return float64(b.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "inflight_bytes_limit",
			Help: "The bound of inflight_bytes (delivery.maxInFlightBytes)."}, func() float64 { return float64(b.Limit()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "memory_refused_requests_total",
			Help: "Requests refused with a retryable \"resource exhausted\" because in-flight requests held delivery.maxInFlightBytes."},
			func() float64 { return float64(b.Refused()) }),
	)
}

// WatchGRPCBuffered registers the message bytes gRPC requests hold before they are complete or
// answered, and their bound (receivers.grpc.maxBufferedBytes).
func (t *Telemetry) WatchGRPCBuffered(used func() int64, limit int64, evictions func() int64) {
	ns := "tracestream_exporter"
	t.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "grpc_buffered_bytes",
			Help: "Message bytes gRPC clients have sent and not yet been answered for, counted as they arrive (receivers.grpc.maxBufferedBytes)."},
			func() float64 { return float64(used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "grpc_buffered_bytes_limit",
			Help: "receivers.grpc.maxBufferedBytes."}, func() float64 { return float64(limit) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "grpc_buffer_evictions_total",
			Help: "gRPC connections closed because incomplete messages held receivers.grpc.maxBufferedBytes for a second (the largest holder goes)."},
			func() float64 { return float64(evictions()) }),
	)
}

// WatchStreamKeys registers the stream-key bound's metrics: the live keys, the bound, and the
// spans written to the overflow key because of it.
func (t *Telemetry) WatchStreamKeys(stats func() (live int, overflowed int64), max int) {
	ns := "tracestream_exporter"
	t.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "stream_keys",
			Help: "Distinct stream keys counted as live (bounded by stream.maxKeys)."},
			func() float64 { n, _ := stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "stream_keys_limit",
			Help: "stream.maxKeys."}, func() float64 { return float64(max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "stream_key_overflow_spans_total",
			Help: "Spans written to the overflow key because their key would have been a new one past stream.maxKeys."},
			func() float64 { _, n := stats(); return float64(n) }),
	)
}

// WatchConnections registers the number of client connections open on a receiver (protocol
// grpc or http), read from open at each scrape. Call it before serving.
func (t *Telemetry) WatchConnections(protocol string, open func() int64) {
	t.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tracestream_exporter", Name: "receiver_connections",
		Help:        "Client connections open on a receiver (bounded by receivers.maxConnections).",
		ConstLabels: prometheus.Labels{"protocol": protocol}}, func() float64 { return float64(open()) }))
}

// WatchEvictedConnections registers the connections a receiver (protocol grpc or http) closed
// while they waited for a request, to make room for a new one at receivers.maxConnections; read
// from evicted at each scrape. Call it before serving.
func (t *Telemetry) WatchEvictedConnections(protocol string, evicted func() int64) {
	t.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tracestream_exporter", Name: "receiver_connections_evicted_total",
		Help:        "Client connections a receiver closed while they waited for a request, to make room for a new one at receivers.maxConnections.",
		ConstLabels: prometheus.Labels{"protocol": protocol}}, func() float64 { return float64(evicted()) }))
}

// Received counts spans that arrived over protocol.
func (t *Telemetry) Received(protocol string, n int) {
	t.SpansReceived.WithLabelValues(protocol).Add(float64(n))
	t.received.Add(int64(n))
}

// Exported counts spans Redis acknowledged and records the time of the write.
func (t *Telemetry) Exported(n int) {
	t.SpansExported.Add(float64(n))
	t.exported.Add(int64(n))
	t.lastWrite.Store(time.Now().UnixNano())
	t.redisReachable.Store(true)
}

// Refused counts a request answered with an error, for the metrics and /status.
func (t *Telemetry) Refused(protocol, reason string) {
	t.RequestsRefused.WithLabelValues(protocol, reason).Inc()
	t.mu.Lock()
	if t.refusals == nil {
		t.refusals = map[string]int64{}
	}
	t.refusals[protocol+"/"+reason]++
	t.mu.Unlock()
}

// Failed counts spans whose request got a retryable error.
func (t *Telemetry) Failed(class string, n int) {
	t.SpansFailed.WithLabelValues(class).Add(float64(n))
	t.failed.Add(int64(n))
}

// Dropped counts spans not written for reason.
func (t *Telemetry) Dropped(reason string, n int) {
	if n == 0 {
		return
	}
	t.SpansDropped.WithLabelValues(reason).Add(float64(n))
	t.dropped.Add(int64(n))
}

// RedisError counts a Redis error of class and remembers it for /status.
func (t *Telemetry) RedisError(class redisconn.Class, n int) {
	t.RedisErrors.WithLabelValues(class.Label()).Add(float64(n))
	t.mu.Lock()
	t.lastClass, t.lastError = class.Label(), time.Now()
	t.mu.Unlock()
}

// SetReady flips readiness (false while starting and draining).
func (t *Telemetry) SetReady(v bool) { t.ready.Store(v) }

// SetProducer records the idempotent-XADD producer id the exporter writes with, for /status.
func (t *Telemetry) SetProducer(id string) {
	t.mu.Lock()
	t.producer = id
	t.mu.Unlock()
}

// SetRedisReachable records the outcome of the last probe of Redis.
func (t *Telemetry) SetRedisReachable(v bool) { t.redisReachable.Store(v) }

// Ready reports whether the exporter accepts work and Redis is reachable.
// With the persistent queue, readiness does not need Redis: requests are taken into the log.
func (t *Telemetry) Ready() bool {
	return t.ready.Load() && (t.redisReachable.Load() || t.queue != nil)
}

// Status is the JSON summary served on /status for the operator.
type Status struct {
	Version        string     `json:"version"`
	Ready          bool       `json:"ready"`
	RedisReachable bool       `json:"redisReachable"`
	SpansReceived  int64      `json:"spansReceived"`
	SpansExported  int64      `json:"spansExported"`
	SpansFailed    int64      `json:"spansFailed"`
	SpansDropped   int64      `json:"spansDropped"`
	LastWrite      *time.Time `json:"lastSuccessfulWrite,omitempty"`
	LastErrorClass string     `json:"lastErrorClass,omitempty"`
	LastErrorTime  *time.Time `json:"lastErrorTime,omitempty"`
	// ProducerID is the idempotent-XADD producer id the spans are written with; with the
	// persistent queue it is the log's, so whoever replays the log reports the same one.
	ProducerID string `json:"producerId,omitempty"`
	// PersistentQueue is set when delivery.persistentQueue is on.
	PersistentQueue *QueueStats `json:"persistentQueue,omitempty"`
	// RequestsRefused counts the requests answered with an error, by "protocol/reason"
	// (grpc/encoding, http/too_large, ...): a client losing everything shows here.
	RequestsRefused map[string]int64 `json:"requestsRefused,omitempty"`
}

// Snapshot returns the current status.
func (t *Telemetry) Snapshot() Status {
	s := Status{
		Version:        version.Version,
		Ready:          t.Ready(),
		RedisReachable: t.redisReachable.Load(),
		SpansReceived:  t.received.Load(),
		SpansExported:  t.exported.Load(),
		SpansFailed:    t.failed.Load(),
		SpansDropped:   t.dropped.Load(),
	}
	if t.queue != nil {
		q := t.queue()
		s.PersistentQueue = &q
	}
	if ns := t.lastWrite.Load(); ns != 0 {
		w := time.Unix(0, ns).UTC()
		s.LastWrite = &w
	}
	t.mu.Lock()
	s.ProducerID = t.producer
	if len(t.refusals) > 0 {
		s.RequestsRefused = maps.Clone(t.refusals)
	}
	if t.lastClass != "" {
		s.LastErrorClass = t.lastClass
		e := t.lastError.UTC()
		s.LastErrorTime = &e
	}
	t.mu.Unlock()
	return s
}
