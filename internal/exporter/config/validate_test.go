package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsValidAndMatchesTheDocumentedValues(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := map[string]struct{ got, want any }{
		"grpc endpoint":          {c.Receivers.GRPC.Endpoint, ":4317"},
		"http endpoint":          {c.Receivers.HTTP.Endpoint, ":4318"},
		"admin endpoint":         {c.Admin.Endpoint, ":8888"},
		"admin header timeout":   {c.Admin.ReadHeaderTimeout.Duration, 5 * time.Second},
		"admin read timeout":     {c.Admin.ReadTimeout.Duration, 10 * time.Second},
		"admin write timeout":    {c.Admin.WriteTimeout.Duration, time.Minute},
		"admin idle timeout":     {c.Admin.IdleTimeout.Duration, 30 * time.Second},
		"admin connections":      {c.Admin.MaxConnections, 64},
		"mode":                   {c.Redis.Mode, ModeStandalone},
		"addresses":              {strings.Join(c.Redis.Addresses, ","), "localhost:6379"},
		"key template":           {c.Stream.KeyTemplate, "traces:{service.name}"},
		"fallback":               {c.Stream.Fallback, "unknown"},
		"format":                 {c.Stream.Format, FormatJSON},
		"pipeline size":          {c.Stream.PipelineSize, 1000},
		"flush interval":         {c.Stream.FlushInterval.Duration, time.Duration(0)},
		"writers":                {c.Stream.Writers, 4},
		"max keys":               {c.Stream.MaxKeys, 10_000},
		"max request bytes":      {c.Receivers.MaxRequestBytes, int64(16 << 20)},
		"read header timeout":    {c.Receivers.HTTP.ReadHeaderTimeout.Duration, 10 * time.Second},
		"http read timeout":      {c.Receivers.HTTP.ReadTimeout.Duration, 30 * time.Second},
		"http idle timeout":      {c.Receivers.HTTP.IdleTimeout.Duration, time.Minute},
		"max connections":        {c.Receivers.MaxConnections, 4096},
		"max in-flight bytes":    {c.Delivery.MaxInFlightBytes, int64(256 << 20)},
		"max concurrent streams": {c.Receivers.GRPC.MaxConcurrentStreams, uint32(100)},
		"grpc header list":       {c.Receivers.GRPC.MaxHeaderListBytes, uint32(16 << 10)},
		"grpc read timeout":      {c.Receivers.GRPC.ReadTimeout.Duration, 30 * time.Second},
		"grpc buffered bytes":    {c.Receivers.GRPC.MaxBufferedBytes, int64(64 << 20)},
		"grpc idle timeout":      {c.Receivers.GRPC.IdleTimeout.Duration, time.Minute},
		"grpc connection age":    {c.Receivers.GRPC.MaxConnectionAge.Duration, 30 * time.Minute},
		"grpc age grace":         {c.Receivers.GRPC.MaxConnectionAgeGrace.Duration, time.Minute},
		"max in-flight spans":    {c.Delivery.MaxInFlightSpans, 200_000},
		"retry initial":          {c.Delivery.RetryInitialInterval.Duration, 50 * time.Millisecond},
		"retry max":              {c.Delivery.RetryMaxInterval.Duration, 5 * time.Second},
		"request timeout":        {c.Delivery.RequestTimeout.Duration, 10 * time.Second},
		"drain timeout":          {c.Delivery.DrainTimeout.Duration, 20 * time.Second},
		"pool size":              {c.Redis.PoolSize, 8},
		"dial timeout":           {c.Redis.DialTimeout.Duration, 5 * time.Second},
		"read timeout":           {c.Redis.ReadTimeout.Duration, 3 * time.Second},
		"write timeout":          {c.Redis.WriteTimeout.Duration, 3 * time.Second},
		"producer id":            {c.Delivery.ProducerID, ""},
	}
	for name, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
	// Default returns a fresh slice: a caller appending to it must not change the next Default.
	c.Redis.Addresses[0] = "changed:1"
	if got := Default().Redis.Addresses[0]; got != "localhost:6379" {
		t.Errorf("Default shares its addresses slice: got %q", got)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "secret", "s3cr3t-value")
	missing := filepath.Join(dir, "missing")
	empty := writeFile(t, dir, "empty", "")

	tests := map[string]struct {
		mutate func(*Config)
		// want are substrings of the error; none means the configuration is valid.
		want []string
		// wantStatic overrides want for ValidateStatic when the problem is a file check.
		staticValid bool
	}{
		"an unknown redis mode is named with the allowed ones": {
			mutate: func(c *Config) { c.Redis.Mode = "clusterr" },
			want:   []string{`redis.mode: "clusterr" is not one of standalone, cluster, sentinel`},
		},
		"sentinel mode requires a master name": {
			mutate: func(c *Config) { c.Redis.Mode = ModeSentinel },
			want:   []string{"redis.sentinel.masterName: required when redis.mode is sentinel"},
		},
		"a sentinel configuration with a master name is valid": {
			mutate: func(c *Config) {
				c.Redis.Mode = ModeSentinel
				c.Redis.Sentinel.MasterName = "mymaster"
				c.Redis.Sentinel.PasswordFile = file
				c.Redis.DB = 3
			},
		},
		"a master name outside sentinel mode is a mistake": {
			mutate: func(c *Config) { c.Redis.Sentinel.MasterName = "mymaster" },
			want:   []string{"redis.sentinel.masterName: only used when redis.mode is sentinel"},
		},
		"a sentinel password outside sentinel mode is a mistake": {
			mutate: func(c *Config) { c.Redis.Sentinel.PasswordFile = file },
			want:   []string{"redis.sentinel.passwordFile: only used when redis.mode is sentinel"},
		},
		"cluster mode requires db 0": {
			mutate: func(c *Config) { c.Redis.Mode = ModeCluster; c.Redis.DB = 2 },
			want:   []string{"redis.db: must be 0 in cluster mode"},
		},
		"a cluster configuration with several seeds is valid": {
			mutate: func(c *Config) {
				c.Redis.Mode = ModeCluster
				c.Redis.Addresses = []string{"10.0.0.1:7000", "redis-1.redis:7001", "[::1]:7002"}
			},
		},
		"a negative db is rejected": {
			mutate: func(c *Config) { c.Redis.DB = -1 },
			want:   []string{"redis.db: must not be negative"},
		},
		"no addresses is rejected": {
			mutate: func(c *Config) { c.Redis.Addresses = nil },
			want:   []string{"redis.addresses: at least one address"},
		},
		"an address without a port is rejected with its index": {
			mutate: func(c *Config) { c.Redis.Mode = ModeCluster; c.Redis.Addresses = []string{"a:1", "redis"} },
			want:   []string{`redis.addresses[1]: "redis" is not host:port, redis://host:port or rediss://host:port`},
		},
		"a redis:// address is valid": {
			mutate: func(c *Config) { c.Redis.Addresses = []string{"redis://a:6379"} },
		},
		"another scheme is rejected": {
			mutate: func(c *Config) { c.Redis.Addresses = []string{"tcp://a:6379"} },
			want:   []string{`redis.addresses[0]: "tcp://a:6379" is not host:port, redis://host:port or rediss://host:port`},
		},
		"standalone mode takes one address": {
			mutate: func(c *Config) { c.Redis.Addresses = []string{"a:1", "b:2"} },
			want:   []string{"redis.addresses: standalone mode takes exactly one address, got 2"},
		},
		"an address without a host is rejected": {
			mutate: func(c *Config) { c.Redis.Addresses = []string{":6379"} },
			want:   []string{`redis.addresses[0]: ":6379" is not host:port`},
		},
		"an address with port 0 is rejected": {
			mutate: func(c *Config) { c.Redis.Addresses = []string{"a:0"} },
			want:   []string{`redis.addresses[0]: "a:0": port "0" is not a number between 1 and 65535`},
		},
		"an address with a named port is rejected": {
			mutate: func(c *Config) { c.Redis.Addresses = []string{"a:redis"} },
			want:   []string{`redis.addresses[0]: "a:redis": port "redis" is not a number`},
		},
		"rediss addresses turn TLS on and are valid": {
			mutate: func(c *Config) {
				c.Redis.Mode = ModeCluster
				c.Redis.Addresses = []string{"rediss://a:6380", "rediss://b:6380"}
				c.Redis.TLS.CAFile = file
			},
		},
		"mixing rediss and plain addresses is rejected": {
			mutate: func(c *Config) { c.Redis.Mode = ModeCluster; c.Redis.Addresses = []string{"rediss://a:6380", "b:6379"} },
			want:   []string{"redis.addresses: mixes rediss:// and plaintext"},
		},
		"mixing rediss and redis addresses is rejected": {
			mutate: func(c *Config) {
				c.Redis.Mode = ModeSentinel
				c.Redis.Sentinel.MasterName = "m"
				c.Redis.Addresses = []string{"rediss://a:26379", "redis://b:26379"}
			},
			want: []string{"redis.addresses: mixes rediss:// and plaintext"},
		},
		"TLS settings without TLS are rejected, each by its key": {
			mutate: func(c *Config) {
				c.Redis.TLS = ClientTLS{CAFile: file, CertFile: file, KeyFile: file, ServerName: "r", InsecureSkipVerify: true}
			},
			want: []string{
				"redis.tls.caFile: set but TLS is off", "redis.tls.certFile: set but TLS is off",
				"redis.tls.keyFile: set but TLS is off", "redis.tls.serverName: set but TLS is off",
				"redis.tls.insecureSkipVerify: set but TLS is off",
			},
		},
		"a redis client certificate without its key is rejected": {
			mutate: func(c *Config) { c.Redis.TLS = ClientTLS{Enabled: true, CertFile: file} },
			want:   []string{"redis.tls.keyFile: required when redis.tls.certFile is set"},
		},
		"a redis client key without its certificate is rejected": {
			mutate: func(c *Config) { c.Redis.TLS = ClientTLS{Enabled: true, KeyFile: file} },
			want:   []string{"redis.tls.certFile: required when redis.tls.keyFile is set"},
		},
		"a username without a password is rejected": {
			mutate: func(c *Config) { c.Redis.UsernameFile = file },
			want:   []string{"redis.usernameFile: requires redis.passwordFile"},
		},
		"a missing password file is named by key and path": {
			mutate:      func(c *Config) { c.Redis.PasswordFile = missing },
			want:        []string{"redis.passwordFile: cannot read " + missing + ": no such file or directory"},
			staticValid: true,
		},
		"a missing username file is rejected": {
			mutate:      func(c *Config) { c.Redis.UsernameFile = missing; c.Redis.PasswordFile = file },
			want:        []string{"redis.usernameFile: cannot read " + missing},
			staticValid: true,
		},
		"an empty file is rejected": {
			mutate:      func(c *Config) { c.Receivers.BearerTokenFile = empty },
			want:        []string{"receivers.bearerTokenFile: " + empty + " is empty"},
			staticValid: true,
		},
		"a directory is not a readable file": {
			mutate:      func(c *Config) { c.Redis.PasswordFile = dir },
			want:        []string{"redis.passwordFile: " + dir + " is a directory"},
			staticValid: true,
		},
		"missing redis TLS files are rejected": {
			mutate: func(c *Config) {
				c.Redis.TLS = ClientTLS{Enabled: true, CAFile: missing, CertFile: missing, KeyFile: missing}
			},
			want:        []string{"redis.tls.caFile: cannot read", "redis.tls.certFile: cannot read", "redis.tls.keyFile: cannot read"},
			staticValid: true,
		},
		"a missing bearer token file is rejected": {
			mutate:      func(c *Config) { c.Receivers.BearerTokenFile = missing },
			want:        []string{"receivers.bearerTokenFile: cannot read " + missing},
			staticValid: true,
		},
		"missing receiver TLS files are rejected": {
			mutate: func(c *Config) {
				c.Receivers.TLS = ServerTLS{CertFile: missing, KeyFile: missing, ClientCAFile: missing}
			},
			want:        []string{"receivers.tls.certFile: cannot read", "receivers.tls.keyFile: cannot read", "receivers.tls.clientCAFile: cannot read"},
			staticValid: true,
		},
		"a receiver certificate without its key is rejected": {
			mutate: func(c *Config) { c.Receivers.TLS.CertFile = file },
			want:   []string{"receivers.tls.keyFile: required when receivers.tls.certFile is set"},
		},
		"a receiver key without its certificate is rejected": {
			mutate: func(c *Config) { c.Receivers.TLS.KeyFile = file },
			want:   []string{"receivers.tls.certFile: required when receivers.tls.keyFile is set"},
		},
		"a client CA without a serving certificate is rejected": {
			mutate: func(c *Config) { c.Receivers.TLS.ClientCAFile = file },
			want:   []string{"receivers.tls.clientCAFile: requires receivers.tls.certFile"},
		},
		"mutual TLS on the receivers is valid": {
			mutate: func(c *Config) {
				c.Receivers.TLS = ServerTLS{CertFile: file, KeyFile: file, ClientCAFile: file}
				c.Receivers.BearerTokenFile = file
			},
		},
		"an empty grpc endpoint is rejected": {
			mutate: func(c *Config) { c.Receivers.GRPC.Endpoint = "" },
			want:   []string{"receivers.grpc.endpoint: required"},
		},
		"an http endpoint without a port is rejected": {
			mutate: func(c *Config) { c.Receivers.HTTP.Endpoint = "localhost" },
			want:   []string{`receivers.http.endpoint: "localhost" is not host:port`},
		},
		"an admin endpoint with a port out of range is rejected": {
			mutate: func(c *Config) { c.Admin.Endpoint = ":70000" },
			want:   []string{`admin.endpoint: ":70000": port "70000" is not a number between 0 and 65535`},
		},
		"zero admin timeouts are rejected, each by its key": {
			mutate: func(c *Config) {
				c.Admin.ReadHeaderTimeout, c.Admin.ReadTimeout, c.Admin.WriteTimeout = Duration{}, Duration{}, Duration{}
				c.Admin.IdleTimeout = Duration{-time.Second}
			},
			want: []string{
				"admin.readHeaderTimeout: must be positive, got 0s", "admin.readTimeout: must be positive, got 0s",
				"admin.writeTimeout: must be positive, got 0s", "admin.idleTimeout: must be positive, got -1s",
			},
		},
		"zero admin connections are rejected": {
			mutate: func(c *Config) { c.Admin.MaxConnections = 0 },
			want:   []string{"admin.maxConnections: must be at least 1, got 0"},
		},
		"one admin connection is valid": {
			mutate: func(c *Config) { c.Admin.MaxConnections = 1 },
		},
		"two receivers on the same port are rejected": {
			mutate: func(c *Config) { c.Receivers.HTTP.Endpoint = "0.0.0.0:4317" },
			want:   []string{`receivers.http.endpoint: "0.0.0.0:4317" collides with receivers.grpc.endpoint ":4317"`},
		},
		"the same port on two interfaces is valid": {
			mutate: func(c *Config) {
				c.Receivers.GRPC.Endpoint = "127.0.0.1:4317"
				c.Receivers.HTTP.Endpoint = "10.0.0.1:4317"
			},
		},
		"port 0 on every listener is valid": {
			mutate: func(c *Config) {
				c.Receivers.GRPC.Endpoint, c.Receivers.HTTP.Endpoint, c.Admin.Endpoint = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			},
		},
		"zero stream keys are rejected": {
			mutate: func(c *Config) { c.Stream.MaxKeys = 0 },
			want:   []string{"stream.maxKeys: must be at least 1, got 0"},
		},
		"a gRPC header list bound below 1 KiB is rejected": {
			mutate: func(c *Config) { c.Receivers.GRPC.MaxHeaderListBytes = 512 },
			want:   []string{"receivers.grpc.maxHeaderListBytes: must be at least 1024, got 512"},
		},
		"a gRPC buffer bound below the largest request is rejected": {
			mutate: func(c *Config) { c.Receivers.GRPC.MaxBufferedBytes = 1000 },
			want:   []string{"receivers.grpc.maxBufferedBytes: must be at least receivers.maxRequestBytes (16777216), so that the largest message can arrive, got 1000"},
		},
		"zero gRPC timeouts are rejected, each by its key": {
			mutate: func(c *Config) {
				c.Receivers.GRPC.ReadTimeout, c.Receivers.GRPC.IdleTimeout = Duration{}, Duration{}
				c.Receivers.GRPC.MaxConnectionAge, c.Receivers.GRPC.MaxConnectionAgeGrace = Duration{-time.Second}, Duration{}
			},
			want: []string{
				"receivers.grpc.readTimeout: must be positive, got 0s", "receivers.grpc.idleTimeout: must be positive, got 0s",
				"receivers.grpc.maxConnectionAge: must be positive, got -1s", "receivers.grpc.maxConnectionAgeGrace: must be positive, got 0s",
			},
		},
		"zero max concurrent streams is rejected": {
			mutate: func(c *Config) { c.Receivers.GRPC.MaxConcurrentStreams = 0 },
			want:   []string{"receivers.grpc.maxConcurrentStreams: must be at least 1"},
		},
		"a zero read header timeout is rejected": {
			mutate: func(c *Config) { c.Receivers.HTTP.ReadHeaderTimeout = Duration{} },
			want:   []string{"receivers.http.readHeaderTimeout: must be positive"},
		},
		"a zero read timeout is rejected": {
			mutate: func(c *Config) { c.Receivers.HTTP.ReadTimeout = Duration{} },
			want:   []string{"receivers.http.readTimeout: must be positive"},
		},
		"a zero idle timeout is rejected": {
			mutate: func(c *Config) { c.Receivers.HTTP.IdleTimeout = Duration{} },
			want:   []string{"receivers.http.idleTimeout: must be positive"},
		},
		"zero connections are rejected": {
			mutate: func(c *Config) { c.Receivers.MaxConnections = 0 },
			want:   []string{"receivers.maxConnections: must be at least 1, got 0"},
		},
		"a memory budget smaller than one request is rejected": {
			mutate: func(c *Config) { c.Delivery.MaxInFlightBytes = 1 << 20 },
			want:   []string{"delivery.maxInFlightBytes: must be at least receivers.maxRequestBytes (16777216), got 1048576"},
		},
		"a negative max request size is rejected": {
			mutate: func(c *Config) { c.Receivers.MaxRequestBytes = -1 },
			want:   []string{"receivers.maxRequestBytes: must be at least 1, got -1"},
		},
		"an empty key template is rejected": {
			mutate: func(c *Config) { c.Stream.KeyTemplate = "" },
			want:   []string{"stream.keyTemplate: required"},
		},
		"a key template with an unclosed placeholder is rejected": {
			mutate: func(c *Config) { c.Stream.KeyTemplate = "traces:{service.name" },
			want:   []string{"stream.keyTemplate: "},
		},
		"a key template with a stray closing brace is rejected": {
			mutate: func(c *Config) { c.Stream.KeyTemplate = "traces:}" },
			want:   []string{"stream.keyTemplate: "},
		},
		"an empty fallback is rejected": {
			mutate: func(c *Config) { c.Stream.Fallback = "" },
			want:   []string{"stream.fallback: required"},
		},
		"an unknown format is named with the allowed ones": {
			mutate: func(c *Config) { c.Stream.Format = "xml" },
			want:   []string{`stream.format: "xml" is not one of json, flat, otlp`},
		},
		"a negative max length is rejected": {
			mutate: func(c *Config) { c.Stream.MaxLen = -5 },
			want:   []string{"stream.maxLen: must not be negative"},
		},
		"a ttl under a second is rejected": {
			mutate: func(c *Config) { c.Stream.TTL = Duration{500 * time.Millisecond} },
			want:   []string{"stream.ttl: 500ms is less than EXPIRE's resolution of 1s"},
		},
		"a min id age under a millisecond is rejected": {
			mutate: func(c *Config) { c.Stream.MinIDAge = Duration{time.Microsecond} },
			want:   []string{"stream.minIdAge: 1µs is less than a stream ID's resolution of 1ms"},
		},
		"a negative ttl is rejected": {
			mutate: func(c *Config) { c.Stream.TTL = Duration{-time.Second} },
			want:   []string{"stream.ttl: must not be negative"},
		},
		"a negative min id age is rejected": {
			mutate: func(c *Config) { c.Stream.MinIDAge = Duration{-time.Second} },
			want:   []string{"stream.minIdAge: must not be negative"},
		},
		"a negative flush interval is rejected": {
			mutate: func(c *Config) { c.Stream.FlushInterval = Duration{-time.Millisecond} },
			want:   []string{"stream.flushInterval: must not be negative"},
		},
		"a zero pipeline size is rejected": {
			mutate: func(c *Config) { c.Stream.PipelineSize = 0 },
			want:   []string{"stream.pipelineSize: must be between 1 and 100000, got 0"},
		},
		"a pipeline size above the limit is rejected": {
			mutate: func(c *Config) { c.Stream.PipelineSize = 100_001 },
			want:   []string{"stream.pipelineSize: must be between 1 and 100000, got 100001"},
		},
		"the largest pipeline size and writer count are valid": {
			mutate: func(c *Config) { c.Stream.PipelineSize = 100_000; c.Stream.Writers = 64 },
		},
		"zero writers are rejected": {
			mutate: func(c *Config) { c.Stream.Writers = 0 },
			want:   []string{"stream.writers: must be between 1 and 64, got 0"},
		},
		"too many writers are rejected": {
			mutate: func(c *Config) { c.Stream.Writers = 65 },
			want:   []string{"stream.writers: must be between 1 and 64, got 65"},
		},
		"include and exclude filters together are rejected": {
			mutate: func(c *Config) {
				c.Filter.IncludeServices = []string{"a"}
				c.Filter.ExcludeServices = []string{"b"}
			},
			want: []string{"filter: includeServices and excludeServices cannot both be set"},
		},
		"an empty service name in a filter is rejected": {
			mutate: func(c *Config) { c.Filter.ExcludeServices = []string{"a", " "} },
			want:   []string{"filter.excludeServices[1]: empty service name"},
		},
		"zero max in-flight spans is rejected": {
			mutate: func(c *Config) { c.Delivery.MaxInFlightSpans = 0 },
			want:   []string{"delivery.maxInFlightSpans: must be at least 1"},
		},
		"a persistent queue smaller than 64 MiB is rejected": {
			mutate: func(c *Config) {
				c.Delivery.PersistentQueue = PersistentQueue{Directory: "/var/lib/queue", MaxBytes: 1 << 20}
			},
			want: []string{"delivery.persistentQueue.maxBytes: must be at least 67108864 (64 MiB), got 1048576"},
		},
		"a retry maximum below the initial interval is rejected": {
			mutate: func(c *Config) { c.Delivery.RetryMaxInterval = Duration{10 * time.Millisecond} },
			want:   []string{"delivery.retryMaxInterval: 10ms is less than delivery.retryInitialInterval (50ms)"},
		},
		"a zero retry interval is rejected": {
			mutate: func(c *Config) { c.Delivery.RetryInitialInterval = Duration{} },
			want:   []string{"delivery.retryInitialInterval: must be positive"},
		},
		"zero request and drain timeouts are rejected": {
			mutate: func(c *Config) { c.Delivery.RequestTimeout = Duration{}; c.Delivery.DrainTimeout = Duration{} },
			want:   []string{"delivery.requestTimeout: must be positive", "delivery.drainTimeout: must be positive"},
		},
		"zero redis timeouts and pool size are rejected": {
			mutate: func(c *Config) {
				c.Redis.DialTimeout, c.Redis.ReadTimeout, c.Redis.WriteTimeout = Duration{}, Duration{}, Duration{}
				c.Redis.PoolSize = 0
			},
			want: []string{
				"redis.dialTimeout: must be positive", "redis.readTimeout: must be positive",
				"redis.writeTimeout: must be positive", "redis.poolSize: must be at least 1",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			check := func(fn string, err error, want []string) {
				t.Helper()
				if len(want) == 0 {
					if err != nil {
						t.Fatalf("%s() = %v, want no error", fn, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("%s() = nil, want an error containing %q", fn, want)
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s() = %q\nwant it to contain %q", fn, err, w)
					}
				}
				if strings.Contains(err.Error(), "s3cr3t-value") {
					t.Errorf("%s() shows a file's contents: %q", fn, err)
				}
			}
			check("Validate", c.Validate(), tc.want)
			if tc.staticValid {
				check("ValidateStatic", c.ValidateStatic(), nil)
			} else {
				check("ValidateStatic", c.ValidateStatic(), tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblemOnItsOwnLine(t *testing.T) {
	c := Default()
	c.Redis.Mode = "clusterr"
	c.Stream.Format = "xml"
	c.Stream.Writers = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want three problems")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("Validate() reported %d problems, want 3:\n%v", len(lines), err)
	}
	for i, prefix := range []string{"redis.mode: ", "stream.format: ", "stream.writers: "} {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], prefix)
		}
	}
}

func TestValidateNeverEchoesCredentialsInAnAddress(t *testing.T) {
	c := Default()
	c.Redis.Addresses = []string{"rediss://default:hunter2@redis:6380"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "redis.addresses[0]: must not hold credentials") {
		t.Fatalf("Validate() = %v, want a credentials error for redis.addresses[0]", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate() echoes the password: %q", err)
	}
}

// TestValidateReportsAnUnreadableFile uses a path through a regular file (ENOTDIR): unlike a
// chmod 000 file, root cannot read it either, and CI runs as root.
func TestValidateReportsAnUnreadableFile(t *testing.T) {
	p := writeFile(t, t.TempDir(), "secret", "x") + "/password"
	c := Default()
	c.Redis.PasswordFile = p
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "redis.passwordFile: cannot read "+p+": not a directory") {
		t.Fatalf("Validate() = %v, want a read error naming redis.passwordFile", err)
	}
}
