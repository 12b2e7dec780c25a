package render

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// configMap holds the exporter configuration file.
func configMap(rte *v1.RedisTraceExporter, configYAML string) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(ConfigMapName(rte), rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithData(map[string]string{ConfigFile: configYAML})
}

// ServiceAccount is the pods' own ServiceAccount; nil when spec.serviceAccountName names one.
func ServiceAccount(rte *v1.RedisTraceExporter) *corev1ac.ServiceAccountApplyConfiguration {
	if rte.Spec.ServiceAccountName != "" {
		return nil
	}
	return corev1ac.ServiceAccount(ServiceAccountName(rte), rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithAutomountServiceAccountToken(false)
}

// Service exposes OTLP/gRPC and OTLP/HTTP. Not the admin endpoint: its readers reach each pod
// (the kubelet's probes, a PodMonitor, the operator's /status reads by pod IP), and every client
// of the OTLP Service would otherwise reach an unauthenticated port with /metrics, /status and,
// with admin.debug, /spans.
func Service(rte *v1.RedisTraceExporter) *corev1ac.ServiceApplyConfiguration {
	grpcPort, httpPort := ports(rte)
	return corev1ac.Service(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(SelectorLabels(rte)).
			WithPorts(
				corev1ac.ServicePort().WithName("otlp-grpc").WithPort(grpcPort).WithTargetPort(intstr.FromString("otlp-grpc")).WithAppProtocol("grpc").WithProtocol(corev1.ProtocolTCP),
				corev1ac.ServicePort().WithName("otlp-http").WithPort(httpPort).WithTargetPort(intstr.FromString("otlp-http")).WithAppProtocol("http").WithProtocol(corev1.ProtocolTCP),
			))
}

// QueueVolumeName names the persistent queue's volume in the pod when the pod carries it.
const QueueVolumeName = "persistent-queue"

// queueVolume is the persistent queue's volume in the pod: an emptyDir limited to its size, or a
// PersistentVolumeClaim per pod (a generic ephemeral volume, of the cluster's default class when
// none is named); nil for a Persistent volume, whose claims come from the StatefulSet.
func queueVolume(q *v1.PersistentQueueSpec) *corev1ac.VolumeApplyConfiguration {
	vol := corev1ac.Volume().WithName(QueueVolumeName)
	switch queueVolumeKind(q) {
	case v1.QueueVolumeEmptyDir:
		return vol.WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(queueSize(q)))
	case v1.QueueVolumeEphemeral:
		return vol.WithEphemeral(corev1ac.EphemeralVolumeSource().WithVolumeClaimTemplate(
			corev1ac.PersistentVolumeClaimTemplate().WithSpec(queueClaimSpec(q, corev1.ReadWriteOnce))))
	}
	return nil
}

// queueClaimSpec is the spec of a claim holding the persistent queue.
func queueClaimSpec(q *v1.PersistentQueueSpec, mode corev1.PersistentVolumeAccessMode) *corev1ac.PersistentVolumeClaimSpecApplyConfiguration {
	spec := corev1ac.PersistentVolumeClaimSpec().WithAccessModes(mode)
	if q.StorageClassName != nil && *q.StorageClassName != "" {
		spec.WithStorageClassName(*q.StorageClassName)
	}
	return spec.WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: queueSize(q)}))
}

// PodDisruptionBudget keeps all but one pod through voluntary disruptions (or what the spec
// says); nil for a single replica without an explicit budget, which would block node drains.
func PodDisruptionBudget(rte *v1.RedisTraceExporter) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	s := rte.Spec
	spec := policyv1ac.PodDisruptionBudgetSpec().WithSelector(labelSelectorFor(SelectorLabels(rte)))
	switch {
	case s.PodDisruptionBudget != nil && s.PodDisruptionBudget.MinAvailable != nil:
		spec.WithMinAvailable(*s.PodDisruptionBudget.MinAvailable)
	case s.PodDisruptionBudget != nil && s.PodDisruptionBudget.MaxUnavailable != nil:
		spec.WithMaxUnavailable(*s.PodDisruptionBudget.MaxUnavailable)
	case s.Autoscaling != nil || (s.Replicas != nil && *s.Replicas > 1):
		spec.WithMaxUnavailable(intstr.FromInt32(1))
	default:
		return nil
	}
	return policyv1ac.PodDisruptionBudget(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).WithSpec(spec)
}

// HorizontalPodAutoscaler scales the workload (the Deployment, or the StatefulSet of a
// Persistent queue) on CPU; nil unless spec.autoscaling is set.
func HorizontalPodAutoscaler(rte *v1.RedisTraceExporter) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	a := rte.Spec.Autoscaling
	if a == nil {
		return nil
	}
	minReplicas, target := a.MinReplicas, a.TargetCPUUtilizationPercentage
	if minReplicas == 0 {
		minReplicas = v1.DefaultMinReplicas
	}
	if target == 0 {
		target = v1.DefaultTargetCPUUtilization
	}
	return autoscalingv2ac.HorizontalPodAutoscaler(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").WithKind(WorkloadKind(rte)).WithName(rte.Name)).
			WithMinReplicas(minReplicas).WithMaxReplicas(a.MaxReplicas).
			WithMetrics(autoscalingv2ac.MetricSpec().WithType(autoscalingv2.ResourceMetricSourceType).
				WithResource(autoscalingv2ac.ResourceMetricSource().WithName(corev1.ResourceCPU).
					WithTarget(autoscalingv2ac.MetricTarget().WithType(autoscalingv2.UtilizationMetricType).
						WithAverageUtilization(target)))))
}
