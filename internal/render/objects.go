package render

import (
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// ConfigMap holds the exporter configuration file.
func ConfigMap(rte *v1.RedisTraceExporter, in Inputs) (*corev1ac.ConfigMapApplyConfiguration, error) {
	y, err := ConfigYAML(rte, in)
	if err != nil {
		return nil, err
	}
	return corev1ac.ConfigMap(ConfigMapName(rte), rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithData(map[string]string{ConfigFile: y}), nil
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

// Deployment runs the exporter pods under the "restricted" Pod Security Standard, mounting the
// referenced Secrets as files, and rolls them when the configuration or a Secret changes.
func Deployment(rte *v1.RedisTraceExporter, in Inputs, configYAML string) *appsv1ac.DeploymentApplyConfiguration {
	s := rte.Spec
	grpcPort, httpPort := ports(rte)
	image := s.Image
	if image == "" {
		image = in.Image
	}
	pullPolicy := s.ImagePullPolicy
	if pullPolicy == "" {
		pullPolicy = corev1.PullIfNotPresent
	}
	annotations := map[string]string{}
	for k, v := range s.PodAnnotations {
		annotations[k] = v
	}
	annotations[ConfigHashKey] = Hash(configYAML, in.SecretsHash)

	container := corev1ac.Container().
		WithName("exporter").WithImage(image).WithImagePullPolicy(pullPolicy).
		WithCommand("/exporter", "--config="+configDir+"/"+ConfigFile).
		WithPorts(
			corev1ac.ContainerPort().WithName("otlp-grpc").WithContainerPort(grpcPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("otlp-http").WithContainerPort(httpPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("admin").WithContainerPort(AdminPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithLivenessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstr.FromString("admin"))).
			WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithReadinessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/readyz").WithPort(intstr.FromString("admin"))).
			WithPeriodSeconds(2).WithFailureThreshold(2)).
		// The sleep lets endpoints drop the pod before SIGTERM starts the exporter's own drain.
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().
			WithSleep(corev1ac.SleepAction().WithSeconds(preStopSleep)))).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).
			WithRunAsNonRoot(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("config").WithMountPath(configDir).WithReadOnly(true))
	if len(s.Resources.Limits) > 0 || len(s.Resources.Requests) > 0 {
		rr := corev1ac.ResourceRequirements()
		if len(s.Resources.Limits) > 0 {
			rr.WithLimits(s.Resources.Limits)
		}
		if len(s.Resources.Requests) > 0 {
			rr.WithRequests(s.Resources.Requests)
		}
		container.WithResources(rr)
	}
	if lim := memoryLimit(rte); lim > 0 && !slices.ContainsFunc(s.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
		// The Go runtime collects harder as the heap nears 80% of the container's limit, as the
		// OpenTelemetry Operator sets it for Collectors; an explicit GOMEMLIMIT in spec.env wins.
		container.WithEnv(corev1ac.EnvVar().WithName("GOMEMLIMIT").WithValue(strconv.FormatInt(lim/10*8, 10)))
	}
	for _, e := range s.Env {
		ev := corev1ac.EnvVar().WithName(e.Name)
		if e.ValueFrom == nil {
			ev.WithValue(e.Value)
		} else if e.ValueFrom.FieldRef != nil {
			ev.WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath(e.ValueFrom.FieldRef.FieldPath)))
		} else if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			ev.WithValueFrom(corev1ac.EnvVarSource().WithConfigMapKeyRef(corev1ac.ConfigMapKeySelector().WithName(r.Name).WithKey(r.Key).WithOptional(r.Optional != nil && *r.Optional)))
		} else if r := e.ValueFrom.SecretKeyRef; r != nil {
			ev.WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(r.Name).WithKey(r.Key).WithOptional(r.Optional != nil && *r.Optional)))
		}
		container.WithEnv(ev)
	}

	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(ConfigMapName(rte))),
	}
	secretVolume := func(name, dir, secret string, items ...[2]string) {
		src := corev1ac.SecretVolumeSource().WithSecretName(secret).WithDefaultMode(0o440)
		for _, it := range items {
			src.WithItems(corev1ac.KeyToPath().WithKey(it[0]).WithPath(it[1]))
		}
		volumes = append(volumes, corev1ac.Volume().WithName(name).WithSecret(src))
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(name).WithMountPath(dir).WithReadOnly(true))
	}
	if a := s.Redis.Auth; a != nil {
		items := [][2]string{{passwordKey(a), "password"}}
		if in.HasUsername {
			items = append([][2]string{{usernameKey(a), "username"}}, items...)
		}
		secretVolume("redis-auth", redisAuthDir, a.SecretRef.Name, items...)
	}
	if t := s.Redis.TLS; t != nil && t.Enabled {
		if t.CASecretRef != nil {
			secretVolume("redis-ca", redisCADir, t.CASecretRef.Name, [2]string{t.CASecretRef.Key, "ca.crt"})
		}
		if t.ClientCertSecretRef != nil {
			secretVolume("redis-client", redisClientDir, t.ClientCertSecretRef.Name, [2]string{"tls.crt", "tls.crt"}, [2]string{"tls.key", "tls.key"})
		}
	}
	if r := s.Receivers.TLSSecretRef; r != nil {
		items := [][2]string{{"tls.crt", "tls.crt"}, {"tls.key", "tls.key"}}
		if in.ReceiverClientCA {
			items = append(items, [2]string{"ca.crt", "ca.crt"})
		}
		secretVolume("receiver-tls", receiverTLSDir, r.Name, items...)
	}
	if r := s.Receivers.BearerTokenSecretRef; r != nil {
		secretVolume("receiver-token", receiverTokenDir, r.Name, [2]string{r.Key, "token"})
	}
	if q := s.Delivery.PersistentQueue; q != nil {
		volumes = append(volumes, queueVolume(q))
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName("persistent-queue").WithMountPath(queueDir))
	}

	pod := corev1ac.PodSpec().
		WithServiceAccountName(ServiceAccountName(rte)).
		WithAutomountServiceAccountToken(false).
		WithTerminationGracePeriodSeconds(terminationGrace).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).WithRunAsUser(65532).WithRunAsGroup(65532).
			// Secret files are mode 0440: fsGroup makes them group-owned by the exporter, so it can
			// read them without running as root or making them world-readable.
			WithFSGroup(65532).WithFSGroupChangePolicy(corev1.FSGroupChangeOnRootMismatch).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithContainers(container).
		WithVolumes(volumes...)
	if len(s.NodeSelector) > 0 {
		pod.WithNodeSelector(s.NodeSelector)
	}
	if s.PriorityClassName != "" {
		pod.WithPriorityClassName(s.PriorityClassName)
	}
	for _, t := range s.Tolerations {
		tol := corev1ac.Toleration().WithKey(t.Key).WithOperator(t.Operator).WithValue(t.Value).WithEffect(t.Effect)
		if t.TolerationSeconds != nil {
			tol.WithTolerationSeconds(*t.TolerationSeconds)
		}
		pod.WithTolerations(tol)
	}
	if s.Affinity != nil {
		pod.WithAffinity(affinity(s.Affinity))
	}
	for _, c := range s.TopologySpreadConstraints {
		tsc := corev1ac.TopologySpreadConstraint().WithMaxSkew(c.MaxSkew).WithTopologyKey(c.TopologyKey).
			WithWhenUnsatisfiable(c.WhenUnsatisfiable)
		if c.LabelSelector != nil {
			tsc.WithLabelSelector(labelSelector(c.LabelSelector))
		}
		pod.WithTopologySpreadConstraints(tsc)
	}

	spec := appsv1ac.DeploymentSpec().
		WithSelector(labelSelectorFor(SelectorLabels(rte))).
		WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
				WithMaxUnavailable(intstr.FromInt32(0)).WithMaxSurge(intstr.FromInt32(1)))).
		WithTemplate(corev1ac.PodTemplateSpec().
			WithLabels(mergeLabels(Labels(rte), s.PodLabels)).
			WithAnnotations(annotations).
			WithSpec(pod))
	if s.Autoscaling == nil {
		replicas := int32(1)
		if s.Replicas != nil {
			replicas = *s.Replicas
		}
		spec.WithReplicas(replicas)
	}
	return appsv1ac.Deployment(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithSpec(spec)
}

