package receiver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
)

// recordingFrames keeps what a frameScanner reports.
type recordingFrames struct {
	frames []string
	bytes  map[uint32]int
}

func (r *recordingFrames) frame(typ, flags byte, id uint32, _ int) {
	r.frames = append(r.frames, fmt.Sprintf("%d/%d@%d", typ, flags, id))
}

func (r *recordingFrames) data(id uint32, p []byte) { r.bytes[id] += len(p) }

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

func (r *rawGRPC) send(id uint32, declared, sent int, extra ...[2]string) error {
	r.hbuf.Reset()
	for _, f := range append([][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", exportMethod},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}}, extra...) {
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
	g, addr := meteredReceiver(t, 4<<20, 64<<20, 500*time.Millisecond)
	c := dialRawGRPC(t, addr)
	const sent = 3 << 20
	c.open(t, 1, 4<<20, sent)
	c.open(t, 3, 4<<20, sent)
	waitFor(t, 5*time.Second, func() bool { return g.BufferedBytes() >= 2*sent }, func() string {
		return "the stalled messages' bytes were not counted: " + itoa(g.BufferedBytes())
	})
	if used := g.BufferedBytes(); used > 2*(sent+5) {
		t.Fatalf("budget used %d, more than the two messages' bytes and overhead", used)
	}
	waitFor(t, 10*time.Second, func() bool { return g.BufferedBytes() == 0 }, func() string {
		return "the stalled streams' bytes were not given back after readTimeout: budget used " + itoa(g.BufferedBytes())
	})
}

// Two connections each stalled part way through a message larger than what the bound has left:
// the second waits, never past the bound, and after evictAfter the connection holding the most
// is closed, which gives its bytes back (readTimeout is an hour here: only eviction explains it).
func TestMeterEvictsTheLargestHolderWhenTheBoundIsHeld(t *testing.T) {
	g, addr := meteredReceiver(t, 4<<20, 4<<20, time.Hour)
	a, b := dialRawGRPC(t, addr), dialRawGRPC(t, addr)
	a.open(t, 1, 4<<20, 3<<20)
	waitFor(t, 5*time.Second, func() bool { return g.BufferedBytes() >= 3<<20 }, func() string {
		return "the first stalled message was not counted: " + itoa(g.BufferedBytes())
	})
	go func() { _ = b.send(1, 4<<20, 2<<20) }() // blocks: 1 MiB is left
	peak := int64(0)
	waitFor(t, 10*time.Second, func() bool {
		peak = max(peak, g.BufferedBytes())
		return g.BufferEvictions() == 1
	}, func() string { return "no connection was evicted while the bound was held" })
	if peak > 4<<20 {
		t.Fatalf("the meter held %d bytes, past its bound of %d", peak, 4<<20)
	}
	// The first connection held the most (3 MiB against at most 1 MiB): it is the one closed, and
	// the second's message now arrives whole, so nothing stays counted.
	waitFor(t, 10*time.Second, func() bool { return g.BufferedBytes() <= 2<<20+5 }, func() string {
		return "the evicted connection's bytes were not given back: " + itoa(g.BufferedBytes())
	})
}

// Messages that each arrive part way hold the bound together; none could complete if they only
// waited. Eight clients send 3 MiB at once under a 4 MiB bound: every one is answered well before
// readTimeout (an hour), and some are written.
func TestConcurrentLargeMessagesDoNotWaitForEachOtherForEver(t *testing.T) {
	g, addr := meteredReceiver(t, 4<<20, 4<<20, time.Hour)
	req := traceRequest(1, "big")
	req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = strings.Repeat("x", 3<<20)
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		oks  int
		errs []string
	)
	for range 8 {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b := body
			err := conn.Invoke(ctx, exportMethod, &b, &coltracepb.ExportTraceServiceResponse{}, grpc.ForceCodecV2(rawBytesCodec{}))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				oks++
			} else {
				errs = append(errs, status.Code(err).String())
			}
		}()
	}
	wg.Wait()
	t.Logf("%d written, refused: %v, connections evicted: %d", oks, errs, g.BufferEvictions())
	if oks == 0 {
		t.Fatalf("no message of eight was written: %v", errs)
	}
	for _, e := range errs {
		if e == codes.DeadlineExceeded.String() {
			t.Fatalf("a client waited out its deadline: %v", errs)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return g.BufferedBytes() == 0 }, func() string {
		return "bytes still counted after every answer: " + itoa(g.BufferedBytes())
	})
}

// meteredReceiver serves a gRPC receiver on loopback with the given bounds.
func meteredReceiver(t *testing.T, maxRequest, maxBuffered int64, readTimeout time.Duration) (*GRPC, string) {
	t.Helper()
	cfg := config.Default().Receivers
	cfg.MaxRequestBytes = maxRequest
	cfg.GRPC.MaxBufferedBytes = maxBuffered
	cfg.GRPC.ReadTimeout = config.Duration{Duration: readTimeout}
	return serveGRPC(t, cfg, validatingExporter{}, admission.New(256<<20))
}

// serveGRPC serves a gRPC receiver on loopback until the test ends.
func serveGRPC(t *testing.T, cfg config.Receivers, exp Exporter, mem *admission.Budget) (*GRPC, string) {
	t.Helper()
	g, err := NewGRPC(cfg, exp, mem)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.srv.Stop)
	return g, ln.Addr().String()
}

// rawBytesCodec sends a []byte as the message, as it is.
type rawBytesCodec struct{}

func (rawBytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*(v.(*[]byte)))}, nil
}
func (rawBytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
func (rawBytesCodec) Name() string { return "proto" }

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

// refusalRecorder counts refusals as telemetry would.
type refusalRecorder struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *refusalRecorder) Refused(protocol, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[protocol+"/"+reason]++
}

func (r *refusalRecorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[key]
}

// A grpc-encoding the receiver does not decode is refused by grpc-go before the handler runs:
// the refusal is counted all the same, once, as an encoding refusal.
func TestRefusalsGRPCGoMakesItselfAreCounted(t *testing.T) {
	g, addr := meteredReceiver(t, 4<<20, 4<<20, time.Minute)
	rec := &refusalRecorder{got: map[string]int{}}
	g.Refusals = rec
	c := dialRawGRPC(t, addr)
	if err := c.send(1, 10, 10, [2]string{"grpc-encoding", "br"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rec.count("grpc/encoding") == 1 }, func() string {
		return fmt.Sprintf("refusals %v, want one grpc/encoding", rec.got)
	})
	if len(rec.got) != 1 {
		t.Fatalf("refusals %v, want only the encoding one", rec.got)
	}
}
