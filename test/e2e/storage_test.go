//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// The local cluster's storage, as hack/cluster-up.sh sets it up (docs/design/local-cluster.md).
const (
	defaultStorageClass = "local-path"
	localPathNamespace  = "local-path-storage"
)

// TestDefaultStorageClassProvisions checks the local cluster's storage: a claim that names no
// StorageClass gets the default one; once a pod uses it, the local-path-provisioner binds it to a
// PersistentVolume of its own; a non-root pod under the restricted Pod Security Standard can write
// there (the exporter's persistent queue, opened by `exporter --drain`, which exits once the empty
// log is drained); and deleting the pod and the claim deletes the volume and its directory on the
// node. The test runs on the node's host, as the others do, so it looks at the directory itself.
func TestDefaultStorageClassProvisions(t *testing.T) {
	image := os.Getenv("E2E_IMAGE")
	if image == "" {
		t.Fatal("E2E_IMAGE is not set: run the e2e tests with make test-e2e")
	}
	c, ns := cluster(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("storage when the test failed:\n%s", diagnoseStorage(ns))
		}
	})

	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "queue", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")},
			},
		},
	}
	if err := c.Create(ctx, pvc); err != nil {
		t.Fatalf("creating PersistentVolumeClaim: %v", err)
	}
	if got := ptr.Deref(pvc.Spec.StorageClassName, ""); got != defaultStorageClass {
		t.Fatalf("a claim without storageClassName got StorageClass %q, want the default %q", got, defaultStorageClass)
	}

	const uid = 65532
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](uid),
				RunAsGroup:     ptr.To[int64](uid),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "exporter",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				// Nothing listens on port 1: the drain finds the log empty and needs no Redis.
				Command: []string{"/exporter", "--drain", "--redis.addresses=127.0.0.1:1",
					"--delivery.persistentQueue.directory=/queue/log"},
				VolumeMounts: []corev1.VolumeMount{{Name: "queue", MountPath: "/queue"}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
			Volumes: []corev1.Volume{{Name: "queue", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name},
			}}},
		},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("creating Pod: %v", err)
	}

	// Provisioning runs a helper pod on the node first; the deadline is generous for a busy machine.
	var done corev1.Pod
	wait.For(t, 3*time.Minute, "the writer pod to finish", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), &done); err != nil {
			return err
		}
		switch done.Status.Phase {
		case corev1.PodSucceeded:
			return nil
		case corev1.PodFailed:
			return wait.Stop(fmt.Errorf("pod failed: %s", terminated(done)))
		}
		var claim corev1.PersistentVolumeClaim
		if err := c.Get(ctx, client.ObjectKeyFromObject(pvc), &claim); err != nil {
			return err
		}
		return fmt.Errorf("pod %s, claim %s", podSummary(ctx, c, ns), claim.Status.Phase)
	})
	var result struct {
		Records    *int   `json:"records"`
		ProducerID string `json:"producerId"`
	}
	if len(done.Status.ContainerStatuses) != 1 || done.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("pod succeeded without a terminated container: %+v", done.Status.ContainerStatuses)
	}
	msg := done.Status.ContainerStatuses[0].State.Terminated.Message
	if err := json.Unmarshal([]byte(msg), &result); err != nil || result.Records == nil || *result.Records != 0 || result.ProducerID == "" {
		t.Fatalf("the drain's termination message %q (%v): want 0 records and a producer id", msg, err)
	}

	if err := c.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
		t.Fatal(err)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		t.Fatalf("claim is %s (volume %q) after its pod ran, want Bound", pvc.Status.Phase, pvc.Spec.VolumeName)
	}
	var pv corev1.PersistentVolume
	if err := c.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		t.Fatalf("getting the claim's PersistentVolume: %v", err)
	}
	if got := pv.Annotations["pv.kubernetes.io/provisioned-by"]; got != "rancher.io/local-path" {
		t.Errorf("volume %s provisioned by %q, want rancher.io/local-path", pv.Name, got)
	}
	if pv.Spec.StorageClassName != defaultStorageClass || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("volume %s: class %q, reclaim policy %s; want %q, Delete", pv.Name, pv.Spec.StorageClassName, pv.Spec.PersistentVolumeReclaimPolicy, defaultStorageClass)
	}
	if pv.Spec.HostPath == nil || !filepath.IsAbs(pv.Spec.HostPath.Path) {
		t.Fatalf("volume %s is not a hostPath volume: %+v", pv.Name, pv.Spec.PersistentVolumeSource)
	}

	// On the node: the pod's user wrote the queue's producer file into the volume's directory.
	dir := pv.Spec.HostPath.Path
	producer := filepath.Join(dir, "log", "producer")
	b, err := os.ReadFile(producer)
	if err != nil {
		t.Fatalf("reading what the pod wrote on the node: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != result.ProducerID {
		t.Errorf("%s holds %q, want the producer id the pod reported, %q", producer, got, result.ProducerID)
	}
	if fi, err := os.Stat(producer); err != nil {
		t.Error(err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != uid {
		t.Errorf("%s is owned by %+v, want uid %d", producer, fi.Sys(), uid)
	}

	// Deleting the pod and the claim deletes the volume (reclaim policy Delete) and its directory.
	for _, obj := range []client.Object{pod, pvc} {
		if err := c.Delete(ctx, obj); err != nil {
			t.Fatalf("deleting %s: %v", obj.GetName(), err)
		}
	}
	wait.For(t, 3*time.Minute, "volume "+pv.Name+" deleted", func() error {
		var left corev1.PersistentVolume
		err := c.Get(ctx, client.ObjectKeyFromObject(&pv), &left)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("volume is %s", left.Status.Phase)
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the volume was deleted, its directory %s: %v, want it gone", dir, err)
	}
}

// terminated describes how p's containers ended, for failure messages.
func terminated(p corev1.Pod) string {
	var parts []string
	for _, cs := range p.Status.ContainerStatuses {
		if s := cs.State.Terminated; s != nil {
			parts = append(parts, fmt.Sprintf("%s exited %d (%s): %s", cs.Name, s.ExitCode, s.Reason, s.Message))
		}
	}
	return strings.Join(parts, "; ")
}

// diagnoseStorage collects what a human looks at first when provisioning fails: the claims and
// volumes, the events of the provisioner's helper pods, the test pod's log and the provisioner's
// own log (in the cluster dir, beside the kubeconfig make test-e2e passes).
func diagnoseStorage(ns string) string {
	kubectl := os.Getenv("E2E_KUBECTL")
	if kubectl == "" {
		return "(E2E_KUBECTL not set)"
	}
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "pvc,pods", "-n", ns, "-o", "wide"},
		{"get", "pv,storageclass", "-o", "wide"},
		{"get", "events", "-n", localPathNamespace, "--sort-by=.lastTimestamp"},
		{"logs", "-n", ns, "writer", "--tail=20"},
	} {
		out, _ := exec.Command(kubectl, args...).CombinedOutput()
		fmt.Fprintf(&b, "$ kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	log := filepath.Join(filepath.Dir(os.Getenv("KUBECONFIG")), "logs", "local-path-provisioner.log")
	out, _ := exec.Command("tail", "-n", "30", log).CombinedOutput()
	fmt.Fprintf(&b, "$ tail -n 30 %s\n%s\n", log, out)
	return b.String()
}
