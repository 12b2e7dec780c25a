package gitops

import (
	"testing"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// TestFluxSeesKstatus computes, for the Argo CD testdata, the kstatus result that Flux's health
// checks (Kustomization wait/healthChecks, no custom expressions) act on. Argo CD and kstatus
// read the same conditions but do not map one to one:
//
//	Argo CD      kstatus     object
//	Healthy      Current     Ready=True
//	Progressing  InProgress  Reconciling=True, or status.observedGeneration behind metadata.generation
//	Degraded     Failed      Stalled=True: Flux fails the health check at once. The operator sets
//	                         status.observedGeneration for a generation it stalls on, so this holds
//	                         for a spec change as for a new resource
//	Degraded     InProgress  Ready=False without Reconciling or Stalled (the operator cannot use
//	                         Redis, whether or not that also keeps the pods unready): kstatus cannot
//	                         tell a resource that will not recover from a slow one, so Flux waits
//	                         for its timeout and then reports the Ready message
//	Progressing  Current     no status yet: kstatus takes a resource without conditions as
//	                         current, so Flux can pass it before the operator has seen it
//
// The argo column of each case is checked against health_test.yaml, so this table is the
// mapping and cannot drift from the Argo CD check.
func TestFluxSeesKstatus(t *testing.T) {
	tests := map[string]struct {
		input       string
		argo        string
		want        status.Status
		wantMessage string
	}{
		"a ready resource is Current": {
			input: "testdata/healthy_when_pods_are_ready_and_redis_is_reachable.yaml",
			argo:  "Healthy",
			want:  status.CurrentStatus, wantMessage: "Resource is Ready",
		},
		"a generation the operator has not observed is InProgress": {
			input: "testdata/progressing_when_a_new_generation_is_not_observed_yet.yaml",
			argo:  "Progressing",
			want:  status.InProgressStatus, wantMessage: "RedisTraceExporter generation is 3, but latest observed generation is 2",
		},
		"a rollout is InProgress with the Reconciling message": {
			input: "testdata/progressing_while_pods_roll_out.yaml",
			argo:  "Progressing",
			want:  status.InProgressStatus, wantMessage: "1/2 exporter pods up to date, 1/2 ready",
		},
		"a resource the operator has not reported on yet is Current": {
			input: "testdata/progressing_before_the_operator_reports_status.yaml",
			argo:  "Progressing",
			want:  status.CurrentStatus, wantMessage: "Resource is current",
		},
		"a new resource whose Secret is missing is Failed": {
			input: "testdata/degraded_when_the_auth_secret_of_a_new_resource_is_missing.yaml",
			argo:  "Degraded",
			want:  status.FailedStatus, wantMessage: `Secret "redis-auth" referenced by spec.redis.auth.secretRef does not exist`,
		},
		"a spec change naming a missing Secret key is Failed, as the stalled generation is observed": {
			input: "testdata/degraded_when_a_spec_change_names_a_missing_secret_key.yaml",
			argo:  "Degraded",
			want:  status.FailedStatus, wantMessage: `Secret "redis-ca" referenced by spec.redis.tls.caSecretRef has no key "ca.crt"`,
		},
		"a Redis the operator cannot reach is InProgress until Flux times out": {
			input: "testdata/degraded_when_the_operator_cannot_reach_redis.yaml",
			argo:  "Degraded",
			want:  status.InProgressStatus, wantMessage: "cannot connect to Redis at redis.tracing.svc:6379 (check spec.redis.addresses and network policies)",
		},
		"Redis refusing the credentials is InProgress until Flux times out, though pods are unready": {
			input: "testdata/degraded_when_wrong_credentials_keep_pods_unready.yaml",
			argo:  "Degraded",
			want:  status.InProgressStatus, wantMessage: `Redis at redis.tracing.svc:6379 refused the credentials from Secret "redis-auth" (check the username/password keys and the ACL user)`,
		},
		"a scaled-down queue draining its orphaned claims stays Current": {
			input: "testdata/healthy_while_a_scaled_down_queue_drains.yaml",
			argo:  "Healthy",
			want:  status.CurrentStatus, wantMessage: "Resource is Ready",
		},
		"a Deployment handing over to a StatefulSet is InProgress, saying what it waits for": {
			input: "testdata/progressing_while_a_deployment_hands_over_to_a_statefulset.yaml",
			argo:  "Progressing",
			want:  status.InProgressStatus, wantMessage: "the Deployment traces stays until its pod traces-6d9f8-x2k4p writes its log (310 records) to Redis (it drains the log at SIGTERM)",
		},
		"an orphaned queue that cannot drain is InProgress until Flux times out": {
			input: "testdata/degraded_when_an_orphaned_queue_cannot_drain.yaml",
			argo:  "Degraded",
			want:  status.InProgressStatus, wantMessage: "queue drains make no progress: queue-traces-1: Redis error (oom), no progress for 2m10s; queue-traces-2: Redis error (oom), no progress for 2m10s",
		},
	}

	argo := map[string]string{}
	for _, tc := range readHealthTests(t) {
		argo[tc.InputPath] = tc.HealthStatus.Status
	}
	covered := map[string]bool{}
	for name, tc := range tests {
		covered[tc.input] = true
		t.Run(name, func(t *testing.T) {
			got, ok := argo[tc.input]
			if !ok {
				t.Fatalf("%s is not a case of health_test.yaml", tc.input)
			}
			if got != tc.argo {
				t.Errorf("health_test.yaml expects Argo CD %s, this table says %s", got, tc.argo)
			}
			res, err := status.Compute(loadObject(t, tc.input))
			if err != nil {
				t.Fatalf("status.Compute: %v", err)
			}
			if res.Status != tc.want || res.Message != tc.wantMessage {
				t.Errorf("kstatus = %s %q, want %s %q", res.Status, res.Message, tc.want, tc.wantMessage)
			}
		})
	}
	for input := range argo {
		if !covered[input] {
			t.Errorf("%s has no kstatus expectation here", input)
		}
	}
}
