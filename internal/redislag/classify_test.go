package redislag

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestClassifyFailures makes Collect fail the ways a RedisTraceExporter can be
// misconfigured, against real servers, and checks the class and that no password leaks
// into the error. Each case has a positive control: the same server answers the right
// configuration (TestCollectSecured).
func TestClassifyFailures(t *testing.T) {
	acl := redistest.Standalone(t, redistest.WithACL(""))
	tlsSrv := redistest.Standalone(t, redistest.WithTLS())
	mtls := redistest.Standalone(t, redistest.WithMutualTLS())
	plain := redistest.Standalone(t)
	run(t, acl.Client(t), concat(entries("traces:a", 1), cmds(
		[]any{"ACL", "SETUSER", "no-xinfo", "on", ">no-xinfo-password", "~*", "+@all", "-xinfo"},
	)))

	cases := map[string]struct {
		target func() Target
		ctx    func(t *testing.T) context.Context
		want   redisconn.Cause
	}{
		"a wrong password is auth": {
			target: func() Target {
				tg := standaloneTarget(acl)
				tg.Password = "wrong-password"
				return tg
			},
			want: redisconn.CauseAuth,
		},
		"no credentials where the default user is off is auth": {
			target: func() Target {
				tg := standaloneTarget(acl)
				tg.Username, tg.Password = "", ""
				return tg
			},
			want: redisconn.CauseAuth,
		},
		"a user not allowed XINFO is auth": {
			target: func() Target {
				tg := standaloneTarget(acl)
				tg.Username, tg.Password = "no-xinfo", "no-xinfo-password"
				return tg
			},
			want: redisconn.CauseAuth,
		},
		"a CA that did not sign the server certificate is tls": {
			target: func() Target {
				tg := standaloneTarget(tlsSrv)
				tg.TLS.RootCAs = otherCA(t)
				return tg
			},
			want: redisconn.CauseTLS,
		},
		"a server name the certificate does not hold is tls": {
			target: func() Target {
				tg := standaloneTarget(tlsSrv)
				tg.TLS.ServerName = "redis.example.com"
				return tg
			},
			want: redisconn.CauseTLS,
		},
		"no client certificate for a mutual TLS server is tls": {
			target: func() Target {
				tg := standaloneTarget(mtls)
				tg.TLS.Certificates = nil
				return tg
			},
			want: redisconn.CauseTLS,
		},
		// Redis takes the ClientHello for the start of an inline command and waits for
		// its end: the handshake times out (after 5 s, or the caller's deadline).
		"TLS to a plaintext port is tls": {
			target: func() Target {
				tg := standaloneTarget(plain)
				tg.TLS = tlsSrv.TLS().ClientConfig()
				return tg
			},
			ctx:  shortDeadline,
			want: redisconn.CauseTLS,
		},
		"rediss:// to a plaintext port is tls": {
			target: func() Target { return Target{Addresses: []string{"rediss://" + plain.Addr()}} },
			ctx:    shortDeadline,
			want:   redisconn.CauseTLS,
		},
		// The server hangs up on a client that does not start a handshake: nothing on the
		// client's side tells it from a server that went away.
		"plaintext to a TLS port is unreachable": {
			target: func() Target {
				tg := standaloneTarget(tlsSrv)
				tg.TLS = nil
				return tg
			},
			want: redisconn.CauseUnreachable,
		},
		"a closed port is unreachable": {
			target: func() Target { return Target{Addresses: []string{closedPortAddr(t)}} },
			want:   redisconn.CauseUnreachable,
		},
		"a closed port in cluster mode is unreachable": {
			target: func() Target { return Target{Mode: "cluster", Addresses: []string{closedPortAddr(t)}} },
			want:   redisconn.CauseUnreachable,
		},
		"closed sentinel ports are unreachable": {
			target: func() Target {
				return Target{Mode: "sentinel", MasterName: "m", Addresses: []string{closedPortAddr(t), closedPortAddr(t)}}
			},
			want: redisconn.CauseUnreachable,
		},
		"a server that never answers is unreachable once the deadline passes": {
			target: func() Target { return Target{Addresses: []string{silentServer(t)}} },
			ctx:    shortDeadline,
			want:   redisconn.CauseUnreachable,
		},
		"an invalid target is other": {
			target: func() Target { return Target{Mode: "replicated", Addresses: []string{plain.Addr()}} },
			want:   redisconn.CauseOther,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := ctxFor(t)
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			target := tc.target()
			r, err := Collect(ctx, target, Query{Pattern: "traces:*"})
			if err == nil {
				t.Fatalf("Collect succeeded with %+v, want an error", r)
			}
			if got := redisconn.Classify(err).Cause(); got != tc.want {
				t.Errorf("Classify(%v).Cause() = %s, want %s", err, got, tc.want)
			}
			if target.Password != "" && strings.Contains(err.Error(), target.Password) {
				t.Errorf("the error contains the password: %v", err)
			}
			t.Logf("%s: %v", tc.want, err)
		})
	}
}

// TestCollectSecured is the positive control of TestClassifyFailures: the right
// credentials, CA and client certificate work, also given as rediss:// addresses.
func TestCollectSecured(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithMutualTLS(), redistest.WithACL(""))
	run(t, srv.Client(t), concat(entries("traces:a", 10), readBy("traces:a", "g", 3)))
	want := Report{
		Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
			{Name: "g", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
		}}},
		TotalLag: 7, MaxLag: 7,
	}
	for name, address := range map[string]string{
		"host:port":          srv.Addr(),
		"rediss://host:port": "rediss://" + srv.Addr(),
	} {
		t.Run(name, func(t *testing.T) {
			target := standaloneTarget(srv)
			target.Addresses = []string{address}
			got, err := Collect(ctxFor(t), target, Query{Pattern: "traces:*"})
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			assertReport(t, got, want)
		})
	}
}

// shortDeadline is a context for cases that can only end with a deadline.
func shortDeadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// otherCA returns a pool holding only a CA made here, which signed nothing Redis serves.
func otherCA(t testing.TB) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "another CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// silentServer accepts connections and never answers, like a server stuck or a
// firewall that swallows packets after the handshake.
func silentServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}
