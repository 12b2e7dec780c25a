package redislag

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// TestParseGroupsBothProtocols reads the same XINFO GROUPS reply over RESP2 (flat arrays)
// and RESP3 (maps): go-redis speaks RESP3 unless the server refuses HELLO, so both reach
// parseGroups in production.
func TestParseGroupsBothProtocols(t *testing.T) {
	srv := redistest.Standalone(t)
	run(t, srv.Client(t), concat(entries("traces:a", 10), readBy("traces:a", "known", 3), cmds(
		[]any{"XGROUP", "CREATE", "traces:a", "unknown", "5-0"},
	)))
	want := []Group{
		{Name: "known", Lag: ptr(7), Pending: 3, Consumers: 1, LastDeliveredID: "3-0", EntriesRead: ptr(3)},
		{Name: "unknown", LastDeliveredID: "5-0"},
	}
	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", protocol), func(t *testing.T) {
			opts := srv.Options()
			opts.Protocol = protocol
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			reply, err := c.Do(ctxFor(t), "XINFO", "GROUPS", "traces:a").Result()
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseGroups(reply, nil)
			if err != nil {
				t.Fatalf("parseGroups(%#v): %v", reply, err)
			}
			assertReport(t, Report{Streams: []Stream{{Groups: got}}}, Report{Streams: []Stream{{Groups: want}}})
		})
	}
}

func TestParseGroupsRejectsMalformedReplies(t *testing.T) {
	valid := func() map[any]any {
		return map[any]any{"name": "g", "consumers": int64(1), "pending": int64(0), "last-delivered-id": "0-0"}
	}
	cases := map[string]struct {
		reply   any
		wantErr string
	}{
		"a reply that is not a list":   {reply: "OK", wantErr: "unexpected reply"},
		"a group that is not a map":    {reply: []any{int64(1)}, wantErr: "unexpected reply"},
		"an odd number of elements":    {reply: []any{[]any{"name"}}, wantErr: "field-value pairs"},
		"a name that is not a string":  {reply: []any{with(valid(), "name", int64(1))}, wantErr: "name"},
		"a count that is not a number": {reply: []any{with(valid(), "pending", "3")}, wantErr: "pending"},
		"a lag that is not a number":   {reply: []any{with(valid(), "lag", "7")}, wantErr: "lag"},
		"a missing consumers field":    {reply: []any{without(valid(), "consumers")}, wantErr: "consumers"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseGroups(tc.reply, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseGroups(%#v) = %v, want an error about %q", tc.reply, err, tc.wantErr)
			}
		})
	}
	t.Run("a server before 7.0 without entries-read and lag gives unknown lags", func(t *testing.T) {
		got, err := parseGroups([]any{valid()}, nil)
		if err != nil || len(got) != 1 || got[0].Lag != nil || got[0].EntriesRead != nil || got[0].Name != "g" {
			t.Fatalf("parseGroups = %+v, %v; want g with unknown lag and entries-read", got, err)
		}
	})
}

func with(m map[any]any, k string, v any) map[any]any {
	m[k] = v
	return m
}

func without(m map[any]any, k string) map[any]any {
	delete(m, k)
	return m
}

func TestTopNames(t *testing.T) {
	cases := map[string]struct {
		max       int
		adds      [][]string
		want      []string
		truncated bool
	}{
		"fewer names than the bound are all kept, sorted": {
			max: 3, adds: [][]string{{"c", "a"}, {"b"}}, want: []string{"a", "b", "c"},
		},
		"names SCAN returned twice count once": {
			max: 3, adds: [][]string{{"c", "a", "b"}, {"a", "c"}}, want: []string{"a", "b", "c"},
		},
		"more names than the bound keep the first by name": {
			max: 2, adds: [][]string{{"d", "b"}, {"a", "c"}}, want: []string{"a", "b"}, truncated: true,
		},
		"a name cut earlier and returned again stays cut": {
			max: 1, adds: [][]string{{"b", "a"}, {"b"}}, want: []string{"a"}, truncated: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n := newTopNames(tc.max)
			for _, a := range tc.adds {
				n.add(a)
			}
			got, truncated := n.result()
			if !slices.Equal(got, tc.want) || truncated != tc.truncated {
				t.Fatalf("result() = %v, %v; want %v, %v", got, truncated, tc.want, tc.truncated)
			}
		})
	}
	t.Run("compacting while adding keeps memory bounded and the answer the same", func(t *testing.T) {
		const maxNames = 10
		n := newTopNames(maxNames)
		var all []string
		for i := range 5 * scanCount {
			name := fmt.Sprintf("s%05d", (i*7919)%(5*scanCount))
			all = append(all, name, name)
			n.add([]string{name, name})
			if len(n.names) > 2*maxNames+scanCount+2 {
				t.Fatalf("holding %d names with a bound of %d", len(n.names), maxNames)
			}
		}
		slices.Sort(all)
		all = slices.Compact(all)
		got, truncated := n.result()
		if !slices.Equal(got, all[:maxNames]) || !truncated {
			t.Fatalf("result() = %v, %v; want %v, true", got, truncated, all[:maxNames])
		}
	})
}
