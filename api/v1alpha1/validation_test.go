package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
)

// startAPI starts a real API server with the CRD and creates a namespace in it.
func startAPI(t *testing.T, namespace string) (*controlplane.Env, string) {
	t.Helper()
	env := controlplane.Start(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return env, namespace
}

func valid() v1.RedisTraceExporterSpec {
	return v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"redis.default.svc:6379"}}}
}

// TestCRDValidation creates RedisTraceExporters on a real API server: each invalid spec must be
// rejected by the CRD itself (OpenAPI bounds and CEL rules) with a message naming the field, and
// each valid one accepted.
func TestCRDValidation(t *testing.T) {
	env, ns := startAPI(t, "validation")
	ctx := context.Background()
	cases := map[string]struct {
		mutate func(*v1.RedisTraceExporterSpec)
		// want is a substring of the rejection; empty means the spec is valid.
		want string
	}{
		"a minimal spec is valid": {func(*v1.RedisTraceExporterSpec) {}, ""},
		"sentinel mode without a master name is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Mode = v1.RedisModeSentinel
		}, "spec.redis.sentinel.masterName is required when spec.redis.mode is sentinel"},
		"sentinel mode with a master name is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Mode = v1.RedisModeSentinel
			s.Redis.Addresses = []string{"s1:26379", "s2:26379", "s3:26379"}
			s.Redis.Sentinel = &v1.SentinelSpec{MasterName: "mymaster"}
		}, ""},
		"a sentinel section outside sentinel mode is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Sentinel = &v1.SentinelSpec{MasterName: "mymaster"}
		}, "spec.redis.sentinel is only valid when spec.redis.mode is sentinel"},
		"cluster mode with a db is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Mode = v1.RedisModeCluster
			s.Redis.DB = 2
		}, "spec.redis.db must be 0 when spec.redis.mode is cluster"},
		"standalone mode with two addresses is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Addresses = []string{"a:6379", "b:6379"}
		}, "spec.redis.addresses must hold exactly one address"},
		"an address without a port is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Addresses = []string{"redis"}
		}, "spec.redis.addresses[0]"},
		"an address with credentials in it is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Addresses = []string{"redis://user:pw@redis:6379"}
		}, "spec.redis.addresses[0]"},
		"a rediss address is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Addresses = []string{"rediss://redis:6380"}
		}, ""},
		"an unknown mode is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Mode = "clusterr"
		}, "spec.redis.mode"},
		"a key template with an unclosed placeholder is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Stream.KeyTemplate = "traces:{service.name"
		}, "spec.stream.keyTemplate does not parse"},
		"a key template with a stray brace is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Stream.KeyTemplate = "traces:}x"
		}, "spec.stream.keyTemplate does not parse"},
		"a key template with a cluster hash tag is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Stream.KeyTemplate = "traces:{{{service.name}}}:{span.kind}"
		}, ""},
		"an unknown format is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Stream.Format = "xml"
		}, "spec.stream.format"},
		"include and exclude lists together are rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Filter = v1.FilterSpec{IncludeServices: []string{"a"}, ExcludeServices: []string{"b"}}
		}, "spec.filter.includeServices and spec.filter.excludeServices cannot both be set"},
		"equal receiver ports are rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Receivers = v1.ReceiversSpec{GRPCPort: 4318}
		}, "spec.receivers.grpcPort and spec.receivers.httpPort must differ"},
		"TLS settings without TLS enabled are rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.TLS = &v1.RedisTLS{ServerName: "redis"}
		}, "spec.redis.tls settings need spec.redis.tls.enabled: true"},
		"a disruption budget with both bounds is rejected": {func(s *v1.RedisTraceExporterSpec) {
			one := intstr.FromInt32(1)
			s.PodDisruptionBudget = &v1.PodDisruptionBudgetSpec{MinAvailable: &one, MaxUnavailable: &one}
		}, "spec.podDisruptionBudget needs exactly one of minAvailable and maxUnavailable"},
		"autoscaling with min above max is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Autoscaling = &v1.AutoscalingSpec{MinReplicas: 5, MaxReplicas: 2}
		}, "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas"},
		"negative replicas are rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Replicas = ptr.To[int32](-1)
		}, "spec.replicas"},
		"a persistent queue below 64Mi is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Size: ptr.To(resource.MustParse("10Mi"))}
		}, "spec.delivery.persistentQueue.size must be at least 64Mi"},
		"a persistent queue given in bytes below 64Mi is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Size: resource.NewQuantity(1000, resource.BinarySI)}
		}, "spec.delivery.persistentQueue.size must be at least 64Mi"},
		"a persistent queue of 2Gi on a storage class is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Size: ptr.To(resource.MustParse("2Gi")), StorageClassName: ptr.To("local-path")}
		}, ""},
		"an empty persistent queue (emptyDir of 1Gi) is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{}
		}, ""},
		"a Persistent queue with its access mode and retention policy is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent, Size: ptr.To(resource.MustParse("8Gi")),
				StorageClassName: ptr.To("local-path"), AccessMode: corev1.ReadWriteOnce,
				ClaimRetentionPolicy: &v1.QueueClaimRetentionPolicy{WhenScaled: v1.ClaimRetentionRetain, WhenDeleted: v1.ClaimRetentionDelete}}
		}, ""},
		"a Persistent queue on the default storage class is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent}
		}, ""},
		"an Ephemeral queue on the default storage class is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumeEphemeral}
		}, ""},
		"an unknown queue volume is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: "HostPath"}
		}, "spec.delivery.persistentQueue.volume"},
		"an access mode without a Persistent volume is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{StorageClassName: ptr.To("local-path"), AccessMode: corev1.ReadWriteOncePod}
		}, "spec.delivery.persistentQueue.accessMode is only valid when spec.delivery.persistentQueue.volume is Persistent"},
		"an access mode the log cannot be shared with is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent, AccessMode: corev1.ReadWriteMany}
		}, "spec.delivery.persistentQueue.accessMode"},
		"a retention policy on an Ephemeral volume is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumeEphemeral,
				ClaimRetentionPolicy: &v1.QueueClaimRetentionPolicy{WhenScaled: v1.ClaimRetentionRetain}}
		}, "spec.delivery.persistentQueue.claimRetentionPolicy is only valid when spec.delivery.persistentQueue.volume is Persistent"},
		"an unknown retention is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent,
				ClaimRetentionPolicy: &v1.QueueClaimRetentionPolicy{WhenDeleted: "Orphan"}}
		}, "spec.delivery.persistentQueue.claimRetentionPolicy.whenDeleted"},
		"a storage class on an EmptyDir volume is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: v1.QueueVolumeEmptyDir, StorageClassName: ptr.To("local-path")}
		}, "spec.delivery.persistentQueue.storageClassName is not used with volume EmptyDir"},
		"a lag bound of 0 streams is rejected (it used to read as redislag's 100)": {func(s *v1.RedisTraceExporterSpec) {
			s.Lag.MaxStreams = ptr.To[int32](0)
		}, "spec.lag.maxStreams"},
		"a PodMonitor with an interval, a timeout and labels is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Observability.Metrics.PodMonitor = &v1.PodMonitorSpec{Enabled: true, Interval: &metav1.Duration{Duration: time.Minute},
				ScrapeTimeout: &metav1.Duration{Duration: 10 * time.Second}, Labels: map[string]string{"release": "kube-prometheus-stack"}}
		}, ""},
		"a PodMonitor whose timeout exceeds its interval is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Observability.Metrics.PodMonitor = &v1.PodMonitorSpec{Enabled: true, Interval: &metav1.Duration{Duration: 10 * time.Second},
				ScrapeTimeout: &metav1.Duration{Duration: 15 * time.Second}}
		}, "spec.observability.metrics.podMonitor.scrapeTimeout must not exceed interval"},
		"a PodMonitor interval below 1s is rejected": {func(s *v1.RedisTraceExporterSpec) {
			s.Observability.Metrics.PodMonitor = &v1.PodMonitorSpec{Enabled: true, Interval: &metav1.Duration{Duration: 500 * time.Millisecond}}
		}, "spec.observability.metrics.podMonitor.interval must be at least 1s"},
		"a full TLS and auth spec is valid": {func(s *v1.RedisTraceExporterSpec) {
			s.Redis.Auth = &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "redis-auth"}}
			s.Redis.TLS = &v1.RedisTLS{Enabled: true, CASecretRef: &v1.SecretKeyRef{Name: "redis-ca", Key: "ca.crt"},
				ClientCertSecretRef: &v1.SecretRef{Name: "redis-client"}, ServerName: "redis"}
			s.Stream.TTL = &metav1.Duration{Duration: time.Hour}
			s.Receivers = v1.ReceiversSpec{TLSSecretRef: &v1.SecretRef{Name: "otlp-tls"}}
		}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			spec := valid()
			tc.mutate(&spec)
			obj := &v1.RedisTraceExporter{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "v-", Namespace: ns},
				Spec:       spec,
			}
			expectRejection(t, env.Client.Create(ctx, obj), tc.want)
		})
	}
}

