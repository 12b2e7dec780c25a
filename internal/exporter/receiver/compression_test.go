package receiver

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

// testMaxRequest is receivers.maxRequestBytes in these tests; testBudget the memory budget.
const (
	testMaxRequest = 1 << 20
	testBudget     = 64 << 20
)

// recordingExporter stands in for the pipeline: it claims what it is handed, as the pipeline
// does, and keeps a copy.
type recordingExporter struct {
	mu  sync.Mutex
	got [][]byte
}

func (e *recordingExporter) Export(_ context.Context, req []byte, _ string, mem *admission.Claim) (pipeline.Result, error) {
	if err := mem.Grow(int64(len(req))); err != nil {
		return pipeline.Result{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, bytes.Clone(req))
	return pipeline.Result{}, nil
}

func (e *recordingExporter) requests() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got
}

// traceRequest is an OTLP request of n spans; large ones span several blocks of every codec.
func traceRequest(n int, name string) *coltracepb.ExportTraceServiceRequest {
	spans := make([]*tracepb.Span, n)
	for i := range spans {
		spans[i] = &tracepb.Span{
			TraceId: bytes.Repeat([]byte{byte(i)}, 16), SpanId: bytes.Repeat([]byte{byte(i >> 8), byte(i)}, 4),
			Name: fmt.Sprintf("%s-%d", name, i), StartTimeUnixNano: uint64(i), EndTimeUnixNano: uint64(i) + 1000,
			Attributes: []*commonpb.KeyValue{{Key: "http.route", Value: &commonpb.AnyValue{
				Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("/api/v1/items/%d", i%97)}}}},
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

// Each codec as the Collector's confighttp writes it (compressor.go at v0.162.0).
func gzipOf(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

func zlibOf(b []byte) []byte {
	var out bytes.Buffer
	zw := zlib.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

func zstdOf(b []byte) []byte { return zstdWith(b) }

func zstdWith(b []byte, opts ...zstd.EOption) []byte {
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, append([]zstd.EOption{zstd.WithEncoderConcurrency(1)}, opts...)...)
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(zw, bytes.NewReader(b)) // streamed, as the Collector does: no content size
	_ = zw.Close()
	return out.Bytes()
}

func snappyBlockOf(b []byte) []byte { return snappy.Encode(nil, b) }

func snappyFramedOf(b []byte) []byte {
	var out bytes.Buffer
	sw := snappy.NewBufferedWriter(&out)
	_, _ = sw.Write(b)
	_ = sw.Close()
	return out.Bytes()
}

func lz4Of(b []byte) []byte {
	var out bytes.Buffer
	lw := lz4.NewWriter(&out)
	_ = lw.Apply(lz4.ConcurrencyOption(1))
	_, _ = lw.Write(b)
	_ = lw.Close()
	return out.Bytes()
}

func identity(b []byte) []byte { return b }

// httpReceiver serves an HTTP receiver on loopback until the test ends.
func httpReceiver(t *testing.T, exp Exporter, mem *admission.Budget) string {
	t.Helper()
	cfg := config.Default().Receivers
	cfg.MaxRequestBytes = testMaxRequest
	h, err := NewHTTP(cfg, exp, mem)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Stop(ctx)
	})
	return "http://" + ln.Addr().String() + "/v1/traces"
}

// postTraces sends body as protobuf with Content-Encoding enc; it returns the status and the
// google.rpc.Status message of an error answer.
func postTraces(t *testing.T, url, enc string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentProtobuf)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %q: %v", enc, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var st spb.Status
	if resp.StatusCode != http.StatusOK {
		if err := proto.Unmarshal(b, &st); err != nil {
			t.Fatalf("POST %q answered %d with a body that is no google.rpc.Status: %q", enc, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, st.GetMessage()
}

func TestHTTPDecodesEveryEncodingTheCollectorSends(t *testing.T) {
	want, err := proto.Marshal(traceRequest(3000, "decoded"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 256<<10 || len(want) > testMaxRequest {
		t.Fatalf("the request is %d bytes: it must span several codec blocks and fit the limit", len(want))
	}
	cases := map[string]struct {
		encoding string
		compress func([]byte) []byte
	}{
		"gzip is decoded":                                              {"gzip", gzipOf},
		"GZIP in capitals is gzip":                                     {"GZIP", gzipOf},
		"X-Gzip, gzip's old name, is gzip":                             {"X-Gzip", gzipOf},
		"deflate is zlib-wrapped, as the Collector sends it":           {"deflate", zlibOf},
		"zlib is decoded":                                              {"zlib", zlibOf},
		"zstd streamed with the Collector's 8 MiB window is decoded":   {"zstd", zstdOf},
		"zstd with spaces around its name is zstd":                     {" zstd ", zstdOf},
		"snappy in the block format is decoded":                        {"snappy", snappyBlockOf},
		"snappy in the framed format older Collectors sent is decoded": {"snappy", snappyFramedOf},
		"x-snappy-framed is decoded":                                   {"x-snappy-framed", snappyFramedOf},
		"lz4 frames are decoded":                                       {"lz4", lz4Of},
		"identity is the body as it is":                                {"identity", identity},
		"no Content-Encoding is the body as it is":                     {"", identity},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			exp := &recordingExporter{}
			mem := admission.New(testBudget)
			url := httpReceiver(t, exp, mem)
			code, msg := postTraces(t, url, tc.encoding, tc.compress(want))
			if code != http.StatusOK {
				t.Fatalf("HTTP %d %s", code, msg)
			}
			got := exp.requests()
			if len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("the pipeline got %d requests, not the %d bytes sent", len(got), len(want))
			}
			if used := mem.Used(); used != 0 {
				t.Fatalf("%d bytes still claimed after the answer", used)
			}
		})
	}
}

func TestHTTPRefusesDecompressionBombsWithinTheLimit(t *testing.T) {
	zeros := make([]byte, 8*testMaxRequest)
	// What a request may claim besides its decoded bytes (maxRequestBytes+1): the decoder's own
	// buffers, sized by what the client declares.
	cases := map[string]struct {
		encoding string
		body     []byte
		decoder  int64
	}{
		"a gzip bomb stops at the limit":                                         {"gzip", gzipOf(zeros), 0},
		"a deflate bomb stops at the limit":                                      {"deflate", zlibOf(zeros), 0},
		"a zstd bomb stops at the limit, holding its 8 MiB window":               {"zstd", zstdOf(zeros), zstdHistoryBytes(zstdMaxWindow)},
		"a zstd bomb of one small-window frame holds that window only":           {"zstd", zstdWith(zeros, zstd.WithWindowSize(64<<10)), zstdHistoryBytes(64 << 10)},
		"a snappy block bomb is refused by its decoded length before it is read": {"snappy", snappyBlockOf(zeros), 0},
		"a framed snappy bomb stops at the limit":                                {"x-snappy-framed", snappyFramedOf(zeros), 0},
		"a framed snappy bomb sent as snappy stops at the limit":                 {"snappy", snappyFramedOf(zeros), 0},
		"an lz4 bomb stops at the limit":                                         {"lz4", lz4Of(zeros), lz4BufferBytes},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if len(tc.body) >= testMaxRequest {
				t.Fatalf("the bomb is %d bytes compressed: it must be smaller than the limit", len(tc.body))
			}
			exp := &recordingExporter{}
			mem := admission.New(testBudget)
			url := httpReceiver(t, exp, mem)
			// Everything but what the request may hold is taken: a request that held more would
			// be refused with 429, not 413.
			other := mem.Claim()
			if err := other.Grow(testBudget - (testMaxRequest + 1 + tc.decoder)); err != nil {
				t.Fatal(err)
			}
			code, msg := postTraces(t, url, tc.encoding, tc.body)
			if code != http.StatusRequestEntityTooLarge {
				t.Fatalf("HTTP %d %s, want 413", code, msg)
			}
			if len(exp.requests()) != 0 {
				t.Fatal("the pipeline was handed a bomb")
			}
			if used := mem.Used(); used != other.Held() {
				t.Fatalf("%d bytes still claimed after the answer", used-other.Held())
			}
			other.Release()
		})
	}
}

