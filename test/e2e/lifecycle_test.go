//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/render"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/spanload"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// rteHandle reads and waits on one RedisTraceExporter.
type rteHandle struct {
	t   *testing.T
	c   client.Client
	key client.ObjectKey
}

func (h rteHandle) get() *v1.RedisTraceExporter {
	h.t.Helper()
	var got v1.RedisTraceExporter
	if err := h.c.Get(context.Background(), h.key, &got); err != nil {
		h.t.Fatal(err)
	}
	return &got
}

// update applies change to a fresh copy, retrying on conflicts with the operator's status writes.
func (h rteHandle) update(change func(*v1.RedisTraceExporter)) {
	h.t.Helper()
	wait.For(h.t, 30*time.Second, "updating "+h.key.String(), func() error {
		obj := h.get()
		change(obj)
		return h.c.Update(context.Background(), obj)
	})
}

// ready waits for Ready=True at the current generation with every pod rolled and ready.
func (h rteHandle) ready(timeout time.Duration) *v1.RedisTraceExporter {
	h.t.Helper()
	var got *v1.RedisTraceExporter
	wait.For(h.t, timeout, h.key.String()+" Ready", func() error {
		got = h.get()
		c := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("Ready %+v (generation %d, observed %d)", c, got.Generation, got.Status.ObservedGeneration)
		}
		return nil
	})
	return got
}

// notReady waits for Ready=False with reason and returns the condition's message.
func (h rteHandle) notReady(timeout time.Duration, reason string) string {
	h.t.Helper()
	var msg string
	wait.For(h.t, timeout, h.key.String()+" Ready=False "+reason, func() error {
		got := h.get()
		c := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("Ready %+v", c)
		}
		msg = c.Message
		return nil
	})
	return msg
}

// rolledOut waits until the exporter Deployment runs only pods of its current template.
func (h rteHandle) rolledOut(timeout time.Duration) *appsv1.Deployment {
	h.t.Helper()
	var d appsv1.Deployment
	wait.For(h.t, timeout, h.key.String()+" rolled out", func() error {
		if err := h.c.Get(context.Background(), h.key, &d); err != nil {
			return err
		}
		want := ptr.Deref(d.Spec.Replicas, 1)
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want ||
			d.Status.Replicas != want || d.Status.AvailableReplicas != want {
			return fmt.Errorf("deployment status %+v", d.Status)
		}
		// Old pods keep serving the connections they have while they drain: wait until they are gone.
		var pods corev1.PodList
		if err := h.c.List(context.Background(), &pods, client.InNamespace(h.key.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
			return err
		}
		if len(pods.Items) != int(want) {
			return fmt.Errorf("%d pods, want %d (old ones still terminating)", len(pods.Items), want)
		}
		return nil
	})
	return &d
}

// streamSpanIDs reads a whole stream and returns, per span id (from each entry's traceparent),
// how many entries carry it, and how many entries of each format it holds.
func streamSpanIDs(t *testing.T, rdb *redis.Client, stream string) (map[string]int, map[string]int) {
	t.Helper()
	ids, formats := map[string]int{}, map[string]int{}
	entries, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		tp, _ := e.Values["traceparent"].(string)
		parts := strings.Split(tp, "-")
		if len(parts) != 4 {
			t.Fatalf("entry %s has no valid traceparent: %v", e.ID, e.Values)
		}
		ids[parts[2]]++
		switch {
		case e.Values["data"] != nil:
			formats["json"]++
		case e.Values["otlp"] != nil:
			formats["otlp"]++
		default:
			formats["flat"]++
		}
	}
	return ids, formats
}

// onBridge is the address pods use for a redistest server that also listens on bridgeIP.
func onBridge(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(bridgeIP, port)
}

