package redislag

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/redisconn"
)

func TestCollectRejectsInvalidInput(t *testing.T) {
	ok := Target{Addresses: []string{"127.0.0.1:6379"}}
	anyQuery := Query{Pattern: "traces:*"}
	cases := map[string]struct {
		target  Target
		query   Query
		wantErr string
	}{
		"an unknown mode":             {target: Target{Mode: "replicated", Addresses: ok.Addresses}, query: anyQuery, wantErr: "mode"},
		"no address":                  {target: Target{}, query: anyQuery, wantErr: "at least one address"},
		"two addresses in standalone": {target: Target{Addresses: []string{"a:1", "b:2"}}, query: anyQuery, wantErr: "exactly one address"},
		"an address without a port":   {target: Target{Addresses: []string{"redis"}}, query: anyQuery, wantErr: "not host:port"},
		"an address with credentials": {target: Target{Addresses: []string{"redis://user:pw@redis:6379"}}, query: anyQuery, wantErr: "addresses[0]: must not hold credentials"},
		"a port out of range":         {target: Target{Addresses: []string{"redis:70000"}}, query: anyQuery, wantErr: "port"},
		"redis:// and rediss:// mixed": {
			target: Target{Mode: "cluster", Addresses: []string{"redis://a:1", "rediss://b:2"}}, query: anyQuery, wantErr: "all or nothing",
		},
		"sentinel without a master name": {target: Target{Mode: "sentinel", Addresses: ok.Addresses}, query: anyQuery, wantErr: "sentinel.masterName: required"},
		"a master name outside sentinel": {target: Target{Addresses: ok.Addresses, MasterName: "m"}, query: anyQuery, wantErr: "sentinel.masterName: only used"},
		"a database in cluster mode":     {target: Target{Mode: "cluster", Addresses: ok.Addresses, DB: 1}, query: anyQuery, wantErr: "only database 0"},
		"a negative database":            {target: Target{Addresses: ok.Addresses, DB: -1}, query: anyQuery, wantErr: "negative"},
		"neither a pattern nor names":    {target: ok, query: Query{}, wantErr: "neither a pattern nor stream names"},
		"a negative MaxStreams":          {target: ok, query: Query{Pattern: "*", MaxStreams: -1}, wantErr: "maxStreams"},
		"an empty stream name":           {target: ok, query: Query{Streams: []string{""}}, wantErr: "empty"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Collect(ctxFor(t), tc.target, tc.query)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Collect = %v, want an error about %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("Collect = %v; the error shows the credentials in the address", err)
			}
			if redisconn.Classify(err).Cause() != redisconn.CauseOther {
				t.Errorf("Classify(%v) = %s, want %s", err, redisconn.Classify(err).Cause(), redisconn.CauseOther)
			}
		})
	}
}

func TestTargetNeverPrintsCredentials(t *testing.T) {
	target := Target{
		Mode: "sentinel", Addresses: []string{"s1:26379"}, MasterName: "m",
		Username: "secret-user", Password: "secret-password", TLS: &tls.Config{ServerName: "redis"},
	}
	const want = `sentinel [s1:26379] master "m" with credentials over TLS`
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{target, &target} {
			got := fmt.Sprintf(format, v)
			if strings.Contains(got, "secret") || !strings.Contains(got, want) {
				t.Errorf("Sprintf(%q, %T) = %s, want %s and no credentials", format, v, got, want)
			}
		}
	}
	if got := target.MarshalLog(); got != want {
		t.Errorf("MarshalLog() = %v, want %s", got, want)
	}
}
