package render

import (
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// Child is one object of the exporter's workload. Object is nil when the spec does not ask for
// it: the controller then deletes the object of that Kind and Name if this resource owns it.
type Child struct {
	Kind   string
	Name   string
	Object runtime.ApplyConfiguration
}

// Children are every object of the resource's workload, in the order they are applied: the
// ServiceAccount before the Deployment or StatefulSet whose pods need it. The exporter configuration is
// rendered and validated once, for both the ConfigMap and the pod-template hash; a
// configuration the exporter would refuse is an *InvalidConfigError.
func Children(rte *v1.RedisTraceExporter, in Inputs) ([]Child, error) {
	y, err := configYAML(ExporterConfig(rte, in))
	if err != nil {
		return nil, err
	}
	old := KindStatefulSet
	if WorkloadKind(rte) == KindStatefulSet {
		old = KindDeployment
	}
	return []Child{
		{"ConfigMap", ConfigMapName(rte), configMap(rte, y)},
		// The other workload kind's, deleted with that workload (the controller's handover).
		{"ConfigMap", ConfigMapNameFor(rte, old), nil},
		{"ServiceAccount", OwnServiceAccountName(rte), orNil(ServiceAccount(rte))},
		// One of the two runs the pods (WorkloadKind); the other is nil, so the controller
		// deletes it, once its pods can go without their logs (the controller's handover).
		{KindDeployment, rte.Name, orNil(deployment(rte, in, y))},
		{KindStatefulSet, rte.Name, orNil(statefulSet(rte, in, y))},
		{"Service", rte.Name, Service(rte)},
		{"PodDisruptionBudget", rte.Name, orNil(PodDisruptionBudget(rte))},
		{"HorizontalPodAutoscaler", rte.Name, orNil(HorizontalPodAutoscaler(rte))},
	}, nil
}

// orNil keeps a builder's nil ("not asked for") nil once in an interface.
func orNil[T any, P interface {
	*T
	runtime.ApplyConfiguration
}](p P) runtime.ApplyConfiguration {
	if p == nil {
		return nil
	}
	return p
}
