package receiver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
)

// recordingFrames keeps what a frameScanner reports.
type recordingFrames struct {
	frames []string
	bytes  map[uint32]int
}

func (r *recordingFrames) frame(typ, flags byte, id uint32) {
	r.frames = append(r.frames, fmt.Sprintf("%d/%d@%d", typ, flags, id))
}

func (r *recordingFrames) data(id uint32, n int) { r.bytes[id] += n }

// The scanner finds the same frames and DATA lengths however the bytes are cut.
func TestFrameScannerFollowsFramesAcrossAnyCut(t *testing.T) {
	var wire bytes.Buffer
	wire.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&wire, nil)
	_ = fr.WriteSettings()
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: true})
	_ = fr.WriteData(1, false, bytes.Repeat([]byte{1}, 1000))
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0x82}, EndHeaders: true})
	_ = fr.WriteDataPadded(3, true, bytes.Repeat([]byte{2}, 300), make([]byte, 20))
	_ = fr.WriteData(1, true, bytes.Repeat([]byte{1}, 24))
	_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	want := []string{"4/0@0", "1/4@1", "0/0@1", "1/4@3", "0/9@3", "0/1@1", "3/0@3"}
	wantData := map[uint32]int{1: 1024, 3: 321} // padded: the pad length byte and the padding count

	for _, cut := range []int{1, 2, 7, 9, 10, 64, 4096} {
		s := frameScanner{skip: http2Preface}
		got := &recordingFrames{bytes: map[uint32]int{}}
		b := wire.Bytes()
		for len(b) > 0 {
			k := min(cut, len(b))
			s.scan(b[:k], got)
			b = b[k:]
		}
		if strings.Join(got.frames, " ") != strings.Join(want, " ") {
			t.Errorf("cut every %d bytes: frames %v, want %v", cut, got.frames, want)
		}
		if got.bytes[1] != wantData[1] || got.bytes[3] != wantData[3] {
			t.Errorf("cut every %d bytes: data %v, want %v", cut, got.bytes, wantData)
		}
	}
}

// rawGRPC is a gRPC client written with x/net/http2's Framer, so that a test can stop a message
// short of its last byte. It honours the server's flow control, as a real client must.
type rawGRPC struct {
	conn net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder

	mu     sync.Mutex // credit
	cond   *sync.Cond
	credit map[uint32]int64 // the server's window left per stream; 0 is the connection
}

func dialRawGRPC(t *testing.T, addr string) *rawGRPC {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawGRPC{conn: c, fr: http2.NewFramer(c, c), credit: map[uint32]int64{0: 65535}}
	r.cond = sync.NewCond(&r.mu)
	t.Cleanup(func() {
		_ = c.Close()
		r.mu.Lock()
		r.credit = nil
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	r.henc = hpack.NewEncoder(&r.hbuf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go func() { // the server's window updates (grpc-go needs no settings ack to serve)
		for {
			f, err := r.fr.ReadFrame()
			r.mu.Lock()
			if err != nil {
				r.credit = nil
				r.cond.Broadcast()
				r.mu.Unlock()
				return
			}
			if w, ok := f.(*http2.WindowUpdateFrame); ok && r.credit != nil {
				r.credit[w.StreamID] += int64(w.Increment)
				r.cond.Broadcast()
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// open starts an Export request on stream id and sends the first sent bytes of a message that
// announces declared bytes.
func (r *rawGRPC) open(t *testing.T, id uint32, declared, sent int) {
	t.Helper()
	if err := r.send(id, declared, sent); err != nil {
		t.Fatal(err)
	}
}

func (r *rawGRPC) send(id uint32, declared, sent int) error {
	r.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", exportMethod},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = r.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	r.mu.Lock()
	if r.credit != nil {
		r.credit[id] += streamWindow
	}
	r.mu.Unlock()
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndHeaders: true}); err != nil {
		return err
	}
	msg := make([]byte, 5+sent)
	binary.BigEndian.PutUint32(msg[1:], uint32(declared))
	for len(msg) > 0 {
		r.mu.Lock()
		for r.credit != nil && (r.credit[id] <= 0 || r.credit[0] <= 0) {
			r.cond.Wait()
		}
		if r.credit == nil {
			r.mu.Unlock()
			return net.ErrClosed
		}
		k := int(min(int64(len(msg)), 16<<10, r.credit[id], r.credit[0]))
		r.credit[id] -= int64(k)
		r.credit[0] -= int64(k)
		r.mu.Unlock()
		if err := r.fr.WriteData(id, false, msg[:k]); err != nil {
			return err
		}
		msg = msg[k:]
	}
	return nil
}

// A message stalled short of its last byte holds what it sent, counted in the budget, until
// readTimeout ends its stream; then the budget is whole again.
func TestStalledGRPCMessageIsCountedAndEndsAtTheReadTimeout(t *testing.T) {
	cfg := config.Default().Receivers
	cfg.MaxRequestBytes = 4 << 20
	cfg.GRPC.ReadTimeout = config.Duration{Duration: 500 * time.Millisecond}
	g, err := NewGRPC(cfg, validatingExporter{}, admission.New(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(func() { g.srv.Stop() })

	c := dialRawGRPC(t, ln.Addr().String())
	const sent = 3 << 20
	c.open(t, 1, 4<<20, sent)
	c.open(t, 3, 4<<20, sent)
	waitFor(t, 5*time.Second, func() bool { return g.BufferedBytes() >= 2*sent }, func() string {
		return "the stalled messages' bytes were not counted: budget used " + itoa(g.BufferedBytes())
	})
	if used := g.BufferedBytes(); used > 2*(sent+5) {
		t.Fatalf("budget used %d, more than the two messages' bytes and overhead", used)
	}
	waitFor(t, 10*time.Second, func() bool { return g.BufferedBytes() == 0 }, func() string {
		return "the stalled streams' bytes were not given back after readTimeout: budget used " + itoa(g.BufferedBytes())
	})
}

// A connection whose bytes the budget cannot cover waits: it never holds more than the budget,
// and readTimeout ends the stalled stream and gives its bytes back.
func TestMeteredConnectionWaitsAtTheBudget(t *testing.T) {
	cfg := config.Default().Receivers
	cfg.MaxRequestBytes = 4 << 20
	cfg.GRPC.ReadTimeout = config.Duration{Duration: time.Second}
	const budget = 2 << 20
	cfg.GRPC.MaxBufferedBytes = budget
	g, err := NewGRPC(cfg, validatingExporter{}, admission.New(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(func() { g.srv.Stop() })

	c := dialRawGRPC(t, ln.Addr().String())
	sent := make(chan error, 1)
	go func() { sent <- c.send(1, 4<<20, 3<<20) }() // blocks while the server waits for room
	waitFor(t, 5*time.Second, func() bool { return g.BufferedBytes() > budget/2 }, func() string {
		return "the budget was not held by the stalled message: used " + itoa(g.BufferedBytes())
	})
	if used := g.BufferedBytes(); used > budget {
		t.Fatalf("budget used %d of %d", used, budget)
	}
	waitFor(t, 10*time.Second, func() bool { return g.BufferedBytes() == 0 }, func() string {
		return "the stalled stream's bytes were not given back after readTimeout: used " + itoa(g.BufferedBytes())
	})
	_ = c.conn.Close()
	<-sent
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
