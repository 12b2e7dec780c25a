package redisconn_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestOptionsPerMode builds each mode's client from one Options against real servers, with
// the credentials and TLS from files as the exporter mounts them, and checks that the
// settings reach each mode's go-redis options.
func TestOptionsPerMode(t *testing.T) {
	standalone := redistest.Standalone(t, redistest.WithTLS(), redistest.WithACL(""))
	cluster := redistest.Cluster(t)
	sentinel := redistest.Sentinel(t)
	cases := map[string]struct {
		mode       redisconn.Mode
		addrs      []string
		masterName string
		security   *redistest.Server // TLS and ACL files from this server, when set
	}{
		"standalone over TLS with an ACL user": {mode: redisconn.ModeStandalone, addrs: []string{standalone.Addr()}, security: standalone},
		"cluster from one seed node":           {mode: redisconn.ModeCluster, addrs: cluster.Addrs()[:1]},
		"sentinel":                             {mode: redisconn.ModeSentinel, addrs: sentinel.SentinelAddrs(), masterName: sentinel.MasterName()},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := &redisconn.Options{Mode: tc.mode, ClusterStateReloadInterval: 2 * time.Second, UniversalOptions: redis.UniversalOptions{
				Addrs: tc.addrs, MasterName: tc.masterName, MaxRetries: -1, MaxRedirects: -1, PoolSize: 3, DisableIdentity: true,
			}}
			if tc.security != nil {
				files := redisconn.TLSFiles{CAFile: tc.security.TLS().CAFile()}
				var err error
				if o.TLSConfig, err = files.Load(true, ""); err != nil {
					t.Fatal(err)
				}
				acl := tc.security.ACL()
				if o.CredentialsProviderContext, err = redisconn.FileCredentials(acl.UsernameFile(), acl.PasswordFile(), ""); err != nil {
					t.Fatal(err)
				}
			}
			c := o.NewClient()
			defer func() { _ = c.Close() }()
			if err := c.Ping(ctxFor(t)).Err(); err != nil {
				t.Fatalf("PING: %v", err)
			}
			checkClient(t, tc.mode, c)
		})
	}
}

// checkClient checks that c is the client of mode and carries the settings given.
func checkClient(t *testing.T, mode redisconn.Mode, c redis.UniversalClient) {
	t.Helper()
	switch mode {
	case redisconn.ModeCluster:
		cc, ok := c.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("client %T, want *redis.ClusterClient", c)
		}
		o := cc.Options()
		// go-redis stores MaxRedirects -1 as 0 once the client is built: no redirect.
		if o.MaxRetries != -1 || o.MaxRedirects != 0 || o.PoolSize != 3 || o.ClusterStateReloadInterval != 2*time.Second {
			t.Errorf("cluster options: MaxRetries %d, MaxRedirects %d, PoolSize %d, ClusterStateReloadInterval %s; want -1, 0, 3, 2s",
				o.MaxRetries, o.MaxRedirects, o.PoolSize, o.ClusterStateReloadInterval)
		}
	default:
		sc, ok := c.(*redis.Client)
		if !ok {
			t.Fatalf("client %T, want *redis.Client", c)
		}
		o := sc.Options()
		// go-redis stores MaxRetries -1 as 0 once the client is built: no retry.
		if o.MaxRetries != 0 || o.PoolSize != 3 {
			t.Errorf("%s options: MaxRetries %d, PoolSize %d; want 0 (none), 3", mode, o.MaxRetries, o.PoolSize)
		}
	}
}
