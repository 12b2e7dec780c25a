package render

import (
	"fmt"

	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// ExporterConfig is the exporter configuration the CR asks for, with Secrets as mounted files.
func ExporterConfig(rte *v1.RedisTraceExporter, in Inputs) config.Config {
	c := config.Default()
	grpcPort, httpPort := ports(rte)
	c.Receivers.GRPC.Endpoint = fmt.Sprintf(":%d", grpcPort)
	c.Receivers.HTTP.Endpoint = fmt.Sprintf(":%d", httpPort)
	c.Admin.Endpoint = fmt.Sprintf(":%d", AdminPort)
	c.Delivery.DrainTimeout = config.Duration{Duration: drainTimeout}
	redisConfig(&c.Redis, rte.Spec.Redis, in)
	streamConfig(&c.Stream, rte.Spec.Stream)
	c.Filter.IncludeServices = append([]string(nil), rte.Spec.Filter.IncludeServices...)
	c.Filter.ExcludeServices = append([]string(nil), rte.Spec.Filter.ExcludeServices...)
	receiversConfig(&c.Receivers, rte.Spec.Receivers, in)
	deliveryConfig(&c, rte)
	return c
}

func redisConfig(c *config.Redis, s v1.RedisSpec, in Inputs) {
	c.Mode = string(redisconn.Mode(s.Mode).OrDefault())
	c.Addresses = append([]string(nil), s.Addresses...)
	if s.Sentinel != nil {
		c.Sentinel.MasterName = s.Sentinel.MasterName
	}
	c.DB = int(s.DB)
	if s.Auth != nil {
		if in.HasUsername {
			c.UsernameFile = secretFile(SecretRedisAuth, "username")
		}
		c.PasswordFile = secretFile(SecretRedisAuth, "password")
	}
	if t := s.TLS; t != nil && t.Enabled {
		c.TLS.Enabled = true
		c.TLS.ServerName = t.ServerName
		c.TLS.InsecureSkipVerify = t.InsecureSkipVerify
		if t.CASecretRef != nil {
			c.TLS.CAFile = secretFile(SecretRedisCA, "ca.crt")
		}
		if t.ClientCertSecretRef != nil {
			c.TLS.CertFile = secretFile(SecretRedisClient, "tls.crt")
			c.TLS.KeyFile = secretFile(SecretRedisClient, "tls.key")
		}
	}
}

// streamConfig copies what the spec sets; what it leaves unset keeps the exporter's default.
func streamConfig(c *config.Stream, s v1.StreamSpec) {
	if s.KeyTemplate != "" {
		c.KeyTemplate = s.KeyTemplate
	}
	if s.Format != "" {
		c.Format = s.Format
	}
	c.MaxLen = s.MaxLen
	if s.MinIDAge != nil {
		c.MinIDAge = config.Duration{Duration: s.MinIDAge.Duration}
	}
	if s.TTL != nil {
		c.TTL = config.Duration{Duration: s.TTL.Duration}
	}
	if s.PipelineSize > 0 {
		c.PipelineSize = int(s.PipelineSize)
	}
	if s.MaxKeys > 0 {
		c.MaxKeys = int(s.MaxKeys)
	}
	c.OverflowKey = s.OverflowKey
}

func receiversConfig(c *config.Receivers, s v1.ReceiversSpec, in Inputs) {
	if s.TLSSecretRef != nil {
		c.TLS.CertFile = secretFile(SecretReceiverTLS, "tls.crt")
		c.TLS.KeyFile = secretFile(SecretReceiverTLS, "tls.key")
		if in.ReceiverClientCA {
			c.TLS.ClientCAFile = secretFile(SecretReceiverTLS, "ca.crt")
		}
	}
	if s.BearerTokenSecretRef != nil {
		c.BearerTokenFile = secretFile(SecretReceiverToken, "token")
	}
}

func deliveryConfig(c *config.Config, rte *v1.RedisTraceExporter) {
	if lim := memoryLimit(rte); lim > 0 {
		// Half the container's memory for requests in flight; the rest is the Go runtime,
		// connections and garbage not yet collected (docs/reliability.md has measured peaks).
		c.Delivery.MaxInFlightBytes = max(lim/2, c.Receivers.MaxRequestBytes)
	}
	if q := rte.Spec.Delivery.PersistentQueue; q != nil {
		size := queueSize(q)
		c.Delivery.PersistentQueue = config.PersistentQueue{Directory: queueDir, MaxBytes: size.Value() / 16 * 15}
	}
}

// InvalidConfigError is a spec the CRD accepts but whose rendered exporter configuration the
// exporter would refuse at start-up: only the user can fix it.
type InvalidConfigError struct {
	Err error
}

func (e *InvalidConfigError) Error() string {
	return "the exporter configuration rendered from the spec is invalid: " + e.Err.Error()
}

func (e *InvalidConfigError) Unwrap() error { return e.Err }

// configYAML validates the configuration as the exporter will (without the file checks: the
// files exist only in the pod) and renders it.
func configYAML(c config.Config) (string, error) {
	if err := c.ValidateStatic(); err != nil {
		return "", &InvalidConfigError{Err: err}
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("rendering exporter config: %w", err)
	}
	return string(b), nil
}
