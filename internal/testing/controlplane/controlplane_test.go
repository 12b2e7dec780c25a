package controlplane_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracestreamv1alpha1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
)

// TestControlPlaneServesTheCRD proves the envtest control plane is the real thing: the API server
// reports the version we built, stores RedisTraceExporters, applies the CRD's defaults and rejects
// what its schema forbids.
func TestControlPlaneServesTheCRD(t *testing.T) {
	env := controlplane.Start(t)
	ctx := context.Background()

	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if !strings.HasPrefix(v.GitVersion, "v1.37.") {
		t.Errorf("kube-apiserver version = %q, want v1.37.x (the version hack/build-kube.sh builds)", v.GitVersion)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "foundation"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}

	rte := &tracestreamv1alpha1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: "defaults", Namespace: ns.Name}}
	if err := env.Client.Create(ctx, rte); err != nil {
		t.Fatalf("creating RedisTraceExporter: %v", err)
	}
	var got tracestreamv1alpha1.RedisTraceExporter
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rte), &got); err != nil {
		t.Fatalf("reading RedisTraceExporter back: %v", err)
	}
	if got.Spec.Replicas == nil || *got.Spec.Replicas != 1 {
		t.Errorf("spec.replicas = %v, want the CRD default 1", got.Spec.Replicas)
	}

	bad := &tracestreamv1alpha1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "negative", Namespace: ns.Name},
		Spec:       tracestreamv1alpha1.RedisTraceExporterSpec{Replicas: ptr.To[int32](-1)},
	}
	err = env.Client.Create(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "spec.replicas") {
		t.Errorf("creating with spec.replicas=-1: err = %v, want a rejection naming spec.replicas", err)
	}
}
