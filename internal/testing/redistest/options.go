package redistest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// DefaultUsername is the ACL user created by WithACL("") so that tests and rendered
// exporter configuration agree on a name without repeating it.
const DefaultUsername = "tracestream"

// Option configures a topology. Options apply to every data node of a topology; only
// TLS also applies to sentinels, because go-redis uses one TLS configuration for both.
type Option func(*config)

type config struct {
	directives  [][]string
	tls         bool
	mutualTLS   bool
	acl         bool
	aclUser     string
	replicas    int
	nodeTimeout time.Duration
}

// prepare finds redis-server and applies opts, failing t with the constructor's name when an
// option is invalid.
func prepare(t testing.TB, constructor string, opts []Option) (bin string, cfg config) {
	t.Helper()
	bin = lookPath(t)
	cfg = newConfig(opts)
	if err := cfg.validate(); err != nil {
		t.Fatalf("redistest.%s: %v", constructor, err)
	}
	return bin, cfg
}

func newConfig(opts []Option) config {
	c := config{replicas: 1, nodeTimeout: time.Second}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithConfig appends a redis.conf directive (for example WithConfig("maxmemory", "1mb")).
// It is written after the harness's own directives, so it overrides them.
func WithConfig(directive string, args ...string) Option {
	return func(c *config) {
		c.directives = append(c.directives, append([]string{directive}, args...))
	}
}

// WithTLS makes the servers listen for TLS only (port 0, tls-port) with certificates
// signed by a CA generated for the test; clients need no certificate.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithMutualTLS is WithTLS with tls-auth-clients yes: clients must present a certificate
// signed by the test CA.
func WithMutualTLS() Option {
	return func(c *config) { c.tls, c.mutualTLS = true, true }
}

// WithACL creates the ACL user username (DefaultUsername when empty) with a random
// password and disables the default user, so that only authenticated clients can write.
func WithACL(username string) Option {
	return func(c *config) {
		if username == "" {
			username = DefaultUsername
		}
		c.acl, c.aclUser = true, username
	}
}

// WithReplicas sets the number of replicas per master for Cluster and Sentinel
// (default 1). Standalone ignores it.
func WithReplicas(n int) Option {
	return func(c *config) { c.replicas = n }
}

// WithNodeTimeout sets cluster-node-timeout (Cluster) and down-after-milliseconds
// (Sentinel). The default of one second makes failover tests fast; raise it if the
// machine is so loaded that healthy nodes get flagged as failing.
func WithNodeTimeout(d time.Duration) Option {
	return func(c *config) { c.nodeTimeout = d }
}

// confLine renders one redis.conf line, quoting arguments the way Redis's sdssplitargs
// reads them, so that paths and values with spaces survive.
func confLine(words ...string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		if w != "" && !strings.ContainsAny(w, " \t\r\n\"'\\") {
			quoted[i] = w
			continue
		}
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
		quoted[i] = `"` + r.Replace(w) + `"`
	}
	return strings.Join(quoted, " ")
}

func (c *config) validate() error {
	if c.replicas < 0 {
		return fmt.Errorf("WithReplicas(%d): must not be negative", c.replicas)
	}
	if c.acl && strings.ContainsAny(c.aclUser, " \t\r\n") {
		return fmt.Errorf("WithACL(%q): a user name cannot contain white space", c.aclUser)
	}
	if c.nodeTimeout < 100*time.Millisecond {
		return fmt.Errorf("WithNodeTimeout(%s): must be at least 100ms", c.nodeTimeout)
	}
	return nil
}
