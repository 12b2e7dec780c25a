package redislag

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tracestream/tracestream/internal/redisconn"
)

// dialTimeout bounds the TCP connect and the TLS handshake of one connection, as go-redis's
// default does; the caller's context may end them sooner.
const dialTimeout = 5 * time.Second

// poolSize is per node. Collect runs one command or pipeline at a time per node; the spare
// connection is for a cluster client reloading its slot map meanwhile.
const poolSize = 2

// Target is the Redis to read, as a RedisTraceExporter's spec.redis describes it, with the
// credentials already read from their Secret. Its String and MarshalLog leave the
// credentials out, but do not log it needlessly: it is the operator's copy of a Secret.
type Target struct {
	// Mode is a redisconn.Mode as the spec holds it: standalone (the default when empty),
	// cluster or sentinel.
	Mode string
	// Addresses are host:port, redis://host:port or rediss://host:port: the server, the
	// cluster's seed nodes, or the sentinels. rediss:// turns TLS on.
	Addresses []string
	// MasterName is the name the sentinels monitor the master under (sentinel mode).
	MasterName string
	// DB is the database number (standalone and sentinel; a cluster has only 0).
	DB int
	// Username is the ACL user; empty is the default user.
	Username string
	// Password is the ACL user's password; empty means no AUTH. Sentinels are not sent it.
	Password string
	// TLS, when not nil, turns TLS on for every node and sentinel. Collect clones it, so
	// the caller may share one value between calls.
	TLS *tls.Config
}

// String describes the target without its credentials, for logs and errors.
func (t Target) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v", redisconn.Mode(t.Mode).OrDefault(), t.Addresses)
	if t.MasterName != "" {
		fmt.Fprintf(&b, " master %q", t.MasterName)
	}
	if t.DB != 0 {
		fmt.Fprintf(&b, " db %d", t.DB)
	}
	if t.Username != "" || t.Password != "" {
		b.WriteString(" with credentials")
	}
	if t.TLS != nil {
		b.WriteString(" over TLS")
	}
	return b.String()
}

// GoString is String, so that %#v cannot print the password either.
func (t Target) GoString() string { return "redislag.Target{" + t.String() + "}" }

// MarshalLog is String, for logr sinks (zapr) that would otherwise log every field.
func (t Target) MarshalLog() any { return t.String() }

// client is a go-redis client for one Collect.
type client struct {
	mode       redisconn.Mode
	masterName string
	// handshakes are the TLS handshakes that failed or have not finished, which go-redis
	// hides behind the context's error when the caller's deadline passes first.
	handshakes handshakes
	// universal takes the pipelines: a ClusterClient routes each command by its key.
	universal redis.UniversalClient
	// cluster is universal in cluster mode, for ForEachMaster; single is universal otherwise.
	cluster *redis.ClusterClient
	single  *redis.Client
}

