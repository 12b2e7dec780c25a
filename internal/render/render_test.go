package render_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func rte(name string, spec v1.RedisTraceExporterSpec) *v1.RedisTraceExporter {
	return &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tracing", UID: "0b6e2f0a-uid"},
		Spec:       spec,
	}
}

var cases = map[string]struct {
	rte *v1.RedisTraceExporter
	in  render.Inputs
}{
	"standalone": {
		rte: rte("minimal", v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Mode: "standalone", Addresses: []string{"redis.tracing.svc:6379"}}}),
		in:  render.Inputs{Image: "ghcr.io/tracestream/tracestream:0.1.0"},
	},
	"tls-auth-receivers": {
		rte: rte("secure", v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{Mode: "standalone", Addresses: []string{"rediss://redis.tracing.svc:6380"},
				Auth: &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "redis-auth", UsernameKey: "user", PasswordKey: "pass"}},
				TLS: &v1.RedisTLS{Enabled: true, CASecretRef: &v1.SecretKeyRef{Name: "redis-ca", Key: "ca.pem"},
					ClientCertSecretRef: &v1.SecretRef{Name: "redis-client"}, ServerName: "redis.internal"}},
			Stream:    v1.StreamSpec{KeyTemplate: "traces:{{{service.name}}}", Format: "flat", MaxLen: 100000, TTL: &metav1.Duration{Duration: 24 * time.Hour}},
			Filter:    v1.FilterSpec{ExcludeServices: []string{"healthcheck"}},
			Receivers: v1.ReceiversSpec{GRPCPort: 14317, HTTPPort: 14318, TLSSecretRef: &v1.SecretRef{Name: "otlp-tls"}, BearerTokenSecretRef: &v1.SecretKeyRef{Name: "otlp-token", Key: "token"}},
			Replicas:  ptr.To[int32](3),
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
			PodLabels:      map[string]string{"team": "observability", "app.kubernetes.io/name": "ignored"},
			PodAnnotations: map[string]string{"prometheus.io/scrape": "true"},
			Tolerations:    []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "tracing", Effect: corev1.TaintEffectNoSchedule}},
			Env:            []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "100MiB"}},
			Observability: v1.ObservabilitySpec{Metrics: v1.MetricsSpec{PodMonitor: &v1.PodMonitorSpec{Enabled: true,
				Interval: &metav1.Duration{Duration: 90 * time.Second}, ScrapeTimeout: &metav1.Duration{Duration: 1500 * time.Millisecond},
				Labels: map[string]string{"release": "kube-prometheus-stack", "app.kubernetes.io/instance": "ignored"}}}},
		}),
		in: render.Inputs{Image: "ghcr.io/tracestream/tracestream:0.1.0", SecretsHash: "5ec7e75ha5h", HasUsername: true, ReceiverClientCA: true},
	},
	"cluster-autoscaled": {
		rte: rte("cluster", v1.RedisTraceExporterSpec{
			Redis:               v1.RedisSpec{Mode: "cluster", Addresses: []string{"redis-0:6379", "redis-1:6379", "redis-2:6379"}},
			Image:               "registry.example/tracestream:1.2.3",
			Autoscaling:         &v1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 60},
			PodDisruptionBudget: &v1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))},
			ServiceAccountName:  "shared-sa",
			Delivery:            v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{}},
		}),
		in: render.Inputs{Image: "ghcr.io/tracestream/tracestream:0.1.0"},
	},
	"persistent-queue-pvc": {
		rte: rte("durable", v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{Addresses: []string{"redis.tracing.svc:6379"}},
			Delivery: v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{
				Size: ptr.To(resource.MustParse("8Gi")), StorageClassName: ptr.To("fast-ssd")}},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
		}),
		in: render.Inputs{Image: "ghcr.io/tracestream/tracestream:0.1.0"},
	},
	"persistent-queue-statefulset": {
		rte: rte("durable", v1.RedisTraceExporterSpec{
			Redis:    v1.RedisSpec{Addresses: []string{"redis.tracing.svc:6379"}},
			Replicas: ptr.To[int32](3),
			Delivery: v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent,
				Size: ptr.To(resource.MustParse("8Gi")), StorageClassName: ptr.To("local-path"),
				ClaimRetentionPolicy: &v1.QueueClaimRetentionPolicy{WhenScaled: v1.ClaimRetentionRetain, WhenDeleted: v1.ClaimRetentionDelete}}},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
		}),
		in: render.Inputs{Image: "ghcr.io/tracestream/tracestream:0.1.0"},
	},
	"sentinel": {
		rte: rte("sentinel", v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{Mode: "sentinel", Addresses: []string{"s-0:26379", "s-1:26379", "s-2:26379"}, DB: 2,
				Sentinel: &v1.SentinelSpec{MasterName: "mymaster"}, Auth: &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "redis-auth"}}},
			Stream: v1.StreamSpec{Format: "otlp", MinIDAge: &metav1.Duration{Duration: time.Hour}},
		}),
		in: render.Inputs{Image: "ghcr.io/tracestream/tracestream:0.1.0", SecretsHash: "abc"},
	},
}