// queueVolume is the persistent queue's volume: an emptyDir limited to its size, or with a
// storage class a PersistentVolumeClaim per pod (a generic ephemeral volume).
func queueVolume(q *v1.PersistentQueueSpec) *corev1ac.VolumeApplyConfiguration {
	size := queueSize(q)
	vol := corev1ac.Volume().WithName("persistent-queue")
	if q.StorageClassName == nil || *q.StorageClassName == "" {
		return vol.WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(size))
	}
	return vol.WithEphemeral(corev1ac.EphemeralVolumeSource().WithVolumeClaimTemplate(
		corev1ac.PersistentVolumeClaimTemplate().WithSpec(corev1ac.PersistentVolumeClaimSpec().
			WithAccessModes(corev1.ReadWriteOnce).
			WithStorageClassName(*q.StorageClassName).
			WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: size})))))
}

func usernameKey(a *v1.RedisAuth) string {
	if a.SecretRef.UsernameKey != "" {
		return a.SecretRef.UsernameKey
	}
	return "username"
}

func passwordKey(a *v1.RedisAuth) string {
	if a.SecretRef.PasswordKey != "" {
		return a.SecretRef.PasswordKey
	}
	return "password"
}

// AuthKeys returns the keys the auth Secret must (password) and may (username) hold.
func AuthKeys(a *v1.RedisAuth) (username, password string) { return usernameKey(a), passwordKey(a) }

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

// HorizontalPodAutoscaler scales the Deployment on CPU; nil unless spec.autoscaling is set.
func HorizontalPodAutoscaler(rte *v1.RedisTraceExporter) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	a := rte.Spec.Autoscaling
	if a == nil {
		return nil
	}
	minReplicas, target := a.MinReplicas, a.TargetCPUUtilizationPercentage
	if minReplicas == 0 {
		minReplicas = 1
	}
	if target == 0 {
		target = 70
	}
	return autoscalingv2ac.HorizontalPodAutoscaler(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").WithKind("Deployment").WithName(rte.Name)).
			WithMinReplicas(minReplicas).WithMaxReplicas(a.MaxReplicas).
			WithMetrics(autoscalingv2ac.MetricSpec().WithType(autoscalingv2.ResourceMetricSourceType).
				WithResource(autoscalingv2ac.ResourceMetricSource().WithName(corev1.ResourceCPU).
					WithTarget(autoscalingv2ac.MetricTarget().WithType(autoscalingv2.UtilizationMetricType).
						WithAverageUtilization(target)))))
}
