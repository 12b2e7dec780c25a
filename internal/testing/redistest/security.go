package redistest

import (
	"crypto/tls"
	"io"
	"testing"
)

// security is the TLS certificates and the ACL user that the nodes of a topology share; either
// is nil when the test did not ask for it. Servers and topologies embed it, so that every kind of
// client (standalone, cluster, failover) connects the same way.
type security struct {
	tls *TLS
	acl *ACL
}

func newSecurity(t testing.TB, cfg config) security {
	t.Helper()
	var sec security
	if cfg.tls {
		sec.tls = newTLS(t, t.TempDir(), cfg.mutualTLS)
	}
	if cfg.acl {
		sec.acl = newACL(t, t.TempDir(), cfg.aclUser)
	}
	return sec
}

// TLS returns the certificates the servers (and sentinels) use, or nil without WithTLS.
func (sec security) TLS() *TLS { return sec.tls }

// ACL returns the ACL user's credentials, or nil without WithACL (and for sentinels, which are
// not password-protected).
func (sec security) ACL() *ACL { return sec.acl }

// clientAuth is what client options need to connect: the client TLS configuration (nil without
// WithTLS) and the ACL user's current credentials (empty without WithACL). It is read on every
// call, so that options built after SetPassword carry the new password.
func (sec security) clientAuth() (tlsConfig *tls.Config, username, password string) {
	if sec.tls != nil {
		tlsConfig = sec.tls.ClientConfig()
	}
	if sec.acl != nil {
		username, password = sec.acl.Username(), sec.acl.Password()
	}
	return tlsConfig, username, password
}

// closeAtEnd closes c when t ends, for the clients the harness hands out.
func closeAtEnd[C io.Closer](t testing.TB, c C) C {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	return c
}
