package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Redis modes.
const (
	RedisModeStandalone = "standalone"
	RedisModeCluster    = "cluster"
	RedisModeSentinel   = "sentinel"
)

// RedisTraceExporterSpec is the desired state of a RedisTraceExporter.
type RedisTraceExporterSpec struct {
	// redis says where the exporter writes.
	// +required
	Redis RedisSpec `json:"redis"`

	// stream says what each span becomes: the stream key, the entry format, trimming and TTL.
	// +optional
	Stream StreamSpec `json:"stream,omitempty"`

	// filter selects spans by their resource's service.name.
	// +optional
	Filter FilterSpec `json:"filter,omitempty"`

	// receivers configures the OTLP endpoints the exporter serves.
	// +optional
	Receivers ReceiversSpec `json:"receivers,omitempty"`

	// lag says which streams and consumer groups are reported in status.streams.
	// +optional
	Lag LagSpec `json:"lag,omitempty"`

	// delivery tunes what happens between a client's request and Redis.
	// +optional
	Delivery DeliverySpec `json:"delivery,omitempty"`

	// observability says how the exporter pods are watched from outside: a prometheus-operator
	// PodMonitor for their metrics.
	// +optional
	Observability ObservabilitySpec `json:"observability,omitempty"`

	// replicas is the number of exporter pods. Ignored while autoscaling is set.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// image is the exporter image. Defaults to the operator's own image.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the exporter container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// resources of the exporter container. A memory limit also sizes the exporter: half of it
	// bounds the memory held by requests in flight (past it clients are told to retry), and
	// GOMEMLIMIT is set to 80% of it unless env sets GOMEMLIMIT.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector of the exporter pods.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations of the exporter pods.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity of the exporter pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// topologySpreadConstraints of the exporter pods.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// priorityClassName of the exporter pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// podAnnotations are added to the exporter pods.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// podLabels are added to the exporter pods (the selector labels win on conflict).
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`

	// serviceAccountName runs the pods under an existing ServiceAccount instead of the one the
	// operator creates.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// podDisruptionBudget of the exporter pods. Defaults to maxUnavailable 1 when replicas > 1.
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`

	// autoscaling, when set, creates a HorizontalPodAutoscaler that owns the replica count.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// env adds environment variables to the exporter container (TRACESTREAM_* override the
	// rendered configuration; never put credentials here, use spec.redis.auth).
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// RedisSpec is where and how the exporter writes.
//
// +kubebuilder:validation:XValidation:rule="self.mode != 'sentinel' || (has(self.sentinel) && size(self.sentinel.masterName) > 0)",message="spec.redis.sentinel.masterName is required when spec.redis.mode is sentinel"
// +kubebuilder:validation:XValidation:rule="self.mode == 'sentinel' || !has(self.sentinel)",message="spec.redis.sentinel is only valid when spec.redis.mode is sentinel"
// +kubebuilder:validation:XValidation:rule="self.mode != 'cluster' || !has(self.db) || self.db == 0",message="spec.redis.db must be 0 when spec.redis.mode is cluster"
// +kubebuilder:validation:XValidation:rule="self.mode != 'standalone' || size(self.addresses) == 1",message="spec.redis.addresses must hold exactly one address when spec.redis.mode is standalone"
type RedisSpec struct {
	// mode is the Redis deployment: standalone, cluster or sentinel.
	// +kubebuilder:validation:Enum=standalone;cluster;sentinel
	// +kubebuilder:default=standalone
	// +optional
	Mode string `json:"mode,omitempty"`

	// addresses are host:port (or rediss://host:port) of the server, of cluster seed nodes, or of
	// the sentinels.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=300
	// +kubebuilder:validation:items:Pattern=`^(rediss?://)?[^\s/@]+:[0-9]{1,5}$`
	// +listType=atomic
	// +required
	Addresses []string `json:"addresses"`

	// sentinel configures sentinel mode.
	// +optional
	Sentinel *SentinelSpec `json:"sentinel,omitempty"`

	// db is the database number (standalone and sentinel only).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	// +optional
	DB int32 `json:"db,omitempty"`

	// auth names the Secret holding the ACL username and password. The Secret is mounted into the
	// pods as files; its values never appear in the ConfigMap, the environment or this resource.
	// +optional
	Auth *RedisAuth `json:"auth,omitempty"`

	// tls configures TLS towards Redis.
	// +optional
	TLS *RedisTLS `json:"tls,omitempty"`
}

// SentinelSpec configures sentinel mode.
type SentinelSpec struct {
	// masterName is the name the sentinels monitor the master under.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	MasterName string `json:"masterName"`
}

// RedisAuth names the Secret with the Redis ACL credentials.
type RedisAuth struct {
	// secretRef is the Secret (in the resource's namespace) and its keys.
	// +required
	SecretRef CredentialsSecretRef `json:"secretRef"`
}

// CredentialsSecretRef names a Secret and the keys of a username and a password in it.
type CredentialsSecretRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// usernameKey is the key of the username; when the key is absent from the Secret, the
	// default user is used.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=username
	// +optional
	UsernameKey string `json:"usernameKey,omitempty"`

	// passwordKey is the key of the password.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=password
	// +optional
	PasswordKey string `json:"passwordKey,omitempty"`
}

