package receiver

import (
	"encoding/binary"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"

	"github.com/tracestream/tracestream/internal/exporter/admission"
)

// The gRPC connection meter counts the message bytes a client sends against
// receivers.grpc.maxBufferedBytes as they are read off the connection, before grpc-go buffers
// them.
//
// grpc-go opens a stream's flow-control window to the whole announced message as soon as the
// handler starts reading it, and holds what arrives until the last byte is in: a client that
// stalls one byte short of a maxRequestBytes message on many streams would hold that much per
// stream, unseen by delivery.maxInFlightBytes. The meter reads the HTTP/2 frame headers going both ways (no
// HPACK, no payloads): DATA bytes of an open client stream are claimed from the budget when they
// are read, and given back when the server ends the stream (trailers or RST_STREAM), the client
// resets it, or the connection closes. When the bound cannot cover what was just read, Read waits
// until something is given back: that connection stalls, as TCP flow control would. A stalled
// message still ends at receivers.grpc.readTimeout, which gives its bytes back.
//
// The bound is a budget of its own rather than delivery.maxInFlightBytes: that budget refuses a
// complete request at once with RESOURCE_EXHAUSTED when it cannot hold it, which a client can
// act on, while the meter can only make a connection wait.

// HTTP/2 frame types and flags the meter reads (RFC 9113, section 6).
const (
	frameData      = 0x0
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	flagEndStream  = 0x1
	// http2Preface is the client connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
	http2Preface = 24
)

// meteredListener meters every connection it accepts (plaintext gRPC).
type meteredListener struct {
	net.Listener
	budget *admission.Budget
}

func (l meteredListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newMeteredConn(c, l.budget), nil
}

// meteredCreds meters the plaintext side of every TLS connection.
type meteredCreds struct {
	credentials.TransportCredentials
	budget *admission.Budget
}

func (m meteredCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := m.TransportCredentials.ServerHandshake(c)
	if err != nil {
		return nil, nil, err
	}
	return newMeteredConn(conn, m.budget), info, nil
}

func (m meteredCreds) Clone() credentials.TransportCredentials {
	return meteredCreds{TransportCredentials: m.TransportCredentials.Clone(), budget: m.budget}
}

// meteredConn is one metered gRPC connection. grpc-go reads it from one goroutine and writes it
// from another; the stream table is shared under mu.
type meteredConn struct {
	net.Conn
	budget    *admission.Budget
	closed    chan struct{}
	closeOnce sync.Once

	in      frameScanner // client to server: the reading goroutine only
	out     frameScanner // server to client: the writing goroutine only
	pending []streamBytes
	// lastID is the highest stream the client opened: stream ids only grow (RFC 9113, 5.1.1),
	// so HEADERS on a lower id never opens a stream that no one would end.
	lastID uint32

	mu      sync.Mutex
	streams map[uint32]*admission.Claim // the client's open streams and the DATA bytes each holds
}

type streamBytes struct {
	id uint32
	n  int64
}

func newMeteredConn(c net.Conn, b *admission.Budget) *meteredConn {
	return &meteredConn{Conn: c, budget: b, closed: make(chan struct{}),
		in: frameScanner{skip: http2Preface}, streams: map[uint32]*admission.Claim{}}
}

// Read reads, then claims the DATA bytes read for their streams, waiting for room when the
// budget is held.
func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.pending = c.pending[:0]
		c.in.scan(p[:n], (*clientFrames)(c))
		for _, sb := range c.pending {
			if !c.claim(sb.id, sb.n) {
				return 0, net.ErrClosed
			}
		}
	}
	return n, err
}

// claim grows stream id's claim by n, waiting while the budget cannot cover it. It gives up when
// the stream has ended meanwhile (nothing left to hold) and returns false when the connection
// closed.
func (c *meteredConn) claim(id uint32, n int64) bool {
	for {
		c.mu.Lock()
		cl := c.streams[id]
		if cl == nil {
			c.mu.Unlock()
			return true
		}
		err := cl.Grow(n)
		var freed <-chan struct{}
		if err != nil {
			// Ask to be woken before trying again, so that a release in between is not missed.
			freed = c.budget.Freed()
			err = cl.Grow(n)
		}
		c.mu.Unlock()
		if err == nil {
			return true
		}
		select {
		case <-freed:
		case <-c.closed:
			return false
		}
	}
}

// Write writes, then gives back the bytes of every stream the server ended.
func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.out.scan(p[:n], (*serverFrames)(c))
	}
	return n, err
}

// Close gives back everything the connection's streams hold.
func (c *meteredConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		for id, cl := range c.streams {
			cl.Release()
			delete(c.streams, id)
		}
		c.mu.Unlock()
	})
	return c.Conn.Close()
}

func (c *meteredConn) end(id uint32) {
	c.mu.Lock()
	if cl := c.streams[id]; cl != nil {
		cl.Release()
		delete(c.streams, id)
	}
	c.mu.Unlock()
}

// clientFrames handles the frames a client sends.
type clientFrames meteredConn

func (c *clientFrames) frame(typ, flags byte, id uint32) {
	switch typ {
	case frameHeaders:
		if id <= c.lastID {
			return
		}
		c.lastID = id
		c.mu.Lock()
		if !c.isClosed() {
			cl := c.budget.Claim()
			c.streams[id] = &cl
		}
		c.mu.Unlock()
	case frameRSTStream:
		(*meteredConn)(c).end(id)
	}
}

func (c *clientFrames) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *clientFrames) data(id uint32, n int) {
	if k := len(c.pending); k > 0 && c.pending[k-1].id == id {
		c.pending[k-1].n += int64(n)
		return
	}
	c.pending = append(c.pending, streamBytes{id, int64(n)})
}

// serverFrames handles the frames the server sends.
type serverFrames meteredConn

func (c *serverFrames) frame(typ, flags byte, id uint32) {
	if typ == frameRSTStream || (typ == frameHeaders || typ == frameData) && flags&flagEndStream != 0 {
		(*meteredConn)(c).end(id)
	}
}

func (*serverFrames) data(uint32, int) {}

// frameHandler receives what frameScanner finds: each frame's header, then its payload length
// in pieces as the bytes pass.
type frameHandler interface {
	frame(typ, flags byte, stream uint32)
	data(stream uint32, n int)
}

// frameScanner follows the HTTP/2 frame boundaries of one direction of a connection, however
// the bytes are cut into reads or writes. It never looks inside a payload.
type frameScanner struct {
	skip   int // preface bytes still to pass
	hdr    [9]byte
	hn     int
	left   int // payload bytes of the current frame still to pass
	typ    byte
	stream uint32
}

func (s *frameScanner) scan(b []byte, h frameHandler) {
	for len(b) > 0 {
		switch {
		case s.skip > 0:
			k := min(s.skip, len(b))
			s.skip -= k
			b = b[k:]
		case s.left > 0:
			k := min(s.left, len(b))
			if s.typ == frameData {
				h.data(s.stream, k)
			}
			s.left -= k
			b = b[k:]
		default:
			k := copy(s.hdr[s.hn:], b)
			s.hn += k
			b = b[k:]
			if s.hn < len(s.hdr) {
				return
			}
			s.hn = 0
			s.left = int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
			s.typ = s.hdr[3]
			s.stream = binary.BigEndian.Uint32(s.hdr[5:]) & 0x7fffffff
			h.frame(s.typ, s.hdr[4], s.stream)
		}
	}
}
