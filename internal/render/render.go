// Package render builds the exporter's Kubernetes objects from a RedisTraceExporter: pure
// functions from the resource and what the controller observed (Inputs) to server-side apply
// configurations. No client, no I/O: every builder is covered by golden files.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/config"
)

// Fixed layout of the exporter pod.
const (
	AdminPort = 8888

	ConfigFile        = "exporter.yaml"
	configDir         = "/etc/tracestream/config"
	redisAuthDir      = "/etc/tracestream/redis-auth"
	redisCADir        = "/etc/tracestream/redis-ca"
	redisClientDir    = "/etc/tracestream/redis-client"
	receiverTLSDir    = "/etc/tracestream/receiver-tls"
	receiverTokenDir  = "/etc/tracestream/receiver-token"
	queueDir          = "/var/lib/tracestream/queue"
	ConfigHashKey     = "tracestream.io/config-hash"
	drainTimeout      = 20 * time.Second
	preStopSleep      = 5
	terminationGrace  = 35
	defaultRefresh    = 30 * time.Second
	defaultMaxStreams = 50
)

// Inputs are what the controller observed and the builders cannot know from the spec alone.
type Inputs struct {
	// Image is the exporter image when spec.image is empty (the operator's own image).
	Image string
	// SecretsHash is a hash of the data of every referenced Secret: it rolls the pods when a
	// Secret changes, since files mounted from it change but the exporter's config does not.
	SecretsHash string
	// HasUsername says the auth Secret holds the username key (else only a password is used).
	HasUsername bool
	// ReceiverClientCA says the receiver TLS Secret holds ca.crt: clients must then present a
	// certificate (mutual TLS).
	ReceiverClientCA bool
}

// Labels are the labels of every child; SelectorLabels select the exporter pods.
func Labels(rte *v1.RedisTraceExporter) map[string]string {
	l := SelectorLabels(rte)
	l["app.kubernetes.io/managed-by"] = "tracestream-operator"
	l["app.kubernetes.io/component"] = "exporter"
	return l
}

// SelectorLabels select one RedisTraceExporter's pods.
func SelectorLabels(rte *v1.RedisTraceExporter) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "tracestream-exporter",
		"app.kubernetes.io/instance": rte.Name,
	}
}

// ConfigMapName is the name of the exporter's ConfigMap.
func ConfigMapName(rte *v1.RedisTraceExporter) string { return rte.Name + "-config" }

// ServiceAccountName is the pods' ServiceAccount.
func ServiceAccountName(rte *v1.RedisTraceExporter) string {
	if rte.Spec.ServiceAccountName != "" {
		return rte.Spec.ServiceAccountName
	}
	return OwnServiceAccountName(rte)
}

// OwnServiceAccountName is the ServiceAccount the operator creates when spec.serviceAccountName
// is empty (and prunes when it is set).
func OwnServiceAccountName(rte *v1.RedisTraceExporter) string { return rte.Name + "-exporter" }

func ownerRef(rte *v1.RedisTraceExporter) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1.GroupVersion.String()).WithKind("RedisTraceExporter").
		WithName(rte.Name).WithUID(rte.UID).
		WithController(true).WithBlockOwnerDeletion(true)
}