// TestBuildersMatchGoldenFiles renders every child of each case, the PodMonitor last as the
// controller applies it; the golden file is the contract (go test ./internal/render -update
// rewrites it).
func TestBuildersMatchGoldenFiles(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			children, err := render.Children(tc.rte, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var objs []any
			for _, c := range append(children, render.PodMonitorChild(tc.rte)) {
				if c.Object != nil {
					objs = append(objs, c.Object)
				}
			}
			matchGolden(t, name, objs)
		})
	}
}

// matchGolden compares the objects, as YAML documents, with testdata/<name>.golden.yaml (and
// rewrites it with -update).
func matchGolden(t *testing.T, name string, objs []any) {
	t.Helper()
	var docs []string
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	got := strings.Join(docs, "---\n")
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the builders' output; if the change is intended, run go test ./internal/render -update and review the diff", path)
	}
}

// TestRenderedConfigIsAValidExporterConfig parses each rendered ConfigMap the way the exporter
// does and validates it (without the file checks: the files exist only in the pod).
func TestRenderedConfigIsAValidExporterConfig(t *testing.T) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			y := configMapData(t, tc.rte, tc.in)
			var c config.Config
			if err := yaml.UnmarshalStrict([]byte(y), &c); err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, y)
			}
			if err := c.ValidateStatic(); err != nil {
				t.Errorf("rendered config is invalid: %v\n%s", err, y)
			}
			if strings.Contains(y, "5ec7e75ha5h") {
				t.Error("the Secrets hash leaked into the config")
			}
		})
	}
}

// TestConfigOrSecretChangeRollsThePods checks the pod-template hash: it changes with the config
// and with the Secrets' data, and with nothing else.
func TestConfigOrSecretChangeRollsThePods(t *testing.T) {
	base := cases["tls-auth-receivers"]
	hash := func(r *v1.RedisTraceExporter, in render.Inputs) string {
		return child[*appsv1ac.DeploymentApplyConfiguration](t, r, in, "Deployment").Spec.Template.Annotations[render.ConfigHashKey]
	}
	h0 := hash(base.rte, base.in)
	in := base.in
	in.SecretsHash = "rotated"
	if hash(base.rte, in) == h0 {
		t.Error("a Secret change does not change the pod template")
	}
	changed := base.rte.DeepCopy()
	changed.Spec.Stream.Format = "json"
	if hash(changed, base.in) == h0 {
		t.Error("a format change does not change the pod template")
	}
	scaled := base.rte.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](5)
	if hash(scaled, base.in) != h0 {
		t.Error("scaling changes the pod template: it would roll every pod")
	}
}

// The memory budget for requests in flight follows the container's memory limit: half of it,
// never less than one request of the largest size; without a limit it keeps its default.
func TestMemoryLimitSizesTheRequestBudget(t *testing.T) {
	tests := map[string]struct {
		limit string
		want  int64
	}{
		"no limit":           {"", config.Default().Delivery.MaxInFlightBytes},
		"1Gi":                {"1Gi", 512 << 20},
		"smaller than 32MiB": {"20Mi", config.Default().Receivers.MaxRequestBytes},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"redis:6379"}}}
			if tc.limit != "" {
				spec.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(tc.limit)}
			}
			c := render.ExporterConfig(rte("budget", spec), render.Inputs{})
			if c.Delivery.MaxInFlightBytes != tc.want {
				t.Errorf("delivery.maxInFlightBytes %d, want %d", c.Delivery.MaxInFlightBytes, tc.want)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("rendered config invalid: %v", err)
			}
		})
	}
}

