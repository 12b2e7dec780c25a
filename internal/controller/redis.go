package controller

import (
	"fmt"
	"slices"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// redisTarget builds the lag reader's connection from the spec and the Secrets read this pass,
// in memory, with package redisconn's rules: the credentials are trimmed as the exporter trims
// its files, and TLS follows spec.redis.tls or rediss:// addresses.
func redisTarget(obj *v1.RedisTraceExporter, s secrets) (redislag.Target, error) {
	sp := obj.Spec.Redis
	t := redislag.Target{Mode: sp.Mode, Addresses: sp.Addresses, DB: int(sp.DB)}
	if sp.Sentinel != nil {
		t.MasterName = sp.Sentinel.MasterName
	}
	if a := sp.Auth; a != nil {
		user, pass := render.AuthKeys(a)
		data := s[render.SecretRedisAuth].Data
		t.Username, t.Password = redisconn.TrimCredential(string(data[user])), redisconn.TrimCredential(string(data[pass]))
	}
	tlsOn := redisconn.TLSFiles{Enabled: sp.TLS != nil && sp.TLS.Enabled}.On(slices.ContainsFunc(sp.Addresses, redisconn.AsksTLS))
	if tl := sp.TLS; tlsOn {
		cfg, err := redisconn.NewTLSConfig(lagTLS(tl, s))
		if err != nil {
			// A CA or client certificate the handshake cannot use: the RedisReachable
			// condition points at spec.redis.tls, as for a handshake that failed.
			return t, fmt.Errorf("%w: spec.redis.tls: %w", redisconn.ErrTLSHandshake, err)
		}
		t.TLS = cfg
	}
	return t, nil
}

// lagTLS is the lag reader's TLS material: the CA and client certificate from the Secrets.
func lagTLS(tl *v1.RedisTLS, s secrets) redisconn.TLSPEM {
	if tl == nil {
		return redisconn.TLSPEM{}
	}
	p := redisconn.TLSPEM{ServerName: tl.ServerName, InsecureSkipVerify: tl.InsecureSkipVerify}
	if ca, ok := s[render.SecretRedisCA]; ok {
		p.CA = ca.Data[tl.CASecretRef.Key]
	}
	if client, ok := s[render.SecretRedisClient]; ok {
		p.Cert, p.Key = client.Data["tls.crt"], client.Data["tls.key"]
	}
	return p
}
