//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/controlplane"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// manager is the manager binary as a process, against the envtest API server.
type manager struct {
	name, metrics string
	cmd           *exec.Cmd
	done          chan struct{}
	log           string
}

func startManager(t *testing.T, name, kubeconfig, leaseNamespace string) *manager {
	t.Helper()
	m := &manager{name: name, metrics: freeAddr(t), done: make(chan struct{}), log: filepath.Join(t.TempDir(), name+".log")}
	f, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	m.cmd = exec.Command(managerBin, "--kubeconfig", kubeconfig, "--metrics-bind-address", m.metrics,
		"--health-probe-bind-address", freeAddr(t), "--leader-elect", "--leader-election-namespace", leaseNamespace,
		"--exporter-image", "tracestream/exporter:chaos")
	m.cmd.Stdout, m.cmd.Stderr = f, f
	if err := child.Start(m.cmd); err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.done
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return m
}

// leader reports whether the manager says it holds the lease (controller-runtime's
// leader_election_master_status metric).
func (m *manager) leader() bool {
	metrics, err := scrape(m.metrics)
	return err == nil && metrics[`leader_election_master_status{name="manager.tracestream.io"}`] == 1
}

// managerControlPlane starts envtest with the given namespaces and returns an admin client and
// a kubeconfig for the managers.
func managerControlPlane(t *testing.T, namespaces ...string) (*controlplane.Env, string) {
	t.Helper()
	env := controlplane.Start(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc, err := env.KubeconfigFor("tracestream-manager", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	return env, kubeconfig
}

// statusWrites counts the writes kube-apiserver has served to RedisTraceExporter status (any verb
// but GET, LIST and WATCH on the status subresource), from its own /metrics.
func statusWrites(t *testing.T, env *controlplane.Env) float64 {
	t.Helper()
	rc, err := rest.RESTClientFor(restConfigForMetrics(env.Config))
	if err != nil {
		t.Fatal(err)
	}
	body, err := rc.Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("reading kube-apiserver /metrics: %v", err)
	}
	total := 0.0
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="redistraceexporters"`) ||
			!strings.Contains(line, `subresource="status"`) {
			continue
		}
		if strings.Contains(line, `verb="GET"`) || strings.Contains(line, `verb="LIST"`) || strings.Contains(line, `verb="WATCH"`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("apiserver metric line %q: %v", line, err)
		}
		total += v
	}
	return total
}

// restConfigForMetrics is cfg for a plain REST client of non-resource paths.
func restConfigForMetrics(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{}
	c.APIPath = "/"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return c
}

// reconciled waits until the resource has been through a reconcile pass (observedGeneration).
func reconciled(t *testing.T, c client.Client, key client.ObjectKey, timeout time.Duration) {
	t.Helper()
	wait.For(t, timeout, "RedisTraceExporter "+key.String()+" reconciled", func() error {
		var rte v1.RedisTraceExporter
		if err := c.Get(context.Background(), key, &rte); err != nil {
			return err
		}
		if rte.Status.ObservedGeneration != rte.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", rte.Status.ObservedGeneration, rte.Generation)
		}
		return nil
	})
}

// TestManagerLeaderFailover runs two managers with leader election: one reconciles; when it is
// killed (SIGKILL, so it cannot hand the lease over) the other takes over once the lease expires
// and reconciles what was created meanwhile; a SIGTERMed leader hands over at once.
func TestManagerLeaderFailover(t *testing.T) {
	env, kubeconfig := managerControlPlane(t, "leases", "apps")
	c := env.Client
	ctx := context.Background()
	managers := []*manager{startManager(t, "manager-a", kubeconfig, "leases"), startManager(t, "manager-b", kubeconfig, "leases")}
	var leader, standby *manager
	wait.For(t, time.Minute, "one manager leading", func() error {
		var leading []*manager
		for _, m := range managers {
			if m.leader() {
				leading = append(leading, m)
			}
		}
		if len(leading) != 1 {
			return fmt.Errorf("%d managers leading", len(leading))
		}
		leader = leading[0]
		return nil
	})
	for _, m := range managers {
		if m != leader {
			standby = m
		}
	}
	create := func(name string) client.ObjectKey {
		rte := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"},
			Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"127.0.0.1:1"}}}}
		if err := c.Create(ctx, rte); err != nil {
			t.Fatal(err)
		}
		return client.ObjectKeyFromObject(rte)
	}
	reconciled(t, c, create("before"), time.Minute)

	// SIGKILL: the lease is left to expire (controller-runtime's default lease duration, 15 s).
	killed := time.Now()
	_ = leader.cmd.Process.Kill()
	<-leader.done
	after := create("after-kill")
	wait.For(t, time.Minute, "the standby leading", func() error {
		if !standby.leader() {
			return errors.New("not leading yet")
		}
		return nil
	})
	tookOver := time.Since(killed)
	reconciled(t, c, after, time.Minute)
	reconciledAfterKill := time.Since(killed)

	// SIGTERM: the new leader releases the lease on its way out; a fresh manager takes it at once.
	third := startManager(t, "manager-c", kubeconfig, "leases")
	termed := time.Now()
	_ = standby.cmd.Process.Signal(syscall.SIGTERM)
	<-standby.done
	wait.For(t, time.Minute, "the third manager leading", func() error {
		if !third.leader() {
			return errors.New("not leading yet")
		}
		return nil
	})
	handedOver := time.Since(termed)
	reconciled(t, c, create("after-term"), time.Minute)
	t.Logf("FIGURES manager leader failover: after SIGKILL of the leader the standby led %v later and reconciled a resource created meanwhile %v after the kill; after SIGTERM the lease was handed over in %v",
		tookOver.Round(time.Millisecond), reconciledAfterKill.Round(time.Millisecond), handedOver.Round(time.Millisecond))
	for _, m := range []*manager{leader, standby, third} {
		if b, _ := os.ReadFile(m.log); strings.Contains(string(b), "panic") {
			t.Errorf("%s logged a panic", m.name)
		}
	}
}

// TestManagerThousandCyclesWithConflicts creates, updates (once with a stale copy, which the API
// server refuses with a conflict) and deletes RedisTraceExporters 1,000 times over 20 names while
// the manager reconciles: it must not panic or log errors it cannot explain, every child it made
// must be owned by its resource (so the garbage collector, which envtest does not run, removes it
// with the resource), and the last resources must end reconciled.
func TestManagerThousandCyclesWithConflicts(t *testing.T) {
	env, kubeconfig := managerControlPlane(t, "leases", "cycles")
	c := env.Client
	ctx := context.Background()
	m := startManager(t, "manager", kubeconfig, "leases")
	wait.For(t, time.Minute, "the manager leading", func() error {
		if !m.leader() {
			return errors.New("not leading yet")
		}
		return nil
	})
	const cycles, names = 1000, 20
	writesBefore := statusWrites(t, env)
	conflicts, start := 0, time.Now()
	for i := range cycles {
		rte := &v1.RedisTraceExporter{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rte-%02d", i%names), Namespace: "cycles"},
			Spec: v1.RedisTraceExporterSpec{Redis: v1.RedisSpec{Addresses: []string{"127.0.0.1:1"}}}}
		if err := c.Create(ctx, rte); err != nil {
			t.Fatalf("cycle %d: create: %v", i, err)
		}
		stale := rte.DeepCopy()
		rte.Spec.Replicas = ptr.To(int32(2))
		if err := c.Update(ctx, rte); err != nil && !apierrors.IsConflict(err) {
			t.Fatalf("cycle %d: update: %v", i, err)
		}
		stale.Spec.Replicas = ptr.To(int32(3))
		if err := c.Update(ctx, stale); apierrors.IsConflict(err) {
			conflicts++
		} else if err != nil {
			t.Fatalf("cycle %d: stale update: %v", i, err)
		}
		// Every other resource lives on, so the manager also sees updates to live objects.
		if i < cycles-names {
			if err := c.Delete(ctx, rte); err != nil && !apierrors.IsNotFound(err) {
				t.Fatalf("cycle %d: delete: %v", i, err)
			}
			wait.For(t, 30*time.Second, "the resource gone", func() error {
				err := c.Get(ctx, client.ObjectKeyFromObject(rte), &v1.RedisTraceExporter{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("still there (get: %w)", err)
			})
		}
	}
	took := time.Since(start)
	for i := range names {
		reconciled(t, c, client.ObjectKey{Namespace: "cycles", Name: fmt.Sprintf("rte-%02d", i)}, time.Minute)
	}
	// Status is written when it changes, not on every pass: count the writes the cycles caused,
	// and those over a quiet stretch while the 20 survivors keep being reconciled (their Redis
	// is unreachable, so they are requeued).
	cycleWrites := statusWrites(t, env) - writesBefore
	const quiet = 10 * time.Second
	quietBefore := statusWrites(t, env)
	time.Sleep(quiet)
	quietWrites := statusWrites(t, env) - quietBefore
	// Every child the manager made is owned (controller) by a RedisTraceExporter.
	children := 0
	for _, list := range []client.ObjectList{&corev1.ConfigMapList{}, &appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}} {
		if err := c.List(ctx, list, client.InNamespace("cycles")); err != nil {
			t.Fatal(err)
		}
		items, _ := apimeta.ExtractList(list)
		for _, o := range items {
			obj := o.(client.Object)
			if obj.GetName() == "default" || obj.GetName() == "kube-root-ca.crt" {
				continue // the namespace's own
			}
			children++
			owner := metav1.GetControllerOf(obj)
			if owner == nil || owner.Kind != "RedisTraceExporter" {
				t.Errorf("%T %s has no RedisTraceExporter controller: %v", obj, obj.GetName(), obj.GetOwnerReferences())
			}
		}
	}
	b, _ := os.ReadFile(m.log)
	logText := string(b)
	t.Logf("FIGURES manager under %d create/update/delete cycles over %d names (%v, %d stale updates refused with a conflict): %d children left, all owned; %d log lines, %d of them errors; %.0f status writes (%.2f per cycle), %.0f over %v of quiet with %d resources",
		cycles, names, took.Round(time.Millisecond), conflicts, children, strings.Count(logText, "\n"), strings.Count(logText, `"level":"error"`)+strings.Count(logText, "\tERROR\t"),
		cycleWrites, cycleWrites/cycles, quietWrites, quiet, names)
	// A create and an update each change what status reports (observedGeneration, conditions):
	// a few writes per cycle. More would be a write on every pass.
	if cycleWrites > 4*cycles {
		t.Errorf("%.0f status writes for %d cycles: more than 4 per cycle", cycleWrites, cycles)
	}
	if quietWrites > names {
		t.Errorf("%.0f status writes over %v while nothing changed for %d resources: status is rewritten without changing", quietWrites, quiet, names)
	}
	if strings.Contains(logText, "panic") {
		t.Fatalf("the manager logged a panic")
	}
	if conflicts == 0 {
		t.Fatalf("no stale update was refused: the test did not make conflicts")
	}
}
