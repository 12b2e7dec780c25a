package receiver

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
)

// tokenFile is a bearer token read from a mounted Secret file, re-read when the file changes so
// that rotating the Secret needs no restart.
type tokenFile struct {
	path string

	mu      sync.Mutex
	token   []byte
	modTime time.Time
	checked time.Time
}

func newTokenFile(path string) (*tokenFile, error) {
	t := &tokenFile{path: path}
	if _, err := t.current(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tokenFile) current() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.token != nil && now.Sub(t.checked) < time.Second {
		return t.token, nil
	}
	t.checked = now
	fi, err := os.Stat(t.path)
	if err != nil {
		if t.token != nil {
			return t.token, nil // keep the last good token while a Secret update swaps the file
		}
		return nil, fmt.Errorf("receivers.bearerTokenFile: %w", err)
	}
	if t.token != nil && fi.ModTime().Equal(t.modTime) {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return nil, fmt.Errorf("receivers.bearerTokenFile: %w", err)
	}
	tok := []byte(strings.TrimSpace(string(b)))
	if len(tok) == 0 {
		return nil, errors.New("receivers.bearerTokenFile: the file is empty")
	}
	t.token, t.modTime = tok, fi.ModTime()
	return t.token, nil
}

// allow checks an Authorization header value ("Bearer <token>", the scheme in any case as RFC
// 7235 says) in constant time.
func (t *tokenFile) allow(header string) bool {
	if t == nil {
		return true
	}
	want, err := t.current()
	if err != nil {
		return false
	}
	scheme, got, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) == 1
}

// serverTLS builds the receivers' TLS config. The certificate is re-read when its files change
// (cert-manager renews it in place); a client CA turns on mutual TLS.
func serverTLS(c config.ServerTLS) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	kp := &keyPair{certFile: c.CertFile, keyFile: c.KeyFile}
	if _, err := kp.get(nil); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("receivers.tls.clientCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("receivers.tls.clientCAFile: no PEM certificates in %s", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.certFile)
	if err == nil && k.cert != nil && fi.ModTime().Equal(k.modTime) {
		return k.cert, nil
	}
	if err != nil && k.cert != nil {
		return k.cert, nil
	}
	cert, lerr := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if lerr != nil {
		if k.cert != nil {
			return k.cert, nil // a half-written rotation: keep serving the previous pair
		}
		return nil, fmt.Errorf("receivers.tls: loading %s and %s: %w", k.certFile, k.keyFile, lerr)
	}
	k.cert = &cert
	if fi != nil {
		k.modTime = fi.ModTime()
	}
	return k.cert, nil
}
