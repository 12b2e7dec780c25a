package controller

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/redislag"
	"github.com/tracestream/tracestream/internal/render"
)

// redisTarget builds the lag reader's connection from the spec and the Secrets read this pass,
// in memory: the credentials are trimmed as the exporter trims its files, and TLS follows
// spec.redis.tls or rediss:// addresses. Everything about connecting to Redis is in this file,
// so that it can give way to package redisconn's parsing and TLS builder as one piece.
func redisTarget(obj *v1.RedisTraceExporter, s secrets) (redislag.Target, error) {
	sp := obj.Spec.Redis
	t := redislag.Target{Mode: sp.Mode, Addresses: sp.Addresses, DB: int(sp.DB)}
	if t.Mode == "" {
		t.Mode = v1.RedisModeStandalone
	}
	if sp.Sentinel != nil {
		t.MasterName = sp.Sentinel.MasterName
	}
	if a := sp.Auth; a != nil {
		user, pass := render.AuthKeys(a)
		data := s[render.SecretRedisAuth].Data
		t.Username, t.Password = strings.TrimSpace(string(data[user])), strings.TrimSpace(string(data[pass]))
	}
	secure := false
	for _, a := range sp.Addresses {
		secure = secure || strings.HasPrefix(a, "rediss://")
	}
	if tl := sp.TLS; (tl != nil && tl.Enabled) || secure {
		cfg, err := lagTLS(tl, s)
		if err != nil {
			return t, err
		}
		t.TLS = cfg
	}
	return t, nil
}

// lagTLS is the lag reader's TLS configuration: the CA and client certificate from the Secrets.
func lagTLS(tl *v1.RedisTLS, s secrets) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tl == nil {
		return cfg, nil
	}
	cfg.ServerName, cfg.InsecureSkipVerify = tl.ServerName, tl.InsecureSkipVerify //nolint:gosec // the user's explicit opt-in
	if ca, ok := s[render.SecretRedisCA]; ok {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.Data[tl.CASecretRef.Key])
		cfg.RootCAs = pool
	}
	if client, ok := s[render.SecretRedisClient]; ok {
		cert, err := tls.X509KeyPair(client.Data["tls.crt"], client.Data["tls.key"])
		if err != nil {
			return nil, fmt.Errorf("client certificate in Secret %q: %w", client.Name, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
