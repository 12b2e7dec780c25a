package render

import (
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
)

// deployment runs the exporter pods under the "restricted" Pod Security Standard, mounting the
// referenced Secrets as files, and rolls them when the configuration or a Secret changes; nil
// when the queue is on Persistent claims (the StatefulSet runs the pods then).
func deployment(rte *v1.RedisTraceExporter, in Inputs, configYAML string) *appsv1ac.DeploymentApplyConfiguration {
	if WorkloadKind(rte) != KindDeployment {
		return nil
	}
	spec := appsv1ac.DeploymentSpec().
		WithSelector(labelSelectorFor(SelectorLabels(rte))).
		WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
				WithMaxUnavailable(intstr.FromInt32(0)).WithMaxSurge(intstr.FromInt32(1)))).
		WithTemplate(podTemplate(rte, in, configYAML))
	if n, ok := replicas(rte); ok {
		spec.WithReplicas(n)
	}
	return appsv1ac.Deployment(rte.Name, rte.Namespace).
		WithLabels(Labels(rte)).WithOwnerReferences(ownerRef(rte)).
		WithSpec(spec)
}

// podTemplate is the exporter pod, the same for the Deployment and the StatefulSet: its
// annotations carry the hash of the configuration and of the Secrets' data.
func podTemplate(rte *v1.RedisTraceExporter, in Inputs, configYAML string) *corev1ac.PodTemplateSpecApplyConfiguration {
	s := rte.Spec
	annotations := map[string]string{}
	for k, v := range s.PodAnnotations {
		annotations[k] = v
	}
	annotations[ConfigHashKey] = Hash(configYAML, in.SecretsHash)
	volumes, mounts := podVolumes(rte, in)
	c := container(rte, in).WithVolumeMounts(mounts...)
	return corev1ac.PodTemplateSpec().
		WithLabels(mergeLabels(Labels(rte), s.PodLabels)).
		WithAnnotations(annotations).
		WithSpec(podSpec(rte, c, volumes))
}

// replicas is the workload's replica count, and false while autoscaling is set (the HPA owns
// the count then).
func replicas(rte *v1.RedisTraceExporter) (int32, bool) {
	s := rte.Spec
	if s.Autoscaling != nil {
		return 0, false
	}
	if s.Replicas != nil {
		return *s.Replicas, true
	}
	return v1.DefaultReplicas, true
}

// container is the exporter container, without its volume mounts.
func container(rte *v1.RedisTraceExporter, in Inputs) *corev1ac.ContainerApplyConfiguration {
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
	c := corev1ac.Container().
		WithName("exporter").WithImage(image).WithImagePullPolicy(pullPolicy).
		WithCommand("/exporter", "--config="+configDir+"/"+ConfigFile).
		WithPorts(
			corev1ac.ContainerPort().WithName("otlp-grpc").WithContainerPort(grpcPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("otlp-http").WithContainerPort(httpPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(AdminPortName).WithContainerPort(AdminPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithLivenessProbe(probe("/healthz", 10, 3)).
		WithReadinessProbe(probe("/readyz", 2, 2)).
		// The sleep lets endpoints drop the pod before SIGTERM starts the exporter's own drain.
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().
			WithSleep(corev1ac.SleepAction().WithSeconds(preStopSleep)))).
		WithSecurityContext(containerSecurityContext())
	if rr := resources(s.Resources); rr != nil {
		c.WithResources(rr)
	}
	return c.WithEnv(env(rte)...)
}

// probe asks the admin endpoint's path every period seconds.
func probe(path string, period, failures int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(AdminPortName))).
		WithPeriodSeconds(period).WithFailureThreshold(failures)
}

func containerSecurityContext() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

func resources(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(r.Limits) == 0 && len(r.Requests) == 0 {
		return nil
	}
	rr := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		rr.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		rr.WithRequests(r.Requests)
	}
	return rr
}

