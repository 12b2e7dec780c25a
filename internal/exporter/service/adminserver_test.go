package service

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/receiver"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// adminUnderTest is the admin endpoint's server on a loopback port, with a handler that holds
// GET /hold requests until release is closed.
type adminUnderTest struct {
	*http.Server
	addr    string
	bounded *receiver.Listener
	holding atomic.Int64
	release chan struct{}
}

func startAdminServer(t *testing.T, mutate func(*config.Admin)) *adminUnderTest {
	t.Helper()
	cfg := config.Default().Admin
	cfg.Endpoint = "127.0.0.1:0"
	mutate(&cfg)
	u := &adminUnderTest{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /hold", func(w http.ResponseWriter, r *http.Request) {
		u.holding.Add(1)
		defer u.holding.Add(-1)
		select {
		case <-u.release:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("released\n"))
	})
	u.Server = newAdminServer(cfg, mux)
	ln, err := listenBounded(cfg.Endpoint, cfg.MaxConnections)
	if err != nil {
		t.Fatal(err)
	}
	u.addr, u.bounded = ln.Addr().String(), ln
	done := make(chan error, 1)
	go func() { done <- u.Serve(ln) }()
	t.Cleanup(func() {
		_ = u.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return u
}

// open waits until the server holds n connections.
func (u *adminUnderTest) open(t *testing.T, n int64, what string) {
	t.Helper()
	wait.For(t, 10*time.Second, what, func() error {
		if got := u.bounded.Open(); got != n {
			return fmt.Errorf("%d connections open, want %d", got, n)
		}
		return nil
	})
}

func dialAdmin(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sendGet(t *testing.T, c net.Conn, path string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: admin\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
}

// readAnswer reads one response from r, failing the test after a generous deadline.
func readAnswer(t *testing.T, c net.Conn, r *bufio.Reader) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("reading an answer's body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// closedByServer reads until the server closes c and returns what it sent meanwhile; a server
// that does not close it within a generous deadline fails the test.
func closedByServer(t *testing.T, c net.Conn, r io.Reader) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection (read %q)", b)
	}
	return string(b)
}

// TestAdminServerHoldsConnectionsAtTheBound: with admin.maxConnections requests in progress, a
// further connection waits unserved, and is served once one of them closes.
func TestAdminServerHoldsConnectionsAtTheBound(t *testing.T) {
	u := startAdminServer(t, func(a *config.Admin) { a.MaxConnections = 2 })
	// One at a time: a second connection accepted before the first one's request arrives would
	// find it idle and close it to make room.
	var held []net.Conn
	for i := range 2 {
		c := dialAdmin(t, u.addr)
		sendGet(t, c, "/hold")
		held = append(held, c)
		wait.For(t, 10*time.Second, "the request held", func() error {
			if n := u.holding.Load(); n != int64(i+1) {
				return fmt.Errorf("%d held", n)
			}
			return nil
		})
	}
	third := dialAdmin(t, u.addr)
	sendGet(t, third, "/healthz")
	// Nothing to wait for: the proof is an answer that does not come while the bound is held.
	_ = third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if n, err := third.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a third connection got %d bytes (%v) while two of two were busy; want it to wait", n, err)
	}
	if n := u.bounded.Open(); n != 2 {
		t.Errorf("%d connections open with the third waiting, want 2", n)
	}
	if n := u.bounded.Evicted.Load(); n != 0 {
		t.Errorf("%d connections closed to make room, want none: both have a request in progress", n)
	}
	_ = held[0].Close()
	if code, body := readAnswer(t, third, bufio.NewReader(third)); code != http.StatusOK || body != "ok\n" {
		t.Errorf("the waiting connection, once another closed: %d %q, want 200 \"ok\\n\"", code, body)
	}
	if n := u.holding.Load(); n != 1 {
		t.Errorf("%d requests in progress, want the other held one", n)
	}
}

