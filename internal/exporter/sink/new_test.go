package sink

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
)

func TestNewRejectsInvalidConfiguration(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	notPEM := filepath.Join(dir, "not-pem")
	password := filepath.Join(dir, "password")
	for path, content := range map[string]string{empty: "\n", notPEM: "hello", password: "secret\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	one := []string{"127.0.0.1:6379"}
	cases := map[string]struct {
		cfg       config.Redis
		stream    config.Stream
		wantField string
	}{
		"an unknown mode names redis.mode": {
			cfg: config.Redis{Mode: "ring", Addresses: one}, wantField: "redis.mode",
		},
		"no address names redis.addresses": {
			cfg: config.Redis{Mode: config.ModeStandalone}, wantField: "redis.addresses",
		},
		"two standalone addresses name redis.addresses": {
			cfg: config.Redis{Addresses: []string{"a:1", "b:2"}}, wantField: "redis.addresses",
		},
		"an address without a port names its index": {
			cfg: config.Redis{Mode: config.ModeCluster, Addresses: []string{"a:1", "b"}}, wantField: "redis.addresses[1]",
		},
		"a port that is not a number names its index": {
			cfg: config.Redis{Addresses: []string{"a:http"}}, wantField: "redis.addresses[0]",
		},
		"an unknown scheme names its index": {
			cfg: config.Redis{Addresses: []string{"unix:///tmp/redis.sock"}}, wantField: "redis.addresses[0]",
		},
		"credentials in an address are refused": {
			cfg: config.Redis{Addresses: []string{"redis://user:pw@a:1"}}, wantField: "redis.addresses[0]",
		},
		"mixed schemes name redis.addresses": {
			cfg: config.Redis{Mode: config.ModeCluster, Addresses: []string{"redis://a:1", "rediss://b:2"}}, wantField: "redis.addresses",
		},
		"sentinel without a master name names redis.sentinel.masterName": {
			cfg: config.Redis{Mode: config.ModeSentinel, Addresses: one}, wantField: "redis.sentinel.masterName",
		},
		"a cluster database other than 0 names redis.db": {
			cfg: config.Redis{Mode: config.ModeCluster, Addresses: one, DB: 2}, wantField: "redis.db",
		},
		"a negative pool size names redis.poolSize": {
			cfg: config.Redis{Addresses: one, PoolSize: -1}, wantField: "redis.poolSize",
		},
		"a negative read timeout names redis.readTimeout": {
			cfg: config.Redis{Addresses: one, ReadTimeout: config.Duration{Duration: -time.Second}}, wantField: "redis.readTimeout",
		},
		"a missing password file names redis.passwordFile": {
			cfg: config.Redis{Addresses: one, PasswordFile: missing}, wantField: "redis.passwordFile",
		},
		"an empty password file names redis.passwordFile": {
			cfg: config.Redis{Addresses: one, PasswordFile: empty}, wantField: "redis.passwordFile",
		},
		"a username without a password names redis.usernameFile": {
			cfg: config.Redis{Addresses: one, UsernameFile: password}, wantField: "redis.usernameFile",
		},
		"a missing username file names redis.usernameFile": {
			cfg: config.Redis{Addresses: one, UsernameFile: missing, PasswordFile: password}, wantField: "redis.usernameFile",
		},
		"a missing CA file names redis.tls.caFile": {
			cfg: config.Redis{Addresses: one, TLS: config.ClientTLS{Enabled: true, CAFile: missing}}, wantField: "redis.tls.caFile",
		},
		"a CA file without PEM names redis.tls.caFile": {
			cfg: config.Redis{Addresses: []string{"rediss://a:1"}, TLS: config.ClientTLS{CAFile: notPEM}}, wantField: "redis.tls.caFile",
		},
		"a certificate without a key names redis.tls.keyFile": {
			cfg: config.Redis{Addresses: one, TLS: config.ClientTLS{Enabled: true, CertFile: notPEM}}, wantField: "redis.tls.keyFile",
		},
		"an unreadable key pair names redis.tls.certFile": {
			cfg: config.Redis{Addresses: one, TLS: config.ClientTLS{Enabled: true, CertFile: notPEM, KeyFile: notPEM}}, wantField: "redis.tls.certFile",
		},
		"a CA file with TLS off names redis.tls.caFile": {
			cfg: config.Redis{Addresses: one, TLS: config.ClientTLS{CAFile: notPEM}}, wantField: "redis.tls.caFile",
		},
		"skipping verification with TLS off names redis.tls.insecureSkipVerify": {
			cfg: config.Redis{Addresses: one, TLS: config.ClientTLS{InsecureSkipVerify: true}}, wantField: "redis.tls.insecureSkipVerify",
		},
		"a sentinel password outside sentinel mode names redis.sentinel.passwordFile": {
			cfg: config.Redis{Addresses: one, Sentinel: config.Sentinel{PasswordFile: password}}, wantField: "redis.sentinel.passwordFile",
		},
		"a negative maxLen names stream.maxLen": {
			cfg: config.Redis{Addresses: one}, stream: config.Stream{MaxLen: -1}, wantField: "stream.maxLen",
		},
		"a sub-second TTL names stream.ttl": {
			cfg: config.Redis{Addresses: one}, stream: config.Stream{TTL: config.Duration{Duration: 500 * time.Millisecond}}, wantField: "stream.ttl",
		},
		"a negative minIdAge names stream.minIdAge": {
			cfg: config.Redis{Addresses: one}, stream: config.Stream{MinIDAge: config.Duration{Duration: -time.Hour}}, wantField: "stream.minIdAge",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := New(tc.cfg, tc.stream, "p")
			if err == nil {
				_ = s.Close()
				t.Fatalf("New accepted the configuration, want an error naming %s", tc.wantField)
			}
			if !strings.HasPrefix(err.Error(), tc.wantField+":") && !strings.HasPrefix(err.Error(), tc.wantField+" ") {
				t.Fatalf("New: %v; want the error to start with %s", err, tc.wantField)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("New: %v; the error shows the password", err)
			}
		})
	}
}

