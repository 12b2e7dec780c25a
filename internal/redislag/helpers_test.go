package redislag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/testing/redistest"
)

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ptr(n int64) *int64 { return &n }

// cmds builds a list of commands for run.
func cmds(c ...[]any) [][]any { return c }

// entries returns XADDs of n entries with IDs 1-0 to n-0, so that tests can name IDs.
func entries(stream string, n int) [][]any {
	out := make([][]any, n)
	for i := range n {
		out[i] = []any{"XADD", stream, fmt.Sprintf("%d-0", i+1), "span", i + 1}
	}
	return out
}

// readBy creates group at 0 on stream and has one consumer read count entries.
func readBy(stream, group string, count int) [][]any {
	return cmds(
		[]any{"XGROUP", "CREATE", stream, group, "0"},
		[]any{"XREADGROUP", "GROUP", group, "consumer-1", "COUNT", count, "STREAMS", stream, ">"},
	)
}

func concat(lists ...[][]any) [][]any {
	var out [][]any
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// run runs each command and fails the test on an error reply.
func run(t testing.TB, c redis.UniversalClient, commands [][]any) {
	t.Helper()
	for _, args := range commands {
		if err := c.Do(ctxFor(t), args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("%v: %v", args, err)
		}
	}
}

func standaloneTarget(srv *redistest.Server) Target {
	t := Target{Mode: "standalone", Addresses: []string{srv.Addr()}}
	if acl := srv.ACL(); acl != nil {
		t.Username, t.Password = acl.Username(), acl.Password()
	}
	if tlsFiles := srv.TLS(); tlsFiles != nil {
		t.TLS = tlsFiles.ClientConfig()
	}
	return t
}

// show renders a report with its pointers followed, so that a failure message shows lags
// rather than addresses.
func show(r Report) string {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Sprintf("%+v (%v)", r, err)
	}
	return string(b)
}

func assertReport(t testing.TB, got, want Report) {
	t.Helper()
	if g, w := show(got), show(want); g != w {
		t.Errorf("report:\n%s\nwant:\n%s", g, w)
	}
}

// closedPortAddr returns a loopback address nothing listens on: a port the kernel just
// handed out and that was closed again.
func closedPortAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// keyIn returns a key whose hash slot the shard serves, as the cluster computes it.
func keyIn(t testing.TB, c *redis.ClusterClient, sh redistest.Shard, prefix string) string {
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
