package sink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/redisconn"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

func TestWrongTypeFailsOnlyItsEntries(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	admin := srv.Client(t)
	if err := admin.Set(ctx, "spans:bad", "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, standaloneConfig(srv), config.Stream{})
	ss := spans(20, "spans:good", "spans:bad")
	errs := write(t, ctx, s, ss)
	var good []span
	for i, err := range errs {
		switch ss[i].key {
		case "spans:good":
			if err != nil {
				t.Fatalf("entry %d for spans:good: %v", i, err)
			}
			good = append(good, ss[i])
		case "spans:bad":
			if redisconn.Classify(err) != redisconn.ClassWrongType || redisconn.Classify(err).Retryable() {
				t.Fatalf("entry %d for spans:bad: %v (class %s), want wrongtype, not retryable", i, err, redisconn.Classify(err))
			}
			if !strings.Contains(err.Error(), `"spans:bad"`) {
				t.Fatalf("entry %d: %q does not name the stream", i, err)
			}
		}
	}
	checkLanded(t, ctx, admin, good)
	if n := xlen(t, ctx, admin, "spans:good"); n != 10 {
		t.Fatalf("XLEN spans:good = %d, want 10", n)
	}
	if v, err := admin.Get(ctx, "spans:bad").Result(); err != nil || v != "not a stream" {
		t.Fatalf("GET spans:bad = %q, %v; want the string untouched", v, err)
	}
}

func TestOOMFailsEntriesAsRetryable(t *testing.T) {
	srv := redistest.Standalone(t, redistest.WithConfig("maxmemory", "3mb"))
	ctx := ctxFor(t)
	admin := srv.Client(t)
	s := newSink(t, standaloneConfig(srv), config.Stream{})
	value := strings.Repeat("x", 600)
	landed, ooms := 0, 0
	for w := 0; w < 50 && ooms == 0; w++ {
		ss := spansFrom(w*500, 500, "spans")
		for i := range ss {
			ss[i].fields[1][1] = value
		}
		for i, err := range write(t, ctx, s, ss) {
			switch c := redisconn.Classify(err); c {
			case redisconn.ClassNone:
				landed++
			case redisconn.ClassOOM:
				ooms++
				if !c.Retryable() {
					t.Fatalf("oom is not retryable")
				}
			default:
				t.Fatalf("entry %d: %v (class %s), want none or oom", i, err, c)
			}
		}
	}
	if ooms == 0 {
		t.Fatalf("no OOM after %d entries landed under maxmemory 3mb", landed)
	}
	if n := xlen(t, ctx, admin, "spans"); n != int64(landed) {
		t.Fatalf("XLEN spans = %d, but %d entries were reported as landed", n, landed)
	}
	t.Logf("%d entries landed, then %d were refused with OOM", landed, ooms)
}

func TestAStoppedServerIsConnectionAndWritesResumeAfterStart(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	s := newSink(t, standaloneConfig(srv), config.Stream{})
	mustWrite(t, ctx, s, spans(10, "spans"))

	srv.Stop()
	for attempt := range 3 { // the pooled connection, then fresh dials
		for i, err := range write(t, ctx, s, spansFrom(10, 10, "spans")) {
			if c := redisconn.Classify(err); c != redisconn.ClassConnection {
				t.Fatalf("attempt %d, entry %d with the server stopped: %v (class %s), want connection", attempt, i, err, c)
			}
		}
	}
	if err := s.Ping(ctx); redisconn.Classify(err) != redisconn.ClassConnection {
		t.Fatalf("Ping with the server stopped: %v (class %s), want connection", err, redisconn.Classify(err))
	}

	srv.Start()
	ss := spansFrom(100, 10, "spans")
	// go-redis stops dialling after PoolSize failures and probes once a second.
	wait.For(t, 30*time.Second, "writing after Start", func() error { return tryWrite(ctx, s, ss) })
	admin := srv.Client(t)
	checkLanded(t, ctx, admin, append(spans(10, "spans"), ss...))
}

// cutProxy forwards TCP to Redis and, when armed, closes a connection after forwarding a
// given number of reply bytes: a reply stream cut in the middle of a pipeline.
type cutProxy struct {
	ln     net.Listener
	target string
	// cutAfter is the reply bytes the next accepted connection may forward; 0 is no cut.
	cutAfter atomic.Int64
	wg       sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		limit := p.cutAfter.Swap(0)
		p.wg.Add(2)
		// Only half-closes until both directions are done: closing a socket with unread
		// data resets the connection, and a reset throws away what the peer had
		// received but not read yet.
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(server, client)
			_ = server.(*net.TCPConn).CloseWrite() // Redis runs what it got, then closes
			_ = client.Close()
		}()
		go func() {
			defer p.wg.Done()
			if limit <= 0 {
				_, _ = io.Copy(client, server)
				_ = client.(*net.TCPConn).CloseWrite()
			} else {
				_, _ = io.CopyN(client, server, limit)
				// The client reads EOF after limit bytes but can still send the
				// rest of its pipeline; Redis runs all of it, its replies go nowhere.
				_ = client.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, server)
			}
			_ = server.Close()
		}()
	}
}

