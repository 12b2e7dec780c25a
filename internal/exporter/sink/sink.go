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
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tracestream/tracestream/internal/exporter/config"
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
	mode   string
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

	// Arguments that are the same for every command, boxed once so that building a
	// command does not allocate for them.
	maxLenArg   any
	ttlArg      any
	producerArg any

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
		s.maxLenArg = stream.MaxLen
	}
	if stream.TTL.Duration > 0 {
		s.ttlArg = ttlSeconds(stream.TTL.Duration)
	}
	if producerID != "" {
		s.producerArg = producerID
	}
	switch opts.mode {
	case config.ModeCluster:
		s.cluster = redis.NewClusterClient(opts.clusterOptions())
		s.client = s.cluster
	case config.ModeSentinel:
		s.client = redis.NewFailoverClient(opts.failoverOptions())
	default:
		s.client = redis.NewClient(opts.standaloneOptions())
		s.resp = newRESPConns(opts)
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
	mode             string
	addrs            []string
	cfg              config.Redis
	tls              *tlsSettings
	credentials      func(context.Context) (string, string, error)
	sentinelPassword string
	// progress is when bytes last moved on any connection to Redis (unix ns), when set.
	progress *atomic.Int64
}

func newClientOptions(cfg config.Redis) (*clientOptions, error) {
	o := &clientOptions{mode: cfg.Mode, cfg: cfg}
	if o.mode == "" {
		o.mode = config.ModeStandalone
	}
	switch o.mode {
	case config.ModeStandalone, config.ModeCluster, config.ModeSentinel:
	default:
		return nil, fmt.Errorf("redis.mode: %q is not one of %s, %s, %s", cfg.Mode,
			config.ModeStandalone, config.ModeCluster, config.ModeSentinel)
	}
	addrs, secure, err := parseAddresses(cfg.Addresses)
	if err != nil {
		return nil, err
	}
	o.addrs = addrs
	switch {
	case o.mode == config.ModeStandalone && len(addrs) != 1:
		return nil, fmt.Errorf("redis.addresses: standalone mode takes exactly one address, got %d", len(addrs))
	case o.mode == config.ModeSentinel && cfg.Sentinel.MasterName == "":
		return nil, errors.New("redis.sentinel.masterName: required in sentinel mode")
	case o.mode == config.ModeCluster && cfg.DB != 0:
		return nil, fmt.Errorf("redis.db: %d, but Redis Cluster has only database 0", cfg.DB)
	case cfg.DB < 0:
		return nil, fmt.Errorf("redis.db: %d must not be negative", cfg.DB)
	case cfg.PoolSize < 0:
		return nil, fmt.Errorf("redis.poolSize: %d must not be negative", cfg.PoolSize)
	case cfg.DialTimeout.Duration < 0:
		return nil, fmt.Errorf("redis.dialTimeout: %s must not be negative", cfg.DialTimeout.Duration)
	case cfg.ReadTimeout.Duration < 0:
		return nil, fmt.Errorf("redis.readTimeout: %s must not be negative", cfg.ReadTimeout.Duration)
	case cfg.WriteTimeout.Duration < 0:
		return nil, fmt.Errorf("redis.writeTimeout: %s must not be negative", cfg.WriteTimeout.Duration)
	}
	if o.tls, err = newTLSSettings(cfg.TLS, secure); err != nil {
		return nil, err
	}
	if o.credentials, err = newFileCredentials(cfg.UsernameFile, cfg.PasswordFile); err != nil {
		return nil, err
	}
	if cfg.Sentinel.PasswordFile != "" {
		if o.mode != config.ModeSentinel {
			return nil, fmt.Errorf("redis.sentinel.passwordFile: set, but mode is %s", o.mode)
		}
		if o.sentinelPassword, err = readSecretFile(cfg.Sentinel.PasswordFile); err != nil {
			return nil, fmt.Errorf("redis.sentinel.passwordFile: %w", err)
		}
	}
	return o, nil
}

