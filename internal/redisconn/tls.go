package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSPEM is a client TLS configuration as PEM bytes, as the operator reads it from Secrets.
type TLSPEM struct {
	// CA verifies the servers' certificates; empty uses the system roots.
	CA []byte
	// Cert and Key are a client certificate for mutual TLS; both or neither.
	Cert, Key []byte
	// ServerName overrides the name verified in the servers' certificates; empty verifies
	// the host dialled.
	ServerName string
	// InsecureSkipVerify turns verification of the servers' certificates off.
	InsecureSkipVerify bool
}

// NewTLSConfig builds the client TLS configuration both planes use: TLS 1.2 at least, the
// CA's certificates as the only roots when a CA is given.
func NewTLSConfig(p TLSPEM) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         p.ServerName,
		InsecureSkipVerify: p.InsecureSkipVerify, //nolint:gosec // only when the configuration says so
	}
	if len(p.CA) > 0 {
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(p.CA) {
			return nil, errors.New("the CA holds no PEM certificate")
		}
	}
	switch {
	case len(p.Cert) > 0 && len(p.Key) == 0:
		return nil, errors.New("a client certificate without its key")
	case len(p.Cert) == 0 && len(p.Key) > 0:
		return nil, errors.New("a client key without its certificate")
	case len(p.Cert) > 0:
		cert, err := tls.X509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("the client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// TLSFiles is a client TLS configuration as mounted files, named as the exporter's
// redis.tls keys are.
type TLSFiles struct {
	// Enabled turns TLS on; rediss:// addresses do too.
	Enabled bool
	// CAFile verifies the servers' certificates; empty uses the system roots.
	CAFile string
	// CertFile and KeyFile are a client certificate for mutual TLS; both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name verified in the servers' certificates.
	ServerName string
	// InsecureSkipVerify turns verification of the servers' certificates off.
	InsecureSkipVerify bool
}

// On reports whether TLS is on: Enabled, or addresses that ask for it (rediss://).
func (f TLSFiles) On(addressesAskTLS bool) bool { return f.Enabled || addressesAskTLS }

// Check reports settings that need no file read: a certificate without its key or the
// reverse, and settings made while TLS is off, which would be silently ignored. Keys in the
// errors start with prefix, as in Endpoint.Resolve.
func (f TLSFiles) Check(on bool, prefix string) error {
	var errs []error
	if !on {
		for _, s := range []struct {
			key string
			set bool
		}{
			{"tls.caFile", f.CAFile != ""},
			{"tls.certFile", f.CertFile != ""},
			{"tls.keyFile", f.KeyFile != ""},
			{"tls.serverName", f.ServerName != ""},
			{"tls.insecureSkipVerify", f.InsecureSkipVerify},
		} {
			if s.set {
				errs = append(errs, fieldError(prefix, s.key,
					"set but TLS is off: set "+prefix+"tls.enabled or use rediss:// addresses"))
			}
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		errs = append(errs, fieldError(prefix, "tls.keyFile", "required when "+prefix+"tls.certFile is set"))
	case f.CertFile == "" && f.KeyFile != "":
		errs = append(errs, fieldError(prefix, "tls.certFile", "required when "+prefix+"tls.keyFile is set"))
	}
	return errors.Join(errs...)
}

// Load checks f (see Check) and builds its configuration with NewTLSConfig, or returns nil
// when TLS is off. The files are read now, so that a missing or broken one fails at
// start-up under its key; the client certificate is read again at every handshake, so
// that a renewed certificate (a rotated Secret) needs no restart.
func (f TLSFiles) Load(on bool, prefix string) (*tls.Config, error) {
	if err := f.Check(on, prefix); err != nil || !on {
		return nil, err
	}
	p := TLSPEM{ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		var err error
		if p.CA, err = os.ReadFile(f.CAFile); err != nil {
			return nil, wrapField(prefix, "tls.caFile", err)
		}
	}
	cfg, err := NewTLSConfig(p)
	if err != nil {
		return nil, wrapField(prefix, "tls.caFile", fmt.Errorf("%s: %w", f.CAFile, err))
	}
	if f.CertFile == "" {
		return cfg, nil
	}
	if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
		return nil, wrapField(prefix, "tls.certFile and keyFile", err)
	}
	certFile, keyFile := f.CertFile, f.KeyFile
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the client certificate (%stls.certFile): %w", prefix, err)
		}
		return &cert, nil
	}
	return cfg, nil
}