// child is the child of the given kind, which must be there.
func child[T any](t *testing.T, r *v1.RedisTraceExporter, in render.Inputs, kind string) T {
	t.Helper()
	children, err := render.Children(r, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		if c.Kind == kind && c.Object != nil {
			return c.Object.(T)
		}
	}
	t.Fatalf("no %s among the children", kind)
	panic("unreachable")
}

// configMapData is the exporter configuration file the ConfigMap holds.
func configMapData(t *testing.T, r *v1.RedisTraceExporter, in render.Inputs) string {
	t.Helper()
	return child[*corev1ac.ConfigMapApplyConfiguration](t, r, in, "ConfigMap").Data[render.ConfigFile]
}

// TestChildrenRefuseAConfigTheExporterWouldRefuse: a spec the CRD accepts but the exporter's own
// validation refuses renders no children, and the error names the field, so the operator can
// report it instead of rolling out pods that crash at start-up.
func TestChildrenRefuseAConfigTheExporterWouldRefuse(t *testing.T) {
	r := rte("bad", v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"redis:6379"}},
		Stream: v1.StreamSpec{TTL: &metav1.Duration{Duration: 500 * time.Millisecond}}})
	children, err := render.Children(r, render.Inputs{})
	var invalid *render.InvalidConfigError
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "stream.ttl") {
		t.Fatalf("Children = %d children, error %v; want an InvalidConfigError naming stream.ttl", len(children), err)
	}
}

// TestSecretRefsListEveryReference: the one list of referenced Secrets holds each reference of
// the spec once, with the field that names it (the watch index, the hash and the mounts use it).
func TestSecretRefsListEveryReference(t *testing.T) {
	var got []string
	for _, ref := range render.SecretRefs(cases["tls-auth-receivers"].rte) {
		got = append(got, ref.Field+"="+ref.Name)
	}
	want := []string{"spec.redis.auth.secretRef=redis-auth", "spec.redis.tls.caSecretRef=redis-ca",
		"spec.redis.tls.clientCertSecretRef=redis-client", "spec.receivers.tlsSecretRef=otlp-tls",
		"spec.receivers.bearerTokenSecretRef=otlp-token"}
	if !slices.Equal(got, want) {
		t.Errorf("SecretRefs = %q, want %q", got, want)
	}
}

// workloadOf renders the children and returns the Deployment and the StatefulSet (either nil)
// and the HorizontalPodAutoscaler's target kind ("" without one).
func workloadOf(t *testing.T, r *v1.RedisTraceExporter) (*appsv1ac.DeploymentApplyConfiguration, *appsv1ac.StatefulSetApplyConfiguration, string) {
	t.Helper()
	children, err := render.Children(r, render.Inputs{Image: "tracestream:test"})
	if err != nil {
		t.Fatal(err)
	}
	var d *appsv1ac.DeploymentApplyConfiguration
	var s *appsv1ac.StatefulSetApplyConfiguration
	var target string
	for _, c := range children {
		switch o := c.Object.(type) {
		case *appsv1ac.DeploymentApplyConfiguration:
			d = o
		case *appsv1ac.StatefulSetApplyConfiguration:
			s = o
		case *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration:
			target = *o.Spec.ScaleTargetRef.Kind
		}
	}
	return d, s, target
}

