package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/encode/streamkey"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// Validate reports every problem of c, each prefixed by its key path, joined with errors.Join. It
// also checks that every file named by c exists and is readable, so it belongs in the process that
// mounts those files: the exporter. Messages name files but never show their contents.
func (c Config) Validate() error { return c.validate(true) }

// ValidateStatic is Validate without the file checks: the rules that need no filesystem. The
// operator uses it, since the files named in the configuration exist only in the exporter's pod.
func (c Config) ValidateStatic() error { return c.validate(false) }

// Limits enforced by Validate.
const (
	// MaxPipelineSize is the largest stream.pipelineSize.
	MaxPipelineSize = 100_000
	// MaxWriters is the largest stream.writers.
	MaxWriters = 64
)

func (c Config) validate(files bool) error {
	v := &validator{files: files}
	c.validateReceivers(v)
	c.validateRedis(v)
	c.validateStream(v)
	c.validateFilter(v)
	c.validateDelivery(v)
	c.validateAdmin(v)
	c.validateTelemetry(v)
	v.distinctEndpoints(
		[2]string{"receivers.grpc.endpoint", c.Receivers.GRPC.Endpoint},
		[2]string{"receivers.http.endpoint", c.Receivers.HTTP.Endpoint},
		[2]string{"admin.endpoint", c.Admin.Endpoint},
	)
	return errors.Join(v.errs...)
}

func (c Config) validateReceivers(v *validator) {
	r := c.Receivers
	v.listenEndpoint("receivers.grpc.endpoint", r.GRPC.Endpoint)
	v.listenEndpoint("receivers.http.endpoint", r.HTTP.Endpoint)
	if r.GRPC.MaxConcurrentStreams < 1 {
		v.addf("receivers.grpc.maxConcurrentStreams", "must be at least 1")
	}
	if r.GRPC.MaxHeaderListBytes < 1024 {
		v.addf("receivers.grpc.maxHeaderListBytes", "must be at least 1024, got %d", r.GRPC.MaxHeaderListBytes)
	}
	if r.GRPC.MaxBufferedBytes < r.MaxRequestBytes {
		v.addf("receivers.grpc.maxBufferedBytes", "must be at least receivers.maxRequestBytes (%d), so that the largest message can arrive, got %d", r.MaxRequestBytes, r.GRPC.MaxBufferedBytes)
	}
	v.positive("receivers.grpc.readTimeout", r.GRPC.ReadTimeout)
	v.positive("receivers.grpc.idleTimeout", r.GRPC.IdleTimeout)
	v.positive("receivers.grpc.maxConnectionAge", r.GRPC.MaxConnectionAge)
	v.positive("receivers.grpc.maxConnectionAgeGrace", r.GRPC.MaxConnectionAgeGrace)
	v.positive("receivers.http.readHeaderTimeout", r.HTTP.ReadHeaderTimeout)
	v.positive("receivers.http.readTimeout", r.HTTP.ReadTimeout)
	v.positive("receivers.http.idleTimeout", r.HTTP.IdleTimeout)
	if r.MaxConnections < 1 {
		v.addf("receivers.maxConnections", "must be at least 1, got %d", r.MaxConnections)
	}
	if r.MaxRequestBytes < 1 {
		v.addf("receivers.maxRequestBytes", "must be at least 1, got %d", r.MaxRequestBytes)
	}
	v.pair("receivers.tls.certFile", r.TLS.CertFile, "receivers.tls.keyFile", r.TLS.KeyFile)
	if r.TLS.ClientCAFile != "" && r.TLS.CertFile == "" {
		v.addf("receivers.tls.clientCAFile", "requires receivers.tls.certFile and keyFile (mutual TLS needs TLS)")
	}
	v.file("receivers.tls.certFile", r.TLS.CertFile)
	v.file("receivers.tls.keyFile", r.TLS.KeyFile)
	v.file("receivers.tls.clientCAFile", r.TLS.ClientCAFile)
	v.file("receivers.bearerTokenFile", r.BearerTokenFile)
}

