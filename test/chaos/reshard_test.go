//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// resharder moves hash slots between the masters of a running cluster with the protocol
// redis-cli --cluster reshard uses, one slot at a time: CLUSTER SETSLOT IMPORTING on the
// destination, MIGRATING on the source, MIGRATE of the slot's keys, then SETSLOT NODE on the
// destination, the source and the other masters.
type resharder struct {
	t       *testing.T
	ctx     context.Context
	masters []*redistest.Server
	admin   map[*redistest.Server]*redis.Client
	ids     map[*redistest.Server]string

	keysMigrated   int
	longestMigrate time.Duration
	largestStream  int64 // entries of the largest stream migrated
}

func newResharder(t *testing.T, masters []*redistest.Server) *resharder {
	t.Helper()
	r := &resharder{t: t, ctx: context.Background(), masters: masters,
		admin: map[*redistest.Server]*redis.Client{}, ids: map[*redistest.Server]string{}}
	for _, m := range masters {
		o := m.Options()
		// One attempt per command, and time for a MIGRATE of a large stream: a resent MIGRATE
		// would find the key gone or already at the destination.
		o.MaxRetries = -1
		o.ReadTimeout = 2 * time.Minute
		o.DisableIdentity = true // Redis 7.0 does not know CLIENT SETINFO
		c := redis.NewClient(o)
		t.Cleanup(func() { _ = c.Close() })
		r.admin[m] = c
		id, ok := r.do(m, "CLUSTER", "MYID").(string)
		if !ok || id == "" {
			t.Fatalf("CLUSTER MYID on %s: %q", m, id)
		}
		r.ids[m] = id
	}
	return r
}

func (r *resharder) do(n *redistest.Server, args ...any) any {
	r.t.Helper()
	v, err := r.admin[n].Do(r.ctx, args...).Result()
	if err != nil {
		r.t.Fatalf("%s: %v: %v", n, args, err)
	}
	return v
}

// errorReplies is the number of error replies n has answered with code, MOVED or ASK
// included (INFO errorstats).
func (r *resharder) errorReplies(n *redistest.Server, code string) int64 {
	r.t.Helper()
	info, err := r.admin[n].Info(r.ctx, "errorstats").Result()
	if err != nil {
		r.t.Fatalf("INFO errorstats on %s: %v", n, err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "errorstat_"+code+":count="); ok {
			c, _ := strconv.ParseInt(v, 10, 64)
			return c
		}
	}
	return 0
}

