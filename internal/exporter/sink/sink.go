// Package sink writes batches of encoded stream entries to Redis: one pipeline of XADDs per
// batch, to a standalone server, a Redis Cluster or a Sentinel-managed master. A standalone
// server is written to over connections of the sink's own (resp.go), which allocate nothing per
// entry; Cluster and Sentinel go through go-redis, for its slot routing and failover.
//
// The sink never lets go-redis resend anything. go-redis retries a pipeline by resending all
// of it, and a pipeline whose replies were cut has usually landed in part or in full, so a
// client-side retry turns one batch into two. Every write-path option that would resend is
// therefore off (MaxRetries and, for Cluster, MaxRedirects), each entry gets its own outcome,
// and the caller retries only the entries that failed with a retryable Class.
package sink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
)

const (
	// clusterStateReloadInterval bounds how long a ClusterClient keeps routing to a master
	// that died without answering MOVED: go-redis's default of 60 s left a shard without
	// writes for most of a minute after a kill -9, 2 s brought it down to about 3 s.
	clusterStateReloadInterval = 2 * time.Second
	// connBufferSize is the read and write buffer of each connection. A 1000-entry JSON
	// pipeline is ~700 KB, which a larger buffer sends in fewer syscalls.
	connBufferSize = 64 << 10
)

// Sink writes entries to Redis. It is safe for concurrent use: several Writes may run at once,
// each on its own connection.
type Sink struct {
	mode   redisconn.Mode
	client redis.UniversalClient
	// cluster is client when mode is cluster, for the per-master operations.
	cluster *redis.ClusterClient
	// resp is the standalone mode's write path; nil in the other modes, which write through
	// go-redis's cluster routing and sentinel failover.
	resp *respConns
	// progress is when bytes last moved on any connection to Redis (unix ns).
	progress atomic.Int64

	stream     config.Stream
	producerID string
	masterName string

	// Arguments that are the same for every command, encoded once; nil when not configured.
	maxLenArg   *bulkArg
	ttlArg      *bulkArg
	producerArg *bulkArg

	// idmp is whether XADD carries IDMP: set by Probe when every master supports it,
	// cleared by Write when a server rejects it.
	idmp atomic.Bool

	states sync.Pool // *writeState
}

// Info is what Probe learnt about the servers the sink writes to.
type Info struct {
	// Mode is the configured mode: standalone, cluster or sentinel.
	Mode string
	// Masters are the servers that take the writes, with the version each reported.
	Masters []Node
	// Idempotent reports whether Write sends idempotent XADDs (IDMP): every master is
	// Redis >= minIDMPVersion and a producer ID is configured.
	Idempotent bool
}

// Node is one master as Probe saw it.
type Node struct {
	// Addr is the address the client dialled.
	Addr string
	// Version is the Redis version the server reported, empty when it would not say
	// (INFO and HELLO both denied).
	Version string
	// IDMP reports whether this server supports idempotent XADD.
	IDMP bool
}

// New validates the configuration and builds the client for cfg.Mode. It does not connect:
// call Probe to check the servers and to turn on idempotent writes. An empty producerID
// keeps idempotent writes off.
func New(cfg config.Redis, stream config.Stream, producerID string) (*Sink, error) {
	if err := validateStream(stream); err != nil {
		return nil, err
	}
	opts, err := newClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sink{mode: opts.mode, stream: stream, producerID: producerID, masterName: cfg.Sentinel.MasterName}
	opts.progress = &s.progress
	if stream.MaxLen > 0 {
		s.maxLenArg = newBulkArg(strconv.FormatInt(stream.MaxLen, 10))
	}
	if stream.TTL.Duration > 0 {
		s.ttlArg = newBulkArg(strconv.FormatInt(ttlSeconds(stream.TTL.Duration), 10))
	}
	if producerID != "" {
		s.producerArg = newBulkArg(producerID)
	}
	s.client = opts.redisOptions().NewClient()
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		s.cluster = c
	case *redis.Client:
		if opts.mode == redisconn.ModeStandalone {
			s.resp = newRESPConns(opts)
		}
	}
	return s, nil
}

