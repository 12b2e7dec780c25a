package redislag

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestCollectStandalone runs every case against the same server, emptied before each.
// The entry IDs are explicit (1-0, 2-0, ...) so that the expected IDs can be written down.
func TestCollectStandalone(t *testing.T) {
	cases := map[string]struct {
		setup [][]any
		query Query
		want  Report
	}{
		"a group that read 3 of 10 entries has lag 7, 3 pending and one consumer": {
			setup: concat(entries("traces:a", 10), readBy("traces:a", "g", 3)),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
				}}},
				TotalLag: 7, MaxLag: 7,
			},
		},
		"a group created at an ID in the middle of the stream has an unknown lag": {
			setup: concat(entries("traces:a", 10), cmds([]any{"XGROUP", "CREATE", "traces:a", "g", "5-0"})),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", LastDeliveredID: "5-0"},
				}}},
				UnknownLagGroups: 1,
			},
		},
		"a group created in the middle still has an unknown lag after reading some entries": {
			setup: concat(entries("traces:a", 10), cmds(
				[]any{"XGROUP", "CREATE", "traces:a", "g", "5-0"},
				[]any{"XREADGROUP", "GROUP", "g", "c", "COUNT", 2, "STREAMS", "traces:a", ">"},
			)),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", Pending: 2, Consumers: 1, LastDeliveredID: "7-0"},
				}}},
				UnknownLagGroups: 1,
			},
		},
		"a group moved with XGROUP SETID has an unknown lag": {
			setup: concat(entries("traces:a", 10), readBy("traces:a", "g", 3), cmds(
				[]any{"XGROUP", "SETID", "traces:a", "g", "6-0"},
			)),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", Pending: 3, Consumers: 1, LastDeliveredID: "6-0"},
				}}},
				UnknownLagGroups: 1,
			},
		},
		"deleting an entry after a group's last-delivered ID makes its lag unknown": {
			setup: concat(entries("traces:a", 10), readBy("traces:a", "g", 3), cmds(
				[]any{"XDEL", "traces:a", "6-0"},
			)),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 9, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
				}}},
				UnknownLagGroups: 1,
			},
		},
		// Measured on Redis 7.0.15: trimming never makes the lag NULL. It keeps counting
		// the entries the group never read, including the trimmed ones, so Lag > Length.
		"trimming every entry past a group's last-delivered ID keeps a known lag that counts the trimmed entries": {
			setup: concat(entries("traces:a", 10), readBy("traces:a", "g", 3), cmds(
				[]any{"XTRIM", "traces:a", "MAXLEN", 0},
			)),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 0, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
				}}},
				TotalLag: 7, MaxLag: 7,
			},
		},
		"trimming past a deleted entry makes an unknown lag known again": {
			setup: concat(entries("traces:a", 10), readBy("traces:a", "g", 3), cmds(
				[]any{"XDEL", "traces:a", "6-0"},
				[]any{"XTRIM", "traces:a", "MAXLEN", 2},
			)),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 2, LastEntryID: "10-0", Groups: []Group{
					{Name: "g", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
				}}},
				TotalLag: 7, MaxLag: 7,
			},
		},
		"a group created at $ on an empty stream has lag 0 but an unknown entries-read": {
			setup: cmds([]any{"XGROUP", "CREATE", "traces:a", "g", "$", "MKSTREAM"}),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 0, LastEntryID: "0-0", Groups: []Group{
					{Name: "g", Lag: ptr(0), LastDeliveredID: "0-0"},
				}}},
			},
		},
		"a stream without groups is reported with its length": {
			setup: entries("traces:a", 4),
			query: Query{Pattern: "traces:*"},
			want:  Report{Streams: []Stream{{Name: "traces:a", Length: 4, LastEntryID: "4-0"}}},
		},
		"totals sum the known lags, take the largest and count the unknown ones": {
			setup: concat(
				entries("traces:a", 10), readBy("traces:a", "slow", 3), readBy("traces:a", "fast", 8),
				entries("traces:b", 5), readBy("traces:b", "slow", 5),
				cmds([]any{"XGROUP", "CREATE", "traces:b", "lost", "2-0"}),
			),
			query: Query{Pattern: "traces:*"},
			want: Report{
				Streams: []Stream{
					{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
						{Name: "fast", Lag: ptr(2), Pending: 8, Consumers: 1, LastDeliveredID: "8-0", EntriesRead: ptr(8)},
						{Name: "slow", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
					}},
					{Name: "traces:b", Length: 5, LastEntryID: "5-0", Groups: []Group{
						{Name: "lost", LastDeliveredID: "2-0"},
						{Name: "slow", Lag: ptr(0), Pending: 5, Consumers: 1, LastDeliveredID: "5-0", EntriesRead: ptr(5)},
					}},
				},
				TotalLag: 9, MaxLag: 7, UnknownLagGroups: 1,
			},
		},
		"a group filter keeps only the named groups, and the totals count only those": {
			setup: concat(
				entries("traces:a", 10), readBy("traces:a", "slow", 3), readBy("traces:a", "fast", 8),
				cmds([]any{"XGROUP", "CREATE", "traces:a", "lost", "2-0"}),
			),
			query: Query{Pattern: "traces:*", Groups: []string{"fast", "absent"}},
			want: Report{
				Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
					{Name: "fast", Lag: ptr(2), Pending: 8, Consumers: 1, LastDeliveredID: "8-0", EntriesRead: ptr(8)},
				}}},
				TotalLag: 2, MaxLag: 2,
			},
		},
		"keys of other types and streams outside the pattern are left out": {
			setup: concat(entries("traces:a", 1), entries("other:b", 1), cmds(
				[]any{"SET", "traces:string", "x"},
				[]any{"HSET", "traces:hash", "f", "v"},
				[]any{"LPUSH", "traces:list", "x"},
				[]any{"ZADD", "traces:zset", 1, "x"},
			)),
			query: Query{Pattern: "traces:*"},
			want:  Report{Streams: []Stream{{Name: "traces:a", Length: 1, LastEntryID: "1-0"}}},
		},
		"MaxStreams keeps the first streams by name and reports the truncation": {
			setup: concat(entries("traces:e", 1), entries("traces:c", 1), entries("traces:a", 1),
				entries("traces:d", 1), entries("traces:b", 1)),
			query: Query{Pattern: "traces:*", MaxStreams: 3},
			want: Report{
				Streams: []Stream{
					{Name: "traces:a", Length: 1, LastEntryID: "1-0"},
					{Name: "traces:b", Length: 1, LastEntryID: "1-0"},
					{Name: "traces:c", Length: 1, LastEntryID: "1-0"},
				},
				Truncated: true,
			},
		},
		"keys of other types under the pattern take no place under MaxStreams": {
			setup: concat(entries("traces:a", 1), entries("traces:b", 1), cmds(
				[]any{"SET", "traces:0", "x"},
				[]any{"SET", "traces:1", "x"},
			)),
			query: Query{Pattern: "traces:*", MaxStreams: 2},
			want: Report{Streams: []Stream{
				{Name: "traces:a", Length: 1, LastEntryID: "1-0"},
				{Name: "traces:b", Length: 1, LastEntryID: "1-0"},
			}},
		},
		"MaxStreams equal to the number of streams is not a truncation": {
			setup: concat(entries("traces:a", 1), entries("traces:b", 1)),
			query: Query{Pattern: "traces:*", MaxStreams: 2},
			want: Report{Streams: []Stream{
				{Name: "traces:a", Length: 1, LastEntryID: "1-0"},
				{Name: "traces:b", Length: 1, LastEntryID: "1-0"},
			}},
		},
		"explicit names join the pattern's matches; missing names and other types are left out": {
			setup: concat(entries("traces:a", 1), entries("other:b", 2), cmds([]any{"SET", "other:string", "x"})),
			query: Query{Pattern: "traces:*", Streams: []string{"other:b", "other:missing", "other:string", "traces:a"}},
			want: Report{Streams: []Stream{
				{Name: "other:b", Length: 2, LastEntryID: "2-0"},
				{Name: "traces:a", Length: 1, LastEntryID: "1-0"},
			}},
		},
		"explicit names that do not exist take no place under MaxStreams": {
			setup: concat(entries("traces:a", 1), entries("traces:b", 1), entries("traces:c", 1)),
			query: Query{Pattern: "traces:*", Streams: []string{"traces:0-missing"}, MaxStreams: 2},
			want: Report{
				Streams: []Stream{
					{Name: "traces:a", Length: 1, LastEntryID: "1-0"},
					{Name: "traces:b", Length: 1, LastEntryID: "1-0"},
				},
				Truncated: true,
			},
		},
		"explicit names alone need no pattern": {
			setup: concat(entries("traces:a", 3), entries("traces:b", 1)),
			query: Query{Streams: []string{"traces:a"}},
			want:  Report{Streams: []Stream{{Name: "traces:a", Length: 3, LastEntryID: "3-0"}}},
		},
		"no stream matching is an empty report, not an error": {
			setup: cmds([]any{"SET", "traces:string", "x"}),
			query: Query{Pattern: "traces:*"},
			want:  Report{},
		},
	}
	srv := redistest.Standalone(t)
	admin := srv.Client(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			run(t, admin, cmds([]any{"FLUSHALL"}))
			run(t, admin, tc.setup)
			got, err := Collect(ctxFor(t), standaloneTarget(srv), tc.query)
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			assertReport(t, got, tc.want)
		})
	}
}