func TestNewAcceptsAddressForms(t *testing.T) {
	cases := map[string]struct {
		cfg       config.Redis
		wantAddrs []string
		wantTLS   bool
	}{
		"host:port is plaintext": {
			cfg: config.Redis{Addresses: []string{"redis.ns.svc:6379"}}, wantAddrs: []string{"redis.ns.svc:6379"},
		},
		"redis:// is plaintext": {
			cfg: config.Redis{Addresses: []string{"redis://10.0.0.1:6379"}}, wantAddrs: []string{"10.0.0.1:6379"},
		},
		"rediss:// turns TLS on": {
			cfg: config.Redis{Addresses: []string{"rediss://[::1]:6380"}}, wantAddrs: []string{"[::1]:6380"}, wantTLS: true,
		},
		"tls.enabled turns TLS on for host:port": {
			cfg:       config.Redis{Mode: config.ModeCluster, Addresses: []string{"a:1", "b:2"}, TLS: config.ClientTLS{Enabled: true, ServerName: "redis.example"}},
			wantAddrs: []string{"a:1", "b:2"}, wantTLS: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o, err := newClientOptions(tc.cfg)
			if err != nil {
				t.Fatalf("newClientOptions: %v", err)
			}
			if strings.Join(o.addrs, ",") != strings.Join(tc.wantAddrs, ",") {
				t.Fatalf("addresses %v, want %v", o.addrs, tc.wantAddrs)
			}
			tlsCfg := o.redisOptions().TLSConfig
			if (tlsCfg != nil) != tc.wantTLS {
				t.Fatalf("TLS config %v, want TLS %v", tlsCfg, tc.wantTLS)
			}
			if tlsCfg != nil && (tlsCfg.MinVersion != 0x0303 || tlsCfg.InsecureSkipVerify || tlsCfg.ServerName != tc.cfg.TLS.ServerName) {
				t.Fatalf("TLS config: MinVersion %x, InsecureSkipVerify %v, ServerName %q", tlsCfg.MinVersion, tlsCfg.InsecureSkipVerify, tlsCfg.ServerName)
			}
		})
	}
}

// TestWritePathNeverResends pins the go-redis options that decide whether a pipeline can be
// sent twice: if one of them changes, a cut connection duplicates a whole batch.
func TestWritePathNeverResends(t *testing.T) {
	o, err := newClientOptions(config.Redis{Mode: config.ModeSentinel, Addresses: []string{"a:1"}, Sentinel: config.Sentinel{MasterName: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	opts := o.redisOptions()
	if got := opts.StandaloneOptions().MaxRetries; got != -1 {
		t.Errorf("standalone MaxRetries = %d, want -1", got)
	}
	if got := opts.FailoverOptions().MaxRetries; got != -1 {
		t.Errorf("sentinel MaxRetries = %d, want -1", got)
	}
	c := opts.ClusterOptions()
	if c.MaxRetries != -1 || c.MaxRedirects != -1 {
		t.Errorf("cluster MaxRetries = %d, MaxRedirects = %d; want -1, -1", c.MaxRetries, c.MaxRedirects)
	}
	if c.ClusterStateReloadInterval != clusterStateReloadInterval {
		t.Errorf("cluster ClusterStateReloadInterval = %s, want %s", c.ClusterStateReloadInterval, clusterStateReloadInterval)
	}
}

func TestTTLRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]int64{time.Second: 1, 1500 * time.Millisecond: 2, time.Hour: 3600} {
		if got := ttlSeconds(d); got != want {
			t.Errorf("ttlSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
