package redistest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// keyIn returns a key whose hash slot the shard serves, as the cluster computes it.
func keyIn(t *testing.T, ctx context.Context, c *redis.ClusterClient, sh redistest.Shard) string {
	t.Helper()
	for i := range 1000 {
		key := fmt.Sprintf("spans:%d", i)
		slot, err := c.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
		}
		if int(slot) >= sh.FirstSlot && int(slot) <= sh.LastSlot {
			return key
		}
	}
	t.Fatalf("no key among 1000 hashes to slots %d-%d", sh.FirstSlot, sh.LastSlot)
	return ""
}

func TestClusterServesStreamsOnEveryMaster(t *testing.T) {
	t.Parallel() // mostly waiting on Redis timers, not on the CPU
	cases := map[string][]redistest.Option{
		"plaintext":             nil,
		"mutual TLS and an ACL": {redistest.WithMutualTLS(), redistest.WithACL("")},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cl := redistest.Cluster(t, opts...)
			ctx := ctxFor(t)
			if got := len(cl.Addrs()); got != 6 {
				t.Fatalf("len(Addrs()) = %d, want 3 masters and 3 replicas", got)
			}
			if got, want := cl.CurrentMasters(t), cl.Masters(); !slices.Equal(got, want) {
				t.Fatalf("CurrentMasters() = %v, want the masters started: %v", got, want)
			}
			c := cl.Client(t)
			ping(t, ctx, c)
			shards := cl.Shards()
			keys := make([]string, len(shards))
			for i, sh := range shards {
				keys[i] = keyIn(t, ctx, c, sh)
				writeAndCount(t, ctx, c, keys[i], 1)
			}
			for i, sh := range shards {
				m := sh.Master.Client(t)
				if n, err := m.XLen(ctx, keys[i]).Result(); err != nil || n != 1 {
					t.Fatalf("XLEN %s on %s = %d, %v; want 1", keys[i], sh.Master, n, err)
				}
				if n, err := m.DBSize(ctx).Result(); err != nil || n != 1 {
					t.Fatalf("DBSIZE on %s = %d, %v; want only its own stream", sh.Master, n, err)
				}
			}

			if cl.ACL() == nil {
				return
			}
			stale := cl.ClusterOptions()
			cl.SetPassword(t, redistest.RandomPassword(t))
			stale.MaxRetries = -1
			sc := redis.NewClusterClient(stale)
			t.Cleanup(func() { _ = sc.Close() })
			if err := sc.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("PING with the old password: %v, want WRONGPASS", err)
			}
			writeAndCount(t, ctx, cl.Client(t), keys[0], 2)
		})
	}
}

func TestClusterFailsOverWhenAMasterIsKilled(t *testing.T) {
	t.Parallel() // mostly waiting on Redis timers, not on the CPU
	cl := redistest.Cluster(t)
	ctx := ctxFor(t)
	sh := cl.Shards()[0]
	opts := cl.ClusterOptions()
	// go-redis would otherwise keep the dead master's slots for 60 s.
	opts.ClusterStateReloadInterval = time.Second
	c := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	key := keyIn(t, ctx, c, sh)
	writeAndCount(t, ctx, c, key, 1)
	if n, err := sh.Master.Client(t).Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on %s = %d, %v; want the entry on the replica before the kill", sh.Master, n, err)
	}

	start := time.Now()
	sh.Master.Kill()
	cl.AwaitHealthy(t)
	t.Logf("failover took %s", time.Since(start))
	if got := cl.CurrentMasters(t); !slices.Contains(got, sh.Replicas[0]) || slices.Contains(got, sh.Master) {
		t.Fatalf("CurrentMasters() after killing %s = %v, want %s promoted", sh.Master, got, sh.Replicas[0])
	}
	wait.For(t, 30*time.Second, "writing to the promoted replica", func() error {
		return c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"span", key}}).Err()
	})
	if n, err := sh.Replicas[0].Client(t).XLen(ctx, key).Result(); err != nil || n < 2 {
		t.Fatalf("XLEN %s on the promoted %s = %d, %v; want the replicated and the new entry", key, sh.Replicas[0], n, err)
	}

	sh.Master.Start()
	cl.AwaitHealthy(t)
	info, err := sh.Master.Client(t).Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "role:slave") {
		t.Fatalf("INFO replication on the restarted %s: %v\n%s\nwant it back as a replica", sh.Master, err, info)
	}
}