func validateStream(st config.Stream) error {
	switch {
	case st.MaxLen < 0:
		return fmt.Errorf("stream.maxLen: %d must not be negative", st.MaxLen)
	case st.MinIDAge.Duration < 0:
		return fmt.Errorf("stream.minIdAge: %s must not be negative", st.MinIDAge.Duration)
	case st.TTL.Duration < 0:
		return fmt.Errorf("stream.ttl: %s must not be negative", st.TTL.Duration)
	case st.TTL.Duration > 0 && st.TTL.Duration < time.Second:
		return fmt.Errorf("stream.ttl: %s is less than EXPIRE's resolution of one second", st.TTL.Duration)
	case st.MinIDAge.Duration > 0 && st.MinIDAge.Duration < time.Millisecond:
		return fmt.Errorf("stream.minIdAge: %s is less than a stream ID's resolution of one millisecond", st.MinIDAge.Duration)
	}
	return nil
}

// ttlSeconds rounds up, so that a stream never expires before its configured TTL.
func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// clientOptions is the validated configuration, before it becomes go-redis options.
type clientOptions struct {
	mode        redisconn.Mode
	addrs       []string
	cfg         config.Redis
	tls         *tls.Config
	credentials redisconn.CredentialsProvider
	// sentinelPassword is read once: go-redis reads the sentinel password only at start-up,
	// so rotating it needs a restart.
	sentinelPassword string
	// progress is when bytes last moved on any connection to Redis (unix ns), when set.
	progress *atomic.Int64
}

// newClientOptions checks cfg with redisconn's rules, then reads the files it names, so that
// a missing file fails at start-up under its key.
func newClientOptions(cfg config.Redis) (*clientOptions, error) {
	ep, err := cfg.Endpoint().Resolve(config.RedisKey)
	if err != nil {
		return nil, err
	}
	if err := checkNotNegative(cfg); err != nil {
		return nil, err
	}
	o := &clientOptions{mode: ep.Mode, addrs: ep.Addrs, cfg: cfg}
	tlsFiles := cfg.TLS.Files()
	if o.tls, err = tlsFiles.Load(tlsFiles.On(ep.AsksTLS), config.RedisKey); err != nil {
		return nil, err
	}
	if o.credentials, err = redisconn.FileCredentials(cfg.UsernameFile, cfg.PasswordFile, config.RedisKey); err != nil {
		return nil, err
	}
	if cfg.Sentinel.PasswordFile != "" {
		if o.sentinelPassword, err = redisconn.ReadSecretFile(cfg.Sentinel.PasswordFile); err != nil {
			return nil, fmt.Errorf("redis.sentinel.passwordFile: %w", err)
		}
	}
	return o, nil
}

// checkNotNegative refuses negative sizes and timeouts; zero means go-redis's default.
func checkNotNegative(cfg config.Redis) error {
	if cfg.PoolSize < 0 {
		return fmt.Errorf("redis.poolSize: %d must not be negative", cfg.PoolSize)
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{
		{"redis.dialTimeout", cfg.DialTimeout.Duration},
		{"redis.readTimeout", cfg.ReadTimeout.Duration},
		{"redis.writeTimeout", cfg.WriteTimeout.Duration},
	} {
		if t.d < 0 {
			return fmt.Errorf("%s: %s must not be negative", t.key, t.d)
		}
	}
	return nil
}

// LastProgress is when bytes last moved to or from Redis on any connection (unix ns). The
// pipeline's stall detector reads it, so that Redis slowly answering a large pipeline is not
// taken for Redis answering nothing.
func (s *Sink) LastProgress() int64 { return s.progress.Load() }

// progressConn records when bytes move on a go-redis connection (Cluster and Sentinel modes, and
// the standalone mode's commands other than the pipelined writes).
type progressConn struct {
	net.Conn
	at *atomic.Int64
}

func (c progressConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.at.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c progressConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.at.Store(time.Now().UnixNano())
	}
	return n, err
}

