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
)
