package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/render"
)

// toServer sends every request, whatever its pod IP, to one test server.
type toServer struct{ url *url.URL }

func (s toServer) RoundTrip(req *http.Request) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host = s.url.Scheme, s.url.Host
	return http.DefaultTransport.RoundTrip(req)
}

// TestObserveDrainPod: a running drain pod's /status gives the records and, when its last Redis
// error came after its last write, the error class; the time without progress starts again only
// when the records go down. A pod not running is Pending with why.
func TestObserveDrainPod(t *testing.T) {
	var st telemetry.Status
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(st) }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	obj := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", UID: "u"}}
	labels := render.DrainLabels(obj)
	labels[render.DrainClaimLabel] = "queue-d-1"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "d-drain-1-x", Namespace: "ns", Labels: labels},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(pod).Build()
	r := &Reconciler{Client: c, HTTP: &http.Client{Transport: toServer{u}}}
	ctx := context.Background()

	d := drainObserved{claim: "queue-d-1", phase: v1.DrainPending}
	r.observeDrainPod(ctx, obj, &d)
	if d.phase != v1.DrainPending || d.message != "pod d-drain-1-x Pending: ContainerCreating " {
		t.Errorf("pending pod: %+v", d)
	}

	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7"}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	wrote, failed := time.Now().Add(-time.Minute), time.Now()
	st = telemetry.Status{PersistentQueue: &telemetry.QueueStats{Records: 40}, LastWrite: &wrote, LastErrorClass: "connection", LastErrorTime: &failed}
	d = drainObserved{claim: "queue-d-1", phase: v1.DrainPending}
	r.observeDrainPod(ctx, obj, &d)
	if d.phase != v1.DrainDraining || d.records == nil || *d.records != 40 || d.redisError != "connection" || d.noProgressSince.IsZero() {
		t.Fatalf("running pod with a Redis error: %+v", d)
	}
	first := d.noProgressSince
	r.observeDrainPod(ctx, obj, &d)
	if d.noProgressSince != first {
		t.Errorf("the same records restarted the time without progress")
	}
	st.PersistentQueue.Records, st.LastErrorClass, st.LastErrorTime = 39, "connection", &wrote
	d = drainObserved{claim: "queue-d-1"}
	r.observeDrainPod(ctx, obj, &d)
	if !d.noProgressSince.After(first) || d.redisError != "" {
		t.Errorf("fewer records and a write after the error: since %v (first %v), error %q", d.noProgressSince, first, d.redisError)
	}
}

// TestTerminationRecords reads the records of a drain's last exit from its termination message.
func TestTerminationRecords(t *testing.T) {
	exited := func(msg string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 75, Message: msg}}}}}}
	}
	if n := terminationRecords(exited(`{"records":12,"producerId":"d-2-9f3a1c7e"}`)); n == nil || *n != 12 {
		t.Errorf("records = %v, want 12", n)
	}
	for _, msg := range []string{"", "killed", `{"producerId":"x"}`} {
		if n := terminationRecords(exited(msg)); n != nil {
			t.Errorf("message %q gave records %d, want none", msg, *n)
		}
	}
}

// TestFetchStatusBoundsWhatAPodSends: a pod answering /status with more than maxStatusBytes (or
// with an error status) is an error naming the problem, and the manager reads no more than the
// bound of it, however much the pod would send.
func TestFetchStatusBoundsWhatAPodSends(t *testing.T) {
	var sent atomic.Int64
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if fail.Load() {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(`{"ready":true,"lastErrorClass":"`))
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 1024; i++ { // 64 MiB unless the reader stops
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	r := &Reconciler{HTTP: &http.Client{Transport: toServer{u}}}

	_, err := r.fetchStatus(context.Background(), "10.0.0.7")
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("oversized /status: got %v, want an error naming the bound", err)
	}
	srv.CloseClientConnections()
	if got := sent.Load(); got >= 64<<20 {
		t.Errorf("the pod wrote all %d bytes: the manager read past its bound", got)
	}

	fail.Store(true)
	if _, err := r.fetchStatus(context.Background(), "10.0.0.7"); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("error status: got %v", err)
	}
}
