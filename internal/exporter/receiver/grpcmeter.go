package receiver

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
// stream, unseen by delivery.maxInFlightBytes. The meter follows the HTTP/2 frames going both ways
// (no HPACK) and, in each client stream's DATA, the gRPC length prefix of the message arriving: it
// claims the bytes of a message not yet complete as they are read, and gives them back once the
// message is complete (the handler then claims it from delivery.maxInFlightBytes), or when the
// stream ends (trailers or RST_STREAM either way) or the connection closes.
//
// When the bound cannot cover what was just read, Read waits until something is given back: that
// connection stalls, as TCP flow control would. Messages that are each part way in could wait for
// one another for ever, so after evictAfter without room the connection holding the most
// incomplete bytes is closed (its clients retry), which also ends a client that stalls messages
// on purpose before others. A stalled message ends anyway at receivers.grpc.readTimeout, and a
// connection whose client does not read what the server writes is cut after the same time.
//
// The bound is a budget of its own rather than delivery.maxInFlightBytes: that budget refuses a
// complete request at once with RESOURCE_EXHAUSTED when it cannot hold it, which a client can act
// on, while the meter can only make a connection wait or close it.
//
// The meter also tells the connection's Listener (evict.go) when the connection has a request in
// progress: from when a stream's header block has arrived (grpc-go then has the request, and
// receivers.grpc.readTimeout bounds its message) until the stream ends. A connection with none
// waits for a request, and may be closed to make room at receivers.maxConnections; a stream whose
// HEADERS frame is stalled part way does not hold its connection's slot.

// HTTP/2 frame types and flags the meter reads (RFC 9113, section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameContinuation = 0x9
	flagEndStream     = 0x1
	flagEndHeaders    = 0x4
	flagPadded        = 0x8
	// http2Preface is the client connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
	http2Preface = 24
)

// evictAfter is how long a connection waits for room in receivers.grpc.maxBufferedBytes before
// the connection holding the most incomplete message bytes is closed.
const evictAfter = time.Second

// meter is what the metered connections of one receiver share.
type meter struct {
	budget       *admission.Budget
	writeTimeout time.Duration // a write the client does not take within this cuts the connection

	mu        sync.Mutex
	conns     map[*meteredConn]struct{}
	lastEvict time.Time    // under mu: one eviction per evictAfter, however many connections wait
	evicted   atomic.Int64 // connections closed because the bound was held
}

func newMeter(b *admission.Budget, writeTimeout time.Duration) *meter {
	return &meter{budget: b, writeTimeout: writeTimeout, conns: map[*meteredConn]struct{}{}}
}

// evictLargest closes the connection whose incomplete messages hold the most of the bound, unless
// another was closed less than evictAfter ago (its bytes may be all the waiters need).
func (m *meter) evictLargest() {
	var (
		victim *meteredConn
		most   int64
	)
	m.mu.Lock()
	now := time.Now()
	if now.Sub(m.lastEvict) < evictAfter {
		m.mu.Unlock()
		return
	}
	m.lastEvict = now
	for c := range m.conns {
		if n := c.held(); n > most {
			victim, most = c, n
		}
	}
	m.mu.Unlock()
	if victim != nil {
		m.evicted.Add(1)
		// Not on this goroutine: closing a TLS connection may wait for its writer, and this is
		// another connection's reader. Close gives the claims back before anything that waits.
		go func() { _ = victim.Close() }()
	}
}

// meteredListener meters every connection it accepts (plaintext gRPC).
type meteredListener struct {
	net.Listener
	m *meter
}

func (l meteredListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newMeteredConn(c, c, l.m), nil
}

// meteredCreds meters the plaintext side of every TLS connection.
type meteredCreds struct {
	credentials.TransportCredentials
	m *meter
}

func (m meteredCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := m.TransportCredentials.ServerHandshake(c)
	if err != nil {
		return nil, nil, err
	}
	return newMeteredConn(conn, c, m.m), info, nil
}

func (m meteredCreds) Clone() credentials.TransportCredentials {
	return meteredCreds{TransportCredentials: m.TransportCredentials.Clone(), m: m.m}
}