func serviceIP(t *testing.T, c client.Client, key client.ObjectKey) string {
	t.Helper()
	var svc corev1.Service
	if err := c.Get(context.Background(), key, &svc); err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// TestTLSAuthAndPasswordRotation: Redis with TLS and an ACL user, the CA and credentials in
// Secrets; rotating the password Secret rolls the pods and writes continue with the new one.
func TestTLSAuthAndPasswordRotation(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	// A real TLS + ACL redis-server, listening on the bridge too, so that pods reach it.
	srv := redistest.Standalone(t, redistest.WithTLS(), redistest.WithACL(""), redistest.WithConfig("bind", "127.0.0.1", bridgeIP))
	addr := onBridge(t, srv)
	acl := srv.ACL()
	rdb := srv.Client(t)

	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "redis-auth", Namespace: ns},
			Data: map[string][]byte{"username": []byte(acl.Username()), "password": []byte(acl.Password())}},
		{ObjectMeta: metav1.ObjectMeta{Name: "redis-ca", Namespace: ns},
			Data: map[string][]byte{"ca.crt": srv.TLS().CAPEM()}},
	} {
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{
			Redis: v1.RedisSpec{
				Addresses: []string{addr},
				Auth:      &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "redis-auth"}},
				// The test CA signed the server certificate for localhost and loopback.
				TLS: &v1.RedisTLS{Enabled: true, CASecretRef: &v1.SecretKeyRef{Name: "redis-ca", Key: "ca.crt"}, ServerName: "localhost"},
			},
			Replicas: ptr.To[int32](1),
			Lag:      v1.LagSpec{RefreshInterval: &metav1.Duration{Duration: 2 * time.Second}},
		},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
	h.ready(3 * time.Minute)
	before := h.rolledOut(time.Minute).Spec.Template.Annotations[render.ConfigHashKey]
	sc := spanload.Client(t, serviceIP(t, c, h.key)+":4317")
	send := func(n int) {
		t.Helper()
		rs, _ := spanload.Spans("secure", n)
		if err := sc.UploadTraces(ctx, rs); err != nil {
			t.Fatalf("export: %v", err)
		}
	}
	send(10)

	// Rotate: Redis accepts both passwords while the pods roll, then only the new one.
	old, next := acl.Password(), redistest.RandomPassword(t)
	if err := rdb.Do(ctx, "ACL", "SETUSER", acl.Username(), ">"+next).Err(); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-auth"}, &secret); err != nil {
		t.Fatal(err)
	}
	secret.Data["password"] = []byte(next)
	if err := c.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	wait.For(t, time.Minute, "pod template hash changes with the Secret", func() error {
		var d appsv1.Deployment
		if err := c.Get(ctx, h.key, &d); err != nil {
			return err
		}
		if d.Spec.Template.Annotations[render.ConfigHashKey] == before {
			return fmt.Errorf("hash still %s", before)
		}
		return nil
	})
	h.rolledOut(2 * time.Minute)
	if err := rdb.Do(ctx, "ACL", "SETUSER", acl.Username(), "<"+old).Err(); err != nil {
		t.Fatal(err)
	}
	h.ready(time.Minute)
	send(10)
	if n := rdb.XLen(ctx, "traces:secure").Val(); n != 20 {
		t.Errorf("traces:secure has %d entries, want 20", n)
	}
	got := h.get()
	if c := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionRedisReachable); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("RedisReachable %+v after rotation", c)
	}
	for _, cond := range got.Status.Conditions {
		if strings.Contains(cond.Message, old) || strings.Contains(cond.Message, next) {
			t.Fatalf("condition %s holds a password", cond.Type)
		}
	}
	// Nothing a user or a log pipeline sees may hold either password: the resource, the events,
	// every log line of the exporters and the manager, and the exporter's /status.
	seen := map[string]string{}
	kubectl := os.Getenv("E2E_KUBECTL")
	for name, args := range map[string][]string{
		"the RedisTraceExporter": {"get", "rte", h.key.Name, "-n", ns, "-o", "yaml"},
		"the events":             {"get", "events", "-n", ns, "-o", "yaml"},
		"the exporters' logs":    {"logs", "-n", ns, "--all-containers", "--tail=-1", "-l", "app.kubernetes.io/managed-by=tracestream-operator"},
		"the manager's logs":     {"logs", "-n", operatorNamespace, "deploy/tracestream-manager", "--tail=-1"},
	} {
		out, err := exec.Command(kubectl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		seen[name] = string(out)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	// From a pod, as the operator reads it: the Service does not expose the admin port.
	pods, err := exporterPods(ctx, c, ns, h.key.Name)
	if err != nil || len(pods) == 0 || pods[0].Status.PodIP == "" {
		t.Fatalf("an exporter pod with an IP: %v (%d pods)", err, len(pods))
	}
	resp, err := hc.Get("http://" + net.JoinHostPort(pods[0].Status.PodIP, strconv.Itoa(int(render.AdminPort))) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("the exporter's /status: HTTP %d, %d bytes: the password check needs its content", resp.StatusCode, len(body))
	}
	statusBody := string(body)
	seen["the exporter's /status"] = statusBody
	for name, text := range seen {
		if strings.Contains(text, old) || strings.Contains(text, next) {
			t.Errorf("%s holds a password", name)
		}
	}
	t.Logf("no password in %d bytes of resource, events, logs and /status", len(seen["the RedisTraceExporter"])+len(seen["the events"])+len(seen["the exporters' logs"])+len(seen["the manager's logs"])+len(statusBody))
}

// TestFormatChangeLosesNoAcknowledgedSpan changes spec.stream.format while a client sends: the
// pods roll, and every span whose export was acknowledged is in Redis afterwards.
func TestFormatChangeLosesNoAcknowledgedSpan(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr, rdb := hostRedis(t, bridgeIP)
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "rolling", Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{
			Redis:    v1.RedisSpec{Addresses: []string{redisAddr}},
			Replicas: ptr.To[int32](2),
		},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
	h.ready(3 * time.Minute)
	h.rolledOut(time.Minute)
	sc := spanload.Client(t, serviceIP(t, c, h.key)+":4317")

	// The sender: batches of 20 spans, one after the other, until stopped.
	var (
		mu                  sync.Mutex
		acked               []string
		requests, failed    int
		stop                = make(chan struct{})
		done                = make(chan struct{})
		ackedAfterTheChange int
		changed             bool
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rs, ids := spanload.Spans("rolling", 20)
			err := sc.UploadTraces(ctx, rs)
			mu.Lock()
			requests++
			if err != nil {
				failed++
			} else {
				acked = append(acked, ids...)
				if changed {
					ackedAfterTheChange += len(ids)
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // pacing the sender, not waiting for state
		}
	}()
	wait.For(t, 30*time.Second, "spans flowing before the change", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 200 {
			return fmt.Errorf("%d acknowledged", len(acked))
		}
		return nil
	})

	before := h.rolledOut(time.Minute).Spec.Template.Annotations[render.ConfigHashKey]
	start := time.Now()
	h.update(func(o *v1.RedisTraceExporter) { o.Spec.Stream.Format = "otlp" })
	mu.Lock()
	changed = true
	mu.Unlock()
	wait.For(t, time.Minute, "a new pod template for the new format", func() error {
		var d appsv1.Deployment
		if err := c.Get(ctx, h.key, &d); err != nil {
			return err
		}
		if d.Spec.Template.Annotations[render.ConfigHashKey] == before {
			return fmt.Errorf("pod template hash still %s", before)
		}
		return nil
	})
	h.rolledOut(3 * time.Minute)
	h.ready(time.Minute)
	rollout := time.Since(start)
	// Keep sending after the rollout, to the new pods only.
	mu.Lock()
	sinceRollout := len(acked)
	mu.Unlock()
	wait.For(t, 30*time.Second, "spans flowing after the rollout", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked)-sinceRollout < 400 {
			return fmt.Errorf("%d acknowledged since the rollout", len(acked)-sinceRollout)
		}
		return nil
	})
	close(stop)
	<-done

	ids, formats := streamSpanIDs(t, rdb, "traces:rolling")
	lost, dup := 0, 0
	for _, id := range acked {
		switch n := ids[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup++
		}
	}
	t.Logf("format change json -> otlp: rollout %s, %d requests (%d failed after the client's retries), %d spans acknowledged (%d after the change), %d entries in Redis (json %d, otlp %d), %d lost, %d duplicated",
		rollout.Round(time.Millisecond), requests, failed, len(acked), ackedAfterTheChange, len(ids), formats["json"], formats["otlp"], lost, dup)
	if lost > 0 {
		t.Errorf("%d acknowledged spans are not in Redis", lost)
	}
	if formats["json"] == 0 || formats["otlp"] == 0 {
		t.Errorf("entries per format %v: want both json (before) and otlp (after)", formats)
	}
}

