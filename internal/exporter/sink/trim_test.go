package sink

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

func TestMaxLenKeepsStreamsNearMaxLen(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	admin := srv.Client(t)
	const maxLen, nodeEntries = 100, 100 // stream-node-max-entries: what ~ trims at once
	s := newSink(t, standaloneConfig(srv), config.Stream{MaxLen: maxLen})
	for w := range 30 {
		mustWrite(t, ctx, s, spansFrom(w*100, 100, "spans:a", "spans:b"))
		for _, key := range []string{"spans:a", "spans:b"} {
			if n := xlen(t, ctx, admin, key); n > maxLen+nodeEntries {
				t.Fatalf("after write %d: XLEN %s = %d, want at most %d", w, key, n, maxLen+nodeEntries)
			}
		}
	}
	for _, key := range []string{"spans:a", "spans:b"} {
		if n := xlen(t, ctx, admin, key); n < maxLen {
			t.Fatalf("XLEN %s = %d after 1500 entries, want at least maxLen %d", key, n, maxLen)
		}
	}
	// The newest entries are the ones kept.
	last, err := admin.XRevRangeN(ctx, "spans:b", "+", "-", 1).Result()
	if err != nil || len(last) != 1 || last[0].Values["span"] != "2999" {
		t.Fatalf("newest entry of spans:b = %v, %v; want span 2999", last, err)
	}
}

func TestMinIDTrimsEntriesOlderThanMinIDAge(t *testing.T) {
	hour := config.Duration{Duration: time.Hour}
	cases := map[string]config.Stream{
		"MINID on each XADD":           {MinIDAge: hour},
		"XTRIM MINID next to MAXLEN":   {MinIDAge: hour, MaxLen: 100000},
		"XTRIM MINID with TTL as well": {MinIDAge: hour, MaxLen: 100000, TTL: hour},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			srv := redistest.Standalone(t)
			ctx := ctxFor(t)
			admin := srv.Client(t)
			// 1000 entries from 1970, in full stream nodes, and 300 from ten minutes ago.
			old := time.Now().Add(-10 * time.Minute).UnixMilli()
			pipe := admin.Pipeline()
			for i := range 1000 {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: "spans", ID: fmt.Sprintf("%d-1", i+1), Values: []string{"span", "ancient"}})
			}
			for i := range 300 {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: "spans", ID: fmt.Sprintf("%d-%d", old, i+1), Values: []string{"span", "recent"}})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			s := newSink(t, standaloneConfig(srv), st)
			ss := spans(10, "spans")
			mustWrite(t, ctx, s, ss)

			threshold := strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
			if n, err := admin.XRange(ctx, "spans", "-", "("+threshold).Result(); err != nil || len(n) != 0 {
				t.Fatalf("XRANGE before now-1h: %d entries, %v; want the ancient ones trimmed", len(n), err)
			}
			if n := xlen(t, ctx, admin, "spans"); n != 310 {
				t.Fatalf("XLEN spans = %d, want the 300 recent entries and the 10 written", n)
			}
			got, err := admin.XRevRangeN(ctx, "spans", "+", "-", 10).Result()
			if err != nil || len(got) != 10 || got[0].Values["span"] != "9" {
				t.Fatalf("newest entries = %v, %v; want the 10 written", got, err)
			}
		})
	}
}

func TestExpireAndXTrimAreSentOncePerKeyPerWrite(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	admin := srv.Client(t)
	hour := config.Duration{Duration: time.Hour}
	s := newSink(t, standaloneConfig(srv), config.Stream{MaxLen: 100000, MinIDAge: hour, TTL: hour})
	keys := []string{"spans:a", "spans:b", "spans:c"}
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const writes, perWrite = 4, 300
	for w := range writes {
		mustWrite(t, ctx, s, spansFrom(w*perWrite, perWrite, keys...))
	}
	for cmd, want := range map[string]int{
		"xadd":   writes * perWrite,
		"expire": writes * len(keys),
		"xtrim":  writes * len(keys),
	} {
		if got := commandCalls(t, ctx, admin, cmd); got != want {
			t.Errorf("cmdstat_%s calls = %d, want %d", cmd, got, want)
		}
	}
	for _, key := range keys {
		ttl, err := admin.TTL(ctx, key).Result()
		if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("TTL %s = %s, %v; want about an hour", key, ttl, err)
		}
		if n := xlen(t, ctx, admin, key); n != writes*perWrite/int64(len(keys)) {
			t.Errorf("XLEN %s = %d, want %d", key, n, writes*perWrite/len(keys))
		}
	}
}