// meteredConn is one metered gRPC connection. grpc-go reads it from one goroutine and writes it
// from another; the stream table is shared under mu.
type meteredConn struct {
	net.Conn
	m         *meter
	closed    chan struct{}
	closeOnce sync.Once

	in      frameScanner // client to server: the reading goroutine only
	out     frameScanner // server to client: the writing goroutine only
	touched []uint32     // streams whose DATA this read carried: the reading goroutine only
	// data is the DATA frame passing: whether its pad length is still to come, and how many of
	// its bytes are data rather than padding (the reading goroutine only).
	padPending bool
	dataLeft   int
	// opening is the stream whose header block is arriving, and openingEnd whether the frame
	// passing ends it (END_HEADERS): the reading goroutine only.
	opening    uint32
	openingEnd bool

	// slot is the accepted connection under this one and under any TLS (nil when the listener is
	// not a Listener): it is told when requests start and stop being in progress.
	slot *limitedConn

	mu       sync.Mutex
	streams  map[uint32]*meteredStream // the client's open streams
	requests int                       // open streams whose header block has arrived
}

// meteredStream is one of the client's open streams.
type meteredStream struct {
	claim   admission.Claim // the bytes of its message not yet complete
	request bool            // its header block has arrived: a request is in progress
	// The message arriving: its 5-byte gRPC prefix (flag, length), then need more bytes;
	// incomplete is what grpc-go holds of it, which the claim follows.
	prefix     [5]byte
	pn         int
	need       int64
	incomplete int64
}

// newMeteredConn meters c, which is accepted, or the TLS layer on accepted.
func newMeteredConn(c, accepted net.Conn, m *meter) *meteredConn {
	slot, _ := accepted.(*limitedConn)
	mc := &meteredConn{Conn: c, m: m, closed: make(chan struct{}), slot: slot,
		in: frameScanner{skip: http2Preface}, streams: map[uint32]*meteredStream{}}
	m.mu.Lock()
	m.conns[mc] = struct{}{}
	m.mu.Unlock()
	return mc
}

// Read reads, then makes each stream's claim follow its incomplete message, waiting for room
// when the bound is held.
func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touched = c.touched[:0]
		c.in.scan(p[:n], (*clientFrames)(c))
		if c.in.hn == 0 && c.in.left == 0 {
			(*clientFrames)(c).passed()
		}
		for _, id := range c.touched {
			if !c.settle(id) {
				return 0, net.ErrClosed
			}
		}
	}
	return n, err
}

// settle makes stream id's claim what its incomplete message holds: it gives back what a
// completed message held at once, and waits while the bound cannot cover new bytes. It returns
// false when the connection closed meanwhile.
func (c *meteredConn) settle(id uint32) bool {
	var timer <-chan time.Time
	for {
		c.mu.Lock()
		s := c.streams[id]
		if s == nil { // ended meanwhile: nothing left to hold
			c.mu.Unlock()
			return true
		}
		if s.incomplete <= s.claim.Held() {
			s.claim.ShrinkTo(s.incomplete)
			c.mu.Unlock()
			return true
		}
		want := s.incomplete - s.claim.Held()
		err := s.claim.Grow(want)
		var freed <-chan struct{}
		if err != nil {
			// Ask to be woken before trying again, so that a release in between is not missed.
			freed = c.m.budget.Freed()
			err = s.claim.Grow(want)
		}
		c.mu.Unlock()
		if err == nil {
			return true
		}
		if timer == nil {
			timer = time.After(evictAfter)
		}
		select {
		case <-freed:
		case <-timer:
			timer = nil
			c.m.evictLargest()
		case <-c.closed:
			return false
		}
	}
}

// held is what the connection's incomplete messages hold of the bound.
func (c *meteredConn) held() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, s := range c.streams {
		n += s.claim.Held()
	}
	return n
}

// Write writes, then gives back the bytes of every stream the server ended. A client that does
// not read what the server writes for writeTimeout gets its connection cut (grpc-go's writer
// would otherwise wait for it for ever, and the bytes its streams hold with it).
func (c *meteredConn) Write(p []byte) (int, error) {
	if c.m.writeTimeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(c.m.writeTimeout))
	}
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
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
		c.mu.Lock()
		for id, s := range c.streams {
			s.claim.Release()
			delete(c.streams, id)
		}
		c.requests = 0
		c.mu.Unlock()
	})
	return c.Conn.Close()
}

