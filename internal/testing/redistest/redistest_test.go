package redistest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/redistest"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// writeAndCount does what the exporter does (XADD) and reads it back, so that a smoke
// test fails if the entry did not land where the client claims it did.
func writeAndCount(t *testing.T, ctx context.Context, c redis.Cmdable, stream string, want int64) {
	t.Helper()
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"span", stream}}).Result()
	if err != nil {
		t.Fatalf("XADD %s: %v", stream, err)
	}
	if n, err := c.XLen(ctx, stream).Result(); err != nil || n != want {
		t.Fatalf("XLEN %s = %d, %v; want %d", stream, n, err, want)
	}
	got, err := c.XRange(ctx, stream, id, id).Result()
	if err != nil || len(got) != 1 || got[0].Values["span"] != stream {
		t.Fatalf("XRANGE %s %s = %v, %v; want the entry just added", stream, id, got, err)
	}
}

func ping(t *testing.T, ctx context.Context, c redis.Cmdable) {
	t.Helper()
	if got, err := c.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
}

func TestStandaloneServesStreams(t *testing.T) {
	cases := map[string]struct {
		opts []redistest.Option
	}{
		"plaintext":             {},
		"TLS":                   {opts: []redistest.Option{redistest.WithTLS()}},
		"mutual TLS":            {opts: []redistest.Option{redistest.WithMutualTLS()}},
		"ACL user":              {opts: []redistest.Option{redistest.WithACL("")}},
		"mutual TLS and an ACL": {opts: []redistest.Option{redistest.WithMutualTLS(), redistest.WithACL("exporter")}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := redistest.Standalone(t, tc.opts...)
			ctx := ctxFor(t)
			c := srv.Client(t)
			ping(t, ctx, c)
			writeAndCount(t, ctx, c, "spans", 1)
			writeAndCount(t, ctx, c, "spans", 2)
		})
	}
}

func TestTLSServerRefusesPlaintextClients(t *testing.T) {
	for name, opt := range map[string]redistest.Option{
		"TLS":        redistest.WithTLS(),
		"mutual TLS": redistest.WithMutualTLS(),
	} {
		t.Run(name, func(t *testing.T) {
			srv := redistest.Standalone(t, opt)
			opts := srv.Options()
			opts.TLSConfig = nil
			opts.MaxRetries = -1
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			if got, err := c.Ping(ctxFor(t)).Result(); err == nil {
				t.Fatalf("plaintext PING to the TLS port %s = %q, want an error", srv.Addr(), got)
			}
			// Positive control: the same server answers a TLS client.
			ping(t, ctxFor(t), srv.Client(t))
		})
	}
}

func TestTLSClientVerification(t *testing.T) {
	cases := map[string]struct {
		mutual   bool
		tweak    func(*tls.Config)
		wantFail bool
	}{
		"a mutual TLS server refuses a client without a certificate": {
			mutual: true, tweak: func(c *tls.Config) { c.Certificates = nil }, wantFail: true,
		},
		"a mutual TLS server accepts the client certificate": {
			mutual: true, tweak: func(*tls.Config) {},
		},
		"a TLS server accepts a client without a certificate": {
			tweak: func(c *tls.Config) { c.Certificates = nil },
		},
		"a client that does not trust the test CA refuses the server": {
			tweak: func(c *tls.Config) { c.RootCAs = nil }, wantFail: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			opt := redistest.WithTLS()
			if tc.mutual {
				opt = redistest.WithMutualTLS()
			}
			srv := redistest.Standalone(t, opt)
			opts := srv.Options()
			tc.tweak(opts.TLSConfig)
			opts.MaxRetries = -1
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			_, err := c.Ping(ctxFor(t)).Result()
			if tc.wantFail && err == nil {
				t.Fatalf("PING succeeded, want the TLS handshake refused")
			}
			if !tc.wantFail && err != nil {
				t.Fatalf("PING: %v", err)
			}
			if err != nil {
				t.Logf("refused as expected: %v", err)
			}
		})
	}
}

func TestACLRefusesUnauthenticatedWrites(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithACL(""))
	acl := srv.ACL()
	if acl.Username() != redistest.DefaultUsername {
		t.Fatalf("Username() = %q, want %q", acl.Username(), redistest.DefaultUsername)
	}
	cases := map[string]struct {
		username, password string
		wantErr            string
	}{
		"a client without credentials gets NOAUTH":          {wantErr: "NOAUTH"},
		"the ACL user with a wrong password gets WRONGPASS": {username: acl.Username(), password: "wrong", wantErr: "WRONGPASS"},
		"the default user with any password gets WRONGPASS": {username: "default", password: acl.Password(), wantErr: "WRONGPASS"},
		"the ACL user with its password writes":             {username: acl.Username(), password: acl.Password()},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			opts := srv.Options()
			opts.Username, opts.Password, opts.MaxRetries = tc.username, tc.password, -1
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			err := c.XAdd(ctxFor(t), &redis.XAddArgs{Stream: "spans", Values: []string{"k", "v"}}).Err()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("XADD: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("XADD error = %v, want one containing %s", err, tc.wantErr)
			}
		})
	}
}

