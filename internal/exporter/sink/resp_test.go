package sink

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

func TestReadParsesEveryRESP2Reply(t *testing.T) {
	in := "+OK\r\n:1\r\n$-1\r\n$5\r\n1-0\r\n\r\n*2\r\n$1\r\na\r\n:3\r\n*-1\r\n-OOM command not allowed\r\n"
	c := &respConn{r: bufio.NewReader(strings.NewReader(in))}
	want := []reply{{}, {n: 1}, {null: true}, {}, {}, {null: true}, {err: replyError("OOM command not allowed")}}
	for i, w := range want {
		got, err := c.read()
		if err != nil || got != w {
			t.Fatalf("reply %d: %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := c.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last reply: %v, want EOF", err)
	}
	for _, bad := range []string{"?what\r\n", "+no CR\n", ":x\r\n", "$3\r\nab"} {
		c := &respConn{r: bufio.NewReader(strings.NewReader(bad))}
		if _, err := c.read(); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Every kind of argument Write builds is written as a RESP bulk string: the once-encoded ones
// (keywords, the configured counts, the producer id) as the others are.
func TestAppendArgWritesBulkStrings(t *testing.T) {
	key := "traces:users"
	args := []any{"xadd", &key, newBulkArg("maxlen"), newBulkArg("100000"), newBulkArg(""), &rawArg{[]byte("a\r\nb")}}
	var got []byte
	for _, a := range args {
		got = appendArg(got, a)
	}
	want := "$4\r\nxadd\r\n$12\r\ntraces:users\r\n$6\r\nmaxlen\r\n$6\r\n100000\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
	if string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestRESPConnectionsStayWithinPoolSize(t *testing.T) {
	srv := redistest.Standalone(t)
	cfg := standaloneConfig(srv)
	cfg.PoolSize = 2
	s := newSink(t, cfg, config.Stream{})
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []span
	for w := range 8 {
		ss := spansFrom(w*100, 100, "spans")
		mu.Lock()
		all = append(all, ss...)
		mu.Unlock()
		wg.Go(func() { mustWrite(t, ctx, s, ss) })
	}
	wg.Wait()
	admin := srv.Client(t)
	checkLanded(t, ctx, admin, all)
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Ours, and the admin client's own.
	if n := strings.Count(list, "\n"); n > cfg.PoolSize+1 {
		t.Fatalf("%d connections for redis.poolSize %d:\n%s", n, cfg.PoolSize, list)
	}
}

// silentServer accepts connections and reads them, never answering: a Redis that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() })
		}
	})
	return ln.Addr().String()
}

func TestACanceledWriteStopsWaitingForReplies(t *testing.T) {
	cfg := config.Redis{Addresses: []string{silentServer(t)}}
	cfg.ReadTimeout.Duration = time.Hour
	s := newSink(t, cfg, config.Stream{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	for i, err := range write(t, ctx, s, spans(3, "spans")) {
		if c := redisconn.Classify(err); c != redisconn.ClassCanceled {
			t.Fatalf("entry %d: %v (class %s), want canceled rather than waiting for the read timeout", i, err, c)
		}
	}
}

func TestWritesAfterCloseFail(t *testing.T) {
	srv := redistest.Standalone(t)
	s, err := New(standaloneConfig(srv), config.Stream{}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	mustWrite(t, ctx, s, spans(2, "spans"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, err := range write(t, ctx, s, spansFrom(2, 2, "spans")) {
		if !errors.Is(err, errClosed) || redisconn.Classify(err).Retryable() {
			t.Fatalf("entry %d after Close: %v (class %s), want a permanent closed-client error", i, err, redisconn.Classify(err))
		}
	}
}

// A bulk string's length is written right on either side of each shortcut (one digit, two
// digits, strconv).
func TestAppendBulkWritesEveryLength(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 11, 42, 99, 100, 101, 999, 1179, 65536, 1 << 20} {
		s := strings.Repeat("x", n)
		want := "$" + strconv.Itoa(n) + "\r\n" + s + "\r\n"
		if got := appendBulk([]byte("prefix"), []byte(s)); string(got) != "prefix"+want {
			t.Errorf("length %d: %.20q..., want %.20q...", n, got[6:], want)
		}
		if got := appendBulk(nil, s); string(got) != want {
			t.Errorf("length %d (string): %.20q..., want %.20q...", n, got, want)
		}
	}
}