// dialer is go-redis's own dialer (timeout, TLS), its connections recording progress.
func (o *clientOptions) dialer() func(context.Context, string, string) (net.Conn, error) {
	base := redis.NewDialer(&redis.Options{DialTimeout: o.cfg.DialTimeout.Duration, TLSConfig: o.tls})
	if o.progress == nil {
		return base
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := base(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return progressConn{Conn: c, at: o.progress}, nil
	}
}

// redisOptions are the go-redis options for every mode; redisconn builds each mode's client
// from them.
func (o *clientOptions) redisOptions() *redisconn.Options {
	return &redisconn.Options{
		Mode: o.mode,
		UniversalOptions: redis.UniversalOptions{
			Addrs:      o.addrs,
			MasterName: o.cfg.Sentinel.MasterName,
			// go-redis reads the sentinel password once; rotating it needs a restart.
			SentinelPassword:           o.sentinelPassword,
			CredentialsProviderContext: o.credentials,
			DB:                         o.cfg.DB,
			// -1: one attempt. Retrying a pipeline resends all of it.
			MaxRetries: -1,
			// -1: no redirects either (cluster). ClusterClient retries a node's whole
			// sub-pipeline after a network error or a timeout, bounded by MaxRedirects, not
			// MaxRetries; MOVED and ASK then surface as redisconn.ClassMoved, and the caller's
			// retry finds the new owner.
			MaxRedirects: -1,
			// One dial per attempt: the caller backs off; a retry loop inside go-redis only
			// delays the error the caller needs to see.
			DialerRetries: 1,
			Dialer:        o.dialer(),
			DialTimeout:   o.cfg.DialTimeout.Duration,
			ReadTimeout:   o.cfg.ReadTimeout.Duration,
			WriteTimeout:  o.cfg.WriteTimeout.Duration,
			// The caller's deadline (delivery.requestTimeout) bounds a write, not only the
			// socket timeouts.
			ContextTimeoutEnabled: true,
			PoolSize:              o.cfg.PoolSize,
			// The sink only pipelines: one pool, sized by redis.poolSize, rather than
			// go-redis's separate pipeline pool of 10 that spills into the main one.
			PipelinePoolSize: -1,
			ReadBufferSize:   connBufferSize,
			WriteBufferSize:  connBufferSize,
			TLSConfig:        o.tls,
			// Maintenance notifications are for Redis Enterprise endpoint moves; on open-source
			// Redis the handshake is one more rejected command per connection. go-redis has no
			// such setting for a failover client.
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		},
		ClusterStateReloadInterval: clusterStateReloadInterval,
	}
}

// Probe pings every master with the configured credentials, reads each one's version and
// turns idempotent XADD on when all of them support it (and off otherwise). Call it at
// start-up and again after a failover or an upgrade.
func (s *Sink) Probe(ctx context.Context) (Info, error) {
	info := Info{Mode: string(s.mode)}
	var mu sync.Mutex
	probe := func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("pinging %s: %w", s.addrOf(c), err)
		}
		n := Node{Addr: s.addrOf(c)}
		n.Version, n.IDMP = serverVersion(ctx, c)
		mu.Lock()
		info.Masters = append(info.Masters, n)
		mu.Unlock()
		return nil
	}
	var err error
	if s.cluster != nil {
		err = s.cluster.ForEachMaster(ctx, probe)
	} else {
		err = probe(ctx, s.client.(*redis.Client))
	}
	if err != nil {
		s.idmp.Store(false)
		return info, fmt.Errorf("probing Redis (%s): %w", s.mode, err)
	}
	slices.SortFunc(info.Masters, func(a, b Node) int { return strings.Compare(a.Addr, b.Addr) })
	info.Idempotent = s.producerID != "" && len(info.Masters) > 0
	for _, n := range info.Masters {
		info.Idempotent = info.Idempotent && n.IDMP
	}
	s.idmp.Store(info.Idempotent)
	return info, nil
}

// addrOf names a node for Info. A failover client's Options().Addr is a placeholder: it
// dials whichever server the sentinels name.
func (s *Sink) addrOf(c *redis.Client) string {
	if s.mode == redisconn.ModeSentinel {
		return "master " + s.masterName + " (via sentinels)"
	}
	return c.Options().Addr
}

// Ping checks that every master answers, for readiness.
func (s *Sink) Ping(ctx context.Context) error {
	var err error
	if s.cluster != nil {
		err = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			if err := c.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("%s: %w", c.Options().Addr, err)
			}
			return nil
		})
	} else {
		err = s.client.Ping(ctx).Err()
	}
	if err != nil {
		return fmt.Errorf("pinging Redis (%s): %w", s.mode, err)
	}
	return nil
}

// Close closes the client and its connections. Writes in flight fail.
func (s *Sink) Close() error {
	if s.resp != nil {
		s.resp.close()
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("closing the Redis client: %w", err)
	}
	return nil
}