// end gives back what stream id holds; when it was the last request in progress, the
// connection waits for a request from now.
func (c *meteredConn) end(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[id]
	if s == nil {
		return
	}
	s.claim.Release()
	delete(c.streams, id)
	if s.request {
		c.requests--
		if c.requests == 0 && c.slot != nil {
			c.slot.waitForRequest()
		}
	}
}

// requestIn marks stream id's request in progress, now that its header block has arrived.
func (c *meteredConn) requestIn(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[id]
	if s == nil || s.request {
		return
	}
	s.request = true
	c.requests++
	if c.requests == 1 && c.slot != nil {
		c.slot.serving()
	}
}

// clientFrames handles the frames a client sends.
type clientFrames meteredConn

func (c *clientFrames) frame(typ, flags byte, id uint32, length int) {
	c.passed() // a frame starts once the one before it has passed whole
	switch typ {
	case frameHeaders:
		// Any HEADERS on a stream the meter does not know opens it, even on an id lower than one
		// seen before: grpc-go may have refused a header block without recording its id, and then
		// serve a second one on the same id. (On an id it did record, grpc-go ends the connection,
		// which gives everything back.)
		c.mu.Lock()
		if _, open := c.streams[id]; !open && !c.isClosed() {
			c.streams[id] = &meteredStream{claim: c.m.budget.Claim()}
		}
		c.mu.Unlock()
		c.opening, c.openingEnd = id, flags&flagEndHeaders != 0
	case frameData:
		c.padPending, c.dataLeft = flags&flagPadded != 0, length
	case frameContinuation:
		if id == c.opening {
			c.openingEnd = flags&flagEndHeaders != 0
		}
	case frameRSTStream:
		(*meteredConn)(c).end(id)
	}
}

// passed is called once the frame passing has been read whole: when it ended stream opening's
// header block, that stream's request is in progress.
func (c *clientFrames) passed() {
	if c.opening != 0 && c.openingEnd {
		(*meteredConn)(c).requestIn(c.opening)
		c.opening = 0
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

// data follows the gRPC messages in a DATA frame's payload (padding aside).
func (c *clientFrames) data(id uint32, p []byte) {
	if c.padPending && len(p) > 0 {
		c.padPending = false
		c.dataLeft = max(c.dataLeft-1-int(p[0]), 0)
		p = p[1:]
	}
	k := min(len(p), c.dataLeft)
	c.dataLeft -= k
	if k == 0 {
		return
	}
	p = p[:k]
	c.mu.Lock()
	s := c.streams[id]
	for s != nil && len(p) > 0 {
		if s.need == 0 { // the prefix of the next message
			n := copy(s.prefix[s.pn:], p)
			s.pn += n
			s.incomplete += int64(n)
			p = p[n:]
			if s.pn < len(s.prefix) {
				break
			}
			s.need = int64(binary.BigEndian.Uint32(s.prefix[1:]))
		} else {
			n := int(min(s.need, int64(len(p))))
			s.need -= int64(n)
			s.incomplete += int64(n)
			p = p[n:]
		}
		if s.pn == len(s.prefix) && s.need == 0 { // complete: the handler claims it now
			s.pn, s.incomplete = 0, 0
		}
	}
	c.mu.Unlock()
	if n := len(c.touched); n == 0 || c.touched[n-1] != id {
		c.touched = append(c.touched, id)
	}
}

// serverFrames handles the frames the server sends.
type serverFrames meteredConn

func (c *serverFrames) frame(typ, flags byte, id uint32, _ int) {
	if typ == frameRSTStream || (typ == frameHeaders || typ == frameData) && flags&flagEndStream != 0 {
		(*meteredConn)(c).end(id)
	}
}

func (*serverFrames) data(uint32, []byte) {}

// frameHandler receives what frameScanner finds: each frame's header, then a DATA frame's
// payload in pieces as the bytes pass.
type frameHandler interface {
	frame(typ, flags byte, stream uint32, length int)
	data(stream uint32, payload []byte)
}

// frameScanner follows the HTTP/2 frame boundaries of one direction of a connection, however
// the bytes are cut into reads or writes. Of the payloads it hands on DATA only.
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
				h.data(s.stream, b[:k])
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
			h.frame(s.typ, s.hdr[4], s.stream, s.left)
		}
	}
}