// SecretKeyRef names a key of a Secret in the resource's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key in the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// SecretRef names a Secret in the resource's namespace.
type SecretRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// RedisTLS configures TLS towards Redis.
//
// +kubebuilder:validation:XValidation:rule="self.enabled || (!has(self.caSecretRef) && !has(self.clientCertSecretRef) && !has(self.serverName) && !has(self.insecureSkipVerify))",message="spec.redis.tls settings need spec.redis.tls.enabled: true"
type RedisTLS struct {
	// enabled turns TLS on (also implied by rediss:// addresses).
	// +required
	Enabled bool `json:"enabled"`

	// caSecretRef is the key of a Secret holding the PEM CA bundle that signs the server
	// certificates; without it the pod's system roots are used.
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`

	// clientCertSecretRef names a kubernetes.io/tls Secret (tls.crt, tls.key) presented to
	// Redis for mutual TLS.
	// +optional
	ClientCertSecretRef *SecretRef `json:"clientCertSecretRef,omitempty"`

	// serverName overrides the name verified in the server certificate.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServerName string `json:"serverName,omitempty"`

	// insecureSkipVerify disables server certificate verification. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// StreamSpec says what each span becomes.
type StreamSpec struct {
	// keyTemplate names each span's stream: {attribute} placeholders are looked up in the span's,
	// then the resource's, then the scope's attributes; {{ and }} are literal braces, so a Redis
	// Cluster hash tag is written traces:{{{service.name}}}.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^([^{}]|[{][{]|[}][}]|[{][^{}]+[}])*$')",message="spec.stream.keyTemplate does not parse: write placeholders as {attribute} and literal braces as {{ and }}"
	// +kubebuilder:default="traces:{service.name}"
	// +optional
	KeyTemplate string `json:"keyTemplate,omitempty"`

	// format of each entry: json (traceparent + data), flat (one field per value) or otlp (a
	// TracesData protobuf).
	// +kubebuilder:validation:Enum=json;flat;otlp
	// +kubebuilder:default=json
	// +optional
	Format string `json:"format,omitempty"`

	// maxLen trims each stream with XADD MAXLEN ~ maxLen; 0 keeps everything.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxLen int64 `json:"maxLen,omitempty"`

	// minIdAge trims entries older than this (XADD/XTRIM MINID ~).
	// +optional
	MinIDAge *metav1.Duration `json:"minIdAge,omitempty"`

	// ttl expires each stream when no span has been written to it for this long.
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// pipelineSize is the most XADDs in one Redis pipeline.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	PipelineSize int32 `json:"pipelineSize,omitempty"`

	// maxKeys bounds the distinct stream keys each exporter pod writes (a key stays live while
	// it is written at least once per ttl; without a ttl its stream is never dropped and the key
	// never forgotten): a span whose key would be a new one past the bound goes to overflowKey
	// instead, so a client cannot create a stream per span. Default 10000.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	MaxKeys int32 `json:"maxKeys,omitempty"`

	// overflowKey is the stream that takes spans past maxKeys; by default keyTemplate with every
	// placeholder rendered as "overflow" (traces:{service.name} gives traces:overflow).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	OverflowKey string `json:"overflowKey,omitempty"`
}

// FilterSpec selects spans by service.name.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.includeServices) && size(self.includeServices) > 0 && has(self.excludeServices) && size(self.excludeServices) > 0)",message="spec.filter.includeServices and spec.filter.excludeServices cannot both be set"
type FilterSpec struct {
	// includeServices keeps only spans of these services.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	IncludeServices []string `json:"includeServices,omitempty"`

	// excludeServices drops spans of these services.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	ExcludeServices []string `json:"excludeServices,omitempty"`
}

// ReceiversSpec configures the OTLP endpoints.
//
// +kubebuilder:validation:XValidation:rule="self.grpcPort != self.httpPort",message="spec.receivers.grpcPort and spec.receivers.httpPort must differ"
type ReceiversSpec struct {
	// grpcPort serves OTLP/gRPC.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=4317
	// +optional
	GRPCPort int32 `json:"grpcPort,omitempty"`

	// httpPort serves OTLP/HTTP.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=4318
	// +optional
	HTTPPort int32 `json:"httpPort,omitempty"`

	// tlsSecretRef names a kubernetes.io/tls Secret (tls.crt, tls.key) served by both receivers;
	// when it also holds ca.crt, clients must present a certificate signed by it (mutual TLS).
	// +optional
	TLSSecretRef *SecretRef `json:"tlsSecretRef,omitempty"`

	// bearerTokenSecretRef requires `Authorization: Bearer <token>` on every request.
	// +optional
	BearerTokenSecretRef *SecretKeyRef `json:"bearerTokenSecretRef,omitempty"`
}

// DeliverySpec tunes delivery to Redis.
type DeliverySpec struct {
	// persistentQueue, when set, puts a write-ahead log on a volume between the receivers and
	// Redis: a request is acknowledged once its spans are fsynced to the log, and the log is
	// written to Redis in order. The log survives a crash or restart of the exporter container
	// (kill -9, OOM kill); at pod termination the exporter writes what it holds to Redis within
	// its grace period. Without it, a request is acknowledged once Redis has its spans.
	// +optional
	PersistentQueue *PersistentQueueSpec `json:"persistentQueue,omitempty"`
}

// Persistent-queue volume kinds (spec.delivery.persistentQueue.volume).
const (
	// QueueVolumeEmptyDir keeps the log on an emptyDir on the node's disk, gone with the pod.
	QueueVolumeEmptyDir = "EmptyDir"
	// QueueVolumeEphemeral gives each pod a PersistentVolumeClaim created and deleted with it (a
	// generic ephemeral volume).
	QueueVolumeEphemeral = "Ephemeral"
	// QueueVolumePersistent gives each replica a PersistentVolumeClaim that outlives its pod (a
	// StatefulSet's volume claim template): a replacement pod of the replica replays it.
	QueueVolumePersistent = "Persistent"
)

// Claim retention policies (spec.delivery.persistentQueue.claimRetentionPolicy).
const (
	// ClaimRetentionDelete deletes a replica's claim once its log is drained to Redis.
	ClaimRetentionDelete = "Delete"
	// ClaimRetentionRetain keeps a replica's claim, drained, for a later scale-up or a new
	// resource of the same name.
	ClaimRetentionRetain = "Retain"
)

// PersistentQueueSpec sizes the write-ahead log and says where it lives.
//
// +kubebuilder:validation:XValidation:rule="!has(self.size) || quantity(string(self.size)).compareTo(quantity('64Mi')) >= 0",message="spec.delivery.persistentQueue.size must be at least 64Mi"
// +kubebuilder:validation:XValidation:rule="!has(self.accessMode) || (has(self.volume) && self.volume == 'Persistent')",message="spec.delivery.persistentQueue.accessMode is only valid when spec.delivery.persistentQueue.volume is Persistent"
// +kubebuilder:validation:XValidation:rule="!has(self.claimRetentionPolicy) || (has(self.volume) && self.volume == 'Persistent')",message="spec.delivery.persistentQueue.claimRetentionPolicy is only valid when spec.delivery.persistentQueue.volume is Persistent"
// +kubebuilder:validation:XValidation:rule="!has(self.volume) || self.volume != 'EmptyDir' || !has(self.storageClassName) || size(self.storageClassName) == 0",message="spec.delivery.persistentQueue.storageClassName is not used with volume EmptyDir: remove it, or set volume to Ephemeral or Persistent"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.volume) || oldSelf.volume != 'Persistent' || !has(self.volume) || self.volume != 'Persistent' || (has(self.size) == has(oldSelf.size) && (!has(self.size) || quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) == 0) && has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName) && has(self.accessMode) == has(oldSelf.accessMode) && (!has(self.accessMode) || self.accessMode == oldSelf.accessMode))",message="spec.delivery.persistentQueue size, storageClassName and accessMode cannot change while volume is Persistent: the replicas' claims already exist (changing them is not supported yet)"
type PersistentQueueSpec struct {
	// volume is where the log lives: EmptyDir (on the node's disk, gone with the pod), Ephemeral
	// (a PersistentVolumeClaim per pod, created and deleted with it) or Persistent (a
	// PersistentVolumeClaim per replica that outlives its pods: a replacement pod of the replica
	// replays what the old one left). When unset: Ephemeral if storageClassName is set, else
	// EmptyDir. Persistent runs the pods in a StatefulSet, the others in a Deployment; a change
	// between them keeps the old workload until the new one is available and the old pods can
	// drain their logs (Redis reachable), then deletes it (WorkloadAvailable says what it waits
	// for). A Persistent volume's claims are written to Redis by a drain Job when their replica is
	// scaled away, and before the resource is deleted (see claimRetentionPolicy).
	// +kubebuilder:validation:Enum=EmptyDir;Ephemeral;Persistent
	// +optional
	Volume string `json:"volume,omitempty"`

	// size of the volume that holds the log (default 1Gi, at least 64Mi). The log itself is
	// bounded at 15/16 of it, leaving room for file-system overhead; when it is full, clients are
	// told to retry (backpressure, never a silent drop).
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the class of the claims of an Ephemeral or Persistent volume; when
	// empty they get the cluster's default StorageClass. Without volume, setting it selects
	// Ephemeral (a generic ephemeral volume, created and deleted with the pod) and leaving it
	// empty selects EmptyDir (limited to size on the node's disk).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// accessMode of a Persistent volume's claims (default ReadWriteOncePod, which keeps two pods
	// from ever mounting one log; ReadWriteOnce for storage drivers without it). Only with volume
	// Persistent.
	// +kubebuilder:validation:Enum=ReadWriteOncePod;ReadWriteOnce
	// +optional
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`

	// claimRetentionPolicy says what becomes of a Persistent volume's claim once its replica is
	// scaled away or the resource is deleted: deleted, or kept. Either way its log is first
	// written to Redis. Only with volume Persistent.
	// +optional
	ClaimRetentionPolicy *QueueClaimRetentionPolicy `json:"claimRetentionPolicy,omitempty"`
}

