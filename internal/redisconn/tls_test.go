package redisconn_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ping dials addr with cfg through go-redis and returns the PING's error.
func ping(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: cfg, MaxRetries: -1, DisableIdentity: true})
	defer func() { _ = c.Close() }()
	return c.Ping(ctxFor(t)).Err()
}

// TestTLSFromPEMAndFiles connects to a server that requires a client certificate, with the
// configuration built from PEM bytes (the operator's Secrets) and from files (the
// exporter's mounts), and checks that a wrong CA or a missing client certificate fails as
// TLS.
func TestTLSFromPEMAndFiles(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithMutualTLS())
	certs := srv.TLS()
	fromPEM, err := redisconn.NewTLSConfig(redisconn.TLSPEM{
		CA: certs.CAPEM(), Cert: readFile(t, certs.ClientCertFile()), Key: readFile(t, certs.ClientKeyFile()),
	})
	if err != nil {
		t.Fatalf("NewTLSConfig: %v", err)
	}
	files := redisconn.TLSFiles{CAFile: certs.CAFile(), CertFile: certs.ClientCertFile(), KeyFile: certs.ClientKeyFile()}
	fromFiles, err := files.Load(files.On(true), "redis.")
	if err != nil {
		t.Fatalf("TLSFiles.Load: %v", err)
	}
	if fromFiles.GetClientCertificate == nil {
		t.Error("TLSFiles.Load: the client certificate is not read at each handshake (no GetClientCertificate)")
	}
	for name, cfg := range map[string]*tls.Config{"from PEM": fromPEM, "from files": fromFiles} {
		if cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("%s: MinVersion %x, want TLS 1.2", name, cfg.MinVersion)
		}
		if err := ping(t, srv.Addr(), cfg); err != nil {
			t.Errorf("%s: PING over mutual TLS: %v", name, err)
		}
	}

	otherCA, err := redisconn.NewTLSConfig(redisconn.TLSPEM{
		CA: redistest.NewTLS(t).CAPEM(), Cert: readFile(t, certs.ClientCertFile()), Key: readFile(t, certs.ClientKeyFile()),
	})
	if err != nil {
		t.Fatal(err)
	}
	noClientCert, err := redisconn.NewTLSConfig(redisconn.TLSPEM{CA: certs.CAPEM()})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{"another CA": otherCA, "no client certificate": noClientCert} {
		if got := redisconn.Classify(ping(t, srv.Addr(), cfg)); got != redisconn.ClassTLS {
			t.Errorf("%s: class %s, want %s", name, got, redisconn.ClassTLS)
		}
	}
}

func TestNewTLSConfigRefusesBadPEM(t *testing.T) {
	certs := redistest.NewTLS(t)
	cert, key := readFile(t, certs.ClientCertFile()), readFile(t, certs.ClientKeyFile())
	cases := map[string]struct {
		pem     redisconn.TLSPEM
		wantErr string
	}{
		"a CA that is not PEM":             {pem: redisconn.TLSPEM{CA: []byte("hello")}, wantErr: "no PEM certificate"},
		"a certificate without its key":    {pem: redisconn.TLSPEM{Cert: cert}, wantErr: "without its key"},
		"a key without its certificate":    {pem: redisconn.TLSPEM{Key: key}, wantErr: "without its certificate"},
		"a key that is not the cert's key": {pem: redisconn.TLSPEM{Cert: cert, Key: []byte("hello")}, wantErr: "client certificate"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := redisconn.NewTLSConfig(tc.pem); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewTLSConfig = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestTLSFilesCheckAndLoad(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	cases := map[string]struct {
		files   redisconn.TLSFiles
		on      bool
		wantErr string
	}{
		"settings while TLS is off": {
			files:   redisconn.TLSFiles{CAFile: notPEM, ServerName: "r", InsecureSkipVerify: true},
			wantErr: "redis.tls.caFile: set but TLS is off: set redis.tls.enabled or use rediss:// addresses\nredis.tls.serverName: set but TLS is off",
		},
		"a certificate without its key": {
			files: redisconn.TLSFiles{CertFile: notPEM}, on: true, wantErr: "redis.tls.keyFile: required when redis.tls.certFile is set",
		},
		"a key without its certificate": {
			files: redisconn.TLSFiles{KeyFile: notPEM}, on: true, wantErr: "redis.tls.certFile: required when redis.tls.keyFile is set",
		},
		"a missing CA file": {
			files: redisconn.TLSFiles{CAFile: missing}, on: true, wantErr: "redis.tls.caFile: open " + missing,
		},
		"a CA file without PEM": {
			files: redisconn.TLSFiles{CAFile: notPEM}, on: true, wantErr: "redis.tls.caFile: " + notPEM + ": the CA holds no PEM certificate",
		},
		"an unreadable key pair": {
			files: redisconn.TLSFiles{CertFile: notPEM, KeyFile: notPEM}, on: true, wantErr: "redis.tls.certFile and keyFile: ",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := tc.files.Load(tc.on, "redis.")
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("Load = %v, %v; want an error starting with %q", cfg, err, tc.wantErr)
			}
		})
	}
	if cfg, err := (redisconn.TLSFiles{}).Load(false, "redis."); cfg != nil || err != nil {
		t.Errorf("Load with TLS off = %v, %v; want nil, nil", cfg, err)
	}
	if !(redisconn.TLSFiles{Enabled: true}).On(false) || (redisconn.TLSFiles{}).On(false) || !(redisconn.TLSFiles{}).On(true) {
		t.Error("On: want TLS on when enabled or when the addresses ask for it, and only then")
	}
}