// TestPersistentQueueNameLength: a Persistent queue's resource name is bounded so that the
// StatefulSet's pods and the drain Jobs get names their labels can hold; other queues are not.
func TestPersistentQueueNameLength(t *testing.T) {
	env, ns := startAPI(t, "namelength")
	ctx := context.Background()
	long := strings.Repeat("a", 53)
	for _, tc := range []struct {
		name, volume, want string
	}{
		{long, v1.QueueVolumePersistent, "metadata.name must be at most 52 characters with spec.delivery.persistentQueue.volume Persistent"},
		{long[:52], v1.QueueVolumePersistent, ""},
		{long, v1.QueueVolumeEmptyDir, ""},
	} {
		spec := valid()
		spec.Delivery.PersistentQueue = &v1.PersistentQueueSpec{Volume: tc.volume}
		obj := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns}, Spec: spec}
		t.Run(fmt.Sprintf("%d characters, %s", len(tc.name), tc.volume), func(t *testing.T) {
			expectRejection(t, env.Client.Create(ctx, obj), tc.want)
		})
	}
}

// expectRejection checks the API server's answer: an error saying want, or none when want is
// empty.
func expectRejection(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("rejected a valid spec: %v", err)
	case want != "" && err == nil:
		t.Fatalf("accepted, want a rejection saying %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("rejection %q does not say %q", err, want)
	}
}