// env is GOMEMLIMIT from the memory limit, then spec.env.
func env(rte *v1.RedisTraceExporter) []*corev1ac.EnvVarApplyConfiguration {
	var out []*corev1ac.EnvVarApplyConfiguration
	s := rte.Spec
	if lim := memoryLimit(rte); lim > 0 && !slices.ContainsFunc(s.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
		// The Go runtime collects harder as the heap nears 80% of the container's limit, as the
		// OpenTelemetry Operator sets it for Collectors; an explicit GOMEMLIMIT in spec.env wins.
		out = append(out, corev1ac.EnvVar().WithName("GOMEMLIMIT").WithValue(strconv.FormatInt(lim/10*8, 10)))
	}
	for _, e := range s.Env {
		ev := corev1ac.EnvVar().WithName(e.Name)
		switch {
		case e.ValueFrom == nil:
			ev.WithValue(e.Value)
		case e.ValueFrom.FieldRef != nil:
			ev.WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath(e.ValueFrom.FieldRef.FieldPath)))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			ev.WithValueFrom(corev1ac.EnvVarSource().WithConfigMapKeyRef(corev1ac.ConfigMapKeySelector().WithName(r.Name).WithKey(r.Key).WithOptional(r.Optional != nil && *r.Optional)))
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			ev.WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(r.Name).WithKey(r.Key).WithOptional(r.Optional != nil && *r.Optional)))
		}
		out = append(out, ev)
	}
	return out
}

// podVolumes are the config, every referenced Secret (from SecretRefs) and the persistent
// queue, with the container's mounts of them.
func podVolumes(rte *v1.RedisTraceExporter, in Inputs) ([]*corev1ac.VolumeApplyConfiguration, []*corev1ac.VolumeMountApplyConfiguration) {
	volumes, mounts := configAndSecretVolumes(rte, in, ConfigMapName(rte))
	if q := rte.Spec.Delivery.PersistentQueue; q != nil {
		name := QueueVolumeName
		if vol := queueVolume(q); vol != nil {
			volumes = append(volumes, vol)
		} else { // the StatefulSet's claim template is the volume
			name = QueueClaimTemplate
		}
		mounts = append(mounts, corev1ac.VolumeMount().WithName(name).WithMountPath(queueDir))
	}
	return volumes, mounts
}

// configAndSecretVolumes are the configuration from the named ConfigMap and every referenced
// Secret (from SecretRefs), with the container's mounts of them: the exporter pods' and the
// queue drains' alike.
func configAndSecretVolumes(rte *v1.RedisTraceExporter, in Inputs, configMap string) ([]*corev1ac.VolumeApplyConfiguration, []*corev1ac.VolumeMountApplyConfiguration) {
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(configMap)),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("config").WithMountPath(configDir).WithReadOnly(true),
	}
	for _, ref := range SecretRefs(rte) {
		src := corev1ac.SecretVolumeSource().WithSecretName(ref.Name).WithDefaultMode(0o440)
		for _, f := range ref.Files {
			if in.mounts(ref.Use, f) {
				src.WithItems(corev1ac.KeyToPath().WithKey(f.Key).WithPath(f.Path))
			}
		}
		volumes = append(volumes, corev1ac.Volume().WithName(string(ref.Use)).WithSecret(src))
		mounts = append(mounts, corev1ac.VolumeMount().WithName(string(ref.Use)).WithMountPath(ref.Dir()).WithReadOnly(true))
	}
	return volumes, mounts
}

// podSpec places the pod and runs it as a non-root user.
func podSpec(rte *v1.RedisTraceExporter, c *corev1ac.ContainerApplyConfiguration, volumes []*corev1ac.VolumeApplyConfiguration) *corev1ac.PodSpecApplyConfiguration {
	s := rte.Spec
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
		WithContainers(c).
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
	for _, tc := range s.TopologySpreadConstraints {
		tsc := corev1ac.TopologySpreadConstraint().WithMaxSkew(tc.MaxSkew).WithTopologyKey(tc.TopologyKey).
			WithWhenUnsatisfiable(tc.WhenUnsatisfiable)
		if tc.LabelSelector != nil {
			tsc.WithLabelSelector(labelSelector(tc.LabelSelector))
		}
		pod.WithTopologySpreadConstraints(tsc)
	}
	return pod
}
