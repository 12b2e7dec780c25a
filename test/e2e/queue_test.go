//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
// acknowledged from the log meanwhile and that every acknowledged span reaches Redis after.
func TestPersistentQueueAcknowledgesWhileRedisHoldsWrites(t *testing.T) {
	installOperator(t)
	_, ns := cluster(t)
	c := operatorClient(t)
	ctx := context.Background()
	redisAddr := hostRedis(t, bridgeIP)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer func() { _ = rdb.Close() }()
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

	const pause = 8 * time.Second
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	took := send(25) // 500 spans while Redis takes no writes
	during := len(acked)
	if time.Since(paused) >= pause {
		t.Fatalf("500 spans took %v: longer than the pause, so they were not acknowledged from the log", took)
	}
	if n, err := rdb.XLen(ctx, "traces:queued").Result(); err != nil || n >= int64(during) {
		t.Fatalf("the stream holds %d entries (%v) while Redis is paused; want fewer than the %d acknowledged", n, err, during)
	}
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
	t.Logf("persistent queue on the cluster: 500 spans acknowledged in %v while Redis held writes for %v; all %d acknowledged spans in Redis %v after the pause began",
		took.Round(time.Millisecond), pause, len(acked), time.Since(paused).Round(time.Millisecond))
}
