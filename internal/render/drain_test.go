package render_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/render"
)

// TestDrainJobMatchesGoldenFile: the drain of replica 2's claim of the Persistent case, with the
// TLS case's Secrets and pod settings, is the contract of persistent-queue-drain.golden.yaml.
func TestDrainJobMatchesGoldenFile(t *testing.T) {
	r := cases["persistent-queue-statefulset"].rte.DeepCopy()
	secure := cases["tls-auth-receivers"]
	r.Spec.Redis, r.Spec.Receivers = secure.rte.Spec.Redis, secure.rte.Spec.Receivers
	r.Spec.PodLabels, r.Spec.Tolerations, r.Spec.ServiceAccountName = secure.rte.Spec.PodLabels, secure.rte.Spec.Tolerations, "shared-sa"
	claim := render.QueueClaim{Name: "queue-durable-2", UID: "claim-uid", Ordinal: 2, Size: resource.MustParse("8Gi")}
	job := render.DrainJob(r, secure.in, claim)
	cm, err := render.DrainConfigMap(r, secure.in, claim, "job-uid")
	if err != nil {
		t.Fatal(err)
	}
	matchGolden(t, "persistent-queue-drain", []any{job, cm})
}

// TestDrainPodIsNotAnExporterPod: the drain pod's labels match no selector of the exporter's
// (Service, PodDisruptionBudget, StatefulSet), and its config has the claim as its queue even
// when the spec no longer asks for one.
func TestDrainPodIsNotAnExporterPod(t *testing.T) {
	r := cases["standalone"].rte
	claim := render.QueueClaim{Name: "queue-minimal-0", UID: "u", Size: resource.MustParse("1Gi")}
	job := render.DrainJob(r, cases["standalone"].in, claim)
	labels := job.Spec.Template.Labels
	matches := true
	for k, v := range render.SelectorLabels(r) {
		matches = matches && labels[k] == v
	}
	if matches {
		t.Errorf("drain pod labels %v match the exporter selector %v", labels, render.SelectorLabels(r))
	}
	if *job.Spec.Template.Spec.ServiceAccountName != "default" || *job.OwnerReferences[0].Kind != "PersistentVolumeClaim" {
		t.Errorf("service account %s, owner %s; want default, the claim", *job.Spec.Template.Spec.ServiceAccountName, *job.OwnerReferences[0].Kind)
	}
	cm, err := render.DrainConfigMap(r, cases["standalone"].in, claim, "j")
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	if err := yaml.Unmarshal([]byte(cm.Data[render.ConfigFile]), &c); err != nil {
		t.Fatal(err)
	}
	if q := c.Delivery.PersistentQueue; q.Directory != "/var/lib/tracestream/queue" || q.MaxBytes != (1<<30)/16*15 {
		t.Errorf("drain queue %+v, want the claim's log", q)
	}
}

// TestQueueClaimOrdinal parses only this resource's claims.
func TestQueueClaimOrdinal(t *testing.T) {
	r := rte("a", cases["standalone"].rte.Spec)
	for name, want := range map[string]int{"queue-a-0": 0, "queue-a-12": 12, "queue-a-b-0": -1, "queue-a-01": -1, "queue-ab-1": -1, "other-a-1": -1} {
		got, ok := render.QueueClaimOrdinal(r, name)
		if (want >= 0) != ok || (ok && got != want) {
			t.Errorf("QueueClaimOrdinal(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}
