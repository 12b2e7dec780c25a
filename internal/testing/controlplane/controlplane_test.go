package controlplane_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracestreamv1alpha1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
)

// TestControlPlaneServesTheCRD proves the envtest control plane is the real thing: the API server
// reports the version we built, stores RedisTraceExporters and applies the CRD's defaults.
// (api/v1alpha1's tests table-test the CRD's validation rules on it.)
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
	rte := &tracestreamv1alpha1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "defaults", Namespace: ns.Name},
		Spec: tracestreamv1alpha1.RedisTraceExporterSpec{
			Redis: tracestreamv1alpha1.RedisSpec{Addresses: []string{"redis:6379"}},
		},
	}
	if err := env.Client.Create(ctx, rte); err != nil {
		t.Fatalf("creating RedisTraceExporter: %v", err)
	}
	var got tracestreamv1alpha1.RedisTraceExporter
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rte), &got); err != nil {
		t.Fatalf("reading RedisTraceExporter back: %v", err)
	}
	if got.Spec.Replicas == nil || *got.Spec.Replicas != 1 || got.Spec.Redis.Mode != "standalone" {
		t.Errorf("spec = %+v, want the CRD defaults replicas 1, mode standalone", got.Spec)
	}
}
