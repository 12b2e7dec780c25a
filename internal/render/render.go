// Package render builds the exporter's Kubernetes objects from a RedisTraceExporter: pure
// functions from the resource and what the controller observed (Inputs) to server-side apply
// configurations. No client, no I/O: every builder is covered by golden files.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// Fixed layout of the exporter pod.
const (
	AdminPort = 8888
	// AdminPortName names the admin port in the pod: the probes and the PodMonitor use it.
	AdminPortName = "admin"

	ConfigFile       = "exporter.yaml"
	configDir        = "/etc/tracestream/config"
	queueDir         = "/var/lib/tracestream/queue"
	ConfigHashKey    = "tracestream.io/config-hash"
	drainTimeout     = 20 * time.Second
	preStopSleep     = 5
	terminationGrace = 35
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

// InstanceLabel holds the resource's name on its children and pods; the PodMonitor keeps it on
// the exporter's series as app_kubernetes_io_instance.
const InstanceLabel = "app.kubernetes.io/instance"

// SelectorLabels select one RedisTraceExporter's pods.
func SelectorLabels(rte *v1.RedisTraceExporter) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name": "tracestream-exporter",
		InstanceLabel:            rte.Name,
	}
}

// ConfigMapName is the name of the exporter's ConfigMap: the one of the workload kind the spec
// asks for (WorkloadKind).
func ConfigMapName(rte *v1.RedisTraceExporter) string {
	return ConfigMapNameFor(rte, WorkloadKind(rte))
}

// ConfigMapNameFor is the ConfigMap the pods of a workload kind read. Each kind has its own, so
// that while the controller keeps the old workload during a change of kind, its pods (a restart,
// a replacement) still read the configuration they were made for, not the new kind's (another
// queue size or volume).
func ConfigMapNameFor(rte *v1.RedisTraceExporter, kind string) string {
	if kind == KindStatefulSet {
		return rte.Name + "-statefulset-config"
	}
	return rte.Name + "-config"
}

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
		grpcPort = v1.DefaultGRPCPort
	}
	if httpPort == 0 {
		httpPort = v1.DefaultHTTPPort
	}
	return grpcPort, httpPort
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
	return v1.DefaultLagRefresh
}

// LagMaxStreams bounds the streams reported. The CRD refuses 0; an object that never went
// through the API server may still hold it, and gets the default rather than "no bound".
func LagMaxStreams(rte *v1.RedisTraceExporter) int {
	if m := rte.Spec.Lag.MaxStreams; m != nil && *m > 0 {
		return int(*m)
	}
	return int(v1.DefaultLagMaxStreams)
}
