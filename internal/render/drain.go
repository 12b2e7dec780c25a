package render

import (
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// DrainClaimLabel names, on a drain Job and its pod, the claim whose log it drains.
const DrainClaimLabel = "tracestream.io/claim"

// drainBackoffLimit is how often a drain pod may fail before its Job fails. A drain exits
// non-zero only when it cannot start (a bad configuration, the log in use by another process)
// or is stopped (SIGTERM: 75, records kept); it retries Redis errors itself, forever. The
// restarts happen in place (restartPolicy OnFailure), so this bounds a crash loop, not a wait.
const drainBackoffLimit = 1000

// QueueClaim is a Persistent queue's claim, as the drain of its log needs it.
type QueueClaim struct {
	Name    string
	UID     types.UID
	Ordinal int
	// Size is the claim's requested storage: the drain's log bound is computed from it as the
	// exporter's is, so a log written under the same size opens unchanged.
	Size resource.Quantity
}

// QueueClaimName is replica ordinal's claim: the StatefulSet names it <template>-<name>-<ordinal>.
func QueueClaimName(rte *v1.RedisTraceExporter, ordinal int) string {
	return QueueClaimTemplate + "-" + rte.Name + "-" + strconv.Itoa(ordinal)
}

// QueueClaimOrdinal parses the replica ordinal out of a claim's name; false when the name is not
// one of this resource's claims (another resource's whose name starts with this one's, say).
func QueueClaimOrdinal(rte *v1.RedisTraceExporter, claim string) (int, bool) {
	rest, ok := strings.CutPrefix(claim, QueueClaimTemplate+"-"+rte.Name+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// DrainJobName is the Job that drains replica ordinal's claim; its ConfigMap has the same name.
func DrainJobName(rte *v1.RedisTraceExporter, ordinal int) string {
	return rte.Name + "-drain-" + strconv.Itoa(ordinal)
}

// DrainLabels select a resource's drain Jobs and their pods. They share no selector with the
// exporter pods (app.kubernetes.io/name differs): a drain pod is in neither the Service, the
// PodDisruptionBudget, the StatefulSet nor the replica counts.
func DrainLabels(rte *v1.RedisTraceExporter) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "tracestream-queue-drain",
		InstanceLabel:                  rte.Name,
		"app.kubernetes.io/managed-by": "tracestream-operator",
	}
}

func drainLabels(rte *v1.RedisTraceExporter, claim QueueClaim) map[string]string {
	l := DrainLabels(rte)
	l[DrainClaimLabel] = claim.Name
	return l
}

// DrainJob runs exporter --drain on an orphaned claim, whose replica is gone, until its log is in
// Redis: the exporter's image, Secrets and pod settings, its configuration from DrainConfigMap,
// the claim as its queue. The claim is its controller, not the resource: a drain outlives a
// foreground deletion of the resource, and goes when the claim does. It runs under
// spec.serviceAccountName or the namespace's default, never the resource's own ServiceAccount,
// which such a deletion removes first. A Job's pod template is immutable: the controller applies
// it once and keeps what runs.
func DrainJob(rte *v1.RedisTraceExporter, in Inputs, claim QueueClaim) *batchv1ac.JobApplyConfiguration {
	volumes, mounts := configAndSecretVolumes(rte, in, DrainJobName(rte, claim.Ordinal))
	volumes = append(volumes, corev1ac.Volume().WithName(QueueClaimTemplate).
		WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(claim.Name)))
	mounts = append(mounts, corev1ac.VolumeMount().WithName(QueueClaimTemplate).WithMountPath(queueDir))
	sa := rte.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	pod := podSpec(rte, drainContainer(rte, in).WithVolumeMounts(mounts...), volumes).
		WithServiceAccountName(sa).WithRestartPolicy(corev1.RestartPolicyOnFailure)
	labels := drainLabels(rte, claim)
	return batchv1ac.Job(DrainJobName(rte, claim.Ordinal), rte.Namespace).
		WithLabels(labels).WithOwnerReferences(claimOwnerRef(claim)).
		WithSpec(batchv1ac.JobSpec().
			WithBackoffLimit(drainBackoffLimit).
			WithPodReplacementPolicy(batchv1.Failed).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(mergeLabels(labels, rte.Spec.PodLabels)).
				WithAnnotations(rte.Spec.PodAnnotations).
				WithSpec(pod)))
}

// drainContainer is the exporter container running --drain: it serves only the admin port
// and is never ready (a drain accepts no work), so it has no readiness probe and no preStop.
func drainContainer(rte *v1.RedisTraceExporter, in Inputs) *corev1ac.ContainerApplyConfiguration {
	c := container(rte, in)
	c.Command, c.Ports, c.ReadinessProbe, c.Lifecycle = nil, nil, nil, nil
	return c.WithName("drain").
		WithCommand("/exporter", "--config="+configDir+"/"+ConfigFile, "--drain").
		WithPorts(corev1ac.ContainerPort().WithName(AdminPortName).WithContainerPort(AdminPort).WithProtocol(corev1.ProtocolTCP))
}

// DrainConfigMap is the drain's exporter configuration: the resource's, with the claim's log as
// its queue (the resource's spec may no longer have one). It is owned by the drain Job, so it
// goes with it; it is the drain's own because the resource's ConfigMap goes first in a
// foreground deletion. An *InvalidConfigError when the exporter would refuse it.
func DrainConfigMap(rte *v1.RedisTraceExporter, in Inputs, claim QueueClaim, jobUID types.UID) (*corev1ac.ConfigMapApplyConfiguration, error) {
	c := ExporterConfig(rte, in)
	c.Delivery.PersistentQueue.Directory = queueDir
	c.Delivery.PersistentQueue.MaxBytes = claim.Size.Value() / 16 * 15
	y, err := configYAML(c)
	if err != nil {
		return nil, err
	}
	name := DrainJobName(rte, claim.Ordinal)
	return corev1ac.ConfigMap(name, rte.Namespace).
		WithLabels(drainLabels(rte, claim)).
		WithOwnerReferences(metav1ac.OwnerReference().WithAPIVersion("batch/v1").WithKind("Job").
			WithName(name).WithUID(jobUID).WithController(true).WithBlockOwnerDeletion(true)).
		WithData(map[string]string{ConfigFile: y}), nil
}

// claimOwnerRef makes the claim a drain Job's controller. It does not block the claim's
// deletion: once the claim is deleted, nothing of its drain is needed.
func claimOwnerRef(claim QueueClaim) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().WithAPIVersion("v1").WithKind("PersistentVolumeClaim").
		WithName(claim.Name).WithUID(claim.UID).WithController(true).WithBlockOwnerDeletion(false)
}