// TestCRDRefusesClaimTemplateChanges updates RedisTraceExporters on a real API server: a
// Persistent queue's claim template (size, class, access mode) cannot change once its claims may
// exist, while the rest of the queue, and every other mode, can.
func TestCRDRefusesClaimTemplateChanges(t *testing.T) {
	env, ns := startAPI(t, "transitions")
	ctx := context.Background()
	persistent := func() *v1.PersistentQueueSpec {
		return &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent, Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: ptr.To("local-path")}
	}
	const refused = "size, storageClassName and accessMode cannot change while volume is Persistent"
	cases := map[string]struct {
		before *v1.PersistentQueueSpec
		change func(*v1.PersistentQueueSpec)
		// want is a substring of the rejection; empty means the update is accepted.
		want string
	}{
		"a Persistent queue's size cannot grow": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.Size = ptr.To(resource.MustParse("2Gi"))
		}, refused},
		"the same size written another way is no change": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.Size = ptr.To(resource.MustParse("1024Mi"))
		}, ""},
		"a Persistent queue's storage class cannot change": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.StorageClassName = ptr.To("fast-ssd")
		}, refused},
		"a Persistent queue's storage class cannot be dropped": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.StorageClassName = nil
		}, refused},
		"a Persistent queue's access mode cannot change": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.AccessMode = corev1.ReadWriteOnce
		}, refused},
		"a Persistent queue's retention policy can change": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.ClaimRetentionPolicy = &v1.QueueClaimRetentionPolicy{WhenScaled: v1.ClaimRetentionRetain}
		}, ""},
		"a Persistent queue can move to another volume with another size": {persistent(), func(q *v1.PersistentQueueSpec) {
			q.Volume, q.Size = v1.QueueVolumeEphemeral, ptr.To(resource.MustParse("4Gi"))
		}, ""},
		"an Ephemeral queue can become Persistent with another size": {&v1.PersistentQueueSpec{StorageClassName: ptr.To("local-path")}, func(q *v1.PersistentQueueSpec) {
			q.Volume, q.Size = v1.QueueVolumePersistent, ptr.To(resource.MustParse("4Gi"))
		}, ""},
		"an EmptyDir queue can grow": {&v1.PersistentQueueSpec{}, func(q *v1.PersistentQueueSpec) {
			q.Size = ptr.To(resource.MustParse("4Gi"))
		}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			spec := valid()
			spec.Delivery.PersistentQueue = tc.before
			obj := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Namespace: ns}, Spec: spec}
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("creating: %v", err)
			}
			tc.change(obj.Spec.Delivery.PersistentQueue)
			expectRejection(t, env.Client.Update(ctx, obj), tc.want)
		})
	}
}

// TestSamplesAreAccepted creates every sample in config/samples on a real API server.
func TestSamplesAreAccepted(t *testing.T) {
	env, ns := startAPI(t, "samples")
	ctx := context.Background()
	files, err := filepath.Glob("../../config/samples/tracestream_*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var obj v1.RedisTraceExporter
		if err := yaml.UnmarshalStrict(b, &obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		obj.Namespace = ns
		if err := env.Client.Create(ctx, &obj); err != nil {
			t.Errorf("%s rejected: %v", f, err)
		}
	}
}