// validateRedis checks the redis section: the connection rules are redisconn's, the file and
// limit checks this package's.
func (c Config) validateRedis(v *validator) {
	r := c.Redis
	ep, err := r.Endpoint().Resolve(RedisKey)
	v.add(err)
	v.add(redisconn.CheckCredentialFiles(r.UsernameFile, r.PasswordFile, RedisKey))
	tlsFiles := r.TLS.Files()
	v.add(tlsFiles.Check(tlsFiles.On(ep.AsksTLS), RedisKey))

	v.file("redis.usernameFile", r.UsernameFile)
	v.file("redis.passwordFile", r.PasswordFile)
	v.file("redis.sentinel.passwordFile", r.Sentinel.PasswordFile)
	v.file("redis.tls.caFile", r.TLS.CAFile)
	v.file("redis.tls.certFile", r.TLS.CertFile)
	v.file("redis.tls.keyFile", r.TLS.KeyFile)

	v.positive("redis.dialTimeout", r.DialTimeout)
	v.positive("redis.readTimeout", r.ReadTimeout)
	v.positive("redis.writeTimeout", r.WriteTimeout)
	if r.PoolSize < 1 {
		v.addf("redis.poolSize", "must be at least 1, got %d", r.PoolSize)
	}
}

// RedisKey starts the keys of the redis section in redisconn's errors, for whoever checks that
// section (this package, and the sink that loads its files).
const RedisKey = "redis."

// Endpoint is where r says to connect, for redisconn's rules and client.
func (r Redis) Endpoint() redisconn.Endpoint {
	return redisconn.Endpoint{
		Mode:                 redisconn.Mode(r.Mode),
		Addresses:            r.Addresses,
		MasterName:           r.Sentinel.MasterName,
		DB:                   r.DB,
		SentinelPasswordFile: r.Sentinel.PasswordFile,
	}
}

// Files is t as redisconn reads it.
func (t ClientTLS) Files() redisconn.TLSFiles {
	return redisconn.TLSFiles{
		Enabled:            t.Enabled,
		CAFile:             t.CAFile,
		CertFile:           t.CertFile,
		KeyFile:            t.KeyFile,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
}

func (c Config) validateStream(v *validator) {
	s := c.Stream
	if s.KeyTemplate == "" {
		v.addf("stream.keyTemplate", "required")
	} else if err := parseKeyTemplate(s.KeyTemplate); err != nil {
		v.addf("stream.keyTemplate", "%v", err)
	}
	if s.Fallback == "" {
		v.addf("stream.fallback", "required (it replaces a placeholder whose attribute is missing)")
	}
	formats := []string{FormatJSON, FormatFlat, FormatOTLP}
	if !slices.Contains(formats, s.Format) {
		v.addf("stream.format", "%q is not one of %s", s.Format, strings.Join(formats, ", "))
	}
	if s.MaxLen < 0 {
		v.addf("stream.maxLen", "must not be negative (0 disables trimming), got %d", s.MaxLen)
	}
	v.nonNegative("stream.minIdAge", s.MinIDAge)
	if d := s.MinIDAge.Duration; d > 0 && d < time.Millisecond {
		v.addf("stream.minIdAge", "%s is less than a stream ID's resolution of 1ms", d)
	}
	v.nonNegative("stream.ttl", s.TTL)
	if d := s.TTL.Duration; d > 0 && d < time.Second {
		v.addf("stream.ttl", "%s is less than EXPIRE's resolution of 1s", d)
	}
	if s.MaxKeys < 1 {
		v.addf("stream.maxKeys", "must be at least 1, got %d", s.MaxKeys)
	}
	if s.PipelineSize < 1 || s.PipelineSize > MaxPipelineSize {
		v.addf("stream.pipelineSize", "must be between 1 and %d, got %d", MaxPipelineSize, s.PipelineSize)
	}
	v.nonNegative("stream.flushInterval", s.FlushInterval)
	if s.Writers < 1 || s.Writers > MaxWriters {
		v.addf("stream.writers", "must be between 1 and %d, got %d", MaxWriters, s.Writers)
	}
}

// parseKeyTemplate checks stream.keyTemplate's syntax with the parser the encoder uses.
func parseKeyTemplate(template string) error {
	_, err := streamkey.Parse(template)
	return err
}

func (c Config) validateFilter(v *validator) {
	f := c.Filter
	if len(f.IncludeServices) > 0 && len(f.ExcludeServices) > 0 {
		v.addf("filter", "includeServices and excludeServices cannot both be set")
	}
	for i, s := range f.IncludeServices {
		if strings.TrimSpace(s) == "" {
			v.addf(fmt.Sprintf("filter.includeServices[%d]", i), "empty service name")
		}
	}
	for i, s := range f.ExcludeServices {
		if strings.TrimSpace(s) == "" {
			v.addf(fmt.Sprintf("filter.excludeServices[%d]", i), "empty service name")
		}
	}
}

func (c Config) validateDelivery(v *validator) {
	d := c.Delivery
	if d.MaxInFlightSpans < 1 {
		v.addf("delivery.maxInFlightSpans", "must be at least 1, got %d", d.MaxInFlightSpans)
	}
	if d.MaxInFlightBytes < c.Receivers.MaxRequestBytes {
		v.addf("delivery.maxInFlightBytes", "must be at least receivers.maxRequestBytes (%d), got %d", c.Receivers.MaxRequestBytes, d.MaxInFlightBytes)
	}
	v.positive("delivery.retryInitialInterval", d.RetryInitialInterval)
	v.positive("delivery.retryMaxInterval", d.RetryMaxInterval)
	if d.RetryMaxInterval.Duration > 0 && d.RetryMaxInterval.Duration < d.RetryInitialInterval.Duration {
		v.addf("delivery.retryMaxInterval", "%s is less than delivery.retryInitialInterval (%s)",
			d.RetryMaxInterval.Duration, d.RetryInitialInterval.Duration)
	}
	v.positive("delivery.requestTimeout", d.RequestTimeout)
	v.positive("delivery.drainTimeout", d.DrainTimeout)
	v.positive("delivery.stallTimeout", d.StallTimeout)
	if q := d.PersistentQueue; q.MaxBytes != 0 && q.MaxBytes < MinPersistentQueueBytes {
		v.addf("delivery.persistentQueue.maxBytes", "must be at least %d (64 MiB), got %d", MinPersistentQueueBytes, q.MaxBytes)
	}
}

func (c Config) validateAdmin(v *validator) {
	a := c.Admin
	v.listenEndpoint("admin.endpoint", a.Endpoint)
	v.positive("admin.readHeaderTimeout", a.ReadHeaderTimeout)
	v.positive("admin.readTimeout", a.ReadTimeout)
	v.positive("admin.writeTimeout", a.WriteTimeout)
	v.positive("admin.idleTimeout", a.IdleTimeout)
	if a.MaxConnections < 1 {
		v.addf("admin.maxConnections", "must be at least 1, got %d", a.MaxConnections)
	}
}

// MinPersistentQueueBytes is the smallest write-ahead log accepted: room for a few requests of
// the largest size.
const MinPersistentQueueBytes = 64 << 20

// validator collects problems.
type validator struct {
	files bool // check that named files exist and are readable
	errs  []error
}

// add records err, which names its own key; a nil err is no problem.
func (v *validator) add(err error) {
	if err != nil {
		v.errs = append(v.errs, err)
	}
}

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) positive(key string, d Duration) {
	if d.Duration <= 0 {
		v.addf(key, "must be positive, got %s", d.Duration)
	}
}