// QueueClaimRetentionPolicy mirrors the StatefulSet's persistentVolumeClaimRetentionPolicy, but
// a claim is deleted only after its log reached Redis.
type QueueClaimRetentionPolicy struct {
	// whenScaled applies to the claims of replicas removed by a scale-down: Delete (default) or
	// Retain.
	// +kubebuilder:validation:Enum=Delete;Retain
	// +kubebuilder:default=Delete
	// +optional
	WhenScaled string `json:"whenScaled,omitempty"`

	// whenDeleted applies to every claim when the resource is deleted: Delete (default) or
	// Retain (a new resource of the same name adopts and replays them).
	// +kubebuilder:validation:Enum=Delete;Retain
	// +kubebuilder:default=Delete
	// +optional
	WhenDeleted string `json:"whenDeleted,omitempty"`
}

// LagSpec says which streams and consumer groups status reports.
type LagSpec struct {
	// streams to report by name. When empty, the streams matching the key template (its
	// placeholders as *) are reported.
	// +kubebuilder:validation:MaxItems=500
	// +kubebuilder:validation:items:MaxLength=512
	// +listType=set
	// +optional
	Streams []string `json:"streams,omitempty"`

	// groups to report; empty reports every consumer group.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Groups []string `json:"groups,omitempty"`

	// refreshInterval bounds how stale the reported lag can be.
	// +kubebuilder:default="30s"
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`

	// maxStreams bounds the streams reported in status (at least 1: a bound of 0 would report
	// nothing, so it is refused rather than read as some other number).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=500
	// +kubebuilder:default=50
	// +optional
	MaxStreams *int32 `json:"maxStreams,omitempty"`
}

// ObservabilitySpec says how the exporter pods are watched from outside.
type ObservabilitySpec struct {
	// metrics configures the scrape of the exporter pods' metrics.
	// +optional
	Metrics MetricsSpec `json:"metrics,omitempty"`
}

// MetricsSpec configures the scrape of the exporter pods' metrics (their admin port's
// /metrics).
type MetricsSpec struct {
	// podMonitor asks the operator for a prometheus-operator PodMonitor of the exporter pods.
	// +optional
	PodMonitor *PodMonitorSpec `json:"podMonitor,omitempty"`
}

// PodMonitorSpec is the PodMonitor the operator creates, named like the resource, when the
// monitoring.coreos.com CRDs are installed. It scrapes /metrics on every exporter pod's admin
// port and keeps the pod label app.kubernetes.io/instance as app_kubernetes_io_instance, as the
// shipped alerts and dashboards expect. Without the CRDs the condition PodMonitorApplied says
// so, and the PodMonitor appears once they are installed.
//
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || !has(self.scrapeTimeout) || duration(self.scrapeTimeout) <= duration(self.interval)",message="spec.observability.metrics.podMonitor.scrapeTimeout must not exceed interval"
type PodMonitorSpec struct {
	// enabled creates the PodMonitor (default false); turning it off deletes it.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// interval between scrapes (at least 1s); Prometheus's scrape interval when unset.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.observability.metrics.podMonitor.interval must be at least 1s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// scrapeTimeout of each scrape (at least 1s, at most interval); Prometheus's scrape timeout
	// when unset.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.observability.metrics.podMonitor.scrapeTimeout must be at least 1s"
	// +optional
	ScrapeTimeout *metav1.Duration `json:"scrapeTimeout,omitempty"`

	// labels are added to the PodMonitor's own labels, for a Prometheus whose
	// podMonitorSelector needs them (release: kube-prometheus-stack with that chart's
	// defaults). The operator's labels win on conflict.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// PodDisruptionBudgetSpec sets the exporter pods' disruption budget (one of the two).
//
// +kubebuilder:validation:XValidation:rule="has(self.minAvailable) != has(self.maxUnavailable)",message="spec.podDisruptionBudget needs exactly one of minAvailable and maxUnavailable"
type PodDisruptionBudgetSpec struct {
	// minAvailable pods during a voluntary disruption.
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`

	// maxUnavailable pods during a voluntary disruption.
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler on CPU.
//
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas"
type AutoscalingSpec struct {
	// minReplicas of the autoscaler.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// maxReplicas of the autoscaler.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +required
	MaxReplicas int32 `json:"maxReplicas"`

	// targetCPUUtilizationPercentage is the average CPU utilization to keep.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=70
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// RedisTraceExporterStatus is the observed state of a RedisTraceExporter.
type RedisTraceExporterStatus struct {
	// observedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (summary), Reconciling and Stalled (present only while true), and the
	// domain conditions RedisReachable, WorkloadAvailable, ExporterHealthy, QueueDrained and
	// PodMonitorApplied.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// replicas is the number of exporter pods (for the scale subresource).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of ready exporter pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// replicasSummary is "ready/desired", for kubectl get.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	ReplicasSummary string `json:"replicasSummary,omitempty"`

	// selector is the pods' label selector (for the scale subresource and HPA).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Selector string `json:"selector,omitempty"`

	// streams are the reported streams with their consumer groups.
	// +kubebuilder:validation:MaxItems=500
	// +listType=atomic
	// +optional
	Streams []StreamStatus `json:"streams,omitempty"`

	// streamsTruncated is true when more streams matched than spec.lag.maxStreams.
	// +optional
	StreamsTruncated bool `json:"streamsTruncated,omitempty"`

	// totalLag is the sum of the known lags of every reported group.
	// +optional
	TotalLag *int64 `json:"totalLag,omitempty"`

	// maxLag is the largest known lag of a reported group.
	// +optional
	MaxLag *int64 `json:"maxLag,omitempty"`

	// unknownLagGroups counts the groups whose lag Redis cannot tell (reported lag unset).
	// +optional
	UnknownLagGroups int32 `json:"unknownLagGroups,omitempty"`

	// lagUpdateTime is when the reported streams or lag last changed. Reads that find nothing new
	// keep it, so that an idle exporter's status is not rewritten every refresh interval; it is
	// not the time of the last check (RedisReachable says whether the last check succeeded).
	// +optional
	LagUpdateTime *metav1.Time `json:"lagUpdateTime,omitempty"`

	// exporter summarises the exporter pods' own health (their /status endpoints).
	// +optional
	Exporter *ExporterStatus `json:"exporter,omitempty"`

	// queue reports a Persistent queue's claims and the drains of those whose replica is gone.
	// +optional
	Queue *QueueStatus `json:"queue,omitempty"`
}

// Phases of a claim's drain (status.queue.drains[].phase).
const (
	// DrainPending: the drain Job is created, its pod not running yet.
	DrainPending = "Pending"
	// DrainDraining: the drain pod writes the claim's log to Redis.
	DrainDraining = "Draining"
	// DrainDrained: the drain Job succeeded, the log is empty.
	DrainDrained = "Drained"
	// DrainFailed: the drain Job failed (its pods failed past the backoff limit).
	DrainFailed = "Failed"
)

// QueueStatus is what a Persistent queue's claims hold. A claim is orphaned when its replica is
// gone (its ordinal is past the replicas, or the queue is no longer Persistent) and its pod
// exited: the operator drains its log to Redis with a Job, then deletes the claim or keeps it
// (spec.delivery.persistentQueue.claimRetentionPolicy).
type QueueStatus struct {
	// claims is the number of the resource's queue claims.
	// +required
	Claims int32 `json:"claims"`
	// orphanedClaims counts the orphaned claims whose log is not known to be empty yet.
	// +optional
	OrphanedClaims int32 `json:"orphanedClaims,omitempty"`
	// orphanedRecords is the total of records left in those claims' logs, as their drain pods
	// report them; unset until every one of them has reported.
	// +optional
	OrphanedRecords *int64 `json:"orphanedRecords,omitempty"`
	// drains are the orphaned claims, by name, with their drain's progress.
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	// +optional
	Drains []ClaimDrain `json:"drains,omitempty"`
}

// ClaimDrain is the drain of one orphaned claim's log.
type ClaimDrain struct {
	// claim is the PersistentVolumeClaim's name.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Claim string `json:"claim"`
	// phase is Pending, Draining, Drained or Failed.
	// +kubebuilder:validation:Enum=Pending;Draining;Drained;Failed
	// +required
	Phase string `json:"phase"`
	// records left in the claim's log, once its drain pod reported them.
	// +optional
	Records *int64 `json:"records,omitempty"`
	// message says what the drain waits for (a pod not scheduled, a Redis error).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// StreamStatus is one stream's length and consumer groups.
type StreamStatus struct {
	// name of the stream.
	// +kubebuilder:validation:MaxLength=512
	// +required
	Name string `json:"name"`
	// length is XLEN.
	// +required
	Length int64 `json:"length"`
	// lastEntryId is the id of the newest entry.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LastEntryID string `json:"lastEntryId,omitempty"`
	// groups are the stream's consumer groups.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	Groups []GroupStatus `json:"groups,omitempty"`
}

// GroupStatus is one consumer group's progress.
type GroupStatus struct {
	// name of the group.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// lag is the number of entries not yet delivered to the group; unset when Redis cannot
	// tell (never reported as 0 then).
	// +optional
	Lag *int64 `json:"lag,omitempty"`
	// pending is the number of entries delivered but not acknowledged.
	// +required
	Pending int64 `json:"pending"`
	// consumers in the group.
	// +required
	Consumers int64 `json:"consumers"`
	// lastDeliveredId is the id of the last entry delivered to the group.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LastDeliveredID string `json:"lastDeliveredId,omitempty"`
}

// ExporterStatus summarises the exporter pods' health.
type ExporterStatus struct {
	// spansAcceptedPerSecond over the last refresh interval, all pods together.
	// +optional
	SpansAcceptedPerSecond int64 `json:"spansAcceptedPerSecond,omitempty"`
	// spansExportedPerSecond over the last refresh interval, all pods together.
	// +optional
	SpansExportedPerSecond int64 `json:"spansExportedPerSecond,omitempty"`
	// spansFailed is the total of spans answered with a retryable error, all pods together.
	// +optional
	SpansFailed int64 `json:"spansFailed,omitempty"`
	// spansDropped is the total of spans not written (filtered, invalid, rejected).
	// +optional
	SpansDropped int64 `json:"spansDropped,omitempty"`
	// lastSuccessfulWrite is the newest successful write of any pod.
	// +optional
	LastSuccessfulWrite *metav1.Time `json:"lastSuccessfulWrite,omitempty"`
	// lastErrorClass is the class of the newest Redis error of any pod (auth, connection, oom...).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LastErrorClass string `json:"lastErrorClass,omitempty"`
	// pods are the exporter pods with their readiness.
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	// +optional
	Pods []PodHealth `json:"pods,omitempty"`
}

// PodHealth is one exporter pod's readiness.
type PodHealth struct {
	// name of the pod.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// ready is the exporter's own readiness (accepting work, Redis reachable).
	// +required
	Ready bool `json:"ready"`
}

// RedisTraceExporter deploys exporter pods that receive OTLP traces and write every span to a
// Redis Stream, and reports their health and the streams' consumer-group lag.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=rte,categories=tracestream
// +kubebuilder:validation:XValidation:rule="!has(self.spec.delivery) || !has(self.spec.delivery.persistentQueue) || !has(self.spec.delivery.persistentQueue.volume) || self.spec.delivery.persistentQueue.volume != 'Persistent' || size(self.metadata.name) <= 52",message="metadata.name must be at most 52 characters with spec.delivery.persistentQueue.volume Persistent: the StatefulSet's pods and the drain Jobs <name>-drain-<ordinal> carry it in 63-character labels"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.replicasSummary`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.totalLag`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
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
