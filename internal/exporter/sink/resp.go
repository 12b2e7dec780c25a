package sink

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// respConns is the standalone mode's write path: connections of its own that speak RESP2 with
// no command objects. A Write appends every command of its pipeline to one buffer, sends it with
// one write and reads the replies in place, so it allocates nothing per entry; go-redis builds a
// command object per XADD and keeps each reply's ID as a string (two allocations and about twice
// the CPU per entry, BenchmarkWrite). Probe, Ping and the operator's reads still use go-redis.
//
// Like the go-redis path, it never resends: a connection that fails mid-pipeline is closed, and
// the commands whose replies were not read get the error.
type respConns struct {
	addr        string
	tls         *tls.Config
	credentials func(context.Context) (string, string, error)
	db          int
	dialTimeout time.Duration
	readTimeout time.Duration
	// writeTimeout bounds sending one pipeline.
	writeTimeout time.Duration
	// slots holds one token per connection that may be open (redis.poolSize); idle holds the
	// open connections not in use.
	slots     chan struct{}
	idle      chan *respConn
	done      chan struct{}
	closeOnce sync.Once
	// progress is when bytes last moved to or from Redis (unix ns): a pipeline of large entries
	// takes a while to send and answer, and is progress all along.
	progress *atomic.Int64
}

type respConn struct {
	nc  net.Conn
	r   *bufio.Reader
	buf []byte
}

func newRESPConns(o *clientOptions) *respConns {
	size := o.cfg.PoolSize
	if size == 0 {
		size = 10 // go-redis's default for one CPU
	}
	// Zero timeouts mean go-redis's defaults, so that both paths read the configuration alike.
	c := &respConns{
		addr: o.addrs[0], credentials: o.credentials, db: o.cfg.DB,
		dialTimeout: cmp.Or(o.cfg.DialTimeout.Duration, 5*time.Second),
		readTimeout: cmp.Or(o.cfg.ReadTimeout.Duration, 3*time.Second),
		slots:       make(chan struct{}, size), idle: make(chan *respConn, size), done: make(chan struct{}),
	}
	c.writeTimeout = cmp.Or(o.cfg.WriteTimeout.Duration, c.readTimeout)
	if c.progress = o.progress; c.progress == nil {
		c.progress = new(atomic.Int64)
	}
	if t := o.tls; t != nil {
		c.tls = t.Clone()
		if c.tls.ServerName == "" {
			c.tls.ServerName, _, _ = net.SplitHostPort(c.addr)
		}
	}
	return c
}

// errClosed is a Write after Close.
var errClosed = errors.New("redis: client is closed")