func TestHTTPRefusesAZstdWindowLargerThanItDecodes(t *testing.T) {
	exp := &recordingExporter{}
	mem := admission.New(testBudget)
	url := httpReceiver(t, exp, mem)
	body := zstdWith(make([]byte, 512<<10), zstd.WithWindowSize(16<<20))
	code, msg := postTraces(t, url, "zstd", body)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "zstd") || !strings.Contains(msg, "window") {
		t.Fatalf("HTTP %d %q, want 413 naming the zstd window", code, msg)
	}
	if mem.Used() != 0 || len(exp.requests()) != 0 {
		t.Fatalf("%d bytes claimed, %d requests exported after a refusal", mem.Used(), len(exp.requests()))
	}
}

func TestHTTPRefusesCorruptBodiesNamingTheirEncoding(t *testing.T) {
	valid, err := proto.Marshal(traceRequest(500, "corrupt"))
	if err != nil {
		t.Fatal(err)
	}
	half := func(compress func([]byte) []byte) []byte { b := compress(valid); return b[:len(b)/2] }
	cases := map[string]struct {
		encoding, named string
		body            []byte
	}{
		"a truncated gzip body":                 {"gzip", "gzip", half(gzipOf)},
		"a body that is not gzip at all":        {"x-gzip", "x-gzip", valid},
		"a truncated deflate body":              {"deflate", "deflate", half(zlibOf)},
		"a truncated zlib body":                 {"zlib", "zlib", half(zlibOf)},
		"a truncated zstd body":                 {"zstd", "zstd", half(zstdOf)},
		"a body that is not zstd at all":        {"zstd", "zstd", valid},
		"a truncated snappy block":              {"snappy", "snappy", half(snappyBlockOf)},
		"a truncated snappy framed stream":      {"x-snappy-framed", "x-snappy-framed", half(snappyFramedOf)},
		"a framed snappy body with a bad chunk": {"snappy", "snappy", append(slicesClone(snappyFramingHeader), 0x01, 0x05, 0x00, 0x00, 1, 2, 3, 4, 5)},
		"a truncated lz4 frame":                 {"lz4", "lz4", half(lz4Of)},
		"a body that is not lz4 at all":         {"lz4", "lz4", valid},
		"an empty body sent as snappy":          {"snappy", "snappy", nil},
		"an empty body sent as gzip is no gzip": {"gzip", "gzip", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			exp := &recordingExporter{}
			mem := admission.New(testBudget)
			url := httpReceiver(t, exp, mem)
			code, msg := postTraces(t, url, tc.encoding, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(msg, "invalid "+tc.named+" body") {
				t.Fatalf("HTTP %d %q, want 400 naming %s", code, msg, tc.named)
			}
			if mem.Used() != 0 || len(exp.requests()) != 0 {
				t.Fatalf("%d bytes claimed, %d requests exported after a refusal", mem.Used(), len(exp.requests()))
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestHTTPRefusesUnknownEncodingsNamingTheAcceptedOnes(t *testing.T) {
	valid, err := proto.Marshal(traceRequest(10, "unknown"))
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range map[string]string{
		"br is not accepted":                         "br",
		"compress is not accepted":                   "compress",
		"stacked encodings are not accepted":         "gzip, gzip",
		"none is the Collector's word for no header": "none",
	} {
		t.Run(name, func(t *testing.T) {
			url := httpReceiver(t, &recordingExporter{}, admission.New(testBudget))
			code, msg := postTraces(t, url, enc, valid)
			if code != http.StatusUnsupportedMediaType || !strings.Contains(msg, strings.Join(httpEncodings, ", ")) {
				t.Fatalf("HTTP %d %q, want 415 naming %v", code, msg, httpEncodings)
			}
		})
	}
}

// grpcReceiver serves a gRPC receiver on loopback and returns a client connection to it.
func grpcReceiver(t *testing.T, exp Exporter, mem *admission.Budget) *grpc.ClientConn {
	t.Helper()
	cfg := config.Default().Receivers
	cfg.MaxRequestBytes = testMaxRequest
	_, addr := serveGRPC(t, cfg, exp, mem)
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestGRPCDecodesTheCollectorsCompressors(t *testing.T) {
	small := traceRequest(3000, "grpc")
	bomb := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{
		Spans: []*tracepb.Span{{Name: strings.Repeat("a", 8*testMaxRequest)}}}}}}}
	cases := map[string]struct {
		compressor string
		req        *coltracepb.ExportTraceServiceRequest
		want       codes.Code
	}{
		"a zstd request is decoded":                      {"zstd", small, codes.OK},
		"a snappy request is decoded":                    {"snappy", small, codes.OK},
		"a gzip request is still decoded":                {"gzip", small, codes.OK},
		"a zstd bomb is refused as too large":            {"zstd", bomb, codes.ResourceExhausted},
		"a snappy bomb is refused as too large":          {"snappy", bomb, codes.ResourceExhausted},
		"a gzip bomb is refused as too large, as before": {"gzip", bomb, codes.ResourceExhausted},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			exp := &recordingExporter{}
			mem := admission.New(testBudget)
			conn := grpcReceiver(t, exp, mem)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := conn.Invoke(ctx, exportMethod, tc.req, &coltracepb.ExportTraceServiceResponse{}, grpc.UseCompressor(tc.compressor))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("answered %v (%v), want %v", got, err, tc.want)
			}
			got := exp.requests()
			if tc.want != codes.OK {
				if len(got) != 0 {
					t.Fatal("the pipeline was handed a bomb")
				}
				return
			}
			var sent coltracepb.ExportTraceServiceRequest
			if len(got) != 1 || proto.Unmarshal(got[0], &sent) != nil || !proto.Equal(&sent, tc.req) {
				t.Fatalf("the pipeline got %d requests, not the request sent", len(got))
			}
			if used := mem.Used(); used != 0 {
				t.Fatalf("%d bytes still claimed after the answer", used)
			}
		})
	}
}

