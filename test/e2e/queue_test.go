//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/tracestream/tracestream/api/v1alpha1"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestPersistentQueueAcknowledgesWhileRedisHoldsWrites runs an exporter with
// spec.delivery.persistentQueue (an emptyDir, in a namespace that enforces the restricted Pod
// Security Standard), holds Redis's writes with CLIENT PAUSE, and checks that clients are
// acknowledged from the log meanwhile (more spans acknowledged than the stream holds) and that
// every acknowledged span reaches Redis after.
func TestPersistentQueueAcknowledgesWhileRedisHoldsWrites(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr, rdb := hostRedis(t, bridgeIP)
	size := resource.MustParse("128Mi")
	rte := &v1.RedisTraceExporter{
		ObjectMeta: metav1.ObjectMeta{Name: "queued", Namespace: ns},
		Spec: v1.RedisTraceExporterSpec{
			Redis:    v1.RedisSpec{Addresses: []string{redisAddr}},
			Delivery: v1.DeliverySpec{PersistentQueue: &v1.PersistentQueueSpec{Size: &size}},
		},
	}
	if err := c.Create(ctx, rte); err != nil {
		t.Fatal(err)
	}
	h := rteHandle{t, c, client.ObjectKeyFromObject(rte)}
	h.ready(3 * time.Minute)
	h.rolledOut(time.Minute)
	sc := spanload.Client(t, serviceIP(t, c, h.key)+":4317")
	var acked []string
	send := func(n int) time.Duration {
		start := time.Now()
		for range n {
			rs, ids := spanload.Spans("queued", 20)
			if err := sc.UploadTraces(ctx, rs); err != nil {
				t.Fatalf("export: %v", err)
			}
			acked = append(acked, ids...)
		}
		return time.Since(start)
	}
	send(10)

	// Held until UNPAUSE below; the 10-minute timeout only frees Redis if the test dies.
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", (10 * time.Minute).Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	took := send(25) // 500 spans while Redis takes no writes
	// More spans acknowledged than Redis holds while it takes no writes: the rest were
	// acknowledged from the log.
	n, err := rdb.XLen(ctx, "traces:queued").Result()
	if err != nil || n >= int64(len(acked)) {
		t.Fatalf("the stream holds %d entries (%v) while Redis holds writes; want fewer than the %d acknowledged", n, err, len(acked))
	}
	if err := rdb.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	held := time.Since(paused)
	wait.For(t, time.Minute, "every acknowledged span in Redis", func() error {
		ids, _ := streamSpanIDs(t, rdb, "traces:queued")
		missing := 0
		for _, id := range acked {
			if ids[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged spans not in Redis yet", missing, len(acked))
		}
		return nil
	})
	t.Logf("persistent queue on the cluster: 500 spans acknowledged in %v while Redis held writes (%v, %d entries in the stream then); all %d acknowledged spans in Redis %v after the pause ended",
		took.Round(time.Millisecond), held.Round(time.Millisecond), n, len(acked), (time.Since(paused) - held).Round(time.Millisecond))
}
