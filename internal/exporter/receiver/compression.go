package receiver

// compression.go is the one home of the receivers' codecs: the Content-Encodings OTLP/HTTP
// accepts and the compressors registered with grpc for OTLP/gRPC. Every name the OpenTelemetry
// Collector's OTLP exporters send is accepted, decoded by the libraries the Collector uses
// (config/confighttp/compression.go and config/configgrpc/internal/grpccompression at v0.162.0),
// and bounded: the decoded bytes by receivers.maxRequestBytes, the memory a decoder holds on the
// client's say (a zstd window, lz4 and snappy block buffers) by the request's claim on the memory
// budget, and by a fixed ceiling per codec.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"

	"github.com/tracestream/tracestream/internal/exporter/admission"
)

// httpEncodings are the Content-Encoding names OTLP/HTTP accepts, matched case-insensitively
// after trimming spaces. "deflate" is zlib-wrapped DEFLATE (RFC 9110), as in the Collector.
// "snappy" is the block format, or the framed format when the body starts with the framing
// format's stream identifier (the Collector sniffs it the same way: Collectors before v0.131
// sent framed snappy under this name); "x-snappy-framed" is always the framed format.
var httpEncodings = []string{"identity", "gzip", "x-gzip", "deflate", "zlib", "zstd", "snappy", "x-snappy-framed", "lz4"}

const (
	// zstdMaxWindow is the largest zstd window decoded, on both transports. 8 MiB is the window
	// the zstd format asks every decoder to support, and the one the Collector's HTTP exporter
	// declares for any body larger than one 128 KiB block (klauspost's streaming encoder), so a
	// smaller ceiling would refuse it for good.
	zstdMaxWindow = 8 << 20
	// lz4BufferBytes is what an lz4 frame reader holds: a compressed and a decoded block of the
	// largest block size, 4 MiB, which is also the Collector's lz4 writer's block size.
	lz4BufferBytes = 2 * (4 << 20)
)

