package redistest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

func TestSentinelFailover(t *testing.T) {
	t.Parallel() // mostly waiting on Redis timers, not on the CPU
	cases := map[string][]redistest.Option{
		"plaintext":             nil,
		"mutual TLS and an ACL": {redistest.WithMutualTLS(), redistest.WithACL("")},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := redistest.Sentinel(t, opts...)
			ctx := ctxFor(t)
			if got := len(st.SentinelAddrs()); got != 3 {
				t.Fatalf("len(SentinelAddrs()) = %d, want 3", got)
			}
			servers := st.Servers()
			if got := st.Master(t); got != servers[0] {
				t.Fatalf("Master() = %s, want the server started as master, %s", got, servers[0])
			}
			if got := st.Replicas(t); !slices.Equal(got, servers[1:]) {
				t.Fatalf("Replicas() = %v, want %v", got, servers[1:])
			}
			c := st.Client(t)
			ping(t, ctx, c)
			writeAndCount(t, ctx, c, "spans", 1)
			first, err := c.XRevRangeN(ctx, "spans", "+", "-", 1).Result()
			if err != nil || len(first) != 1 {
				t.Fatalf("XREVRANGE spans: %v, %v", first, err)
			}
			// Replication is asynchronous: without WAIT the entry could be lost in the failover.
			if n, err := servers[0].Client(t).Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
				t.Fatalf("WAIT 1 = %d, %v; want the entry on the replica", n, err)
			}

			start := time.Now()
			promoted := st.Failover(t)
			t.Logf("failover took %s", time.Since(start))
			if promoted != servers[1] {
				t.Fatalf("Failover() promoted %s, want the former replica %s", promoted, servers[1])
			}
			if got := st.Master(t); got != promoted {
				t.Fatalf("Master() after Failover = %s, want %s", got, promoted)
			}
			// The failover client learns of the switch asynchronously, so a write may
			// still reach the old master first; eventually it must land on the new one.
			direct := promoted.Client(t)
			wait.For(t, 30*time.Second, "the failover client writing to "+promoted.String(), func() error {
				id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "spans", Values: []string{"span", "after"}}).Result()
				if err != nil {
					return err
				}
				got, err := direct.XRange(ctx, "spans", id, id).Result()
				if err != nil || len(got) != 1 {
					return fmt.Errorf("entry %s is not on %s: %v, %w", id, promoted, got, err)
				}
				return nil
			})
			if got, err := direct.XRange(ctx, "spans", first[0].ID, first[0].ID).Result(); err != nil || len(got) != 1 {
				t.Fatalf("the entry written before the failover is not on %s: %v, %v", promoted, got, err)
			}
			start = time.Now()
			st.AwaitHealthy(t)
			t.Logf("old master rejoined as a replica after %s", time.Since(start))
			if got := st.Replicas(t); !slices.Equal(got, servers[:1]) {
				t.Fatalf("Replicas() after Failover = %v, want the old master %s", got, servers[0])
			}

			if st.ACL() == nil {
				return
			}
			stale := st.FailoverOptions()
			st.SetPassword(t, redistest.RandomPassword(t))
			stale.MaxRetries = -1
			sc := redis.NewFailoverClient(stale)
			t.Cleanup(func() { _ = sc.Close() })
			if err := sc.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("PING with the old password: %v, want WRONGPASS", err)
			}
			writeAndCount(t, ctx, st.Client(t), "rotated", 1)
		})
	}
}