// move moves slots from src to dst and returns how long it took. A slot whose keys were
// migrated is held half-migrated (keys on dst, slot still src's) until src has answered an
// ASK: the window a client sees while a slot with many keys is being moved.
func (r *resharder) move(slots []int, src, dst *redistest.Server) time.Duration {
	r.t.Helper()
	start := time.Now()
	host, port, err := net.SplitHostPort(dst.Addr())
	if err != nil {
		r.t.Fatal(err)
	}
	others := slices.DeleteFunc(slices.Clone(r.masters), func(m *redistest.Server) bool { return m == src || m == dst })
	for _, slot := range slots {
		r.do(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", r.ids[src])
		r.do(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", r.ids[dst])
		asks := r.errorReplies(src, "ASK")
		moved := 0
		for {
			keys, err := r.admin[src].ClusterGetKeysInSlot(r.ctx, slot, 10).Result()
			if err != nil {
				r.t.Fatalf("CLUSTER GETKEYSINSLOT %d on %s: %v", slot, src, err)
			}
			if len(keys) == 0 {
				break
			}
			for _, k := range keys {
				// The key is still on src, which serves it while MIGRATING.
				if n, err := r.admin[src].XLen(r.ctx, k).Result(); err == nil {
					r.largestStream = max(r.largestStream, n)
				}
			}
			args := []any{"MIGRATE", host, port, "", 0, 60000, "KEYS"}
			for _, k := range keys {
				args = append(args, k)
			}
			began := time.Now()
			r.do(src, args...)
			r.longestMigrate = max(r.longestMigrate, time.Since(began))
			moved += len(keys)
		}
		r.keysMigrated += moved
		if moved > 0 {
			wait.For(r.t, time.Minute, fmt.Sprintf("%s answering ASK for slot %d, half-migrated to %s", src, slot, dst), func() error {
				if n := r.errorReplies(src, "ASK"); n == asks {
					return fmt.Errorf("errorstat_ASK still %d", n)
				}
				return nil
			})
		}
		// The destination first, so that the source's MOVED never points at a node that
		// does not know it owns the slot yet.
		for _, n := range append([]*redistest.Server{dst, src}, others...) {
			r.do(n, "CLUSTER", "SETSLOT", slot, "NODE", r.ids[dst])
		}
	}
	return time.Since(start)
}

// servicesInSlots returns n service names whose streams (traces:<name>) hash into [first,
// last], each at least margin slots from the range's ends and more than 2*margin from each
// other (so that the windows of margin slots around them do not overlap), and their slots.
func servicesInSlots(t *testing.T, c *redis.ClusterClient, n, first, last, margin int) ([]string, []int) {
	t.Helper()
	var (
		svcs  []string
		slots []int
	)
	for i := 0; len(svcs) < n && i < 10000; i++ {
		svc := fmt.Sprintf("reshard-%d", i)
		s, err := c.ClusterKeySlot(context.Background(), "traces:"+svc).Result()
		if err != nil {
			t.Fatal(err)
		}
		slot := int(s)
		if slot < first+margin || slot > last-margin ||
			slices.ContainsFunc(slots, func(o int) bool { return o-slot < 2*margin+1 && slot-o < 2*margin+1 }) {
			continue
		}
		svcs, slots = append(svcs, svc), append(slots, slot)
	}
	if len(svcs) < n {
		t.Fatalf("found %d of %d services hashing into slots %d-%d", len(svcs), n, first, last)
	}
	return svcs, slots
}

// redisErrors reads the exporter's tracestream_exporter_redis_errors_total by class.
func (e *exporter) redisErrors(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := scrape(e.admin)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for series, v := range m {
		if class, ok := strings.CutPrefix(series, `tracestream_exporter_redis_errors_total{class="`); ok {
			out[strings.TrimSuffix(class, `"}`)] = v
		}
	}
	return out
}

// TestClusterReshardingUnderLoadLosesNoAcknowledgedSpan moves the slots of three streams, each
// with a range of empty slots around it, between the masters five times while spans flow to
// all three: the clients see ASK while a slot is half-migrated and MOVED once it has moved.
func TestClusterReshardingUnderLoadLosesNoAcknowledgedSpan(t *testing.T) {
	cl := redistest.Cluster(t)
	e := startExporter(t, strings.Join(cl.Addrs(), ","), "--redis.mode=cluster")
	cc := cl.Client(t)
	shard := cl.Shards()[0]
	// Every stream's slot moves with the slots within window of it: a range, as a
	// resharding moves them, not only the slots that hold keys.
	const window = 16
	svcs, keySlots := servicesInSlots(t, cc, 3, shard.FirstSlot, shard.LastSlot, window)
	var slots []int
	for _, s := range keySlots {
		for i := s - window; i <= s+window; i++ {
			slots = append(slots, i)
		}
	}
	slices.Sort(slots)
	streams := make([]string, len(svcs))
	senders := make([]*spanload.Sender, len(svcs))
	for i, svc := range svcs {
		streams[i] = "traces:" + svc
		senders[i] = spanload.Send(t, e.grpc, svc, 2, 50, 10*time.Millisecond)
	}
	flowing := func(n int, what string) {
		t.Helper()
		for i, s := range senders {
			waitAcked(t, s, n, fmt.Sprintf("%s (%s)", what, streams[i]))
		}
	}
	flowing(500, "spans flowing before the first move")

	m := cl.Masters()
	r := newResharder(t, m)
	path := []*redistest.Server{m[0], m[1], m[0], m[2], m[1], m[0]}
	var took []time.Duration
	for i := range len(path) - 1 {
		took = append(took, r.move(slots, path[i], path[i+1]))
		cl.AwaitHealthy(t)
		// Asked directly, a master that does not serve the key's slot answers MOVED.
		for j, st := range streams {
			if n, err := r.admin[path[i+1]].Exists(context.Background(), st).Result(); err != nil || n != 1 {
				t.Fatalf("after move %d, EXISTS %s (slot %d) on %s = %d, %v; want the stream there", i+1, st, keySlots[j], path[i+1], n, err)
			}
		}
		flowing(2000, fmt.Sprintf("spans flowing after move %d", i+1))
	}
	flowing(2000, "spans flowing after the last move")

	errs := e.redisErrors(t)
	var asks, moveds int64
	for _, n := range m {
		asks += r.errorReplies(n, "ASK")
		moveds += r.errorReplies(n, "MOVED")
	}
	var o spanload.Outcome
	for i, s := range senders {
		o.Add(s.Check(t, cc, streams[i]))
	}
	var byClass []string
	for _, class := range slices.Sorted(maps.Keys(errs)) {
		byClass = append(byClass, fmt.Sprintf("%s=%.0f", class, errs[class]))
	}
	t.Logf("FIGURES Redis Cluster resharding under load: %d moves of %d slots (3 holding a stream each) between 3 masters, %d keys migrated (streams of up to %d entries, longest MIGRATE %v), each move %v-%v including holding each stream's slot half-migrated until its source answered ASK; the masters answered %d ASK and %d MOVED; exporter redis_errors_total %s; %s",
		len(took), len(slots), r.keysMigrated, r.largestStream, r.longestMigrate.Round(time.Millisecond),
		slices.Min(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond), asks, moveds,
		strings.Join(byClass, " "), o)
	if o.Lost != 0 || len(o.Failed) != 0 {
		t.Fatalf("%d acknowledged spans lost, failures after retries %v", o.Lost, o.Failed)
	}
	if asks == 0 || moveds == 0 {
		t.Errorf("the masters answered %d ASK and %d MOVED: the case did not make the exporter follow both", asks, moveds)
	}
}
