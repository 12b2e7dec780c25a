package service

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/receiver"
)

// adminMaxHeaderBytes bounds a request's headers on the admin endpoint: its clients (the
// kubelet's probes, Prometheus, the operator) send a GET with a few short headers.
const adminMaxHeaderBytes = 16 << 10

// adminServer is the admin endpoint: an HTTP server with the admin.* timeouts, on a listener
// bounded at admin.maxConnections, so that connections to the admin port cannot take the file
// descriptors the receivers need.
//
// A bound alone would let anyone who opens maxConnections silent connections starve the
// kubelet's probes: a new connection waits in the accept queue behind all the others until
// timeouts free their slots (measured: /healthz answered 3m50s into a flood of 3,000 idle
// connections). So, as nginx reuses idle connections when worker_connections run out, when a new
// connection takes the last slot the connection that has waited longest for a request, and has
// sent none of it yet, is closed to make room; so is the longest idle one when a request ends
// with every slot taken. A connection with a request in progress, or whose request is arriving,
// is never closed for this.
type adminServer struct {
	*http.Server
	endpoint string
	bound    int64
	ln       *receiver.Listener // set by listen

	mu   sync.Mutex
	idle map[*adminConn]uint64 // connections between requests, by when they became so
	seq  uint64
	// evicted counts the connections closed to make room.
	evicted atomic.Int64
}

func newAdminServer(cfg config.Admin, h http.Handler) *adminServer {
	a := &adminServer{endpoint: cfg.Endpoint, bound: int64(cfg.MaxConnections), idle: map[*adminConn]uint64{}}
	a.Server = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.ReadTimeout.Duration,
		WriteTimeout:      cfg.WriteTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ConnState:         a.connState,
	}
	return a
}

// listen binds admin.endpoint, bounded at admin.maxConnections; Open on the bounded listener
// counts the connections.
func (a *adminServer) listen() (net.Listener, *receiver.Listener, error) {
	ln, err := net.Listen("tcp", a.endpoint)
	if err != nil {
		return nil, nil, err
	}
	tcp := &tcpListener{TCPListener: ln.(*net.TCPListener)}
	a.ln = receiver.LimitListener(tcp, int(a.bound))
	return &adminListener{Listener: a.ln, tcp: tcp}, a.ln, nil
}

// connState keeps the connections that are between requests and, while every slot is taken,
// closes the one of them that has waited longest, so that the next connection in the accept
// queue is accepted too. It acts when a connection takes the last slot (StateNew, called from
// the server's accept loop) and when one finishes a request with every slot taken (StateIdle).
func (a *adminServer) connState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*adminConn)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch s {
	case http.StateNew, http.StateIdle:
		a.seq++
		a.idle[c] = a.seq
		c.headerIn.Store(false) // the next request has not arrived yet
		c.tail = [3]byte{}
	default:
		delete(a.idle, c)
	}
	if (s != http.StateNew && s != http.StateIdle) || a.ln.Open() < a.bound {
		return
	}
	var oldest *adminConn
	for ic, since := range a.idle {
		newcomer := s == http.StateNew && ic == c // its request may not have arrived yet
		if !newcomer && (oldest == nil || since < a.idle[oldest]) && !ic.requestArriving() {
			oldest = ic
		}
	}
	if oldest != nil {
		delete(a.idle, oldest)
		_ = oldest.Close() // gives its slot back; the server's goroutine for it ends on the error
		a.evicted.Add(1)
	}
}

// adminListener is the bounded listener whose connections carry their TCP connection, so that
// connState can look into their receive buffer.
type adminListener struct {
	*receiver.Listener
	tcp *tcpListener
}

// Accept is called from the server's accept loop only; the bounded listener's Accept returns
// the connection that tcp.Accept has just returned.
func (l *adminListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &adminConn{Conn: c, tcp: l.tcp.last}, nil
}

// tcpListener remembers the last connection it accepted.
type tcpListener struct {
	*net.TCPListener
	last *net.TCPConn
}

func (l *tcpListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	l.last = c
	return c, nil
}

// adminConn is a bounded connection (closing it gives its slot back) and the TCP connection
// under it.
type adminConn struct {
	net.Conn
	tcp *net.TCPConn
	// headerIn is set when the server has read the blank line that ends a request's headers,
	// before its goroutine gets to report the request active; tail is the end of what it read
	// before, to find a blank line split across reads. Only the server's goroutine reads.
	headerIn atomic.Bool
	tail     [3]byte
}

func (c *adminConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.headerIn.Load() {
		seen := append(c.tail[:], p[:n]...)
		if bytes.Contains(seen, []byte("\r\n\r\n")) {
			c.headerIn.Store(true)
		}
		copy(c.tail[:], seen[len(seen)-3:])
	}
	return n, err
}

// requestArriving reports whether a request is on its way in: its headers have been read, or
// bytes wait in the socket for the server to read them. A connection that sent part of a header
// and went silent is not: it holds a slot for no one.
func (c *adminConn) requestArriving() bool {
	return c.headerIn.Load() || c.bytesWaiting()
}