// TestQueueVolumePicksTheWorkload: an unset volume keeps what the storage class always chose
// (emptyDir, or an ephemeral claim), an explicit one says it, and only Persistent turns the
// Deployment into a StatefulSet whose claim template is the pod's queue volume.
func TestQueueVolumePicksTheWorkload(t *testing.T) {
	tests := map[string]struct {
		queue *v1.PersistentQueueSpec
		// volume is the pod's persistent-queue volume source: "emptyDir", "ephemeral:<class>"
		// or "claim template" (the StatefulSet's).
		volume string
	}{
		"unset without a class is an emptyDir":                                 {&v1.PersistentQueueSpec{}, "emptyDir"},
		"unset with a class is an ephemeral claim of it":                       {&v1.PersistentQueueSpec{StorageClassName: ptr.To("fast")}, "ephemeral:fast"},
		"EmptyDir is an emptyDir":                                              {&v1.PersistentQueueSpec{Volume: v1.QueueVolumeEmptyDir}, "emptyDir"},
		"Ephemeral without a class is an ephemeral claim of the default class": {&v1.PersistentQueueSpec{Volume: v1.QueueVolumeEphemeral}, "ephemeral:"},
		"Persistent is the StatefulSet's claim template":                       {&v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent}, "claim template"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := rte("q", v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"redis:6379"}},
				Delivery: v1.DeliverySpec{PersistentQueue: tc.queue}})
			d, s, _ := workloadOf(t, r)
			if (s != nil) != (tc.volume == "claim template") || (d == nil) == (s == nil) {
				t.Fatalf("Deployment %v, StatefulSet %v: want exactly one, the StatefulSet only for Persistent", d != nil, s != nil)
			}
			if s != nil {
				checkClaimTemplate(t, s)
				return
			}
			vols := d.Spec.Template.Spec.Volumes
			q := vols[len(vols)-1]
			got := "other"
			switch {
			case q.EmptyDir != nil:
				got = "emptyDir"
			case q.Ephemeral != nil:
				got = "ephemeral:" + ptr.Deref(q.Ephemeral.VolumeClaimTemplate.Spec.StorageClassName, "")
			}
			if *q.Name != "persistent-queue" || got != tc.volume {
				t.Errorf("queue volume %s is %s, want persistent-queue %s", *q.Name, got, tc.volume)
			}
		})
	}
}

// checkClaimTemplate: the pod mounts the claim template "queue" and carries no queue volume of
// its own; the claims default to ReadWriteOncePod and the StatefulSet never deletes them.
func checkClaimTemplate(t *testing.T, s *appsv1ac.StatefulSetApplyConfiguration) {
	t.Helper()
	for _, v := range s.Spec.Template.Spec.Volumes {
		if *v.Name != "config" {
			t.Errorf("the StatefulSet's pod has its own volume %s", *v.Name)
		}
	}
	mounts := s.Spec.Template.Spec.Containers[0].VolumeMounts
	if m := mounts[len(mounts)-1]; *m.Name != render.QueueClaimTemplate || *m.MountPath != "/var/lib/tracestream/queue" {
		t.Errorf("queue mount %s at %s", *m.Name, *m.MountPath)
	}
	tpl := s.Spec.VolumeClaimTemplates
	if len(tpl) != 1 || *tpl[0].Name != render.QueueClaimTemplate || !slices.Equal(tpl[0].Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}) {
		t.Errorf("claim templates %+v, want one named queue, ReadWriteOncePod", tpl)
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; *p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || *p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("claim retention %s/%s, want Retain/Retain whatever the spec says", *p.WhenScaled, *p.WhenDeleted)
	}
}

// TestAutoscaledStatefulSet: under autoscaling the HPA targets the StatefulSet, which then
// leaves its replica count to it, and a given access mode reaches the claims.
func TestAutoscaledStatefulSet(t *testing.T) {
	r := rte("q", v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"redis:6379"}},
		Autoscaling: &v1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 5},
		Delivery: v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{Volume: v1.QueueVolumePersistent,
			AccessMode: corev1.ReadWriteOnce, ClaimRetentionPolicy: &v1.QueueClaimRetentionPolicy{WhenScaled: v1.ClaimRetentionDelete}}}})
	d, s, target := workloadOf(t, r)
	if d != nil || s == nil || target != "StatefulSet" {
		t.Fatalf("Deployment %v, StatefulSet %v, HPA target %q; want only a StatefulSet, the HPA's target", d != nil, s != nil, target)
	}
	if s.Spec.Replicas != nil {
		t.Errorf("replicas %d under autoscaling: the HPA owns the count", *s.Spec.Replicas)
	}
	if got := s.Spec.VolumeClaimTemplates[0].Spec.AccessModes; !slices.Equal(got, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("access modes %v, want ReadWriteOnce from the spec", got)
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; *p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("whenScaled %s: the StatefulSet must never delete a claim (the operator drains it first)", *p.WhenScaled)
	}
	if _, _, target := workloadOf(t, rte("d", v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"redis:6379"}},
		Autoscaling: &v1.AutoscalingSpec{MaxReplicas: 5}})); target != "Deployment" {
		t.Errorf("HPA target %q without a Persistent queue, want Deployment", target)
	}
}