func (v *validator) nonNegative(key string, d Duration) {
	if d.Duration < 0 {
		v.addf(key, "must not be negative (0 disables), got %s", d.Duration)
	}
}

// pair requires both keys or neither.
func (v *validator) pair(keyA, a, keyB, b string) {
	switch {
	case a != "" && b == "":
		v.addf(keyB, "required when %s is set", keyA)
	case a == "" && b != "":
		v.addf(keyA, "required when %s is set", keyB)
	}
}

// file checks that path, when set, is a readable, non-empty file. The message names the path and
// the reason, never the contents.
func (v *validator) file(key, path string) {
	if path == "" || !v.files {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		v.addf(key, "cannot read %s: %v", path, err)
		return
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	switch {
	case err != nil:
		v.addf(key, "cannot read %s: %v", path, err)
	case fi.IsDir():
		v.addf(key, "%s is a directory, not a file", path)
	case fi.Size() == 0:
		v.addf(key, "%s is empty", path)
	}
}

// listenEndpoint checks a listen address: host:port with a numeric port; the host may be empty
// (all interfaces) and port 0 picks a free port.
func (v *validator) listenEndpoint(key, addr string) {
	if addr == "" {
		v.addf(key, "required (host:port, e.g. \":4317\")")
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(key, "%q is not host:port", addr)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.addf(key, "%q: port %q is not a number between 0 and 65535", addr, port)
	}
}

// distinctEndpoints reports listen endpoints that would collide on the same port.
func (v *validator) distinctEndpoints(eps ...[2]string) {
	for i := range eps {
		for j := range i {
			if collide(eps[j][1], eps[i][1]) {
				v.addf(eps[i][0], "%q collides with %s %q", eps[i][1], eps[j][0], eps[j][1])
			}
		}
	}
}

// collide reports whether two listen addresses would need the same port on the same interface.
func collide(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}
