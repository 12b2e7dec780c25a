package receiver

import (
	"container/list"
	"net"
	"sync"
	"sync/atomic"
)

// Listener bounds the connections open at once on a server (receivers.maxConnections,
// admin.maxConnections), as golang.org/x/net/netutil.LimitListener does, and reports how many are
// open, for the *_connections metrics. At the bound it makes room by closing the connection that
// has waited longest for a request (evict.go), so that idle connections cannot lock other clients
// out; only while every connection has a request in progress does Accept wait until one closes,
// a new client waiting in the kernel's accept queue.
type Listener struct {
	net.Listener
	bound     int64
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	open      atomic.Int64
	// Evicted counts the connections closed to make room for a new one.
	Evicted atomic.Int64

	mu   sync.Mutex
	idle list.List // of *limitedConn waiting for a request, the longest-waiting first
}

// LimitListener returns ln bounded at n connections open at once.
func LimitListener(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, bound: int64(n), slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection. A connection that takes the last slot
// makes room for the next (see makeRoom).
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	lc := &limitedConn{Conn: c, l: l}
	l.accepted(lc)
	return lc, nil
}

// Close stops accepting; connections already open stay open until their server closes them.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is how many accepted connections are open.
func (l *Listener) Open() int64 { return l.open.Load() }

// limitedConn gives its slot back when it is closed, once, by its server or to make room.
type limitedConn struct {
	net.Conn
	l    *Listener
	once sync.Once

	// Guarded by l.mu.
	waiting *list.Element // its place on l.idle while it waits for a request
	closed  bool          // never on l.idle again

	// On plaintext HTTP/1 servers (see HTTPConnState), headerIn is set when the server has read
	// the blank line that ends a request's headers, before its goroutine reports the request
	// active; tail is the end of what it read before, to find a blank line split across reads.
	// Only the server's goroutine reads; watch is set before it starts.
	watch    bool
	headerIn atomic.Bool
	tail     [3]byte
}

func (c *limitedConn) Close() error {
	c.l.forget(c)
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *limitedConn) release() {
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.slots
	})
}