// TestBrokenSpecIsReportedAndRecovers: a wrong Redis address and a missing Secret each give
// Ready=False with a reason a human understands (and kstatus a verdict); fixing them recovers.
func TestBrokenSpecIsReportedAndRecovers(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr, _ := hostRedis(t, bridgeIP)
	srv := redistest.Standalone(t, redistest.WithACL(""), redistest.WithConfig("bind", "127.0.0.1", bridgeIP))
	authAddr := onBridge(t, srv)
	// Nothing listens on port 1 there.
	wrong := bridgeIP + ":1"

	t.Run("a wrong Redis address is Unreachable and recovers when fixed", func(t *testing.T) {
		rte := &v1.RedisTraceExporter{
			ObjectMeta: metav1.ObjectMeta{Name: "wrong-address", Namespace: ns},
			Spec:       v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{wrong}}, Replicas: ptr.To[int32](1)},
		}
		if err := c.Create(ctx, rte); err != nil {
			t.Fatal(err)
		}
		h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
		msg := h.notReady(2*time.Minute, v1.ReasonRedisUnreachable)
		t.Logf("Ready=False %s: %s", v1.ReasonRedisUnreachable, msg)
		if !strings.Contains(msg, wrong) {
			t.Errorf("the message does not name the address %s: %s", wrong, msg)
		}
		if res := kstatusOf(t, h.get()); res.Status != status.InProgressStatus {
			t.Errorf("kstatus %s (%s), want InProgress: Flux waits for Redis, then times out", res.Status, res.Message)
		}
		h.update(func(o *v1.RedisTraceExporter) { o.Spec.Redis.Addresses = []string{redisAddr} })
		h.ready(2 * time.Minute)
	})

	t.Run("a missing Secret is Stalled and recovers when it appears", func(t *testing.T) {
		rte := &v1.RedisTraceExporter{
			ObjectMeta: metav1.ObjectMeta{Name: "missing-secret", Namespace: ns},
			Spec: v1.RedisTraceExporterSpec{
				Redis:    v1.RedisSpec{Addresses: []string{authAddr}, Auth: &v1.RedisAuth{SecretRef: v1.CredentialsSecretRef{Name: "not-yet"}}},
				Replicas: ptr.To[int32](1),
			},
		}
		if err := c.Create(ctx, rte); err != nil {
			t.Fatal(err)
		}
		h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
		msg := h.notReady(time.Minute, v1.ReasonSecretNotFound)
		t.Logf("Ready=False %s: %s", v1.ReasonSecretNotFound, msg)
		if !strings.Contains(msg, "not-yet") {
			t.Errorf("the message does not name the Secret: %s", msg)
		}
		got := h.get()
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionStalled) {
			t.Errorf("not Stalled: %+v", got.Status.Conditions)
		}
		if res := kstatusOf(t, got); res.Status != status.FailedStatus {
			t.Errorf("kstatus %s (%s), want Failed", res.Status, res.Message)
		}
		acl := srv.ACL()
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-yet", Namespace: ns},
			Data: map[string][]byte{"username": []byte(acl.Username()), "password": []byte(acl.Password())}}); err != nil {
			t.Fatal(err)
		}
		h.ready(2 * time.Minute)
		if res := kstatusOf(t, h.get()); res.Status != status.CurrentStatus {
			t.Errorf("kstatus %s (%s), want Current", res.Status, res.Message)
		}
	})
}