// newClient checks t with redisconn's rules and builds the client for its mode.
func newClient(t Target) (*client, error) {
	ep, err := redisconn.Endpoint{
		Mode: redisconn.Mode(t.Mode), Addresses: t.Addresses, MasterName: t.MasterName, DB: t.DB,
	}.Resolve("")
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	var tlsConfig *tls.Config
	switch {
	case t.TLS != nil:
		tlsConfig = t.TLS.Clone()
	case ep.AsksTLS:
		// rediss:// without a configuration: what an empty spec.redis.tls builds.
		if tlsConfig, err = redisconn.NewTLSConfig(redisconn.TLSPEM{}); err != nil {
			return nil, err
		}
	}
	c := &client{mode: ep.Mode, masterName: t.MasterName}
	opts := &redisconn.Options{Mode: ep.Mode, UniversalOptions: redis.UniversalOptions{
		Addrs:      ep.Addrs,
		MasterName: t.MasterName,
		Username:   t.Username,
		Password:   t.Password,
		DB:         t.DB,
		// TLS is up to dial, not go-redis: see redisconn.ErrTLSHandshake. go-redis uses
		// TLSConfig only in its own dialer.
		Dialer: c.dial(tlsConfig),
		// One attempt and one dial: the operator reconciles again later, and an error
		// now is what the RedisReachable condition needs, not a retry loop's delay.
		// MaxRedirects (cluster) stays at its default: XINFO is read-only, so following
		// a MOVED during a resharding is safe.
		MaxRetries:    -1,
		DialerRetries: 1,
		// The caller's deadline bounds Collect, not only the socket timeouts.
		ContextTimeoutEnabled: true,
		PoolSize:              poolSize,
		// Redis 7.0 rejects CLIENT SETINFO, and maintenance notifications are for Redis
		// Enterprise: two commands per connection that open-source Redis refuses.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}}
	c.universal = opts.NewClient()
	switch u := c.universal.(type) {
	case *redis.ClusterClient:
		c.cluster = u
	case *redis.Client:
		c.single = u
	}
	return c, nil
}

// dial connects to addr and, with a TLS configuration, completes the handshake, so that
// its failures, a timeout included, carry redisconn.ErrTLSHandshake.
func (c *client) dial(tlsConfig *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil || tlsConfig == nil {
			return conn, err
		}
		cfg := tlsConfig
		if cfg.ServerName == "" {
			// What tls.Dial does: verify the host dialled, a name or an IP address.
			host, _, _ := net.SplitHostPort(addr)
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tlsConn := tls.Client(conn, cfg)
		c.handshakes.begin(addr)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			err = fmt.Errorf("%w with %s: %w", redisconn.ErrTLSHandshake, addr, err)
			c.handshakes.end(addr, err)
			return nil, err
		}
		c.handshakes.end(addr, nil)
		return tlsConn, nil
	}
}

func (c *client) close() error { return c.universal.Close() }

// explain adds to err what go-redis left out. When the caller's deadline passes during a
// dial, go-redis reports only the deadline (it dials on its own goroutine), and a TLS
// handshake that hangs is what a TLS client on a plaintext port sees. When sentinels
// answered nil, go-redis calls them unreachable; they monitor no master by that name.
func (c *client) explain(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, redisconn.ErrTLSHandshake) {
		if hs := c.handshakes.unfinished(); hs != nil {
			err = fmt.Errorf("%w, during %w", err, hs)
		}
	}
	if c.mode == redisconn.ModeSentinel && errors.Is(err, redis.Nil) {
		err = fmt.Errorf("the sentinels that answered monitor no master named %q: %w", c.masterName, err)
	}
	return err
}

// handshakes tracks the TLS handshakes of one client by address: present while in
// flight, with the error once failed, removed once done. It is safe for concurrent use.
type handshakes struct {
	mu      sync.Mutex
	pending map[string]error
}

func (h *handshakes) begin(addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending == nil {
		h.pending = map[string]error{}
	}
	h.pending[addr] = nil
}

func (h *handshakes) end(addr string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.pending, addr)
		return
	}
	h.pending[addr] = err
}

// unfinished returns the failure of the handshake with the first address in sort order,
// or that it has not finished, or nil when every handshake succeeded.
func (h *handshakes) unfinished() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) == 0 {
		return nil
	}
	addr := slices.Sorted(maps.Keys(h.pending))[0]
	if err := h.pending[addr]; err != nil {
		return err
	}
	return fmt.Errorf("%w with %s: not finished", redisconn.ErrTLSHandshake, addr)
}

// scanStreams adds the names of the streams matching pattern to found: from every master
// in cluster mode, from the one server otherwise.
func (c *client) scanStreams(ctx context.Context, pattern string, found *topNames) error {
	if c.cluster == nil {
		return scanNode(ctx, c.single, pattern, found)
	}
	return c.cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		if err := scanNode(ctx, node, pattern, found); err != nil {
			return fmt.Errorf("master %s: %w", node.Options().Addr, err)
		}
		return nil
	})
}
