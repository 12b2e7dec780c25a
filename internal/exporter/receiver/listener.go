package receiver

import (
	"net"
	"sync"
	"sync/atomic"
)

// Listener bounds the connections open at once on a receiver (receivers.maxConnections). At the
// bound Accept waits until one of them closes, so a new client waits in the kernel's accept
// queue, as with golang.org/x/net/netutil.LimitListener; unlike it, Listener reports how many
// connections are open, for the receiver_connections metric.
type Listener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	open      atomic.Int64
}

// LimitListener returns ln bounded at n connections open at once.
func LimitListener(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
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
	return &limitedConn{Conn: c, l: l}, nil
}

// Close stops accepting; connections already open stay open until their server closes them.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is how many accepted connections are open.
func (l *Listener) Open() int64 { return l.open.Load() }

// limitedConn gives its slot back when it is closed, once.
type limitedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.slots
	})
	return err
}
