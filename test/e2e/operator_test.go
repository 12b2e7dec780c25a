//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/yaml"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"

	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// operatorClient is a client that knows CRDs and RedisTraceExporters.
func operatorClient(t *testing.T) client.Client {
	t.Helper()
	ctrl.SetLogger(logr.Discard()) // client-go's warnings are not what these tests look at
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	_ = v1.AddToScheme(s)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// installCRD applies config/crd/bases to the cluster and waits until it is established.
func installCRD(t *testing.T, c client.Client) {
	t.Helper()
	b, err := os.ReadFile("../../config/crd/bases/tracestream.io_redistraceexporters.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	var existing apiextensionsv1.CustomResourceDefinition
	err = c.Get(context.Background(), client.ObjectKey{Name: crd.Name}, &existing)
	switch {
	case apierrors.IsNotFound(err):
		err = c.Create(context.Background(), &crd)
	case err == nil:
		crd.ResourceVersion = existing.ResourceVersion
		err = c.Update(context.Background(), &crd)
	}
	if err != nil {
		t.Fatalf("installing the CRD: %v", err)
	}
	wait.For(t, 30*time.Second, "CRD established", func() error {
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Get(context.Background(), client.ObjectKey{Name: crd.Name}, &got); err != nil {
			return err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not established")
	})
}

// bridgeIP is the host's address on the local cluster's pod bridge (hack/cluster-lib.sh): pods
// reach a server listening there, and unlike the node's InternalIP (the machine's own interface)
// nothing outside the machine does.
const bridgeIP = "10.88.0.1"

// hostRedis runs a redis-server on ip (bridgeIP) for the pods to write to, and returns its
// address and a client for it; both go when the test ends.
func hostRedis(t *testing.T, ip string) (string, *redis.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command("redis-server", "--bind", ip, "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("%s:%d", ip, port)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	wait.For(t, 10*time.Second, "redis-server up", func() error {
		return rdb.Ping(context.Background()).Err()
	})
	return addr, rdb
}

// installOperator installs the operator with the Helm chart (once per test binary) the way a
// user does: the CRD first (as Flux's CreateReplace does, since helm never upgrades crds/), then
// helm upgrade --install --wait. The manager runs in the cluster, from the image under test.
func installOperator(t *testing.T) {
	t.Helper()
	installOnce.Do(func() { installErr = helmInstall(t) })
	if installErr != nil {
		t.Fatal(installErr)
	}
}

var (
	installOnce sync.Once
	installErr  error
)

const operatorNamespace = "tracestream-system"

// restricted labels a namespace to enforce the "restricted" Pod Security Standard.
var restricted = map[string]string{
	"pod-security.kubernetes.io/enforce":         "restricted",
	"pod-security.kubernetes.io/enforce-version": "latest",
}

func helmInstall(t *testing.T) error {
	helm, image, imageID := os.Getenv("E2E_HELM"), os.Getenv("E2E_IMAGE"), os.Getenv("E2E_IMAGE_ID")
	if helm == "" || image == "" {
		return fmt.Errorf("E2E_HELM and E2E_IMAGE are not set: run the e2e tests with make test-e2e")
	}
	c := operatorClient(t)
	installCRD(t, c)
	// The manager's namespace enforces "restricted" too, as config/manager's does.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
	if _, err := controllerutil.CreateOrUpdate(context.Background(), c, ns, func() error {
		ns.Labels = restricted
		return nil
	}); err != nil {
		return fmt.Errorf("labelling namespace %s: %w", operatorNamespace, err)
	}
	repo, tag, _ := strings.Cut(image, ":")
	args := []string{"upgrade", "--install", "tracestream", "../../charts/tracestream",
		"--namespace", operatorNamespace, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "image.repository=" + repo, "--set", "image.tag=" + tag,
		// A rebuilt image under the same tag must still roll the manager.
		"--set-string", "podAnnotations.tracestream\\.io/image-id=" + imageID}
	start := time.Now()
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm %s: %w\n%s\n%s", strings.Join(args, " "), err, out, managerLogs())
	}
	t.Logf("helm upgrade --install: %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// managerLogs returns the manager's recent log lines, for failure messages.
func managerLogs() string {
	kubectl := os.Getenv("E2E_KUBECTL")
	if kubectl == "" {
		return ""
	}
	out, _ := exec.Command(kubectl, "logs", "-n", operatorNamespace, "deploy/tracestream-manager", "--tail=40").CombinedOutput()
	return "manager log:\n" + string(out)
}

// otlpRequest is a raw OTLP export request of n fresh spans of service svc.
func otlpRequest(svc string, n int) *coltracepb.ExportTraceServiceRequest {
	rs, _ := spanload.Spans(svc, n)
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: rs}
}

// TestOperatorRunsAnExporter installs the CRD, runs the manager, applies a RedisTraceExporter and
// follows it through: pods Ready, OTLP over gRPC and HTTP from the host through the Service, spans
// in Redis, a consumer group's lag and the exporters' health in status, kubectl get, kubectl
// scale, and garbage collection of every child on delete.
func TestOperatorRunsAnExporter(t *testing.T) {
	image := os.Getenv("E2E_IMAGE")
	kubectl := os.Getenv("E2E_KUBECTL")
	if image == "" || kubectl == "" {
		t.Fatal("E2E_IMAGE and E2E_KUBECTL are not set: run the e2e tests with make test-e2e")
	}
	installOperator(t)
	c := operatorClient(t)
	redisAddr, rdb := hostRedis(t, bridgeIP)
	_, ns := cluster(t)
	ctx := context.Background()

	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e", Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{
			Redis:           v1.RedisSpec{Addresses: []string{redisAddr}},
			Replicas:        ptr.To[int32](1),
			ImagePullPolicy: corev1.PullNever,
			Lag:             v1.LagSpec{RefreshInterval: &metav1.Duration{Duration: 2 * time.Second}},
		},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatalf("creating the RedisTraceExporter: %v", err)
	}
	key := client.ObjectKeyFromObject(rte)
	getRTE := func() *v1.RedisTraceExporter {
		var got v1.RedisTraceExporter
		if err := c.Get(ctx, key, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	wait.For(t, 3*time.Minute, "RedisTraceExporter Ready", func() error {
		got := getRTE()
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionReady) {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		return nil
	})

	var svc corev1.Service
	if err := c.Get(ctx, key, &svc); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(svc.Spec.ClusterIP+":4317", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	wait.For(t, time.Minute, "OTLP/gRPC through the Service", func() error {
		_, err := coltracepb.NewTraceServiceClient(conn).Export(ctx, otlpRequest("e2e-grpc", 20))
		return err
	})
	body, _ := proto.Marshal(otlpRequest("e2e-http", 30))
	wait.For(t, time.Minute, "OTLP/HTTP through the Service", func() error {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Post("http://"+svc.Spec.ClusterIP+":4318/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	if n := rdb.XLen(ctx, "traces:e2e-grpc").Val(); n != 20 {
		t.Errorf("traces:e2e-grpc has %d entries, want 20", n)
	}
	if n := rdb.XLen(ctx, "traces:e2e-http").Val(); n != 30 {
		t.Errorf("traces:e2e-http has %d entries, want 30", n)
	}

	// A consumer group reads 5 of the 20 gRPC spans: lag 15.
	if err := rdb.XGroupCreate(ctx, "traces:e2e-grpc", "readers", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "readers", Consumer: "c1", Streams: []string{"traces:e2e-grpc", ">"}, Count: 5}).Err(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, time.Minute, "lag and exporter health in status", func() error {
		got := getRTE()
		if got.Status.TotalLag == nil || *got.Status.TotalLag != 15 {
			return fmt.Errorf("totalLag %v, streams %+v", got.Status.TotalLag, got.Status.Streams)
		}
		e := got.Status.Exporter
		if e == nil || len(e.Pods) != 1 || !e.Pods[0].Ready || e.LastSuccessfulWrite == nil {
			return fmt.Errorf("exporter %+v", e)
		}
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionExporterHealthy) {
			return fmt.Errorf("ExporterHealthy not true: %+v", got.Status.Conditions)
		}
		return nil
	})
	out, err := exec.Command(kubectl, "get", "rte", "-n", ns).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get rte: %v\n%s", err, out)
	}
	t.Logf("kubectl get rte:\n%s", out)
	fields := strings.Fields(strings.Split(strings.TrimSpace(string(out)), "\n")[1])
	if len(fields) < 4 || fields[1] != "True" || fields[2] != "1/1" || fields[3] != "15" {
		t.Errorf("kubectl get rte shows %v, want Ready True, replicas 1/1, lag 15", fields)
	}
	yamlOut, _ := exec.Command(kubectl, "get", "rte", "e2e", "-n", ns, "-o", "yaml").CombinedOutput()
	t.Logf("kubectl get rte -o yaml:\n%s", yamlOut)

	// What Flux sees: kstatus Current, with no custom health expression.
	if res := kstatusOf(t, getRTE()); res.Status != status.CurrentStatus {
		t.Errorf("kstatus %s (%s), want Current", res.Status, res.Message)
	}

	// kubectl scale goes through the scale subresource to the Deployment.
	if out, err := exec.Command(kubectl, "scale", "rte/e2e", "-n", ns, "--replicas=3").CombinedOutput(); err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	wait.For(t, 2*time.Minute, "3/3 replicas after kubectl scale", func() error {
		got := getRTE()
		if got.Status.ReplicasSummary != "3/3" || !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionReady) {
			return fmt.Errorf("replicas %s", got.Status.ReplicasSummary)
		}
		return nil
	})

	// Deleting the resource garbage-collects every child.
	if err := c.Delete(ctx, rte); err != nil {
		t.Fatal(err)
	}
	wait.For(t, time.Minute, "children garbage-collected", func() error {
		for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
			if err := c.Get(ctx, key, o); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T still there: %w", o, err)
			}
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "e2e-config"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap e2e-config still there")
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "e2e-exporter"}, &corev1.ServiceAccount{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ServiceAccount still there")
		}
		return nil
	})
}

// kstatusOf computes what kstatus (and so Flux's health checks) makes of the resource.
func kstatusOf(t *testing.T, obj *v1.RedisTraceExporter) *status.Result {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	if err != nil {
		t.Fatal(err)
	}
	return res
}