// get returns an idle connection, or dials one when fewer than poolSize are open.
func (p *respConns) get(ctx context.Context) (*respConn, error) {
	select {
	case <-p.done:
		return nil, errClosed
	case c := <-p.idle:
		return c, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, nil
	case p.slots <- struct{}{}:
		c, err := p.dial(ctx)
		if err != nil {
			<-p.slots
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, errClosed
	}
}

// put returns c to the pool, or closes it when it failed: its replies may be out of step.
func (p *respConns) put(c *respConn, healthy bool) {
	if healthy {
		select {
		case <-p.done:
		default:
			p.idle <- c
			return
		}
	}
	_ = c.nc.Close()
	<-p.slots
}

// close closes the idle connections; those in use are closed when they come back.
func (p *respConns) close() {
	p.closeOnce.Do(func() { close(p.done) })
	for {
		select {
		case c := <-p.idle:
			_ = c.nc.Close()
			<-p.slots
		default:
			return
		}
	}
}

// dial connects, authenticates with the credentials as the files hold them now, and selects
// the database.
func (p *respConns) dial(ctx context.Context) (*respConn, error) {
	d := net.Dialer{Timeout: p.dialTimeout, KeepAlive: 5 * time.Minute}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		hctx, cancel := context.WithTimeout(ctx, p.dialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := &respConn{nc: nc, r: bufio.NewReaderSize(nc, connBufferSize), buf: make([]byte, 0, connBufferSize)}
	hello, err := p.hello(ctx)
	if err == nil && len(hello) > 0 {
		err = p.sendHello(ctx, c, hello)
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

// hello are the commands a new connection sends before any write: AUTH, SELECT.
func (p *respConns) hello(ctx context.Context) ([][]string, error) {
	var hello [][]string
	if p.credentials != nil {
		user, pass, err := p.credentials(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case user != "":
			hello = append(hello, []string{"AUTH", user, pass})
		case pass != "":
			hello = append(hello, []string{"AUTH", pass})
		}
	}
	if p.db != 0 {
		hello = append(hello, []string{"SELECT", strconv.Itoa(p.db)})
	}
	return hello, nil
}

// sendHello sends hello as one pipeline and reads its replies, within the dial timeout.
func (p *respConns) sendHello(ctx context.Context, c *respConn, hello [][]string) error {
	for _, cmd := range hello {
		c.buf = appendArrayLen(c.buf, len(cmd))
		for _, a := range cmd {
			c.buf = appendBulk(c.buf, a)
		}
	}
	deadline := time.Now().Add(p.dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetDeadline(deadline)
	_, err := c.nc.Write(c.buf)
	c.buf = c.buf[:0]
	for range hello {
		if err != nil {
			break
		}
		var rep reply
		if rep, err = c.read(); err == nil {
			err = rep.err
		}
	}
	if err != nil {
		return err
	}
	_ = c.nc.SetDeadline(time.Time{})
	return nil
}

// reply is what one command got back.
type reply struct {
	null bool  // a nil bulk string or array
	n    int64 // an integer reply
	err  error // an error reply, or why there was no reply
}

// do sends the commands args[ends[i-1]:ends[i]] as one pipeline and sets replies[i].
func (p *respConns) do(ctx context.Context, args []any, ends []int, replies []reply) {
	c, err := p.get(ctx)
	if err != nil {
		for i := range replies {
			replies[i] = reply{err: err}
		}
		return
	}
	healthy := false
	defer func() { p.put(c, healthy) }()

	// The caller's deadline bounds the whole pipeline, like the socket timeouts; a cancellation
	// (shutdown) unblocks it at once.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	now := time.Now()
	wd, rd := now.Add(p.writeTimeout), now.Add(p.readTimeout)
	if d, ok := ctx.Deadline(); ok {
		wd, rd = earlier(wd, d), earlier(rd, d)
	}
	_ = c.nc.SetWriteDeadline(wd)
	// The commands go out in connBufferSize pieces, as a bufio.Writer would send them: a
	// 1000-entry pipeline is most of a megabyte, which no connection should keep a buffer for.
	c.buf = c.buf[:0]
	start := 0
	for _, end := range ends {
		c.buf = appendArrayLen(c.buf, end-start)
		for _, a := range args[start:end] {
			c.buf = appendArg(c.buf, a)
		}
		start = end
		if len(c.buf) >= connBufferSize {
			if _, err = c.nc.Write(c.buf); err != nil {
				break
			}
			p.progress.Store(time.Now().UnixNano())
			c.buf = c.buf[:0]
		}
	}
	if err == nil && len(c.buf) > 0 {
		_, err = c.nc.Write(c.buf)
	}
	if cap(c.buf) > 2*connBufferSize {
		c.buf = make([]byte, 0, connBufferSize) // after one huge entry
	}
	_ = c.nc.SetReadDeadline(rd)
	for i := range replies {
		if err == nil {
			replies[i], err = c.read()
			if err == nil && (i%64 == 63 || i == len(replies)-1) {
				p.progress.Store(time.Now().UnixNano())
			}
		}
		if err != nil {
			replies[i] = reply{err: p.transportError(ctx, err)}
		}
	}
	healthy = err == nil
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// transportError is the error of a command whose reply was not read: the context's, when it
// ended the pipeline.
func (p *respConns) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return err
}

// replyError is an error reply from Redis: "OOM command not allowed ...", "WRONGPASS ...". It is
// a redis.Error, so Classify reads its code as it reads go-redis's.
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError marks replyError as a redis.Error.
func (replyError) RedisError() {}

// errProtocol is a reply that is not RESP2.
var errProtocol = errors.New("redis: protocol error in a reply")

// read reads one reply. A non-nil error means the connection is unusable.
func (c *respConn) read() (reply, error) {
	line, err := c.line()
	if err != nil {
		return reply{}, err
	}
	switch line[0] {
	case '+':
		return reply{}, nil
	case '-':
		return reply{err: replyError(line[1:])}, nil
	case ':':
		n, err := parseInt(line[1:])
		return reply{n: n}, err
	case '$':
		n, err := parseInt(line[1:])
		if err != nil || n < 0 {
			return reply{null: true}, err
		}
		_, err = c.r.Discard(int(n) + 2)
		return reply{}, err
	case '*':
		n, err := parseInt(line[1:])
		if err != nil || n < 0 {
			return reply{null: true}, err
		}
		for range n {
			if _, err := c.read(); err != nil {
				return reply{}, err
			}
		}
		return reply{}, nil
	}
	return reply{}, errProtocol
}

// line reads one line and returns it without its CRLF; it points into the reader's buffer.
func (c *respConn) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errProtocol
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errProtocol
	}
	return line[:len(line)-2], nil
}

func parseInt(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64) // the conversion does not allocate
	if err != nil {
		return 0, errProtocol
	}
	return n, nil
}

func appendArrayLen(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendBulk appends s as a RESP bulk string. Most arguments are short (field names, the flat
// format's values): their length is written without strconv, which was a third of the cost of
// building a flat entry's sixty arguments.
func appendBulk[T string | []byte](b []byte, s T) []byte {
	switch n := len(s); {
	case n < 10:
		b = append(b, '$', '0'+byte(n), '\r', '\n')
	case n < 100:
		b = append(b, '$', '0'+byte(n/10), '0'+byte(n%10), '\r', '\n')
	default:
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, '\r', '\n')
	}
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendArg writes one argument as Write builds them: an argument encoded once, a command's
// name, an interned key, or a slice of the batch.
func appendArg(b []byte, a any) []byte {
	switch v := a.(type) {
	case *bulkArg:
		return append(b, v.resp...)
	case string:
		return appendBulk(b, v)
	case *string:
		return appendBulk(b, *v)
	case *rawArg:
		return appendBulk(b, v.b)
	}
	panic(fmt.Sprintf("sink: argument of type %T", a))
}