// snappyFramingHeader opens every snappy framed stream: a stream identifier chunk, "sNaPpY".
var snappyFramingHeader = []byte{0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'}

// decodeBody returns the body of a request sent with contentEncoding, decoded. Memory that a
// decoder must hold before it produces anything (and which the client chooses) is claimed first;
// the decoded bytes are not: the caller claims them as it reads. A body that cannot be decoded
// is a *bodyError naming its encoding (INVALID_ARGUMENT, or RESOURCE_EXHAUSTED when it asks for
// more than the limits), an unknown encoding a *bodyError naming the accepted ones. Errors of the body itself (too
// large, too slow, cut) come back as they are.
func decodeBody(contentEncoding string, body io.Reader, limit int64, claim *admission.Claim) (io.ReadCloser, error) {
	name := strings.ToLower(strings.TrimSpace(contentEncoding))
	src := &sourceReader{r: body}
	d := &decodedReader{name: name, src: src}
	var err error
	switch name {
	case "", "identity":
		return io.NopCloser(body), nil
	case "gzip", "x-gzip":
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(src); err == nil {
			d.r, d.close = zr, func() { _ = zr.Close() }
		}
	case "deflate", "zlib":
		var zr io.ReadCloser
		if zr, err = zlib.NewReader(src); err == nil {
			d.r, d.close = zr, func() { _ = zr.Close() }
		}
	case "zstd":
		err = d.openZstd(claim)
	case "snappy":
		err = d.openSnappy(limit, claim)
	case "x-snappy-framed":
		d.r = snappy.NewReader(src)
	case "lz4":
		if err = claim.Grow(lz4BufferBytes); err == nil {
			d.r = lz4.NewReader(src)
		}
	default:
		return nil, &bodyError{codes.InvalidArgument, fmt.Sprintf(
			"unsupported Content-Encoding %q: send one of %s (case-insensitive), or none", contentEncoding, strings.Join(httpEncodings, ", ")), reasonEncoding}
	}
	if err != nil {
		_ = d.Close()
		return nil, d.fail(err, limit)
	}
	return d, nil
}

// openZstd reads the first frame's header, refuses a window above zstdMaxWindow, claims the
// history buffer the decoder allocates for that window, and holds any later frame of the body to
// the same window, so the claim covers the whole body.
func (d *decodedReader) openZstd(claim *admission.Claim) error {
	br := bufio.NewReader(d.src)
	head, err := br.Peek(zstd.HeaderMaxSize)
	if len(head) == 0 {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		d.r = bytes.NewReader(nil) // an empty body, as the decoder reads it: an empty request
		return nil
	}
	var h zstd.Header
	if err := h.Decode(head); err != nil {
		return err
	}
	window := uint64(zstdMaxWindow) // a body opening with a skippable frame: the ceiling
	switch {
	case h.Skippable:
	case h.SingleSegment:
		window = h.FrameContentSize
	default:
		window = h.WindowSize
	}
	window = max(window, zstd.MinWindowSize)
	if window > zstdMaxWindow {
		return zstd.ErrWindowSizeExceeded
	}
	if err := claim.Grow(zstdHistoryBytes(window)); err != nil {
		return err
	}
	dec := zstdDecoders.Get().(*zstd.Decoder)
	d.close = func() { putZstdDecoder(dec) }
	if err := dec.ResetWithOptions(br, zstd.WithDecoderMaxWindow(window)); err != nil {
		return err
	}
	d.r = dec
	return nil
}

// zstdHistoryBytes is the history buffer a low-memory zstd decoder allocates for a window: twice
// the window below one 2 MiB block, the window and half a block above.
func zstdHistoryBytes(window uint64) int64 {
	const maxBlock = 2 << 20
	if window < maxBlock {
		return int64(2 * window)
	}
	return int64(window) + maxBlock/2
}

// openSnappy decodes framed snappy as a stream, and block snappy, which needs the whole input,
// after checking its decoded length against the limit: the compressed and the decoded copy are
// claimed before they are allocated.
func (d *decodedReader) openSnappy(limit int64, claim *admission.Claim) error {
	br := bufio.NewReader(d.src)
	head, err := br.Peek(len(snappyFramingHeader))
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if bytes.Equal(head, snappyFramingHeader) {
		d.r = snappy.NewReader(br)
		return nil
	}
	head, err = br.Peek(binary.MaxVarintLen32)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	n, err := snappy.DecodedLen(head)
	if err != nil {
		return err
	}
	if int64(n) > limit {
		return errDecodedTooLarge
	}
	var compressed bytes.Buffer
	if _, err := compressed.ReadFrom(&claimedReader{r: br, claim: claim}); err != nil {
		return err
	}
	if err := claim.Grow(int64(n)); err != nil {
		return err
	}
	decoded, err := snappy.Decode(make([]byte, n), compressed.Bytes())
	if err != nil {
		return err
	}
	d.r = bytes.NewReader(decoded)
	return nil
}

// errDecodedTooLarge is a body that says, before it is decoded, that it decodes past the limit.
var errDecodedTooLarge = errors.New("decoded size above the limit")

// decodedReader is a request body's decoder. Its errors say which encoding failed; an error of
// the compressed body itself (recorded by src) wins over what the decoder made of it.
type decodedReader struct {
	name  string
	src   *sourceReader
	r     io.Reader
	close func()
}

func (d *decodedReader) Read(p []byte) (n int, err error) {
	defer func() {
		if v := recover(); v != nil { // a decoder's bug on hostile input is that input's 400
			n, err = 0, fmt.Errorf("decoder panic: %v", v)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			err = d.fail(err, 0)
		}
	}()
	return d.r.Read(p)
}

// Close gives the decoder back; the body is the server's to close.
func (d *decodedReader) Close() error {
	if d.close != nil {
		d.close()
		d.close = nil
	}
	return nil
}

// fail turns a decoder's error into the answer the client gets.
func (d *decodedReader) fail(err error, limit int64) error {
	var be *bodyError
	var memErr *admission.ExhaustedError
	switch {
	case d.src.err != nil:
		return d.src.err
	case errors.As(err, &be), errors.As(err, &memErr):
		return err
	case errors.Is(err, errDecodedTooLarge):
		return &bodyError{codes.ResourceExhausted, fmt.Sprintf("%s body decodes to more than %d bytes", d.name, limit), reasonTooLarge}
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return &bodyError{codes.ResourceExhausted, fmt.Sprintf(
			"zstd frame needs a window larger than this receiver decodes (%d bytes, and no more than the body's first frame)", zstdMaxWindow), reasonTooLarge}
	}
	return &bodyError{codes.InvalidArgument, fmt.Sprintf("invalid %s body: %v", d.name, err), reasonMalformed}
}

// sourceReader records the first error of the compressed body other than its end.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// zstdDecoders are synchronous (concurrency 1: no goroutines to leak or stop), low-memory zstd
// decoders, shared by both transports; each use sets its own window bound.
var zstdDecoders = sync.Pool{New: func() any {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		// For a stream, the maximum memory bounds the window; the decoded bytes are bounded by
		// the readers' limits instead.
		zstd.WithDecoderMaxMemory(zstdMaxWindow),
		// Never decode a whole buffered input in one go, past the readers' limits.
		zstd.WithDecodeBuffersBelow(0),
	)
	if err != nil {
		panic(fmt.Sprintf("zstd decoder options: %v", err)) // constant options: a programming error
	}
	return dec
}}

// putZstdDecoder drops the decoder's reference to its input and pools it.
func putZstdDecoder(dec *zstd.Decoder) {
	if err := dec.Reset(nil); err == nil {
		zstdDecoders.Put(dec)
	}
}

