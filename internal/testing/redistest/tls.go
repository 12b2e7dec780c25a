package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLS holds the PEM files of a CA made for one test, a server certificate it signed for
// 127.0.0.1, ::1 and localhost, and a client certificate it signed, so that tests can
// hand the same files to the exporter that the harness hands to Redis.
type TLS struct {
	dir        string
	mutual     bool
	caPEM      []byte
	pool       *x509.CertPool
	clientCert tls.Certificate
}

// NewTLS makes a CA and its certificates in a temporary directory, for a test that serves TLS
// itself (an exporter's receivers) without a Redis.
func NewTLS(t testing.TB) *TLS {
	t.Helper()
	return newTLS(t, t.TempDir(), false)
}

func newTLS(t testing.TB, dir string, mutual bool) *TLS {
	t.Helper()
	now := time.Now()
	caKey, caCert, caDER := mustIssue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	serverKey, _, serverDER := mustIssue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "redistest server"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		// ClientAuth too: replicas, sentinels and the cluster bus present this
		// certificate when they connect to a server that requires one.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	clientKey, _, clientDER := mustIssue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: DefaultUsername},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)

	c := &TLS{dir: dir, mutual: mutual, pool: x509.NewCertPool()}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	c.pool.AddCert(caCert)
	clientCertPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER})
	clientKeyPEM := mustKeyPEM(t, clientKey)
	files := map[string][]byte{
		c.CAFile():         c.caPEM,
		c.ServerCertFile(): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER}),
		c.ServerKeyFile():  mustKeyPEM(t, serverKey),
		c.ClientCertFile(): clientCertPEM,
		c.ClientKeyFile():  clientKeyPEM,
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("writing %s: %v", path, err)
		}
	}
	cert, err := tls.X509KeyPair(clientCertPEM, clientKeyPEM)
	if err != nil {
		t.Fatalf("loading the client certificate: %v", err)
	}
	c.clientCert = cert
	return c
}

// mustIssue creates a P-256 key and a certificate for it, signed by parent (self-signed
// when parent is nil). P-256 because key generation must not slow every test down.
func mustIssue(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating a key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("generating a serial number: %v", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("signing %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing %q: %v", tmpl.Subject.CommonName, err)
	}
	return key, cert, der
}

func mustKeyPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("encoding a key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Mutual reports whether the servers require client certificates (WithMutualTLS).
func (c *TLS) Mutual() bool { return c.mutual }

// CAPEM is the CA certificate, as a Secret's ca.crt would carry it.
func (c *TLS) CAPEM() []byte { return append([]byte(nil), c.caPEM...) }

// CAPool is the CA as a pool, for tests that build their own tls.Config.
func (c *TLS) CAPool() *x509.CertPool { return c.pool.Clone() }

// CAFile is the path of the CA certificate (PEM).
func (c *TLS) CAFile() string { return filepath.Join(c.dir, "ca.crt") }

// ServerCertFile is the path of the certificate Redis serves (PEM).
func (c *TLS) ServerCertFile() string { return filepath.Join(c.dir, "server.crt") }

// ServerKeyFile is the path of the server certificate's key (PKCS #8 PEM).
func (c *TLS) ServerKeyFile() string { return filepath.Join(c.dir, "server.key") }

// ClientCertFile is the path of a client certificate signed by the CA (PEM), what an
// exporter would mount as tls.crt for mutual TLS.
func (c *TLS) ClientCertFile() string { return filepath.Join(c.dir, "client.crt") }

// ClientKeyFile is the path of the client certificate's key (PKCS #8 PEM).
func (c *TLS) ClientKeyFile() string { return filepath.Join(c.dir, "client.key") }

// ClientConfig returns a new client configuration that trusts the CA and, for mutual
// TLS, presents the client certificate. ServerName is left empty: go-redis dials with
// tls.DialWithDialer, which verifies the IP address dialled against the certificate.
func (c *TLS) ClientConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.pool.Clone()}
	if c.mutual {
		cfg.Certificates = []tls.Certificate{c.clientCert}
	}
	return cfg
}
