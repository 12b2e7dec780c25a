package sink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

func TestWritesLandOnStandalone(t *testing.T) {
	cases := map[string]struct {
		opts []redistest.Option
		// tweak adjusts the rendered configuration.
		tweak func(c *config.Redis, srv *redistest.Server)
	}{
		"plaintext":             {},
		"TLS with the CA file":  {opts: []redistest.Option{redistest.WithTLS()}},
		"mutual TLS":            {opts: []redistest.Option{redistest.WithMutualTLS()}},
		"an ACL user":           {opts: []redistest.Option{redistest.WithACL("")}},
		"mutual TLS and an ACL": {opts: []redistest.Option{redistest.WithMutualTLS(), redistest.WithACL("exporter")}},
		"a rediss:// address turns TLS on": {
			opts: []redistest.Option{redistest.WithTLS()},
			tweak: func(c *config.Redis, srv *redistest.Server) {
				c.TLS.Enabled = false
				c.Addresses = []string{"rediss://" + srv.Addr()}
			},
		},
		"a password file with a trailing newline": {
			opts: []redistest.Option{redistest.WithACL("")},
			tweak: func(c *config.Redis, srv *redistest.Server) {
				writeSecret(t, srv.ACL().PasswordFile(), srv.ACL().Password()+"\n")
			},
		},
		"database 3": {
			tweak: func(c *config.Redis, _ *redistest.Server) { c.DB = 3 },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := redistest.Standalone(t, tc.opts...)
			cfg := standaloneConfig(srv)
			if tc.tweak != nil {
				tc.tweak(&cfg, srv)
			}
			s := newSink(t, cfg, config.Stream{})
			ctx := ctxFor(t)
			info, err := s.Probe(ctx)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if len(info.Masters) != 1 || info.Masters[0].Version != "7.0.15" || info.Idempotent {
				t.Fatalf("Probe = %+v, want one master at 7.0.15 and no IDMP (Debian's redis-server)", info)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			ss := spans(50, "spans:checkout", "spans:cart")
			mustWrite(t, ctx, s, ss)
			opts := srv.Options()
			opts.DB = cfg.DB
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			checkLanded(t, ctx, c, ss)
			for _, key := range []string{"spans:checkout", "spans:cart"} {
				if n := xlen(t, ctx, c, key); n != 25 {
					t.Fatalf("XLEN %s = %d, want 25: one entry per span, no duplicates", key, n)
				}
			}
		})
	}
}

func TestTLSWithAnUntrustedCAFailsAsConnection(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithTLS())
	other := redistest.Standalone(t, redistest.WithTLS()) // a CA of its own
	cfg := standaloneConfig(srv)
	cfg.TLS.CAFile = other.TLS().CAFile()
	s := newSink(t, cfg, config.Stream{})
	errs := write(t, ctxFor(t), s, spans(3, "spans"))
	for i, err := range errs {
		if redisconn.Classify(err) != redisconn.ClassTLS || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("entry %d: %v (class %s), want a certificate error of class tls", i, err, redisconn.Classify(err))
		}
	}
}

func TestCredentialRotationThroughTheFiles(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithACL(""))
	acl := srv.ACL()
	s := newSink(t, standaloneConfig(srv), config.Stream{})
	ctx := ctxFor(t)
	mustWrite(t, ctx, s, spans(10, "spans"))

	newPassword := redistest.RandomPassword(t)
	srv.SetPassword(t, newPassword) // ACL SETUSER resetpass, and rewrites the password file
	// As a Secret created from a file an editor saved would hold it.
	writeSecret(t, acl.PasswordFile(), newPassword+"\n")
	admin := srv.Client(t)
	// Redis keeps authenticated connections after resetpass; close the sink's so that the
	// next write needs a new one, which must read the new password.
	killed, err := admin.ClientKillByFilter(ctx, "USER", acl.Username(), "SKIPME", "yes").Result()
	if err != nil || killed == 0 {
		t.Fatalf("CLIENT KILL USER %s = %d, %v; want the sink's connections closed", acl.Username(), killed, err)
	}
	connsBefore := infoField(t, ctx, admin, "stats", "total_connections_received")

	ss := spansFrom(10, 10, "spans")
	// The first write may find the killed connection in the pool before go-redis notices.
	wait.For(t, 10*time.Second, "writing after the rotation", func() error { return tryWrite(ctx, s, ss) })
	if after := infoField(t, ctx, admin, "stats", "total_connections_received"); after == connsBefore {
		t.Fatalf("total_connections_received stayed %s: the write did not dial a new connection", after)
	}
	checkLanded(t, ctx, admin, ss)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the rotation: %v", err)
	}
}

func TestAWrongPasswordIsAuthAndNotRetried(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithACL(""))
	cfg := standaloneConfig(srv)
	cfg.PasswordFile = t.TempDir() + "/password"
	writeSecret(t, cfg.PasswordFile, "not-the-password")
	s := newSink(t, cfg, config.Stream{})
	ctx := ctxFor(t)
	admin := srv.Client(t)
	statsBefore := authAttempts(t, ctx, admin)

	_, err := s.Probe(ctx)
	if redisconn.Classify(err) != redisconn.ClassAuth || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("Probe: %v (class %s), want WRONGPASS of class auth", err, redisconn.Classify(err))
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("Probe: %v shows the password", err)
	}
	const writes = 5
	for range writes {
		for i, err := range write(t, ctx, s, spans(100, "spans")) {
			if redisconn.Classify(err) != redisconn.ClassAuth || redisconn.Classify(err).Retryable() {
				t.Fatalf("entry %d: %v (class %s), want auth, not retryable", i, err, redisconn.Classify(err))
			}
		}
	}
	// Each attempt dials once and authenticates at most twice (HELLO, then go-redis's
	// fallback to AUTH). A client that retried would multiply this by its retry count.
	attempts := authAttempts(t, ctx, admin).minus(statsBefore)
	if limit := 2 * (writes + 1); attempts.auth > limit || attempts.auth == 0 {
		t.Fatalf("%d authentication attempts for %d operations, want 1 to %d", attempts.auth, writes+1, limit)
	}
	if attempts.conns > writes+1 {
		t.Fatalf("%d connections for %d operations, want at most one each", attempts.conns, writes+1)
	}
	if n := xlen(t, ctx, admin, "spans"); n != 0 {
		t.Fatalf("XLEN spans = %d, want nothing written with a wrong password", n)
	}
	t.Logf("%d connections, %d authentication attempts for %d operations", attempts.conns, attempts.auth, writes+1)
}

type authStats struct{ auth, conns int }

func (a authStats) minus(b authStats) authStats { return authStats{a.auth - b.auth, a.conns - b.conns} }

// authAttempts counts HELLO and AUTH calls (failed ones included) and connections, minus the
// one connection this call itself makes.
func authAttempts(t testing.TB, ctx context.Context, admin *redis.Client) authStats {
	t.Helper()
	var conns int
	if _, err := fmt.Sscan(infoField(t, ctx, admin, "stats", "total_connections_received"), &conns); err != nil {
		t.Fatal(err)
	}
	return authStats{auth: commandCalls(t, ctx, admin, "hello") + commandCalls(t, ctx, admin, "auth"), conns: conns}
}
