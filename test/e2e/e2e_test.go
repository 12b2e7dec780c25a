//go:build e2e

// Package e2e holds the end-to-end tests: they run against the real single-node cluster from
// `make cluster-up` (KUBECONFIG), with the image from `make image` loaded into its containerd.
// `make test-e2e` sets everything up and runs them.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// cluster connects to the cluster in KUBECONFIG and gives the test a namespace of its own,
// deleted (with everything in it) when the test ends.
func cluster(t *testing.T) (client.Client, string) {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run the e2e tests with make test-e2e")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		t.Fatalf("loading kubeconfig: %v", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	// Every test namespace enforces the "restricted" Pod Security Standard, as a locked-down
	// cluster would: an exporter pod that asked for more would not be admitted.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: restricted}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("namespace %s when the test failed:\n%s", ns.Name, diagnose(ns.Name))
		}
		if err := c.Delete(context.Background(), ns); err != nil {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	return c, ns.Name
}

// TestImageServesThroughClusterIP runs the locally built image's exporter as a Deployment under
// the "restricted" security settings and reaches its admin endpoint (/status) from the host
// through a ClusterIP Service: the image, containerd, the CNI bridge, the scheduler, the kubelet's probes and
// kube-proxy all have to work for this to pass.
func TestImageServesThroughClusterIP(t *testing.T) {
	image, version := os.Getenv("E2E_IMAGE"), os.Getenv("E2E_VERSION")
	if image == "" || version == "" {
		t.Fatal("E2E_IMAGE and E2E_VERSION are not set: run the e2e tests with make test-e2e")
	}
	c, ns := cluster(t)
	ctx := context.Background()
	labels := map[string]string{"app.kubernetes.io/name": "exporter-smoke"}

	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "exporter-smoke", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "exporter",
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Command:         []string{"/exporter"},
						Ports:           []corev1.ContainerPort{{Name: "admin", ContainerPort: 8888}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
							// /healthz: this smoke test gives the exporter no Redis, so /readyz stays 503.
							HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("admin")},
						}, PeriodSeconds: 1},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
	if err := c.Create(ctx, dep); err != nil {
		t.Fatalf("creating Deployment: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "exporter-smoke", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "admin", Port: 8888, TargetPort: intstr.FromString("admin")}},
		},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatalf("creating Service: %v", err)
	}

	wait.For(t, 2*time.Minute, "Deployment ready", func() error {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), &d); err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 1 {
			return fmt.Errorf("readyReplicas = %d, pods: %s", d.Status.ReadyReplicas, podSummary(ctx, c, ns))
		}
		return nil
	})

	url := fmt.Sprintf("http://%s:8888/status", svc.Spec.ClusterIP)
	// No keep-alive: each poll must open a new connection through the rules kube-proxy writes.
	httpc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var body string
	// kube-proxy programs the Service's rules asynchronously: poll until they are in place.
	wait.For(t, time.Minute, "GET "+url, func() error {
		resp, err := httpc.Get(url)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		body = string(b)
		return nil
	})
	var st struct {
		Version        string `json:"version"`
		RedisReachable bool   `json:"redisReachable"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	if st.Version != version {
		t.Errorf("GET %s: version %q, want the image's version %q", url, st.Version, version)
	}
	if st.RedisReachable {
		t.Errorf("GET %s: redisReachable with no Redis to reach: %s", url, body)
	}
}

func podSummary(ctx context.Context, c client.Client, ns string) string {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var parts []string
	for _, p := range pods.Items {
		s := string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				s += " " + cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
			}
		}
		parts = append(parts, p.Name+"="+s)
	}
	return strings.Join(parts, ", ")
}

// diagnose collects what a human looks at first when a test fails in namespace ns: objects,
// events, and the last log lines of every pod and of the manager.
func diagnose(ns string) string {
	kubectl := os.Getenv("E2E_KUBECTL")
	if kubectl == "" {
		return "(E2E_KUBECTL not set)"
	}
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "rte,deploy,pods,svc", "-n", ns, "-o", "wide"},
		{"get", "events", "-n", ns, "--sort-by=.lastTimestamp"},
		{"logs", "-n", ns, "--all-containers", "--prefix", "--tail=15", "-l", "app.kubernetes.io/managed-by=tracestream-operator"},
		{"logs", "-n", "tracestream-system", "deploy/tracestream-manager", "--tail=20"},
	} {
		out, _ := exec.Command(kubectl, args...).CombinedOutput()
		fmt.Fprintf(&b, "$ kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	return b.String()
}

// TestPodSecurityRestrictedIsEnforced checks that the namespaces the other tests run in really
// enforce the "restricted" Pod Security Standard (so their exporters, and the manager in
// tracestream-system, were admitted under it): a pod with no security context, which "baseline"
// would admit, is refused. (Privileged pods are refused by this cluster before admission.)
func TestPodSecurityRestrictedIsEnforced(t *testing.T) {
	installOperator(t)
	c, ns := cluster(t)
	ctx := context.Background()
	for _, namespace := range []string{ns, operatorNamespace} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "unrestricted", Namespace: namespace},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: os.Getenv("E2E_IMAGE")}}},
		}
		err := c.Create(ctx, pod, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Errorf("a pod without a security context in %s: %v, want it refused by PodSecurity", namespace, err)
		}
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(operatorNamespace)); err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			running++
		}
	}
	if running == 0 {
		t.Errorf("no manager pod running in %s under the restricted standard", operatorNamespace)
	}
}