// TestAdminServerMakesRoomByClosingTheLongestIdle: each connection that takes the last slot of
// admin.maxConnections closes the connection that has waited longest without sending a request,
// so that a client behind silent connections is served at once; a request in progress is left
// alone.
func TestAdminServerMakesRoomByClosingTheLongestIdle(t *testing.T) {
	u := startAdminServer(t, func(a *config.Admin) {
		a.MaxConnections = 3
		a.ReadHeaderTimeout = config.Duration{Duration: time.Minute} // only making room closes them
	})
	first := dialAdmin(t, u.addr)
	u.open(t, 1, "the first silent connection accepted")
	second := dialAdmin(t, u.addr)
	u.open(t, 2, "the second silent connection accepted")
	busy := dialAdmin(t, u.addr)
	sendGet(t, busy, "/hold")
	wait.For(t, 10*time.Second, "a request held", func() error {
		if n := u.holding.Load(); n != 1 {
			return fmt.Errorf("%d held", n)
		}
		return nil
	})
	// busy took the last slot: the first silent connection made room for it.
	if got := closedByServer(t, first, first); got != "" {
		t.Errorf("the longest idle connection got %q before it was closed", got)
	}
	client := dialAdmin(t, u.addr)
	sendGet(t, client, "/healthz")
	if code, body := readAnswer(t, client, bufio.NewReader(client)); code != http.StatusOK || body != "ok\n" {
		t.Errorf("a client at the bound: %d %q, want 200 \"ok\\n\"", code, body)
	}
	// The client took the last slot: the second made room for it, not the request in progress.
	if got := closedByServer(t, second, second); got != "" {
		t.Errorf("the next idle connection got %q before it was closed", got)
	}
	if n := u.bounded.Evicted.Load(); n != 2 {
		t.Errorf("%d connections closed to make room, want 2", n)
	}
	if n := u.holding.Load(); n != 1 {
		t.Errorf("%d requests in progress, want the held one untouched", n)
	}
	close(u.release)
	if code, body := readAnswer(t, busy, bufio.NewReader(busy)); code != http.StatusOK || body != "released\n" {
		t.Errorf("the held request: %d %q, want 200 \"released\\n\"", code, body)
	}
}

// TestAdminServerClosesAnIdleKeepAliveConnection: a keep-alive connection that sends no further
// request is closed at admin.idleTimeout (the header timeout is long, so it is the one acting).
func TestAdminServerClosesAnIdleKeepAliveConnection(t *testing.T) {
	u := startAdminServer(t, func(a *config.Admin) {
		a.IdleTimeout = config.Duration{Duration: 200 * time.Millisecond}
		a.ReadHeaderTimeout, a.ReadTimeout = config.Duration{Duration: time.Minute}, config.Duration{Duration: time.Minute}
	})
	c := dialAdmin(t, u.addr)
	r := bufio.NewReader(c)
	sendGet(t, c, "/healthz")
	if code, body := readAnswer(t, c, r); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("a request on a keep-alive connection: %d %q", code, body)
	}
	if rest := closedByServer(t, c, r); rest != "" {
		t.Errorf("the idle connection got %q before it was closed", rest)
	}
	u.open(t, 0, "the idle connection's slot given back")
}

// TestAdminServerCutsAHalfSentHeader: a client that sends part of its request headers is
// disconnected at admin.readHeaderTimeout (the idle timeout is long).
func TestAdminServerCutsAHalfSentHeader(t *testing.T) {
	u := startAdminServer(t, func(a *config.Admin) {
		a.ReadHeaderTimeout = config.Duration{Duration: 200 * time.Millisecond}
		a.ReadTimeout, a.IdleTimeout = config.Duration{Duration: time.Minute}, config.Duration{Duration: time.Minute}
	})
	c := dialAdmin(t, u.addr)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: adm"); err != nil {
		t.Fatal(err)
	}
	u.open(t, 1, "the slow client accepted")
	if got := closedByServer(t, c, c); got != "" && !strings.HasPrefix(got, "HTTP/1.1 408") {
		t.Errorf("a half-sent header got %q, want the connection closed", got)
	}
	u.open(t, 0, "the slow client's slot given back")
}
