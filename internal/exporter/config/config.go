// Package config is the exporter's configuration: the one type that the operator renders into a
// ConfigMap and that the exporter parses at start-up. The JSON/YAML keys are a contract
// (docs/exporter-config.md): renaming one breaks every deployed ConfigMap.
package config

import (
	"encoding/json"
	"reflect"
	"strconv"
	"time"

	"github.com/tracestream/tracestream/internal/redisconn"
)

// Redis modes: redisconn's, as the strings Redis.Mode holds.
const (
	ModeStandalone = string(redisconn.ModeStandalone)
	ModeCluster    = string(redisconn.ModeCluster)
	ModeSentinel   = string(redisconn.ModeSentinel)
)

// Stream entry encodings.
const (
	FormatJSON = "json"
	FormatFlat = "flat"
	FormatOTLP = "otlp"
)

// Config is the whole exporter configuration. Build one with Default or Load; a Config that did
// not come from Load should pass Validate before it is used.
//
// The zero value of a field is either its default or invalid, never a third meaning: a renderer
// that omits zero fields (yaml.Marshal does, through omitempty and omitzero) loses nothing.
type Config struct {
	Receivers Receivers `json:"receivers"`
	Redis     Redis     `json:"redis"`
	Stream    Stream    `json:"stream"`
	Filter    Filter    `json:"filter"`
	Delivery  Delivery  `json:"delivery"`
	Admin     Admin     `json:"admin"`
	// Telemetry is omitted while it is all defaults, so that configurations rendered before it
	// existed, and their hashes, stay as they were.
	Telemetry Telemetry `json:"telemetry,omitzero"`
}

// Default returns the configuration used for every key that the file, the environment and the
// flags leave unset. It needs no I/O, so the operator can call it too; Delivery.ProducerID stays
// empty and the exporter resolves it to its hostname.
func Default() Config {
	return Config{
		Receivers: Receivers{
			GRPC: GRPC{Endpoint: ":4317", MaxConcurrentStreams: 100, MaxHeaderListBytes: 16 << 10, MaxBufferedBytes: 64 << 20,
				ReadTimeout: Duration{30 * time.Second}, IdleTimeout: Duration{time.Minute},
				MaxConnectionAge: Duration{30 * time.Minute}, MaxConnectionAgeGrace: Duration{time.Minute}},
			HTTP: HTTP{Endpoint: ":4318", ReadHeaderTimeout: Duration{10 * time.Second},
				ReadTimeout: Duration{30 * time.Second}, IdleTimeout: Duration{time.Minute}},
			MaxRequestBytes: 16 << 20,
			MaxConnections:  4096,
		},
		Redis: Redis{
			Mode:         ModeStandalone,
			Addresses:    []string{"localhost:6379"},
			DialTimeout:  Duration{5 * time.Second},
			ReadTimeout:  Duration{3 * time.Second},
			WriteTimeout: Duration{3 * time.Second},
			PoolSize:     8,
		},
		Stream: Stream{
			KeyTemplate:  "traces:{service.name}",
			Fallback:     "unknown",
			Format:       FormatJSON,
			PipelineSize: 1000,
			// FlushInterval stays 0: the pipeline then sends as soon as a writer is free (group
			// commit), so batches grow by themselves while Redis is busy and light load pays no
			// added latency. A fixed wait would only delay every pipeline that is not yet full.
			Writers: 4,
			MaxKeys: DefaultMaxKeys,
		},
		Delivery: Delivery{
			MaxInFlightSpans:     200_000,
			MaxInFlightBytes:     256 << 20,
			RetryInitialInterval: Duration{50 * time.Millisecond},
			RetryMaxInterval:     Duration{5 * time.Second},
			RequestTimeout:       Duration{10 * time.Second},
			DrainTimeout:         Duration{20 * time.Second},
			StallTimeout:         Duration{time.Second},
		},
		Admin: Admin{Endpoint: ":8888", ReadHeaderTimeout: Duration{5 * time.Second}, ReadTimeout: Duration{10 * time.Second},
			WriteTimeout: Duration{time.Minute}, IdleTimeout: Duration{30 * time.Second}, MaxConnections: 64},
	}
}