// parseAddresses accepts host:port, redis://host:port and rediss://host:port, and reports
// whether the addresses ask for TLS. Mixing both schemes is an error: go-redis uses one TLS
// configuration for every node.
func parseAddresses(in []string) (addrs []string, secure bool, err error) {
	if len(in) == 0 {
		return nil, false, errors.New("redis.addresses: at least one address is required")
	}
	plain := false
	for i, a := range in {
		field := fmt.Sprintf("redis.addresses[%d]", i)
		hostPort := a
		switch {
		case strings.HasPrefix(a, "rediss://"):
			hostPort, secure = strings.TrimPrefix(a, "rediss://"), true
		case strings.HasPrefix(a, "redis://"):
			hostPort, plain = strings.TrimPrefix(a, "redis://"), true
		case strings.Contains(a, "://"):
			return nil, false, fmt.Errorf("%s: %q: only redis:// and rediss:// are supported", field, a)
		}
		if strings.Contains(hostPort, "@") {
			return nil, false, fmt.Errorf("%s: credentials in addresses are not supported, use redis.usernameFile and redis.passwordFile", field)
		}
		hostPort = strings.TrimSuffix(hostPort, "/")
		if err := checkHostPort(hostPort); err != nil {
			return nil, false, fmt.Errorf("%s: %q: %w", field, a, err)
		}
		addrs = append(addrs, hostPort)
	}
	if plain && secure {
		return nil, false, errors.New("redis.addresses: mixes redis:// and rediss:// addresses; TLS is all or nothing")
	}
	return addrs, secure, nil
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
	base := redis.NewDialer(&redis.Options{DialTimeout: o.cfg.DialTimeout.Duration, TLSConfig: o.tls.config()})
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

// common sets what every mode shares. go-redis copies ClusterOptions and FailoverOptions into
// per-node Options, so the modes' builders start from this one.
func (o *clientOptions) common() *redis.Options {
	return &redis.Options{
		CredentialsProviderContext: o.credentials,
		DB:                         o.cfg.DB,
		// -1: one attempt. Retrying a pipeline resends all of it.
		MaxRetries: -1,
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
		TLSConfig:        o.tls.config(),
		// Maintenance notifications are for Redis Enterprise endpoint moves; on open-source
		// Redis the handshake is one more rejected command per connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

func (o *clientOptions) standaloneOptions() *redis.Options {
	opt := o.common()
	opt.Addr = o.addrs[0]
	return opt
}

func (o *clientOptions) clusterOptions() *redis.ClusterOptions {
	c := o.common()
	return &redis.ClusterOptions{
		Addrs: o.addrs,
		// -1: no redirects either. ClusterClient retries a node's whole sub-pipeline after
		// a network error or a timeout, bounded by MaxRedirects, not MaxRetries; MOVED and
		// ASK then surface as redisconn.ClassMoved, and the caller's retry finds the new owner.
		MaxRedirects:               -1,
		CredentialsProviderContext: c.CredentialsProviderContext,
		MaxRetries:                 c.MaxRetries,
		DialerRetries:              c.DialerRetries,
		Dialer:                     c.Dialer,
		DialTimeout:                c.DialTimeout,
		ReadTimeout:                c.ReadTimeout,
		WriteTimeout:               c.WriteTimeout,
		ContextTimeoutEnabled:      c.ContextTimeoutEnabled,
		PoolSize:                   c.PoolSize,
		PipelinePoolSize:           c.PipelinePoolSize,
		ReadBufferSize:             c.ReadBufferSize,
		WriteBufferSize:            c.WriteBufferSize,
		TLSConfig:                  c.TLSConfig,
		MaintNotificationsConfig:   c.MaintNotificationsConfig,
		ClusterStateReloadInterval: clusterStateReloadInterval,
	}
}

func (o *clientOptions) failoverOptions() *redis.FailoverOptions {
	c := o.common()
	return &redis.FailoverOptions{
		MasterName:    o.cfg.Sentinel.MasterName,
		SentinelAddrs: o.addrs,
		// go-redis reads the sentinel password once; rotating it needs a restart.
		SentinelPassword:           o.sentinelPassword,
		CredentialsProviderContext: c.CredentialsProviderContext,
		DB:                         c.DB,
		MaxRetries:                 c.MaxRetries,
		DialerRetries:              c.DialerRetries,
		Dialer:                     c.Dialer,
		DialTimeout:                c.DialTimeout,
		ReadTimeout:                c.ReadTimeout,
		WriteTimeout:               c.WriteTimeout,
		ContextTimeoutEnabled:      c.ContextTimeoutEnabled,
		PoolSize:                   c.PoolSize,
		PipelinePoolSize:           c.PipelinePoolSize,
		ReadBufferSize:             c.ReadBufferSize,
		WriteBufferSize:            c.WriteBufferSize,
		TLSConfig:                  c.TLSConfig,
	}
}

// Probe pings every master with the configured credentials, reads each one's version and
// turns idempotent XADD on when all of them support it (and off otherwise). Call it at
// start-up and again after a failover or an upgrade.
func (s *Sink) Probe(ctx context.Context) (Info, error) {
	info := Info{Mode: s.mode}
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
	if s.mode == config.ModeSentinel {
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
