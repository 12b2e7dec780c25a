package redisconn

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	cases := map[string]struct {
		addr         string
		wantHostPort string
		wantTLS      bool
		wantErr      string
	}{
		"host:port is plaintext":           {addr: "redis.ns.svc:6379", wantHostPort: "redis.ns.svc:6379"},
		"redis:// is plaintext":            {addr: "redis://10.0.0.1:6379", wantHostPort: "10.0.0.1:6379"},
		"rediss:// asks for TLS":           {addr: "rediss://redis:6380", wantHostPort: "redis:6380", wantTLS: true},
		"an IPv6 address is bracketed":     {addr: "[::1]:6379", wantHostPort: "[::1]:6379"},
		"rediss:// with IPv6":              {addr: "rediss://[::1]:6380", wantHostPort: "[::1]:6380", wantTLS: true},
		"no port is refused":               {addr: "redis", wantErr: `"redis" is not host:port, redis://host:port or rediss://host:port`},
		"no host is refused":               {addr: ":6379", wantErr: `":6379" is not host:port`},
		"another scheme is refused":        {addr: "tcp://a:6379", wantErr: `"tcp://a:6379" is not host:port`},
		"a unix socket is refused":         {addr: "unix:///tmp/redis.sock", wantErr: "is not host:port"},
		"a path is refused":                {addr: "rediss://[::1]:6380/", wantErr: `port "6380/" is not a number`},
		"a space in the host is refused":   {addr: "a b:1", wantErr: "is not host:port"},
		"port 0 is refused":                {addr: "a:0", wantErr: `"a:0": port "0" is not a number between 1 and 65535`},
		"a port above 65535 is refused":    {addr: "a:70000", wantErr: `port "70000" is not a number`},
		"a named port is refused":          {addr: "a:redis", wantErr: `port "redis" is not a number`},
		"credentials are refused unshown":  {addr: "rediss://default:hunter2@redis:6380", wantErr: "must not hold credentials"},
		"a bare password is refused":       {addr: "redis://:hunter2@redis:6379", wantErr: "must not hold credentials"},
		"an unbracketed IPv6 is not valid": {addr: "::1:6379", wantErr: "is not host:port"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			hostPort, tls, err := ParseAddress(tc.addr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAddress(%q) = %q, %v, %v; want an error containing %q", tc.addr, hostPort, tls, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("ParseAddress(%q): %v shows the password", tc.addr, err)
				}
				return
			}
			if err != nil || hostPort != tc.wantHostPort || tls != tc.wantTLS {
				t.Fatalf("ParseAddress(%q) = %q, %v, %v; want %q, %v", tc.addr, hostPort, tls, err, tc.wantHostPort, tc.wantTLS)
			}
		})
	}
}

func TestEndpointResolve(t *testing.T) {
	one := []string{"a:1"}
	cases := map[string]struct {
		endpoint  Endpoint
		want      Resolved
		wantLines []string
	}{
		"an empty mode is standalone": {
			endpoint: Endpoint{Addresses: one}, want: Resolved{Mode: ModeStandalone, Addrs: one},
		},
		"a cluster takes seed nodes with rediss://": {
			endpoint: Endpoint{Mode: ModeCluster, Addresses: []string{"rediss://a:1", "rediss://b:2"}},
			want:     Resolved{Mode: ModeCluster, Addrs: []string{"a:1", "b:2"}, AsksTLS: true},
		},
		"sentinel with a master name, a db and a sentinel password": {
			endpoint: Endpoint{Mode: ModeSentinel, Addresses: []string{"s1:26379", "s2:26379"}, MasterName: "m", DB: 3, SentinelPasswordFile: "/p"},
			want:     Resolved{Mode: ModeSentinel, Addrs: []string{"s1:26379", "s2:26379"}},
		},
		"an unknown mode": {
			endpoint:  Endpoint{Mode: "ring", Addresses: one},
			wantLines: []string{`redis.mode: "ring" is not one of standalone, cluster, sentinel`},
		},
		"no address": {
			endpoint: Endpoint{}, wantLines: []string{"redis.addresses: at least one address is required"},
		},
		"standalone takes one address": {
			endpoint:  Endpoint{Addresses: []string{"a:1", "b:2"}},
			wantLines: []string{"redis.addresses: standalone mode takes exactly one address, got 2"},
		},
		"every bad address is named by its index, and a mix of schemes": {
			endpoint: Endpoint{Mode: ModeCluster, Addresses: []string{"rediss://a:1", "b", "c:1", "d:0"}},
			wantLines: []string{
				`redis.addresses[1]: "b" is not host:port`,
				`redis.addresses[3]: "d:0": port "0" is not a number between 1 and 65535`,
				"redis.addresses: mixes rediss:// and plaintext addresses; TLS is all or nothing",
			},
		},
		"sentinel needs a master name": {
			endpoint:  Endpoint{Mode: ModeSentinel, Addresses: one},
			wantLines: []string{"redis.sentinel.masterName: required when redis.mode is sentinel"},
		},
		"a master name and a sentinel password only in sentinel mode": {
			endpoint: Endpoint{Addresses: one, MasterName: "m", SentinelPasswordFile: "/p"},
			wantLines: []string{
				"redis.sentinel.masterName: only used when redis.mode is sentinel",
				"redis.sentinel.passwordFile: only used when redis.mode is sentinel",
			},
		},
		"a cluster has only db 0": {
			endpoint:  Endpoint{Mode: ModeCluster, Addresses: one, DB: 2},
			wantLines: []string{"redis.db: must be 0 in cluster mode, got 2: Redis Cluster has only database 0"},
		},
		"a negative db": {
			endpoint: Endpoint{Addresses: one, DB: -1}, wantLines: []string{"redis.db: must not be negative, got -1"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.endpoint.Resolve("redis.")
			if len(tc.wantLines) == 0 {
				if err != nil || got.Mode != tc.want.Mode || strings.Join(got.Addrs, ",") != strings.Join(tc.want.Addrs, ",") || got.AsksTLS != tc.want.AsksTLS {
					t.Fatalf("Resolve() = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve() = %+v, nil; want %d problems", got, len(tc.wantLines))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.wantLines) {
				t.Fatalf("Resolve() reported %d problems, want %d:\n%v", len(lines), len(tc.wantLines), err)
			}
			for i, want := range tc.wantLines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], want)
				}
			}
		})
	}
}

// TestResolveWithoutPrefix is the operator's spelling: its keys are spec.redis's own.
func TestResolveWithoutPrefix(t *testing.T) {
	_, err := Endpoint{Mode: ModeSentinel, Addresses: []string{"a:1"}}.Resolve("")
	if want := "sentinel.masterName: required when mode is sentinel"; err == nil || err.Error() != want {
		t.Fatalf("Resolve(\"\") = %v, want %q", err, want)
	}
}
