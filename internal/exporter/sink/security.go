package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// newFileCredentials returns the provider go-redis calls whenever it dials, so that a rotated
// Secret (kubelet swaps the files) needs no restart, or nil when no file is configured. It
// reads the files once now, so that a missing file fails at start-up with the field's name.
func newFileCredentials(usernameFile, passwordFile string) (func(context.Context) (string, string, error), error) {
	if usernameFile == "" && passwordFile == "" {
		return nil, nil
	}
	if usernameFile != "" && passwordFile == "" {
		return nil, errors.New("redis.passwordFile: required when redis.usernameFile is set")
	}
	read := func() (username, password string, err error) {
		if usernameFile != "" {
			if username, err = readSecretFile(usernameFile); err != nil {
				return "", "", fmt.Errorf("redis.usernameFile: %w", err)
			}
		}
		if password, err = readSecretFile(passwordFile); err != nil {
			return "", "", fmt.Errorf("redis.passwordFile: %w", err)
		}
		return username, password, nil
	}
	if _, _, err := read(); err != nil {
		return nil, err
	}
	provider := func(context.Context) (string, string, error) {
		username, password, err := read()
		if err != nil {
			return "", "", fmt.Errorf("%w: %w", redisconn.ErrCredentials, err)
		}
		return username, password, nil
	}
	return provider, nil
}

// readSecretFile returns a mounted Secret key without its trailing newline (kubectl create
// secret --from-file keeps the one an editor adds). The content never goes into an error.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// tlsSettings is the validated TLS configuration; nil means plaintext.
type tlsSettings struct {
	roots              *x509.CertPool
	certFile, keyFile  string
	serverName         string
	insecureSkipVerify bool
}

func newTLSSettings(c config.ClientTLS, rediss bool) (*tlsSettings, error) {
	if !c.Enabled && !rediss {
		for _, f := range []struct{ name, value string }{
			{"caFile", c.CAFile}, {"certFile", c.CertFile}, {"keyFile", c.KeyFile}, {"serverName", c.ServerName},
		} {
			if f.value != "" {
				return nil, fmt.Errorf("redis.tls.%s: set, but TLS is off (set redis.tls.enabled or use rediss:// addresses)", f.name)
			}
		}
		if c.InsecureSkipVerify {
			return nil, errors.New("redis.tls.insecureSkipVerify: set, but TLS is off (set redis.tls.enabled or use rediss:// addresses)")
		}
		return nil, nil
	}
	t := &tlsSettings{
		certFile:           c.CertFile,
		keyFile:            c.KeyFile,
		serverName:         c.ServerName,
		insecureSkipVerify: c.InsecureSkipVerify,
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.caFile: %w", err)
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.caFile: no PEM certificate in %s", c.CAFile)
		}
	}
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		return nil, errors.New("redis.tls.keyFile: required when redis.tls.certFile is set")
	case c.CertFile == "" && c.KeyFile != "":
		return nil, errors.New("redis.tls.certFile: required when redis.tls.keyFile is set")
	case c.CertFile != "":
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			return nil, fmt.Errorf("redis.tls.certFile and keyFile: %w", err)
		}
	}
	return t, nil
}

// config returns the client TLS configuration, or nil for plaintext. The client certificate
// is read at every handshake, so that a renewed certificate needs no restart.
func (t *tlsSettings) config() *tls.Config {
	if t == nil {
		return nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            t.roots,
		ServerName:         t.serverName,
		InsecureSkipVerify: t.insecureSkipVerify, //nolint:gosec // only when the configuration says so
	}
	if t.certFile != "" {
		certFile, keyFile := t.certFile, t.keyFile
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("loading the client certificate (redis.tls.certFile): %w", err)
			}
			return &cert, nil
		}
	}
	return cfg
}

func checkHostPort(hostPort string) error {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
