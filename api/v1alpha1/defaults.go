package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Defaults of optional spec fields. The API server applies them from the CRD's default markers;
// the operator applies the same values to objects that never went through it (unit tests,
// objects read before a default was added). The markers cannot name a Go constant, so
// TestCRDDefaultsAreTheGoDefaults checks that each marker in the generated CRD equals its
// constant here: this file is the one place to change a default.
const (
	// DefaultReplicas is spec.replicas.
	DefaultReplicas int32 = 1
	// DefaultKeyTemplate is spec.stream.keyTemplate (also the exporter's own default).
	DefaultKeyTemplate = "traces:{service.name}"
	// DefaultGRPCPort is spec.receivers.grpcPort.
	DefaultGRPCPort int32 = 4317
	// DefaultHTTPPort is spec.receivers.httpPort.
	DefaultHTTPPort int32 = 4318
	// DefaultLagRefresh is spec.lag.refreshInterval.
	DefaultLagRefresh = 30 * time.Second
	// DefaultLagMaxStreams is spec.lag.maxStreams.
	DefaultLagMaxStreams int32 = 50
	// DefaultMinReplicas is spec.autoscaling.minReplicas.
	DefaultMinReplicas int32 = 1
	// DefaultTargetCPUUtilization is spec.autoscaling.targetCPUUtilizationPercentage.
	DefaultTargetCPUUtilization int32 = 70
)

// Defaults of the persistent queue's Persistent volume. DefaultQueueAccessMode has no CRD
// marker: a default would appear on every persistent queue, and the CRD allows accessMode only
// with volume Persistent. TestCRDDefaultsAreTheGoDefaults checks that its field's description
// names it instead.
const (
	// DefaultQueueAccessMode is spec.delivery.persistentQueue.accessMode.
	DefaultQueueAccessMode = corev1.ReadWriteOncePod
	// DefaultClaimRetention is each field of spec.delivery.persistentQueue.claimRetentionPolicy.
	DefaultClaimRetention = ClaimRetentionDelete
)
