package receiver

import (
	"bytes"
	"net"
	"net/http"
)

// Making room at the connection bound.
//
// A bound alone lets anyone who opens maxConnections connections and sends nothing lock every
// other client out: a new connection waits in the accept queue behind them until timeouts free
// their slots (measured on the admin port: /healthz answered 3m50s into a flood of 3,000 idle
// connections), while OTel clients give up after about 10s. So, as nginx reuses idle
// connections when worker_connections run out, when a new connection takes the last slot the
// connection that has waited longest for a request is closed to make room; so is the
// longest-waiting one when a request ends with every slot taken. A connection with a request in
// progress, or whose request is arriving (its bytes wait in the socket, or its HTTP/1 headers
// have been read), is never closed for this: while every connection has one, a new connection
// waits in the accept queue, and the servers' read timeouts bound how long.
//
// Each server tells its Listener when a connection waits for a request:
//   - HTTP servers (the OTLP/HTTP receiver, the admin endpoint), through HTTPConnState: from
//     accept and between requests (HTTP/2: while it has no stream open);
//   - the OTLP/gRPC receiver, through its connection meter (grpcmeter.go): from accept and while
//     it has no stream open whose header block has arrived.
//
// A connection waits from when it was accepted or its last request ended; the one that has
// waited longest goes first, and a connection just accepted, whose request cannot have arrived
// yet, never makes room for itself. Eviction closes the accepted connection, under any TLS
// layer, and gives its slot back; its server then fails to read and closes it too, which gives
// nothing back twice.

var headerEnd = []byte("\r\n\r\n")

// accepted puts a new connection on the waiting list and, when it took the last slot, makes room
// for the next one.
func (l *Listener) accepted(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.waiting = l.idle.PushBack(c)
	l.makeRoom(c)
}

// waitForRequest puts c at the end of the waiting list (its request ended) and, with every slot
// taken, makes room.
func (c *limitedConn) waitForRequest() {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	if c.waiting != nil {
		l.idle.MoveToBack(c.waiting)
	} else {
		c.waiting = l.idle.PushBack(c)
	}
	l.makeRoom(nil)
}

// serving takes c off the waiting list: it has a request in progress.
func (c *limitedConn) serving() {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.waiting != nil {
		c.l.idle.Remove(c.waiting)
		c.waiting = nil
	}
}

// forget takes c off the waiting list for good: it is closing.
func (l *Listener) forget(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.waiting != nil {
		l.idle.Remove(c.waiting)
		c.waiting = nil
	}
	c.closed = true
}

// makeRoom closes, when every slot is taken, the connection that has waited longest for a
// request and whose request is not arriving, other than newcomer. l.mu is held.
func (l *Listener) makeRoom(newcomer *limitedConn) {
	if l.open.Load() < l.bound {
		return
	}
	for e := l.idle.Front(); e != nil; e = e.Next() {
		c := e.Value.(*limitedConn)
		if c == newcomer || c.requestArriving() {
			continue
		}
		l.idle.Remove(e)
		c.waiting, c.closed = nil, true
		_ = c.Conn.Close() // its server fails to read and closes it again: release runs once
		c.release()
		l.Evicted.Add(1)
		return
	}
}

// requestArriving reports whether a request is on its way in: its HTTP/1 headers have been
// read, or bytes wait in the socket for the server to read them. A connection that sent part of
// a request's headers and went silent is not: it holds a slot for no one.
func (c *limitedConn) requestArriving() bool {
	return c.headerIn.Load() || bytesWaiting(c.Conn)
}

// HTTPConnState is the http.Server ConnState hook of a server on a Listener: it tells the
// Listener which connections wait for a request. Connections from other listeners are left
// alone.
func HTTPConnState(nc net.Conn, s http.ConnState) {
	c, plain := nc.(*limitedConn)
	if !plain {
		tc, ok := nc.(interface{ NetConn() net.Conn }) // *tls.Conn
		if !ok {
			return
		}
		if c, ok = tc.NetConn().(*limitedConn); !ok {
			return
		}
	}
	switch s {
	case http.StateNew:
		// Waiting since Accept. The end of a request's headers can only be seen in plaintext:
		// under TLS, a request whose headers the server has read but not yet reported active
		// is not told apart (the server's goroutine has not started: no Read races this).
		c.watch = plain
	case http.StateIdle:
		if c.watch {
			c.headerIn.Store(false) // the next request has not arrived yet
			c.tail = [3]byte{}
		}
		c.waitForRequest()
	default: // StateActive, StateHijacked, StateClosed
		c.serving()
	}
}

// Read reads; on a watched connection between requests, it looks for the end of the request's
// headers in what was read.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.watch && !c.headerIn.Load() {
		c.scanHeader(p[:n])
	}
	return n, err
}

// scanHeader sets headerIn when b, after what was read before it, holds a blank line, without
// copying b.
func (c *limitedConn) scanHeader(b []byte) {
	var edge [6]byte
	copy(edge[:], c.tail[:])
	m := copy(edge[3:], b)
	if bytes.Contains(edge[:3+m], headerEnd) || bytes.Contains(b, headerEnd) {
		c.headerIn.Store(true)
	}
	if len(b) >= 3 {
		copy(c.tail[:], b[len(b)-3:])
	} else {
		copy(c.tail[:], edge[m:3+m])
	}
}