// decodeInto reads src, sent with the encoding named enc, into buf decoded: the decoded bytes
// are claimed from the request's budget as they are produced and stop at limit+1, so a small
// compressed message never holds more than its claim. A body larger than limit once decoded is a
// *bodyError (tooLarge); the budget's refusal comes back as its *admission.ExhaustedError; errors of src
// itself come back as they are, for the transport to name.
func decodeInto(buf *bytes.Buffer, enc string, src io.Reader, limit int64, claim *admission.Claim) error {
	dec, err := decodeBody(enc, src, limit, claim)
	if err != nil {
		return err
	}
	n, err := buf.ReadFrom(&claimedReader{r: io.LimitReader(dec, limit+1), claim: claim})
	_ = dec.Close()
	var memErr *admission.ExhaustedError
	switch {
	case errors.As(err, &memErr):
		return memErr
	case n > limit:
		return tooLarge(limit)
	}
	return err
}

// tooLarge is the refusal of a body larger than limit bytes, as sent or once decoded.
func tooLarge(limit int64) *bodyError {
	return &bodyError{codes.ResourceExhausted, fmt.Sprintf("request body larger than %d bytes (after decompression)", limit), reasonTooLarge}
}

// claimedReader counts what it reads against a request's claim on the memory budget.
type claimedReader struct {
	r     io.Reader
	claim *admission.Claim
}

func (c *claimedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if gerr := c.claim.Grow(int64(n)); gerr != nil {
		return n, gerr
	}
	return n, err
}

// gRPC: grpc-go would decompress a message itself, into memory no budget sees, before the
// handler runs (a 16 KiB gzip message inflates to maxRequestBytes, on every stream at once). So
// the compressors registered here compress replies, but hand a received message over as it was
// sent: the handler decodes it with decodeInto, under the request's claim, as OTLP/HTTP does, and
// answers a corrupt one INVALID_ARGUMENT. The names are the ones the Collector's configgrpc
// sends: gzip, zstd and snappy (the framed format, which decodeBody's "snappy" recognises).
func init() {
	for _, c := range []replyCompressor{encoding.GetCompressor("gzip"), &grpcZstd{}, &grpcSnappy{}} {
		encoding.RegisterCompressor(decodedByHandler{c})
	}
}

// replyCompressor is the half of a grpc compressor the receiver uses.
type replyCompressor interface {
	Name() string
	Compress(w io.Writer) (io.WriteCloser, error)
}

// decodedByHandler is a grpc compressor whose Decompress passes the message through.
type decodedByHandler struct{ replyCompressor }

func (decodedByHandler) Decompress(r io.Reader) (io.Reader, error) { return r, nil }

// grpcZstd compresses "zstd" replies as the Collector's configgrpc does.
type grpcZstd struct{ encoders sync.Pool }

func (*grpcZstd) Name() string { return "zstd" }

func (c *grpcZstd) Compress(w io.Writer) (io.WriteCloser, error) {
	return pooledCompress(&c.encoders, w, func(w io.Writer) (resetWriter, error) {
		// The Collector's window: replies are small, and so is what the client must hold.
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(512<<10))
	})
}

// grpcSnappy compresses "snappy" replies in the framing format, as the Collector's configgrpc
// does.
type grpcSnappy struct{ writers sync.Pool }

func (*grpcSnappy) Name() string { return "snappy" }

func (c *grpcSnappy) Compress(w io.Writer) (io.WriteCloser, error) {
	return pooledCompress(&c.writers, w, func(w io.Writer) (resetWriter, error) {
		return snappy.NewBufferedWriter(w), nil
	})
}

// resetWriter is a compressing writer that can be pointed at another destination, so that one
// can be kept in a pool: building one allocates its tables and buffers.
type resetWriter interface {
	io.WriteCloser
	Reset(w io.Writer)
}

// pooledCompress returns a writer compressing into w, taken from pool (or made by open when the
// pool is empty); closing it puts it back.
func pooledCompress(pool *sync.Pool, w io.Writer, open func(io.Writer) (resetWriter, error)) (io.WriteCloser, error) {
	rw, _ := pool.Get().(resetWriter)
	if rw == nil {
		var err error
		if rw, err = open(w); err != nil {
			return nil, err
		}
	} else {
		rw.Reset(w)
	}
	return &pooledWriter{w: rw, pool: pool}, nil
}

// pooledWriter flushes its compressor on Close and puts it back in its pool; a second Close does
// nothing, so the compressor is never in the pool twice.
type pooledWriter struct {
	w    resetWriter
	pool *sync.Pool
}

func (p *pooledWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *pooledWriter) Close() error {
	if p.w == nil {
		return nil
	}
	err := p.w.Close()
	p.w.Reset(nil)
	p.pool.Put(p.w)
	p.w = nil
	return err
}
