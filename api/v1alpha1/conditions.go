package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus (Reconciling and Stalled are
// present only while true); the others say which part is wrong.
const (
	ConditionReady             = "Ready"
	ConditionReconciling       = "Reconciling"
	ConditionStalled           = "Stalled"
	ConditionRedisReachable    = "RedisReachable"
	ConditionWorkloadAvailable = "WorkloadAvailable"
	ConditionExporterHealthy   = "ExporterHealthy"
	// ConditionQueueDrained says whether the logs of a Persistent queue's orphaned claims are in
	// Redis; present only while the resource has queue claims.
	ConditionQueueDrained = "QueueDrained"
	// ConditionPodMonitorApplied says whether the PodMonitor of spec.observability.metrics
	// exists as asked; present only while it is enabled (or one is left to delete). Ready does
	// not read it: Ready is about the spans' path to Redis, not about who scrapes the pods.
	ConditionPodMonitorApplied = "PodMonitorApplied"
)

// Condition reasons, PascalCase as kstatus and Flux use them. Messages that go with them never
// contain credentials.
const (
	ReasonReady              = "Ready"
	ReasonProgressing        = "Progressing"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonSecretKeyMissing   = "SecretKeyMissing"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonRedisReachable     = "Reachable"
	ReasonRedisAuthFailed    = "AuthenticationFailed"
	ReasonRedisTLSFailed     = "TLSHandshakeFailed"
	ReasonRedisUnreachable   = "Unreachable"
	ReasonRedisError         = "RedisError"
	ReasonDeploymentReady    = "DeploymentAvailable"
	ReasonDeploymentNotReady = "DeploymentNotAvailable"
	// The StatefulSet's, for a Persistent queue: the reason names the kind to look at.
	ReasonStatefulSetReady    = "StatefulSetAvailable"
	ReasonStatefulSetNotReady = "StatefulSetNotAvailable"
	ReasonExportersHealthy    = "ExportersHealthy"
	ReasonExportersFailing    = "ExportersFailing"
	ReasonExportersUnknown    = "ExporterStatusUnknown"
	// QueueDrained's: no orphaned claim holds records, drains in progress, a drain with a Redis
	// error and no progress (DrainStalled) or a failed drain Job (DrainFailed).
	ReasonNoOrphanedRecords = "NoOrphanedRecords"
	ReasonDraining          = "Draining"
	ReasonDrainStalled      = "DrainStalled"
	ReasonDrainFailed       = "DrainFailed"
	// ReasonQueueDrainStalled is Ready's when a drain is stalled or failed.
	ReasonQueueDrainStalled = "QueueDrainStalled"
)

// PodMonitorApplied's: applied, the monitoring.coreos.com PodMonitor CRD not installed, or
// applying (or deleting) it failed; without the CRD or after a failure the operator tries again
// every spec.lag.refreshInterval. The same reasons name the events of its transitions, so they
// say PodMonitor where Ready's say ApplyFailed.
const (
	ReasonPodMonitorApplied         = "PodMonitorApplied"
	ReasonPodMonitorCRDNotInstalled = "PodMonitorCRDNotInstalled"
	ReasonPodMonitorApplyFailed     = "PodMonitorApplyFailed"
)

// ReasonDrainingQueue is Ready's while a deleted resource waits for its queue claims: their pods
// to stop, then their drain Jobs to write the logs to Redis (whenDeleted Delete).
const ReasonDrainingQueue = "DrainingQueue"

// Event reasons of a deleted resource's queue claims.
const (
	// EventQueueClaimsKept: the resource went, its queue claims stay untouched (whenDeleted
	// Retain, or the QueueOnDeleteAnnotation); the event names them.
	EventQueueClaimsKept = "QueueClaimsKept"
	// EventQueueDeletedWithNamespace: the resource's namespace is being deleted, so no drain can
	// run there; the claims go with the namespace.
	EventQueueDeletedWithNamespace = "QueueDeletedWithNamespace"
)

// QueueOnDeleteAnnotation, set to QueueOnDeleteKeep on a resource, keeps its queue claims when it
// is deleted, whatever whenDeleted says: the explicit way out of a deletion that waits for a
// Redis that refuses the claims' logs.
const (
	QueueOnDeleteAnnotation = "tracestream.io/queue-on-delete"
	QueueOnDeleteKeep       = "Keep"
)

// ReasonWorkloadHandover is Reconciling's and Ready's while the pods move between a Deployment
// and a StatefulSet (a change of the persistent queue's volume): the old workload stays until the
// new one is available and, for a Deployment whose pods hold a log on a volume that goes with
// them, until those pods reach Redis and can drain it at SIGTERM.
const ReasonWorkloadHandover = "WorkloadHandover"