// Receivers configures the OTLP endpoints.
type Receivers struct {
	GRPC GRPC `json:"grpc"`
	HTTP HTTP `json:"http"`
	// MaxRequestBytes bounds a request body after decompression.
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
	// MaxConnections bounds the client connections open at once on each receiver. When a
	// connection takes the last slot, the one that has waited longest for a request is closed to
	// make room (never one with a request in progress); with every connection busy, a new one
	// waits in the kernel's accept queue until one closes.
	MaxConnections int `json:"maxConnections,omitempty"`
	// TLS enables TLS (and mTLS with clientCAFile) on both receivers.
	TLS ServerTLS `json:"tls"`
	// BearerTokenFile, when set, requires "Authorization: Bearer <token>" on every request. The file
	// is re-read when it changes, so a rotated Secret needs no restart.
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
}

// GRPC configures the OTLP/gRPC receiver.
type GRPC struct {
	// Endpoint is the host:port to listen on.
	Endpoint string `json:"endpoint,omitempty"`
	// MaxConcurrentStreams bounds the concurrent gRPC streams (requests) per client connection.
	MaxConcurrentStreams uint32 `json:"maxConcurrentStreams,omitempty"`
	// MaxHeaderListBytes bounds a request's decoded header list (HPACK-indexed fields count at
	// their full size). OTLP metadata is small; a larger list is refused before any handler runs.
	MaxHeaderListBytes uint32 `json:"maxHeaderListBytes,omitempty"`
	// MaxBufferedBytes bounds the message bytes that gRPC requests have sent and not yet been
	// answered for, across all connections, counted as they are read off the wire (before
	// delivery.maxInFlightBytes sees a complete message). At the bound, connections are not read
	// until a request ends: clients wait, as with TCP flow control.
	MaxBufferedBytes int64 `json:"maxBufferedBytes,omitempty"`
	// ReadTimeout bounds how long a request's message may take to arrive once its headers are in:
	// a message stalled short of its last byte ends its stream there.
	ReadTimeout Duration `json:"readTimeout,omitzero"`
	// IdleTimeout closes a connection that has had no request open for this long (GOAWAY, then
	// close); the server also pings a connection silent for this long and closes it when the ping
	// is not answered within 20s.
	IdleTimeout Duration `json:"idleTimeout,omitzero"`
	// MaxConnectionAge closes every connection after this long (GOAWAY: clients reconnect, which
	// also spreads them over new replicas); requests in flight then get MaxConnectionAgeGrace to
	// finish before the connection is cut.
	MaxConnectionAge      Duration `json:"maxConnectionAge,omitzero"`
	MaxConnectionAgeGrace Duration `json:"maxConnectionAgeGrace,omitzero"`
}

// HTTP configures the OTLP/HTTP receiver.
type HTTP struct {
	// Endpoint is the host:port to listen on.
	Endpoint string `json:"endpoint,omitempty"`
	// ReadHeaderTimeout bounds how long a client may take to send its request headers.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout,omitzero"`
	// ReadTimeout bounds how long a client may take to send a whole request, headers and body:
	// a body that trickles in is cut there.
	ReadTimeout Duration `json:"readTimeout,omitzero"`
	// IdleTimeout closes a keep-alive connection that has sent no request for this long.
	IdleTimeout Duration `json:"idleTimeout,omitzero"`
}

// ServerTLS is a receiver's TLS configuration.
type ServerTLS struct {
	// CertFile and KeyFile are the serving certificate and its key (PEM); both or neither.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// ClientCAFile, when set, requires clients to present a certificate signed by one of its CAs.
	ClientCAFile string `json:"clientCAFile,omitempty"`
}