// TestCollectIsDeterministic checks that two calls give equal reports whatever order SCAN
// returns keys in, over more streams than one pipeline and one SCAN page hold, and that
// MaxStreams then keeps the same first names.
func TestCollectIsDeterministic(t *testing.T) {
	srv := redistest.Standalone(t)
	admin := srv.Client(t)
	const n = 3*describeBatch + 5
	var names []string
	pipe := admin.Pipeline()
	for i := range n {
		name := fmt.Sprintf("traces:%04d", (i*7919)%n) // not in name order
		names = append(names, name)
		pipe.Do(ctxFor(t), "XADD", name, "1-0", "span", i)
		pipe.Do(ctxFor(t), "XGROUP", "CREATE", name, "g", "0")
	}
	// Enough other keys that SCAN needs several pages.
	for i := range 2 * scanCount {
		pipe.Set(ctxFor(t), fmt.Sprintf("traces:string:%d", i), "x", 0)
	}
	if _, err := pipe.Exec(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)

	for name, tc := range map[string]struct {
		max       int
		wantNames []string
		truncated bool
	}{
		"every stream when MaxStreams allows":       {max: 1000, wantNames: names},
		"the first streams by name when truncating": {max: describeBatch + 1, wantNames: names[:describeBatch+1], truncated: true},
	} {
		t.Run(name, func(t *testing.T) {
			q := Query{Pattern: "traces:*", MaxStreams: tc.max}
			first, err := Collect(ctxFor(t), standaloneTarget(srv), q)
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			var got []string
			for _, s := range first.Streams {
				got = append(got, s.Name)
				if len(s.Groups) != 1 || s.Groups[0].Lag == nil || *s.Groups[0].Lag != 1 {
					t.Fatalf("%s: groups %+v, want g with lag 1", s.Name, s.Groups)
				}
			}
			if !slices.Equal(got, tc.wantNames) || first.Truncated != tc.truncated {
				t.Fatalf("got %d streams %v... truncated %v, want %d truncated %v", len(got), head(got), first.Truncated, len(tc.wantNames), tc.truncated)
			}
			if first.TotalLag != int64(len(tc.wantNames)) || first.MaxLag != 1 {
				t.Errorf("TotalLag %d MaxLag %d, want %d and 1", first.TotalLag, first.MaxLag, len(tc.wantNames))
			}
			second, err := Collect(ctxFor(t), standaloneTarget(srv), q)
			if err != nil {
				t.Fatalf("second Collect: %v", err)
			}
			assertReport(t, second, first)
		})
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestCollectCluster puts streams on every master and checks that Collect merges them,
// with replicas not counted twice, and applies MaxStreams to the merged list; over TLS with
// an ACL user, whose failures are classified as they are on a standalone server.
func TestCollectCluster(t *testing.T) {
	cl := redistest.Cluster(t, redistest.WithTLS(), redistest.WithACL(""))
	admin := cl.Client(t)
	if n := len(cl.Shards()); n != 3 {
		t.Fatalf("the cluster has %d shards; the expected lags below are for 3", n)
	}
	// Stream j of shard i has 10 entries of which its group read i+j+1: lags 9 and 8 on
	// shard 0, 8 and 7 on shard 1, 7 and 6 on shard 2, in name order.
	var want []Stream
	for i, sh := range cl.Shards() {
		for j := range 2 {
			name := keyIn(t, admin, sh, fmt.Sprintf("traces:shard%d-%d", i, j))
			read := i + j + 1
			run(t, admin, concat(entries(name, 10), readBy(name, "g", read)))
			want = append(want, Stream{Name: name, Length: 10, LastEntryID: "10-0", Groups: []Group{{
				Name: "g", Lag: ptr(int64(10 - read)), Pending: int64(read), Consumers: 1,
				LastDeliveredID: fmt.Sprintf("%d-0", read), EntriesRead: ptr(int64(read)),
			}}})
		}
		// Proof that the shard really holds them: its own master answers for them.
		if n, err := sh.Master.Client(t).DBSize(ctxFor(t)).Result(); err != nil || n != 2 {
			t.Fatalf("%s holds %d keys (%v), want the 2 streams", sh.Master, n, err)
		}
	}
	run(t, admin, cmds([]any{"SET", "traces:string", "x"}))
	slices.SortFunc(want, func(a, b Stream) int { return strings.Compare(a.Name, b.Name) })
	target := Target{
		Mode: "cluster", Addresses: cl.Addrs()[:1],
		Username: cl.ACL().Username(), Password: cl.ACL().Password(),
		TLS: cl.TLS().ClientConfig(),
	}

	cases := map[string]struct {
		query            Query
		want             []Stream
		trunc            bool
		totalLag, maxLag int64
	}{
		"every master's streams are merged in name order": {
			query: Query{Pattern: "traces:*"}, want: want, totalLag: 9 + 8 + 8 + 7 + 7 + 6, maxLag: 9,
		},
		"MaxStreams cuts the merged list, not each master's": {
			query: Query{Pattern: "traces:*", MaxStreams: 4}, want: want[:4], trunc: true, totalLag: 9 + 8 + 8 + 7, maxLag: 9,
		},
		"explicit names are read from the master that holds each of them": {
			query: Query{Streams: []string{want[5].Name, want[0].Name}}, want: []Stream{want[0], want[5]}, totalLag: 9 + 6, maxLag: 9,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Collect(ctxFor(t), target, tc.query)
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			assertReport(t, got, Report{Streams: tc.want, Truncated: tc.trunc, TotalLag: tc.totalLag, MaxLag: tc.maxLag})
		})
	}
	assertFailures(t, target)
}

// TestCollectSentinel reads through the sentinels from the master they name, over TLS
// with an ACL user, whose failures are classified as they are on a standalone server.
func TestCollectSentinel(t *testing.T) {
	st := redistest.Sentinel(t, redistest.WithTLS(), redistest.WithACL(""))
	run(t, st.Client(t), concat(entries("traces:a", 10), readBy("traces:a", "g", 3)))
	target := Target{
		Mode: "sentinel", Addresses: st.SentinelAddrs(), MasterName: st.MasterName(),
		Username: st.ACL().Username(), Password: st.ACL().Password(),
		TLS: st.TLS().ClientConfig(),
	}
	got, err := Collect(ctxFor(t), target, Query{Pattern: "traces:*"})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	assertReport(t, got, Report{
		Streams: []Stream{{Name: "traces:a", Length: 10, LastEntryID: "10-0", Groups: []Group{
			{Name: "g", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
		}}},
		TotalLag: 7, MaxLag: 7,
	})

	unknownMaster := target
	unknownMaster.MasterName = "not-monitored"
	_, err = Collect(ctxFor(t), unknownMaster, Query{Pattern: "traces:*"})
	if redisconn.Classify(err).Cause() != redisconn.CauseOther || !strings.Contains(fmt.Sprint(err), `no master named "not-monitored"`) {
		t.Errorf("an unknown master name: Classify(%v) = %s, want %s and the name in the message", err, redisconn.Classify(err).Cause(), redisconn.CauseOther)
	}
	assertFailures(t, target)
}

// assertFailures checks that a wrong password and a wrong CA are told apart on target,
// which works as it is.
func assertFailures(t *testing.T, target Target) {
	t.Helper()
	cases := map[string]struct {
		change func(*Target)
		want   redisconn.Cause
	}{
		"a wrong password is auth": {change: func(tg *Target) { tg.Password = "wrong-password" }, want: redisconn.CauseAuth},
		"a wrong CA is tls":        {change: func(tg *Target) { tg.TLS.RootCAs = otherCA(t) }, want: redisconn.CauseTLS},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tg := target
			tg.TLS = target.TLS.Clone()
			tc.change(&tg)
			_, err := Collect(ctxFor(t), tg, Query{Pattern: "traces:*"})
			if got := redisconn.Classify(err).Cause(); got != tc.want {
				t.Errorf("Classify(%v) = %s, want %s", err, got, tc.want)
			}
		})
	}
}