func TestZstdDecodersLeaveNoGoroutineBehind(t *testing.T) {
	body := zstdOf(make([]byte, 1<<20))
	before := runtime.NumGoroutine()
	for range 50 {
		claim := admission.New(testBudget).Claim()
		r, err := decodeBody("zstd", bytes.NewReader(body), 2<<20, &claim)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != 1<<20 {
			t.Fatalf("decoded %d bytes: %v", n, err)
		}
		_ = r.Close()
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines before 50 zstd decodes, %d after", before, after)
	}
}

// partialExporter answers every request with a partial success, so that the reply has a body.
type partialExporter struct{}

func (partialExporter) Export(context.Context, []byte, string, *admission.Claim) (pipeline.Result, error) {
	return pipeline.Result{Rejected: 1, Message: "one span rejected"}, nil
}

// A compressed request's reply (here a partial success, which has a body) reaches a client,
// also one in this process, whose registered decompressors are the receiver's pass-through ones.
func TestGRPCRepliesToCompressedRequestsAreReadable(t *testing.T) {
	for _, c := range []string{"gzip", "zstd", "snappy"} {
		t.Run(c, func(t *testing.T) {
			conn := grpcReceiver(t, partialExporter{}, admission.New(testBudget))
			var resp coltracepb.ExportTraceServiceResponse
			err := conn.Invoke(context.Background(), exportMethod, traceRequest(3, c), &resp, grpc.UseCompressor(c))
			if err != nil {
				t.Fatalf("export with %s: %v", c, err)
			}
			if ps := resp.GetPartialSuccess(); ps.GetRejectedSpans() != 1 || ps.GetErrorMessage() != "one span rejected" {
				t.Fatalf("reply %v, want the partial success", &resp)
			}
		})
	}
}