// Enabled reports whether the receivers serve TLS.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// Redis says where and how to write.
type Redis struct {
	// Mode is ModeStandalone, ModeCluster or ModeSentinel (a redisconn.Mode; empty is
	// standalone).
	Mode string `json:"mode,omitempty"`
	// Addresses are host:port, redis://host:port or rediss://host:port: the server
	// (standalone), seed nodes (cluster) or the sentinels (sentinel). rediss:// turns TLS on, as
	// TLS.Enabled does.
	Addresses []string `json:"addresses,omitempty"`
	// Sentinel is used only in sentinel mode.
	Sentinel Sentinel `json:"sentinel"`
	// DB is the database number; it must be 0 in cluster mode.
	DB int `json:"db,omitempty"`
	// UsernameFile and PasswordFile hold ACL credentials (mounted Secret keys). They are read
	// whenever a connection is dialled, so rotating the Secret needs no restart.
	UsernameFile string `json:"usernameFile,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// TLS is the TLS configuration towards every Redis node (and the sentinels).
	TLS ClientTLS `json:"tls"`
	// DialTimeout, ReadTimeout and WriteTimeout bound each connection's operations.
	DialTimeout  Duration `json:"dialTimeout,omitzero"`
	ReadTimeout  Duration `json:"readTimeout,omitzero"`
	WriteTimeout Duration `json:"writeTimeout,omitzero"`
	// PoolSize is the number of connections per Redis node.
	PoolSize int `json:"poolSize,omitempty"`
}

// Sentinel configures sentinel mode; Redis.Addresses are then the sentinels.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master under; required in sentinel mode.
	MasterName string `json:"masterName,omitempty"`
	// PasswordFile authenticates to the sentinels themselves, when they require it.
	PasswordFile string `json:"passwordFile,omitempty"`
}

// ClientTLS is the TLS configuration towards Redis.
type ClientTLS struct {
	// Enabled turns TLS on; rediss:// addresses do too.
	Enabled bool `json:"enabled,omitempty"`
	// CAFile verifies the servers' certificates; empty uses the system roots.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a client certificate for mutual TLS; both or neither.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// ServerName overrides the name verified in the servers' certificates.
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify disables verification of the servers' certificates (tests only).
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// Stream says what each span becomes.
type Stream struct {
	// KeyTemplate names the stream of each span: {attr} placeholders, {{ and }} for literal braces.
	KeyTemplate string `json:"keyTemplate,omitempty"`
	// Fallback replaces a placeholder whose attribute is missing.
	Fallback string `json:"fallback,omitempty"`
	// Format is the entry encoding: FormatJSON, FormatFlat or FormatOTLP.
	Format string `json:"format,omitempty"`
	// MaxLen trims each stream with MAXLEN ~ on every XADD; 0 disables.
	MaxLen int64 `json:"maxLen,omitempty"`
	// MinIDAge trims entries older than this with MINID ~; 0 disables.
	MinIDAge Duration `json:"minIdAge,omitzero"`
	// TTL sets EXPIRE on each written stream, refreshed at most once per key per pipeline.
	TTL Duration `json:"ttl,omitzero"`
	// PipelineSize is the most XADDs sent in one pipeline.
	PipelineSize int `json:"pipelineSize,omitempty"`
	// FlushInterval is how long a pipeline waits to fill before it is sent; 0 sends it as soon as
	// a writer is free (group commit).
	FlushInterval Duration `json:"flushInterval,omitzero"`
	// Writers is the number of pipelines in flight at once.
	Writers int `json:"writers,omitempty"`
	// MaxKeys bounds the distinct stream keys the exporter writes (a key is live while it is
	// written at least once per TTL; without a TTL, for ever): a span whose key would be a new one
	// past the bound is written to OverflowKey instead.
	MaxKeys int `json:"maxKeys,omitempty"`
	// OverflowKey takes the spans past MaxKeys; by default the key template with every
	// placeholder rendered as "overflow".
	OverflowKey string `json:"overflowKey,omitempty"`
}

// DefaultMaxKeys is stream.maxKeys when unset: far more services than one exporter serves, far
// fewer streams than would strain Redis.
const DefaultMaxKeys = 10_000

// Filter selects spans by their resource's service.name.
type Filter struct {
	// IncludeServices, when set, keeps only the spans of these services.
	IncludeServices []string `json:"includeServices,omitempty"`
	// ExcludeServices, when set, drops the spans of these services.
	ExcludeServices []string `json:"excludeServices,omitempty"`
}

// Delivery bounds memory and retries.
type Delivery struct {
	// MaxInFlightSpans bounds the spans accepted but not yet acknowledged by Redis; past it,
	// clients get a retryable "resource exhausted".
	MaxInFlightSpans int `json:"maxInFlightSpans,omitempty"`
	// MaxInFlightBytes bounds the memory that requests hold in flight, across both receivers:
	// request bodies while they are read and decoded, and their encoded entries until they are
	// answered. A request that does not fit is told to retry (RESOURCE_EXHAUSTED / HTTP 429).
	MaxInFlightBytes int64 `json:"maxInFlightBytes,omitempty"`
	// RetryInitialInterval and RetryMaxInterval shape the exponential backoff (with jitter) of
	// writes that failed with a retryable error.
	RetryInitialInterval Duration `json:"retryInitialInterval,omitzero"`
	RetryMaxInterval     Duration `json:"retryMaxInterval,omitzero"`
	// RequestTimeout bounds how long a request waits for Redis before the client is told to retry.
	RequestTimeout Duration `json:"requestTimeout,omitzero"`
	// DrainTimeout bounds the wait for in-flight writes at shutdown.
	DrainTimeout Duration `json:"drainTimeout,omitzero"`
	// StallTimeout is how long Redis may acknowledge nothing while a write waits before new
	// requests are refused at once (retryable "unavailable") instead of each waiting for
	// RequestTimeout: backpressure within about this long of a partition or an outage.
	StallTimeout Duration `json:"stallTimeout,omitzero"`
	// ProducerID names this exporter for idempotent XADD (Redis >= 8.6); defaults to the hostname.
	ProducerID string `json:"producerId,omitempty"`
	// PersistentQueue, when its directory is set, puts a write-ahead log between the receivers
	// and Redis.
	PersistentQueue PersistentQueue `json:"persistentQueue,omitzero"`
}

// PersistentQueue configures the write-ahead log. With it, a request is acknowledged once its
// entries are fsynced to the log, and the log is written to Redis in order; it survives a crash
// or a restart of the process. Without it (the default), a request is acknowledged once Redis
// has its entries.
type PersistentQueue struct {
	// Directory holds the log; empty disables the persistent queue.
	Directory string `json:"directory,omitempty"`
	// MaxBytes bounds the log on disk (0: DefaultPersistentQueueBytes); when full, clients are
	// told to retry (backpressure).
	MaxBytes int64 `json:"maxBytes,omitempty"`
}

// DefaultPersistentQueueBytes bounds a persistent queue whose maxBytes is not set.
const DefaultPersistentQueueBytes = 1 << 30

// Bound is MaxBytes, or its default when unset.
func (q PersistentQueue) Bound() int64 {
	if q.MaxBytes == 0 {
		return DefaultPersistentQueueBytes
	}
	return q.MaxBytes
}

// Admin configures the health, metrics and status endpoint.
type Admin struct {
	// Endpoint is the host:port to listen on.
	Endpoint string `json:"endpoint,omitempty"`
	// Debug enables GET /spans, which returns stream entries, and the Go profiler under
	// /debug/pprof/.
	Debug bool `json:"debug,omitempty"`
	// ReadHeaderTimeout bounds how long a client may take to send its request headers.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout,omitzero"`
	// ReadTimeout bounds how long a client may take to send a whole request, headers and body.
	ReadTimeout Duration `json:"readTimeout,omitzero"`
	// WriteTimeout bounds the time from the end of a request's headers to the end of its answer:
	// a /metrics scrape, or a /debug/pprof profile, which must ask for fewer seconds than this.
	WriteTimeout Duration `json:"writeTimeout,omitzero"`
	// IdleTimeout closes a keep-alive connection that has sent no request for this long.
	IdleTimeout Duration `json:"idleTimeout,omitzero"`
	// MaxConnections bounds the connections open at once. At the bound a new connection waits
	// in the kernel's accept queue until one closes; connections that are between requests are
	// closed to make room for it (see docs/operations.md).
	MaxConnections int `json:"maxConnections,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5s", "100ms").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string. null leaves the duration as it was (the default, when
// decoding over Default()), and a bare 0 is accepted since it needs no unit.
//
// A bad value is reported as a *json.UnmarshalTypeError so that encoding/json adds the key path.
func (d *Duration) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		return nil
	case "0":
		d.Duration = 0
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	d.Duration = v
	return nil
}

// IsZero reports whether the duration is 0; the omitzero tag uses it to drop unset durations.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// jsonKind names the kind of a JSON value for an error message, as encoding/json does.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "empty value"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	default:
		return "number " + string(b)
	}
}