// ExporterConfig is the exporter configuration the CR asks for, with Secrets as mounted files.
func ExporterConfig(rte *v1.RedisTraceExporter, in Inputs) config.Config {
	s := rte.Spec
	c := config.Default()
	grpcPort, httpPort := ports(rte)
	c.Receivers.GRPC.Endpoint = fmt.Sprintf(":%d", grpcPort)
	c.Receivers.HTTP.Endpoint = fmt.Sprintf(":%d", httpPort)
	c.Admin.Endpoint = fmt.Sprintf(":%d", AdminPort)
	c.Delivery.DrainTimeout = config.Duration{Duration: drainTimeout}

	c.Redis.Mode = s.Redis.Mode
	if c.Redis.Mode == "" {
		c.Redis.Mode = config.ModeStandalone
	}
	c.Redis.Addresses = append([]string(nil), s.Redis.Addresses...)
	if s.Redis.Sentinel != nil {
		c.Redis.Sentinel.MasterName = s.Redis.Sentinel.MasterName
	}
	c.Redis.DB = int(s.Redis.DB)
	if s.Redis.Auth != nil {
		if in.HasUsername {
			c.Redis.UsernameFile = redisAuthDir + "/username"
		}
		c.Redis.PasswordFile = redisAuthDir + "/password"
	}
	if t := s.Redis.TLS; t != nil && t.Enabled {
		c.Redis.TLS.Enabled = true
		c.Redis.TLS.ServerName = t.ServerName
		c.Redis.TLS.InsecureSkipVerify = t.InsecureSkipVerify
		if t.CASecretRef != nil {
			c.Redis.TLS.CAFile = redisCADir + "/ca.crt"
		}
		if t.ClientCertSecretRef != nil {
			c.Redis.TLS.CertFile = redisClientDir + "/tls.crt"
			c.Redis.TLS.KeyFile = redisClientDir + "/tls.key"
		}
	}

	if s.Stream.KeyTemplate != "" {
		c.Stream.KeyTemplate = s.Stream.KeyTemplate
	}
	if s.Stream.Format != "" {
		c.Stream.Format = s.Stream.Format
	}
	c.Stream.MaxLen = s.Stream.MaxLen
	if s.Stream.MinIDAge != nil {
		c.Stream.MinIDAge = config.Duration{Duration: s.Stream.MinIDAge.Duration}
	}
	if s.Stream.TTL != nil {
		c.Stream.TTL = config.Duration{Duration: s.Stream.TTL.Duration}
	}
	if s.Stream.PipelineSize > 0 {
		c.Stream.PipelineSize = int(s.Stream.PipelineSize)
	}
	if s.Stream.MaxKeys > 0 {
		c.Stream.MaxKeys = int(s.Stream.MaxKeys)
	}
	c.Stream.OverflowKey = s.Stream.OverflowKey
	c.Filter.IncludeServices = append([]string(nil), s.Filter.IncludeServices...)
	c.Filter.ExcludeServices = append([]string(nil), s.Filter.ExcludeServices...)
	if s.Receivers.TLSSecretRef != nil {
		c.Receivers.TLS.CertFile = receiverTLSDir + "/tls.crt"
		c.Receivers.TLS.KeyFile = receiverTLSDir + "/tls.key"
		if in.ReceiverClientCA {
			c.Receivers.TLS.ClientCAFile = receiverTLSDir + "/ca.crt"
		}
	}
	if s.Receivers.BearerTokenSecretRef != nil {
		c.Receivers.BearerTokenFile = receiverTokenDir + "/token"
	}
	if lim := memoryLimit(rte); lim > 0 {
		// Half the container's memory for requests in flight; the rest is the Go runtime,
		// connections and garbage not yet collected (docs/reliability.md has measured peaks).
		c.Delivery.MaxInFlightBytes = max(lim/2, c.Receivers.MaxRequestBytes)
	}
	if q := s.Delivery.PersistentQueue; q != nil {
		size := queueSize(q)
		c.Delivery.PersistentQueue = config.PersistentQueue{Directory: queueDir, MaxBytes: size.Value() / 16 * 15}
	}
	return c
}

// memoryLimit is the exporter container's memory limit in bytes, 0 when it has none.
func memoryLimit(rte *v1.RedisTraceExporter) int64 {
	lim, ok := rte.Spec.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		return 0
	}
	return lim.Value()
}

// defaultQueueSize is the volume of a persistent queue whose size is not given.
var defaultQueueSize = resource.MustParse("1Gi")

// queueSize is the size of the persistent queue's volume.
func queueSize(q *v1.PersistentQueueSpec) resource.Quantity {
	if q.Size == nil {
		return defaultQueueSize
	}
	return *q.Size
}

func ports(rte *v1.RedisTraceExporter) (grpcPort, httpPort int32) {
	grpcPort, httpPort = rte.Spec.Receivers.GRPCPort, rte.Spec.Receivers.HTTPPort
	if grpcPort == 0 {
		grpcPort = 4317
	}
	if httpPort == 0 {
		httpPort = 4318
	}
	return grpcPort, httpPort
}

// ConfigYAML renders the exporter configuration file and its hash.
func ConfigYAML(rte *v1.RedisTraceExporter, in Inputs) (string, error) {
	b, err := yaml.Marshal(ExporterConfig(rte, in))
	if err != nil {
		return "", fmt.Errorf("rendering exporter config: %w", err)
	}
	return string(b), nil
}

// Hash is a short stable hash of its inputs, for pod-template annotations.
func Hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func mergeLabels(base map[string]string, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range extra {
		out[k] = v
	}
	for k, v := range base { // selector labels win
		out[k] = v
	}
	return out
}

// LagRefresh is how often the controller reads lag from Redis.
func LagRefresh(rte *v1.RedisTraceExporter) time.Duration {
	if r := rte.Spec.Lag.RefreshInterval; r != nil && r.Duration > 0 {
		return r.Duration
	}
	return defaultRefresh
}

// LagMaxStreams bounds the streams reported.
func LagMaxStreams(rte *v1.RedisTraceExporter) int {
	if m := rte.Spec.Lag.MaxStreams; m != nil {
		return int(*m)
	}
	return defaultMaxStreams
}
