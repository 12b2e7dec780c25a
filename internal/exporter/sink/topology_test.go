package sink

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// keyIn returns a key whose hash slot the shard serves, as the cluster computes it.
func keyIn(t *testing.T, c *redis.ClusterClient, sh redistest.Shard, prefix string) string {
	t.Helper()
	for i := range 1000 {
		key := fmt.Sprintf("%s-%d", prefix, i)
		slot, err := c.ClusterKeySlot(ctxFor(t), key).Result()
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

// moveSlot reassigns key's (empty) slot from src to dst the way redis-cli --cluster reshard
// does, without touching the client under test.
func moveSlot(t *testing.T, admin *redis.ClusterClient, key string, src, dst *redistest.Server) {
	t.Helper()
	ctx := ctxFor(t)
	slot, err := admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	srcC, dstC := src.Client(t), dst.Client(t)
	srcID, err := srcC.Do(ctx, "cluster", "myid").Text()
	if err != nil {
		t.Fatal(err)
	}
	dstID, err := dstC.Do(ctx, "cluster", "myid").Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		c    *redis.Client
		args []any
	}{
		{dstC, []any{"cluster", "setslot", slot, "importing", srcID}},
		{srcC, []any{"cluster", "setslot", slot, "migrating", dstID}},
		{dstC, []any{"cluster", "setslot", slot, "node", dstID}},
		{srcC, []any{"cluster", "setslot", slot, "node", dstID}},
	} {
		if err := step.c.Do(ctx, step.args...).Err(); err != nil {
			t.Fatalf("%v: %v", step.args, err)
		}
	}
}

func TestClusterWritesLandOnEveryMasterAndSurviveAMovedSlotAndAKilledMaster(t *testing.T) {
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
			s := newSink(t, redisConfig(config.ModeCluster, cl.Addrs(), cl.TLS(), cl.ACL()), config.Stream{TTL: config.Duration{Duration: time.Hour}})
			info, err := s.Probe(ctx)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if len(info.Masters) != 3 || info.Idempotent {
				t.Fatalf("Probe = %+v, want 3 masters and no IDMP", info)
			}
			admin := cl.Client(t)
			shards := cl.Shards()
			keys := make([]string, len(shards))
			for i, sh := range shards {
				keys[i] = keyIn(t, admin, sh, "spans:svc")
			}
			before := time.Now().UnixNano()
			ss := spans(300, keys...)
			mustWrite(t, ctx, s, ss)
			if p := s.LastProgress(); p < before {
				t.Fatalf("LastProgress %d after a write through go-redis's cluster routing, want at least %d: the stall detector would see no bytes moving", p, before)
			}
			for i, sh := range shards {
				m := sh.Master.Client(t)
				if n := xlen(t, ctx, m, keys[i]); n != 100 {
					t.Fatalf("XLEN %s on %s = %d, want 100", keys[i], sh.Master, n)
				}
				if ttl, err := m.TTL(ctx, keys[i]).Result(); err != nil || ttl <= 0 {
					t.Fatalf("TTL %s on %s = %s, %v; want the EXPIRE routed with the stream", keys[i], sh.Master, ttl, err)
				}
			}
			checkLanded(t, ctx, admin, ss)

			// Move an empty slot of shard 0 to shard 1 behind the sink's back: its first
			// write there must surface MOVED (not follow it) and the retry must land once.
			movedKey := keyIn(t, admin, redistest.Shard{FirstSlot: shards[0].FirstSlot, LastSlot: shards[0].LastSlot}, "spans:moved")
			moveSlot(t, admin, movedKey, shards[0].Master, shards[1].Master)
			moved := spansFrom(500, 20, movedKey)
			for i, err := range write(t, ctx, s, moved) {
				if c := redisconn.Classify(err); c != redisconn.ClassMoved {
					t.Fatalf("entry %d to the moved slot: %v (class %s), want moved", i, err, c)
				}
			}
			writeUntilLanded(t, ctx, s, 30*time.Second, "writing to the moved slot", moved)
			if n := xlen(t, ctx, shards[1].Master.Client(t), movedKey); n != int64(len(moved)) {
				t.Fatalf("XLEN %s on %s = %d, want %d: each entry once", movedKey, shards[1].Master, n, len(moved))
			}

			killed := shards[0].Master
			killed.Kill()
			start := time.Now()
			after := spansFrom(1000, 30, keys...)
			seen := writeUntilLanded(t, ctx, s, 90*time.Second, "writing to every slot after killing "+killed.String(), after)
			t.Logf("writes to all slots resumed %s after the kill; errors on the way: %v", time.Since(start).Round(100*time.Millisecond), seen)
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after the failover: %v", err)
			}
			cl.AwaitHealthy(t)
			for i, m := range cl.CurrentMasters(t) {
				var mine []span
				for _, sp := range after {
					if sp.key == keys[i] {
						mine = append(mine, sp)
					}
				}
				checkLanded(t, ctx, m.Client(t), mine)
			}
		})
	}
}

func TestSentinelWritesLandAndResumeAfterAFailover(t *testing.T) {
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
			cfg := redisConfig(config.ModeSentinel, st.SentinelAddrs(), st.TLS(), st.ACL())
			cfg.Sentinel.MasterName = st.MasterName()
			s := newSink(t, cfg, config.Stream{})
			info, err := s.Probe(ctx)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if len(info.Masters) != 1 || info.Masters[0].Version != "7.0.15" || info.Idempotent {
				t.Fatalf("Probe = %+v, want one master at 7.0.15 and no IDMP", info)
			}
			ss := spans(100, "spans:a", "spans:b")
			mustWrite(t, ctx, s, ss)
			checkLanded(t, ctx, st.Master(t).Client(t), ss)

			start := time.Now()
			promoted := st.Failover(t)
			after := spansFrom(1000, 30, "spans:a", "spans:b")
			seen := writeUntilLanded(t, ctx, s, 60*time.Second, "writing after the failover to "+promoted.String(), after)
			t.Logf("writes resumed %s after SENTINEL FAILOVER; errors on the way: %v", time.Since(start).Round(100*time.Millisecond), seen)
			checkLanded(t, ctx, promoted.Client(t), after)
		})
	}
}
