package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RedisTraceExporterSpec is the desired state of a RedisTraceExporter.
//
// This is the foundation's placeholder: it carries just enough for the tooling (controller-gen,
// envtest, the CRD schema) to be exercised. The full API arrives with the operator.
type RedisTraceExporterSpec struct {
	// replicas is the number of exporter pods.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
}

// RedisTraceExporterStatus is the observed state of a RedisTraceExporter.
type RedisTraceExporterStatus struct {
	// observedGeneration is the metadata.generation that the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are the kstatus-style conditions of this exporter.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RedisTraceExporter deploys exporter pods that receive OTLP traces and write every span to a
// Redis Stream.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rte,categories=tracestream
type RedisTraceExporter struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec RedisTraceExporterSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status RedisTraceExporterStatus `json:"status,omitempty"`
}

// RedisTraceExporterList is a list of RedisTraceExporters.
//
// +kubebuilder:object:root=true
type RedisTraceExporterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RedisTraceExporter `json:"items"`
}