func TestSetPasswordRotatesCredentials(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithACL(""))
	acl := srv.ACL()
	ctx := ctxFor(t)
	oldPassword := acl.Password()
	before := srv.Client(t)
	ping(t, ctx, before) // an authenticated connection that outlives the rotation

	newPassword := redistest.RandomPassword(t)
	srv.SetPassword(t, newPassword)

	for path, want := range map[string]string{acl.UsernameFile(): acl.Username(), acl.PasswordFile(): newPassword} {
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Fatalf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if acl.Password() != newPassword {
		t.Fatalf("Password() = %q, want the new password", acl.Password())
	}
	opts := srv.Options()
	opts.Password, opts.MaxRetries = oldPassword, -1
	stale := redis.NewClient(opts)
	t.Cleanup(func() { _ = stale.Close() })
	if err := stale.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with the old password on a new connection: %v, want WRONGPASS", err)
	}
	ping(t, ctx, srv.Client(t))
	// Redis keeps authenticated connections after resetpass; rotation tests rely on it.
	writeAndCount(t, ctx, before, "spans", 1)

	srv.Stop()
	srv.Start()
	ping(t, ctx, srv.Client(t)) // ACL SAVE kept the new password across the restart
}

func TestStopStartKeepsPortAndData(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	addr, pid := srv.Addr(), srv.PID()
	c := srv.Client(t)
	for range 100 {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "spans", Values: []string{"k", "v"}}).Err(); err != nil {
			t.Fatalf("XADD: %v", err)
		}
	}

	srv.Stop()
	if got := srv.PID(); got != 0 {
		t.Fatalf("PID() after Stop = %d, want 0", got)
	}
	if err := processGone(pid); err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	opts.MaxRetries = -1
	down := redis.NewClient(opts)
	t.Cleanup(func() { _ = down.Close() })
	if err := down.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING after Stop succeeded")
	}

	srv.Start()
	if srv.Addr() != addr {
		t.Fatalf("Addr() after Start = %s, want %s", srv.Addr(), addr)
	}
	if srv.PID() == 0 || srv.PID() == pid {
		t.Fatalf("PID() after Start = %d, want a new process (was %d)", srv.PID(), pid)
	}
	// The client made before the restart reconnects to the same address.
	if n, err := c.XLen(ctx, "spans").Result(); err != nil || n != 100 {
		t.Fatalf("XLEN after restart = %d, %v; want 100", n, err)
	}
}

func TestKillEndsTheProcess(t *testing.T) {
	srv := redistest.Standalone(t)
	pid := srv.PID()
	srv.Kill()
	if err := processGone(pid); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	ping(t, ctxFor(t), srv.Client(t))
}

func TestWithConfigIsApplied(t *testing.T) {
	srv := redistest.Standalone(t,
		redistest.WithConfig("maxmemory", "2mb"),
		redistest.WithConfig("maxmemory-policy", "noeviction"))
	ctx := ctxFor(t)
	c := srv.Client(t)
	if got, err := c.ConfigGet(ctx, "maxmemory").Result(); err != nil || got["maxmemory"] != "2097152" {
		t.Fatalf("CONFIG GET maxmemory = %v, %v; want 2097152", got, err)
	}
	value := strings.Repeat("x", 64<<10)
	for i := range 200 {
		err := c.XAdd(ctx, &redis.XAddArgs{Stream: "spans", Values: []string{"k", value}}).Err()
		if redis.IsOOMError(err) {
			return
		}
		if err != nil {
			t.Fatalf("XADD %d: %v, want success or OOM", i, err)
		}
	}
	t.Fatalf("200 XADDs of 64 KiB fitted in maxmemory 2mb")
}

func TestCleanupLeavesNoProcess(t *testing.T) {
	var pids []int
	t.Run("inner", func(t *testing.T) {
		for _, srv := range []*redistest.Server{
			redistest.Standalone(t),
			redistest.Standalone(t, redistest.WithMutualTLS(), redistest.WithACL("")),
		} {
			pids = append(pids, srv.PID())
		}
	})
	for _, pid := range pids {
		if pid == 0 {
			t.Fatalf("a server was not running")
		}
		if err := processGone(pid); err != nil {
			t.Fatal(err)
		}
	}
}

// fatalRecorder stands in for the test given to the harness, to check what the harness
// fails with.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingRedisServerFailsInsteadOfSkipping(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.Standalone(rec)
	}()
	<-done
	if want := "redis-server not found: run hack/install-debs.sh redis"; !strings.Contains(rec.msg, want) {
		t.Fatalf("Standalone without redis-server failed with %q, want it to contain %q", rec.msg, want)
	}
}

func processGone(pid int) error {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("process %d still exists (kill -0: %w)", pid, err)
}

func TestStartFailureShowsTheRedisLog(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.Standalone(rec, redistest.WithConfig("no-such-directive", "x"))
	}()
	<-done
	t.Log(rec.msg)
	for _, want := range []string{"did not answer PING", "Bad directive", "no-such-directive"} {
		if !strings.Contains(rec.msg, want) {
			t.Fatalf("Standalone with a bad directive failed with:\n%s\nwant it to contain %q", rec.msg, want)
		}
	}
}
