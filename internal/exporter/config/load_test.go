package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// contractKeys are all the keys, in declaration order. The operator renders them into deployed
// ConfigMaps: renaming or removing one breaks those, so this list only ever grows.
var contractKeys = []string{
	"receivers.grpc.endpoint",
	"receivers.grpc.maxConcurrentStreams",
	"receivers.grpc.maxHeaderListBytes",
	"receivers.grpc.maxBufferedBytes",
	"receivers.grpc.readTimeout",
	"receivers.grpc.idleTimeout",
	"receivers.grpc.maxConnectionAge",
	"receivers.grpc.maxConnectionAgeGrace",
	"receivers.http.endpoint",
	"receivers.http.readHeaderTimeout",
	"receivers.http.readTimeout",
	"receivers.http.idleTimeout",
	"receivers.maxRequestBytes",
	"receivers.maxConnections",
	"receivers.tls.certFile",
	"receivers.tls.keyFile",
	"receivers.tls.clientCAFile",
	"receivers.bearerTokenFile",
	"redis.mode",
	"redis.addresses",
	"redis.sentinel.masterName",
	"redis.sentinel.passwordFile",
	"redis.db",
	"redis.usernameFile",
	"redis.passwordFile",
	"redis.tls.enabled",
	"redis.tls.caFile",
	"redis.tls.certFile",
	"redis.tls.keyFile",
	"redis.tls.serverName",
	"redis.tls.insecureSkipVerify",
	"redis.dialTimeout",
	"redis.readTimeout",
	"redis.writeTimeout",
	"redis.poolSize",
	"stream.keyTemplate",
	"stream.fallback",
	"stream.format",
	"stream.maxLen",
	"stream.minIdAge",
	"stream.ttl",
	"stream.pipelineSize",
	"stream.flushInterval",
	"stream.writers",
	"stream.maxKeys",
	"stream.overflowKey",
	"filter.includeServices",
	"filter.excludeServices",
	"delivery.maxInFlightSpans",
	"delivery.maxInFlightBytes",
	"delivery.retryInitialInterval",
	"delivery.retryMaxInterval",
	"delivery.requestTimeout",
	"delivery.drainTimeout",
	"delivery.stallTimeout",
	"delivery.producerId",
	"delivery.persistentQueue.directory",
	"delivery.persistentQueue.maxBytes",
	"admin.endpoint",
	"admin.debug",
	"admin.readHeaderTimeout",
	"admin.readTimeout",
	"admin.writeTimeout",
	"admin.idleTimeout",
	"admin.maxConnections",
	"telemetry.logs.level",
}

func TestKeysAreTheContract(t *testing.T) {
	var got []string
	for _, l := range leaves() {
		got = append(got, l.key)
	}
	if !slices.Equal(got, contractKeys) {
		t.Errorf("keys changed; the operator's rendered ConfigMaps depend on them.\ngot:  %q\nwant: %q", got, contractKeys)
	}
}

func TestEveryKeyCanBeSetFromText(t *testing.T) {
	def := Default()
	for _, l := range leaves() {
		c := Default()
		text := formatText(l.field(&def))
		if err := l.set(&c, text); err != nil {
			t.Errorf("%s: setting its default %q back fails: %v", l.key, text, err)
			continue
		}
		if got := formatText(l.field(&c)); got != text {
			t.Errorf("%s: default %q reads back as %q", l.key, text, got)
		}
	}
}

