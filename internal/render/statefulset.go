package render

import (
	appsv1 "k8s.io/api/apps/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// The kinds of workload that run the exporter pods.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// QueueClaimTemplate names the StatefulSet's claim template of a Persistent queue, and the
// pod's volume made from it: replica i's claim is queue-<name>-<i>.
const QueueClaimTemplate = "queue"

// WorkloadKind is the kind that runs the exporter pods: a StatefulSet when the persistent queue
// is on Persistent claims (each replica keeps its claim across pods), else a Deployment.
func WorkloadKind(rte *v1.RedisTraceExporter) string {
	if q := rte.Spec.Delivery.PersistentQueue; q != nil && queueVolumeKind(q) == v1.QueueVolumePersistent {
		return KindStatefulSet
	}
	return KindDeployment
}

// queueVolumeKind is spec.delivery.persistentQueue.volume, or when unset what a queue without
// it has always been: Ephemeral on a named storage class, else EmptyDir.
func queueVolumeKind(q *v1.PersistentQueueSpec) string {
	switch {
	case q.Volume != "":
		return q.Volume
	case q.StorageClassName != nil && *q.StorageClassName != "":
		return v1.QueueVolumeEphemeral
	}
	return v1.QueueVolumeEmptyDir
}

// QueueClaimLabels are the labels of a Persistent queue's claims (the StatefulSet adds its
// selector's): the operator finds a resource's claims by them.
func QueueClaimLabels(rte *v1.RedisTraceExporter) map[string]string {
	return map[string]string{
		InstanceLabel:                  rte.Name,
		"app.kubernetes.io/component":  "persistent-queue",
		"app.kubernetes.io/managed-by": "tracestream-operator",
	}
}

// statefulSet runs the exporter pods of a Persistent queue, with the Deployment's pod and
// selector: each replica mounts its own claim, which outlives the pod, so a replacement pod
// replays what the last one left. The StatefulSet itself never deletes a claim (Retain/Retain):
// a claim whose replica is gone may still hold records, and the operator decides when it is
// drained. Pods start and stop in parallel, as the Deployment's do. Nil for other volumes.
func statefulSet(rte *v1.RedisTraceExporter, in Inputs, configYAML string) *appsv1ac.StatefulSetApplyConfiguration {
	if WorkloadKind(rte) != KindStatefulSet {
		return nil
	}
	spec := appsv1ac.StatefulSetSpec().
		WithServiceName(rte.Name).
		WithPodManagementPolicy(appsv1.ParallelPodManagement).
		WithUpdateStrategy(appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.RollingUpdateStatefulSetStrategyType)).
		WithPersistentVolumeClaimRetentionPolicy(appsv1ac.StatefulSetPersistentVolumeClaimRetentionPolicy().
			WithWhenScaled(appsv1.RetainPersistentVolumeClaimRetentionPolicyType).
			WithWhenDeleted(appsv1.RetainPersistentVolumeClaimRetentionPolicyType)).
		WithSelector(labelSelectorFor(SelectorLabels(rte))).
		WithTemplate(podTemplate(rte, in, configYAML)).
		WithVolumeClaimTemplates(queueClaimTemplate(rte))
	if n, ok := replicas(rte); ok {
		spec.WithReplicas(n)
	}
	return appsv1ac.StatefulSet(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithSpec(spec)
}

// queueClaimTemplate is the claim each replica gets, of the spec's access mode (default
// ReadWriteOncePod: a second pod, or a drain of the claim, cannot mount it while one has it).
// It has no kind or namespace: the StatefulSet stores templates without them.
func queueClaimTemplate(rte *v1.RedisTraceExporter) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	q := rte.Spec.Delivery.PersistentQueue
	mode := q.AccessMode
	if mode == "" {
		mode = v1.DefaultQueueAccessMode
	}
	claim := &corev1ac.PersistentVolumeClaimApplyConfiguration{}
	return claim.WithName(QueueClaimTemplate).WithLabels(QueueClaimLabels(rte)).
		WithSpec(queueClaimSpec(q, mode))
}
