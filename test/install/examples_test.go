package install

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/manifest"
)

const autoscalingExamples = "../../examples/autoscaling"

// autoscalingManifests are the objects of examples/autoscaling: every file but the
// prometheus-adapter chart values, which are not a manifest (test/observability reads them).
func autoscalingManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(autoscalingExamples, "*.yaml"))
	var objs []*unstructured.Unstructured
	for _, p := range paths {
		if filepath.Base(p) == "prometheus-adapter-values.yaml" {
			continue
		}
		got, err := manifest.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, got...)
	}
	return objs
}

// TestAutoscalingExamplesApplyToARealAPIServer dry-runs the autoscaling examples on a real
// kube-apiserver: the HorizontalPodAutoscaler and the Deployment against the built-in types, the
// RedisTraceExporter against the project's CRD, and the ScaledObjects and the
// TriggerAuthentication against KEDA's own CRDs (KEDA_CRDS, set by make test from
// hack/keda-crds.sh).
func TestAutoscalingExamplesApplyToARealAPIServer(t *testing.T) {
	objs := autoscalingManifests(t)
	var kinds []string
	for _, u := range objs {
		kinds = append(kinds, u.GetKind())
	}
	for _, want := range []string{"RedisTraceExporter", "Deployment", "HorizontalPodAutoscaler", "ScaledObject", "TriggerAuthentication"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %s in %s: %v", want, autoscalingExamples, kinds)
		}
	}
	env := controlplane.Start(t)
	installCRDs(t, env.Client, "KEDA_CRDS", "keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tracing"}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner("install-test"), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Errorf("%s: %v", key(u), err)
		}
	}
}