func TestCutRepliesFailOnlyTheEntriesWhoseRepliesWereLost(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	proxy := newCutProxy(t, srv.Addr())
	cfg := standaloneConfig(srv)
	cfg.Addresses = []string{proxy.ln.Addr().String()}
	s := newSink(t, cfg, config.Stream{})
	// The handshake's replies and about 150 XADD replies, of a pipeline of 2000.
	proxy.cutAfter.Store(4000)
	ss := spans(2000, "spans")
	errs := write(t, ctx, s, ss)

	var landed []span
	for i, err := range errs {
		if err == nil {
			if len(landed) != i {
				t.Fatalf("entry %d landed after entry %d failed: replies come in order", i, len(landed))
			}
			landed = append(landed, ss[i])
			continue
		}
		if c := redisconn.Classify(err); c != redisconn.ClassConnection {
			t.Fatalf("entry %d: %v (class %s), want connection", i, err, c)
		}
	}
	if len(landed) == 0 || len(landed) == len(ss) {
		t.Fatalf("%d of %d entries reported landed, want the cut in the middle", len(landed), len(ss))
	}
	admin := srv.Client(t)
	checkLanded(t, ctx, admin, landed)
	// Redis ran the whole pipeline, so the entries reported as failed landed too: that is
	// what a retry duplicates without IDMP. go-redis must not have resent any of it.
	wait.For(t, 10*time.Second, "Redis running the rest of the pipeline", func() error {
		if n := xlen(t, ctx, admin, "spans"); n != int64(len(ss)) {
			return fmt.Errorf("XLEN spans = %d, want the %d sent, each once", n, len(ss))
		}
		return nil
	})
	t.Logf("%d of %d entries acknowledged before the cut", len(landed), len(ss))

	// The next write gets a new connection.
	retry := spansFrom(len(ss), 10, "spans")
	wait.For(t, 10*time.Second, "writing after the cut", func() error { return tryWrite(ctx, s, retry) })
	checkLanded(t, ctx, admin, retry)
}

func TestIDMPOnRedis7IsRejectedOnceThenTurnedOff(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := ctxFor(t)
	s := newSink(t, standaloneConfig(srv), config.Stream{})
	// As if Probe had seen a Redis with IDMP that was then replaced by an older one.
	s.idmp.Store(true)
	ss := spans(10, "spans")
	for i, err := range write(t, ctx, s, ss) {
		if c := redisconn.Classify(err); c != redisconn.ClassTryAgain || !errors.Is(err, redisconn.ErrIDMPRejected) {
			t.Fatalf("entry %d: %v (class %s), want the IDMP rejection as tryagain", i, err, c)
		}
	}
	admin := srv.Client(t)
	if n := xlen(t, ctx, admin, "spans"); n != 0 {
		t.Fatalf("XLEN spans = %d after the rejected write, want 0", n)
	}
	mustWrite(t, ctx, s, ss)
	checkLanded(t, ctx, admin, ss)
	info, err := s.Probe(ctx)
	if err != nil || info.Idempotent || s.idmp.Load() {
		t.Fatalf("Probe = %+v, %v; want IDMP off on Redis 7", info, err)
	}
}