func TestEnvName(t *testing.T) {
	tests := map[string]struct{ key, want string }{
		"a list key":                     {"redis.addresses", "TRACESTREAM_REDIS_ADDRESSES"},
		"a simple key":                   {"stream.format", "TRACESTREAM_STREAM_FORMAT"},
		"a camelCase key":                {"redis.passwordFile", "TRACESTREAM_REDIS_PASSWORD_FILE"},
		"a three-level key":              {"redis.sentinel.masterName", "TRACESTREAM_REDIS_SENTINEL_MASTER_NAME"},
		"an acronym in the middle":       {"receivers.tls.clientCAFile", "TRACESTREAM_RECEIVERS_TLS_CLIENT_CA_FILE"},
		"an acronym at the start":        {"redis.tls.caFile", "TRACESTREAM_REDIS_TLS_CA_FILE"},
		"an upper-case initialism":       {"stream.minIdAge", "TRACESTREAM_STREAM_MIN_ID_AGE"},
		"an all lower-case section name": {"receivers.grpc.maxConcurrentStreams", "TRACESTREAM_RECEIVERS_GRPC_MAX_CONCURRENT_STREAMS"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := envName(tc.key); got != tc.want {
				t.Errorf("envName(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	seen := map[string]string{}
	for _, l := range leaves() {
		if other, dup := seen[l.env]; dup {
			t.Errorf("%s and %s share the variable %s", other, l.key, l.env)
		}
		seen[l.env] = l.key
	}
}

func TestLoadFile(t *testing.T) {
	tests := map[string]struct {
		yaml    string
		want    func(*Config) // applied to Default() to get the expected configuration
		wantErr []string
	}{
		"no file gives the defaults": {
			yaml: "-",
			want: func(*Config) {},
		},
		"an empty file gives the defaults": {
			yaml: "",
			want: func(*Config) {},
		},
		"a partial file overlays only its keys": {
			yaml: `
redis:
  mode: cluster
  addresses: [a:7000, b:7001]
stream:
  format: flat
  ttl: 24h
  maxLen: 100000
`,
			want: func(c *Config) {
				c.Redis.Mode = ModeCluster
				c.Redis.Addresses = []string{"a:7000", "b:7001"}
				c.Stream.Format = FormatFlat
				c.Stream.TTL = Duration{24 * time.Hour}
				c.Stream.MaxLen = 100000
			},
		},
		"null keeps the default": {
			yaml: "delivery:\n  requestTimeout: null\nredis:\n",
			want: func(*Config) {},
		},
		"a bare zero is a duration": {
			yaml: "stream:\n  flushInterval: 0\n",
			want: func(*Config) {},
		},
		"an unquoted no is YAML 1.1's false, so a string key gets \"false\"": {
			yaml: "stream:\n  fallback: no\n",
			want: func(c *Config) { c.Stream.Fallback = "false" },
		},
		"a quoted no stays no": {
			yaml: "stream:\n  fallback: \"no\"\n",
			want: func(c *Config) { c.Stream.Fallback = "no" },
		},
		"a misspelt key is rejected with its path and a suggestion": {
			yaml:    "redis:\n  adresses: [a:1]\n",
			wantErr: []string{`redis.adresses: unknown key (did you mean "addresses"?)`},
		},
		"a key in the wrong case is rejected": {
			yaml:    "stream:\n  minIDAge: 1h\n",
			wantErr: []string{`stream.minIDAge: unknown key (did you mean "minIdAge"?)`},
		},
		"every unknown key is named": {
			yaml:    "redis:\n  tls:\n    enable: true\nfoo: 1\nstream:\n  formt: flat\n",
			wantErr: []string{`foo: unknown key`, `redis.tls.enable: unknown key (did you mean "enabled"?)`, `stream.formt: unknown key (did you mean "format"?)`},
		},
		"a duplicate key is rejected": {
			yaml:    "redis:\n  mode: cluster\n  mode: sentinel\n",
			wantErr: []string{`"mode" already set`},
		},
		"a value of the wrong type names its key": {
			yaml:    "redis:\n  db: two\n",
			wantErr: []string{"redis.db: want an integer, got string"},
		},
		"a malformed duration names its key": {
			yaml:    "stream:\n  ttl: 5 seconds\n",
			wantErr: []string{`stream.ttl: want a duration such as "5s" or "100ms", got string "5 seconds"`},
		},
		"a duration without a unit names its key": {
			yaml:    "delivery:\n  drainTimeout: 30\n",
			wantErr: []string{`delivery.drainTimeout: want a duration such as "5s" or "100ms", got number 30`},
		},
		"a section that is not a mapping names its key": {
			yaml:    "redis:\n  tls: true\n",
			wantErr: []string{"redis.tls: want a mapping, got bool"},
		},
		"a file that is not a mapping is rejected": {
			yaml:    "- redis\n",
			wantErr: []string{"want a mapping of sections (receivers, redis, ...), got array"},
		},
		"a file that is not YAML is rejected": {
			yaml:    "redis: [\n",
			wantErr: []string{"config file"},
		},
		"an invalid value fails validation naming its key": {
			yaml:    "redis:\n  mode: clusterr\n",
			wantErr: []string{`invalid configuration: redis.mode: "clusterr" is not one of standalone, cluster, sentinel`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tc.yaml != "-" {
				path = writeFile(t, t.TempDir(), "config.yaml", tc.yaml)
			}
			got, err := load(path, nil, nil)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("load() = nil error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("load() = %q\nwant it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("load() = %v", err)
			}
			want := Default()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("load() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadNamesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "reading config file: open "+path) {
		t.Fatalf("Load() = %v, want an error naming %s", err, path)
	}
}

func TestLoadEnvironment(t *testing.T) {
	dir := t.TempDir()
	password := writeFile(t, dir, "password", "pw")
	tests := map[string]struct {
		env     []string
		want    func(*Config)
		wantErr []string
	}{
		"a list is comma-separated and trimmed": {
			env: []string{"TRACESTREAM_REDIS_MODE=cluster", "TRACESTREAM_REDIS_ADDRESSES=a:1, b:2,,"},
			want: func(c *Config) {
				c.Redis.Mode = ModeCluster
				c.Redis.Addresses = []string{"a:1", "b:2"}
			},
		},
		"a string, a file, a boolean, an integer and a duration": {
			env: []string{
				"TRACESTREAM_STREAM_FORMAT=flat",
				"TRACESTREAM_REDIS_PASSWORD_FILE=" + password,
				"TRACESTREAM_ADMIN_DEBUG=true",
				"TRACESTREAM_RECEIVERS_GRPC_MAX_CONCURRENT_STREAMS=7",
				"TRACESTREAM_STREAM_MAX_LEN=5000",
				"TRACESTREAM_DELIVERY_DRAIN_TIMEOUT=45s",
			},
			want: func(c *Config) {
				c.Stream.Format = FormatFlat
				c.Redis.PasswordFile = password
				c.Admin.Debug = true
				c.Receivers.GRPC.MaxConcurrentStreams = 7
				c.Stream.MaxLen = 5000
				c.Delivery.DrainTimeout = Duration{45 * time.Second}
			},
		},
		"the admin endpoint's limits are variables": {
			env: []string{"TRACESTREAM_ADMIN_MAX_CONNECTIONS=8", "TRACESTREAM_ADMIN_IDLE_TIMEOUT=15s", "TRACESTREAM_ADMIN_READ_HEADER_TIMEOUT=1s"},
			want: func(c *Config) {
				c.Admin.MaxConnections = 8
				c.Admin.IdleTimeout, c.Admin.ReadHeaderTimeout = Duration{15 * time.Second}, Duration{time.Second}
			},
		},
		"an empty list variable clears the list": {
			env:  []string{"TRACESTREAM_FILTER_EXCLUDE_SERVICES="},
			want: func(c *Config) { c.Filter.ExcludeServices = []string{} },
		},
		"variables without the prefix are ignored": {
			env:  []string{"REDIS_ADDRESSES=x", "PATH=/bin", "TRACESTREAMX=1"},
			want: func(*Config) {},
		},
		"prefixed variables outside the sections are not configuration": {
			env:  []string{"TRACESTREAM_CACHE=/tmp/cache", "TRACESTREAM_CLUSTER_DIR=/tmp/cluster", "TRACESTREAM_CONFIG=x"},
			want: func(*Config) {},
		},
		"a malformed integer names the variable and the key": {
			env:     []string{"TRACESTREAM_REDIS_DB=two"},
			wantErr: []string{`TRACESTREAM_REDIS_DB (redis.db): want an integer, got "two"`},
		},
		"a malformed duration names the variable and the key": {
			env:     []string{"TRACESTREAM_STREAM_TTL=1 day"},
			wantErr: []string{`TRACESTREAM_STREAM_TTL (stream.ttl): want a duration`},
		},
		"a negative number for an unsigned key is rejected": {
			env:     []string{"TRACESTREAM_RECEIVERS_GRPC_MAX_CONCURRENT_STREAMS=-1"},
			wantErr: []string{"TRACESTREAM_RECEIVERS_GRPC_MAX_CONCURRENT_STREAMS (receivers.grpc.maxConcurrentStreams): want a non-negative integer"},
		},
		"a misspelt variable is rejected with a suggestion": {
			env:     []string{"TRACESTREAM_REDIS_ADDRESS=a:1"},
			wantErr: []string{`TRACESTREAM_REDIS_ADDRESS: not a configuration variable (did you mean "TRACESTREAM_REDIS_ADDRESSES"?)`},
		},
		"an unknown variable in a section is rejected": {
			env:     []string{"TRACESTREAM_REDIS_PASS_FILE=/x"},
			wantErr: []string{"TRACESTREAM_REDIS_PASS_FILE: not a configuration variable"},
		},
		"a misspelt section is rejected with a suggestion": {
			env:     []string{"TRACESTREAM_STREEM_FORMAT=flat"},
			wantErr: []string{`TRACESTREAM_STREEM_FORMAT: not a configuration variable (did you mean "TRACESTREAM_STREAM_FORMAT"?)`},
		},
		"an environment value is validated": {
			env:     []string{"TRACESTREAM_STREAM_FORMAT=xml"},
			wantErr: []string{`stream.format: "xml" is not one of`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := load("", tc.env, nil)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("load() = nil error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("load() = %q\nwant it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("load() = %v", err)
			}
			want := Default()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("load() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadReadsTheProcessEnvironment(t *testing.T) {
	t.Setenv("TRACESTREAM_REDIS_MODE", "cluster")
	t.Setenv("TRACESTREAM_REDIS_ADDRESSES", "a:1,b:2")
	t.Setenv("TRACESTREAM_STREAM_FORMAT", "flat")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Redis.Addresses, ","); got != "a:1,b:2" {
		t.Errorf("redis.addresses = %q, want a:1,b:2", got)
	}
	if c.Stream.Format != FormatFlat {
		t.Errorf("stream.format = %q, want flat", c.Stream.Format)
	}
}

func TestPrecedenceFlagsOverEnvironmentOverFile(t *testing.T) {
	file := "stream:\n  format: flat\n  writers: 2\n  pipelineSize: 10\nredis:\n  mode: cluster\n  addresses: [file:1]\n"
	tests := map[string]struct {
		env  []string
		args []string
		want func(*Config)
	}{
		"the file overlays the defaults": {
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatFlat, 2, 10
				c.Redis.Addresses = []string{"file:1"}
			},
		},
		"the environment overlays the file": {
			env: []string{"TRACESTREAM_STREAM_FORMAT=otlp", "TRACESTREAM_REDIS_ADDRESSES=env:1"},
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatOTLP, 2, 10
				c.Redis.Addresses = []string{"env:1"}
			},
		},
		"a flag overlays the environment and the file": {
			env:  []string{"TRACESTREAM_STREAM_FORMAT=otlp", "TRACESTREAM_STREAM_WRITERS=3"},
			args: []string{"--stream.format=json", "--redis.addresses=flag:1,flag:2"},
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatJSON, 3, 10
				c.Redis.Addresses = []string{"flag:1", "flag:2"}
			},
		},
		"a flag that is not set does not reset a key to its default": {
			args: []string{"--stream.writers=8"},
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatFlat, 8, 10
				c.Redis.Addresses = []string{"file:1"}
			},
		},
		"a repeated list flag accumulates": {
			args: []string{"--redis.addresses=a:1", "--redis.addresses", "b:2,c:3"},
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatFlat, 2, 10
				c.Redis.Addresses = []string{"a:1", "b:2", "c:3"}
			},
		},
		"a boolean flag needs no value and a repeated scalar flag keeps the last": {
			args: []string{"--admin.debug", "--stream.writers=5", "--stream.writers=6"},
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatFlat, 6, 10
				c.Redis.Addresses = []string{"file:1"}
				c.Admin.Debug = true
			},
		},
		"the admin endpoint's limits are flags": {
			args: []string{"--admin.maxConnections=8", "--admin.readHeaderTimeout=1s", "--admin.readTimeout=2s",
				"--admin.writeTimeout=90s", "--admin.idleTimeout=15s"},
			want: func(c *Config) {
				c.Stream.Format, c.Stream.Writers, c.Stream.PipelineSize = FormatFlat, 2, 10
				c.Redis.Addresses = []string{"file:1"}
				c.Admin.MaxConnections = 8
				c.Admin.ReadHeaderTimeout, c.Admin.ReadTimeout = Duration{time.Second}, Duration{2 * time.Second}
				c.Admin.WriteTimeout, c.Admin.IdleTimeout = Duration{90 * time.Second}, Duration{15 * time.Second}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, t.TempDir(), "config.yaml", file)
			fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
			configPath := fs.String("config", "", "config file")
			RegisterFlags(fs)
			if err := fs.Parse(append([]string{"--config", path}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			got, err := load(*configPath, tc.env, fs)
			if err != nil {
				t.Fatalf("load() = %v", err)
			}
			want := Default()
			want.Redis.Mode = ModeCluster
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("load() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestFlagSyntaxErrorsNameTheKey(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"a malformed integer": {
			args: []string{"--redis.db=x"},
			want: `invalid value "x" for flag -redis.db: want an integer, got "x"`,
		},
		"a malformed duration": {
			args: []string{"--stream.ttl", "forever"},
			want: `invalid value "forever" for flag -stream.ttl: want a duration`,
		},
		"a malformed boolean": {
			args: []string{"--redis.tls.enabled=maybe"},
			want: `invalid boolean value "maybe" for -redis.tls.enabled: want true or false`,
		},
		"a misspelt flag": {
			args: []string{"--stream.formt=flat"},
			want: "flag provided but not defined: -stream.formt",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			RegisterFlags(fs)
			err := fs.Parse(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestFlagHelpShowsDefaultsAndVariables(t *testing.T) {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	RegisterFlags(fs)
	fs.PrintDefaults()
	for _, want := range []string{
		"-redis.addresses list\n",
		"a comma-separated list; or set TRACESTREAM_REDIS_ADDRESSES (docs/exporter-config.md) (default localhost:6379)\n",
		"-stream.ttl duration\n",
		"a duration such as 5s or 100ms; or set TRACESTREAM_STREAM_TTL (docs/exporter-config.md)\n",
		"-redis.tls.enabled\n",
		"true or false; or set TRACESTREAM_REDIS_TLS_ENABLED (docs/exporter-config.md)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not contain %q:\n%s", want, out.String())
		}
	}
}

func TestLoadWithFlagsRequiresParsedFlags(t *testing.T) {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	RegisterFlags(fs)
	if _, err := LoadWithFlags("", fs); err == nil {
		t.Fatal("LoadWithFlags() before Parse = nil error")
	}
	if err := fs.Parse([]string{"--stream.format=otlp"}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadWithFlags("", fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stream.Format != FormatOTLP {
		t.Errorf("stream.format = %q, want otlp", c.Stream.Format)
	}
}

func TestDurationJSON(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		"a duration string":           {in: `"1m30s"`, want: 90 * time.Second},
		"a fraction":                  {in: `"1.5ms"`, want: 1500 * time.Microsecond},
		"a bare zero":                 {in: `0`, want: 0},
		"null keeps the value":        {in: `null`, want: 7 * time.Second},
		"a number without a unit":     {in: `30`, wantErr: "cannot unmarshal number 30"},
		"a string without a unit":     {in: `"30"`, wantErr: `cannot unmarshal string "30"`},
		"a bool is not a duration":    {in: `true`, wantErr: "cannot unmarshal bool"},
		"an object is not a duration": {in: `{}`, wantErr: "cannot unmarshal object"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := Duration{7 * time.Second}
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%s) = %v, want an error containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s) = %v", tc.in, err)
			}
			if d.Duration != tc.want {
				t.Errorf("Unmarshal(%s) = %s, want %s", tc.in, d.Duration, tc.want)
			}
		})
	}

	marshal := map[string]struct {
		in   time.Duration
		want string
	}{
		"seconds":      {5 * time.Second, `"5s"`},
		"milliseconds": {100 * time.Millisecond, `"100ms"`},
		"mixed units":  {90 * time.Minute, `"1h30m0s"`},
		"zero":         {0, `"0s"`},
	}
	for name, tc := range marshal {
		t.Run("marshal "+name, func(t *testing.T) {
			b, err := json.Marshal(Duration{tc.in})
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("Marshal(%s) = %s, want %s", tc.in, b, tc.want)
			}
		})
	}
}

func TestMarshalOmitsZeroValues(t *testing.T) {
	b, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"flushInterval", "ttl", "minIdAge", "maxLen", "db:", "producerId", "debug"} {
		if bytes.Contains(b, []byte(absent)) {
			t.Errorf("yaml.Marshal(Default()) renders zero key %q:\n%s", absent, b)
		}
	}
	if !bytes.Contains(b, []byte("drainTimeout: 20s")) {
		t.Errorf("yaml.Marshal(Default()) lacks drainTimeout: 20s:\n%s", b)
	}
}

// fullConfig sets every key to a valid value that differs from its default.
func fullConfig(t *testing.T) Config {
	dir := t.TempDir()
	f := func(name string) string { return writeFile(t, dir, name, "not read") }
	return Config{
		Receivers: Receivers{
			GRPC: GRPC{Endpoint: "127.0.0.1:14317", MaxConcurrentStreams: 7, MaxHeaderListBytes: 8 << 10, MaxBufferedBytes: 32 << 20,
				ReadTimeout: Duration{10 * time.Second}, IdleTimeout: Duration{2 * time.Minute},
				MaxConnectionAge: Duration{time.Hour}, MaxConnectionAgeGrace: Duration{30 * time.Second}},
			HTTP: HTTP{Endpoint: "127.0.0.1:14318", ReadHeaderTimeout: Duration{3 * time.Second},
				ReadTimeout: Duration{20 * time.Second}, IdleTimeout: Duration{90 * time.Second}},
			MaxRequestBytes: 1 << 20,
			MaxConnections:  512,
			TLS:             ServerTLS{CertFile: f("tls.crt"), KeyFile: f("tls.key"), ClientCAFile: f("client-ca.crt")},
			BearerTokenFile: f("token"),
		},
		Redis: Redis{
			Mode:         ModeSentinel,
			Addresses:    []string{"rediss://sentinel-0:26379", "rediss://sentinel-1:26379"},
			Sentinel:     Sentinel{MasterName: "mymaster", PasswordFile: f("sentinel-password")},
			DB:           2,
			UsernameFile: f("username"),
			PasswordFile: f("password"),
			TLS: ClientTLS{
				Enabled: true, CAFile: f("ca.crt"), CertFile: f("client.crt"), KeyFile: f("client.key"),
				ServerName: "redis.example", InsecureSkipVerify: true,
			},
			DialTimeout:  Duration{time.Second},
			ReadTimeout:  Duration{1500 * time.Millisecond},
			WriteTimeout: Duration{2 * time.Second},
			PoolSize:     16,
		},
		Stream: Stream{
			KeyTemplate:   "spans:{k8s.namespace.name}:{service.name}",
			Fallback:      "none",
			Format:        FormatOTLP,
			MaxLen:        1_000_000,
			MinIDAge:      Duration{6 * time.Hour},
			TTL:           Duration{48 * time.Hour},
			PipelineSize:  500,
			FlushInterval: Duration{2 * time.Millisecond},
			Writers:       8,
			MaxKeys:       500,
			OverflowKey:   "spans:overflow",
		},
		Filter: Filter{ExcludeServices: []string{"loadgen", "healthcheck"}},
		Delivery: Delivery{
			MaxInFlightSpans:     50_000,
			MaxInFlightBytes:     64 << 20,
			RetryInitialInterval: Duration{100 * time.Millisecond},
			RetryMaxInterval:     Duration{10 * time.Second},
			RequestTimeout:       Duration{5 * time.Second},
			DrainTimeout:         Duration{25 * time.Second},
			StallTimeout:         Duration{2 * time.Second},
			ProducerID:           "exporter-0",
			PersistentQueue:      PersistentQueue{Directory: "/var/lib/tracestream/queue", MaxBytes: 2 << 30},
		},
		Admin: Admin{Endpoint: "127.0.0.1:18888", Debug: true, ReadHeaderTimeout: Duration{2 * time.Second},
			ReadTimeout: Duration{4 * time.Second}, WriteTimeout: Duration{45 * time.Second}, IdleTimeout: Duration{20 * time.Second},
			MaxConnections: 16},
		Telemetry: Telemetry{Logs: Logs{Level: "debug"}},
	}
}

func TestRenderedConfigLoadsBackUnchanged(t *testing.T) {
	full := fullConfig(t)
	// Every key but one is set, so a key added later is covered here or the test says so.
	for _, l := range leaves() {
		if l.key == "filter.includeServices" { // exclusive with excludeServices, which is set
			continue
		}
		if l.field(&full).IsZero() {
			t.Errorf("fullConfig leaves %s unset; set it so that the round trip covers it", l.key)
		}
	}
	included := Default()
	included.Filter.IncludeServices = []string{"checkout", "cart"}

	tests := map[string]Config{
		"the defaults":                    Default(),
		"every key set":                   full,
		"an include filter over defaults": included,
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := yaml.Marshal(want) // what the operator writes into the ConfigMap
			if err != nil {
				t.Fatal(err)
			}
			got, err := load(writeFile(t, t.TempDir(), "config.yaml", string(b)), nil, nil)
			if err != nil {
				t.Fatalf("load() = %v\nrendered:\n%s", err, b)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip changed the configuration\ngot:  %+v\nwant: %+v\nrendered:\n%s", got, want, b)
			}
		})
	}
}

func TestDocumentationCoversEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "exporter-config.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves() {
		if !bytes.Contains(doc, []byte("`"+l.key+"`")) {
			t.Errorf("docs/exporter-config.md does not document `%s`", l.key)
		}
		if !bytes.Contains(doc, []byte(l.env)) {
			t.Errorf("docs/exporter-config.md does not name %s", l.env)
		}
	}
}

func TestDocumentationExamplesAreValid(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "exporter-config.md"))
	if err != nil {
		t.Fatal(err)
	}
	var examples []string
	for rest := string(doc); ; {
		_, after, found := strings.Cut(rest, "```yaml\n")
		if !found {
			break
		}
		example, next, _ := strings.Cut(after, "```")
		examples, rest = append(examples, example), next
	}
	if len(examples) != 4 {
		t.Fatalf("found %d YAML examples, want 4 (standalone, TLS and ACL, cluster, sentinel)", len(examples))
	}
	for i, example := range examples {
		c := Default()
		if err := decodeYAML([]byte(example), &c); err != nil {
			t.Errorf("example %d does not decode: %v\n%s", i+1, err, example)
			continue
		}
		// The files these examples name exist only in a pod.
		if err := c.ValidateStatic(); err != nil {
			t.Errorf("example %d is invalid: %v\n%s", i+1, err, example)
		}
	}
}
