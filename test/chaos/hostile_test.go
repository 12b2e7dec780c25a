//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/lzw"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	wt "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// The hostile-input suite runs one exporter with the receiver limits below and sends it what a
// broken or malicious client would. Every answer must be a client error (HTTP 4xx, gRPC
// INVALID_ARGUMENT, RESOURCE_EXHAUSTED or UNIMPLEMENTED), a retryable pushback where the exporter
// protects itself (429/503, RESOURCE_EXHAUSTED/UNAVAILABLE), or a success whose spans really are
// in Redis; never a crash, a hang or another 5xx, with one exception that the exporter does not
// choose: grpc-go answers a broken gRPC message itself with INTERNAL (grpcFraming). After every
// case the same process still answers
// /healthz, /readyz and a normal request on both transports, logged no panic, and its resident
// memory stayed under a bound derived from the limits.
const (
	hostileLimit = 4 << 20 // --receivers.maxRequestBytes
	// hostileStreams is --receivers.grpc.maxConcurrentStreams: concurrent requests per gRPC
	// connection (a client that wants more opens more connections, as the concurrent cases do).
	hostileStreams    = 16
	readHeaderTimeout = time.Second     // --receivers.http.readHeaderTimeout
	readTimeout       = 2 * time.Second // --receivers.http.readTimeout
	// hostileBudget is --delivery.maxInFlightBytes: 16 requests of the largest size.
	hostileBudget = 16 * hostileLimit
	// answerTimeout bounds every request of the suite: no answer by then is a hang.
	answerTimeout = 30 * time.Second
	exportMethod  = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	// slowConns is how many connections each slow-client case opens.
	slowConns = 256
	// concurrent is how many near-limit requests the concurrent cases send at once, half over
	// each transport, each gRPC one on its own connection.
	concurrent = 64
)

// Memory bounds: how much the exporter's RSS may grow during a case (peak minus RSS at its start;
// RSS does not shrink at once after a heavy case, so the next one starts higher).
//
// A request costs its body (read into a bytes.Buffer that may double its capacity: 2x
// maxRequestBytes, plus 1x for the OTLP/JSON to protobuf copy) and, when it is written, its
// entries: a batch that grows by doubling (up to 2x the entries) and the writers' copy (2x again),
// with GC headroom (GOGC=100 lets the heap reach twice the live data): 8x the entries, 12x with
// half as much again for fragmentation (writtenMB). Entries are about the size of the values they
// hold, but 6x for characters JSON escapes as \u00XX, and about 600 bytes per span whatever its
// size (the field names, and the resource and scope repeated in every entry): those cases say
// how large their entries are. For the others, 32x maxRequestBytes (oneRequestMB, 128 MB) is far
// above what one request costs.
//
// Requests sent at once cost what each costs until delivery.maxInFlightBytes (hostileBudget)
// refuses more; gRPC messages are read by grpc-go before they can be refused, so the bound stays
// per request: a request just under the limit holds its body and its entries (about the same size)
// in the request's batch and in the writers' batch, about 6x maxRequestBytes at once with the
// growth by doubling; with GC headroom spread over requests that overlap only in part, 8x each
// (concurrentMB). memory_test.go measures the budget itself.
//
// The whole run must stay under baseline + absoluteMB: the heaviest case plus what earlier ones
// may have left behind.
const (
	limitMB      = hostileLimit >> 20
	oneRequestMB = 32 * limitMB
	concurrentMB = concurrent * 8 * limitMB
	absoluteMB   = concurrentMB + 2*oneRequestMB
)

// writtenMB bounds the growth of a case whose requests write entriesMB of entries each.
func writtenMB(entriesMB float64) float64 { return 12*entriesMB + 4*limitMB }

// Answers a client can act on, per transport.
var (
	accepted    = []string{"HTTP 200", "gRPC OK"}
	invalid     = []string{"HTTP 400", "gRPC InvalidArgument"}
	tooLarge    = []string{"HTTP 413", "gRPC ResourceExhausted"}
	unsupported = []string{"HTTP 415", "gRPC Unimplemented"}
	// pushback is the exporter protecting itself (in-flight limit, Redis too slow): retryable.
	pushback = []string{"HTTP 429", "HTTP 503", "gRPC ResourceExhausted", "gRPC Unavailable"}
	// grpcFraming is grpc-go's own answer to a broken gRPC message (shorter than its length
	// prefix, flagged compressed without an encoding), given before the exporter's handler runs:
	// INTERNAL, which OTLP clients do not retry. (Messages that do not decompress are the
	// handler's to refuse: INVALID_ARGUMENT.)
	grpcFraming = []string{"gRPC Internal"}
)

func oneOf(sets ...[]string) []string { return slices.Concat(sets...) }

// hostileCodec sends a *[]byte as the request message as it is, and decodes the answer.
type hostileCodec struct{}

func (hostileCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*(v.(*[]byte)))}, nil
}

func (hostileCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (hostileCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = hostileCodec{}

// harness holds the exporter under attack and the clients that attack it.
type harness struct {
	e    *exporter
	rdb  *redis.Client
	hc   *http.Client     // HTTP/1.1 to the OTLP/HTTP receiver
	h2c  *http.Client     // HTTP/2 with prior knowledge, for hand-made gRPC requests
	conn *grpc.ClientConn // a real gRPC client, sending raw bytes as the message

	mu    sync.Mutex
	notes []string // figures the current case adds to its FIGURES line
}

// note adds a figure to the current case's FIGURES line.
func (h *harness) note(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf(format, args...))
}

// send is what a case sends over one transport to the streams of service svc; it returns the
// answers, as "HTTP 400", "gRPC InvalidArgument" and so on.
type send func(h *harness, svc string) []string

// hostileCase is a row of the table: a name that reads as a sentence, what to send over each
// transport, the answers allowed, and what an accepted request writes: lands entries in
// traces:<svc>, svc being unique per case and transport, which check then looks at (a partial
// success, "HTTP 200 rejecting N spans", writes nothing in this suite).
type hostileCase struct {
	name  string
	reqs  map[string]send
	want  []string
	lands int
	check func(t *testing.T, h *harness, entries []redis.XMessage)
	// boundMB bounds how much RSS may grow during the case, in MB; 0 means oneRequestMB.
	boundMB float64
}

// TestHostileInputIsRefusedCleanlyWithBoundedMemory is the hostile-input suite; each row logs a
// FIGURES line (case, transports, answers, peak RSS, time to answer) and the last one a summary.
func TestHostileInputIsRefusedCleanlyWithBoundedMemory(t *testing.T) {
	srv := redistest.Standalone(t)
	e := startExporter(t, srv.Addr(),
		"--receivers.maxRequestBytes="+strconv.Itoa(hostileLimit),
		"--receivers.grpc.maxConcurrentStreams="+strconv.Itoa(hostileStreams),
		"--receivers.http.readHeaderTimeout="+readHeaderTimeout.String(),
		"--receivers.http.readTimeout="+readTimeout.String(),
		"--delivery.maxInFlightBytes="+strconv.Itoa(hostileBudget))
	h := newHarness(t, e, srv.Client(t))
	pid := e.cmd.Process.Pid

	for range 5 { // warm up, then take the baseline
		h.probe(t)
	}
	time.Sleep(200 * time.Millisecond)
	baseline := e.rssMB()
	expected := h.totalEntries(t) // every entry written so far, updated by each case
	logOffset := int64(0)

	cases := hostileCases()
	ran := 0
	maxPeak := 0.0
	var everyAnswer []string
	for i, c := range cases {
		ok := t.Run(c.name, func(t *testing.T) {
			ran++
			h.notes = nil
			transports := slices.Sorted(maps.Keys(c.reqs))
			start := e.rssMB()
			sampler := sampleRSS(e)
			began := time.Now()
			answers := map[string][]string{}
			var all []string
			for _, tr := range transports {
				answers[tr] = c.reqs[tr](h, svcName(i, tr))
				all = append(all, answers[tr]...)
			}
			took := time.Since(began)
			peak := sampler.stop()
			maxPeak = max(maxPeak, peak)
			everyAnswer = append(everyAnswer, all...)
			defer func() { // after the checks, which may add notes
				notes := ""
				if len(h.notes) > 0 {
					notes = " | " + strings.Join(slices.Compact(h.notes), "; ")
				}
				t.Logf("FIGURES hostile input: %s | %s | %s | peak RSS %.1f MB (%.1f at the start, baseline %.1f) | answered in %v%s",
					c.name, strings.Join(transports, " + "), countAnswers(all), peak, start, baseline, took.Round(time.Millisecond), notes)
			}()

			for _, a := range all {
				if !slices.Contains(c.want, a) {
					t.Errorf("answer %q, want one of %v", a, c.want)
				}
			}
			// Accepted input is in Redis, entry by entry; refused input is not.
			ctx := context.Background()
			for _, tr := range transports {
				want := int64(0)
				for _, a := range answers[tr] {
					if a == "HTTP 200" || a == "gRPC OK" {
						want += int64(c.lands)
					}
				}
				stream := "traces:" + svcName(i, tr)
				got := h.rdb.XLen(ctx, stream).Val()
				if got != want {
					t.Errorf("%s: %d entries in %s, want %d", tr, got, stream, want)
				}
				if c.check != nil && got > 0 {
					entries, err := h.rdb.XRange(ctx, stream, "-", "+").Result()
					if err != nil {
						t.Fatal(err)
					}
					c.check(t, h, entries)
				}
			}
			bound := float64(oneRequestMB)
			if c.boundMB > 0 {
				bound = c.boundMB
			}
			if peak-start > bound {
				t.Errorf("peak RSS %.1f MB: grew by %.1f MB during the case, bound %.0f MB", peak, peak-start, bound)
			}
			if peak > baseline+absoluteMB {
				t.Errorf("peak RSS %.1f MB: more than %d MB above the baseline of %.1f MB", peak, absoluteMB, baseline)
			}
			logOffset = h.assertHealthy(t, pid, logOffset)
			got := h.totalEntries(t)
			if accepted := got - expected - 2; accepted != sumLanded(answers, c.lands) { // 2: the probe of assertHealthy
				t.Errorf("%d entries written in all the streams during the case, want %d: refused input was written, or accepted input was not",
					accepted, sumLanded(answers, c.lands))
			}
			expected = got
		})
		if !ok && !h.alive(pid) {
			t.Fatalf("the exporter (pid %d) is gone: %v", pid, e.exitErr)
		}
	}
	t.Logf("FIGURES hostile input summary: %d cases, %d answers (%s), exporter pid %d alive after every case: %v, baseline RSS %.1f MB, highest peak %.1f MB (maxRequestBytes %d, grpc.maxConcurrentStreams %d, http.readHeaderTimeout %v)",
		ran, len(everyAnswer), countAnswers(everyAnswer), pid, h.alive(pid), baseline, maxPeak, hostileLimit, hostileStreams, readHeaderTimeout)
}

// svcName is the service name, and so the stream, of case i over transport tr.
func svcName(i int, tr string) string {
	return fmt.Sprintf("hostile-%02d-%s", i, strings.NewReplacer(" ", "-", "/", "-", "+", "").Replace(strings.ToLower(tr)))
}

func sumLanded(answers map[string][]string, lands int) int64 {
	n := int64(0)
	for _, as := range answers {
		for _, a := range as {
			if a == "HTTP 200" || a == "gRPC OK" {
				n += int64(lands)
			}
		}
	}
	return n
}

func newHarness(t *testing.T, e *exporter, rdb *redis.Client) *harness {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2 := &http.Transport{Protocols: &p}
	h1 := &http.Transport{MaxIdleConnsPerHost: concurrent}
	conn, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		h2.CloseIdleConnections()
		h1.CloseIdleConnections()
	})
	return &harness{e: e, rdb: rdb, hc: &http.Client{Transport: h1}, h2c: &http.Client{Transport: h2}, conn: conn}
}

// alive reports whether the exporter process pid is still the one running.
func (h *harness) alive(pid int) bool {
	select {
	case <-h.e.done:
		return false
	default:
	}
	return h.e.cmd != nil && h.e.cmd.Process.Pid == pid && syscall.Kill(pid, 0) == nil
}

// assertHealthy checks that the same process is alive, healthy, ready, writes a normal request
// from each transport, and logged no panic since offset; it returns the new log offset.
func (h *harness) assertHealthy(t *testing.T, pid int, offset int64) int64 {
	t.Helper()
	if !h.alive(pid) {
		t.Fatalf("the exporter (pid %d) exited: %v", pid, h.e.exitErr)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code := httpStatus(t, "http://"+h.e.admin+p); code != http.StatusOK {
			t.Errorf("%s: %d after the case", p, code)
		}
	}
	h.probe(t)
	b, err := os.ReadFile(h.e.log)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) > offset {
		if tail := string(b[offset:]); strings.Contains(tail, "panic") || strings.Contains(tail, "fatal error") {
			t.Errorf("the exporter logged a panic:\n%s", tail)
		}
	}
	return int64(len(b))
}

// probe sends one normal request over each transport; both must be written.
func (h *harness) probe(t *testing.T) {
	t.Helper()
	body := valid("hostile-probe")
	if a := h.postHTTP("/v1/traces", "application/x-protobuf", "", bytes.NewReader(body)); a != "HTTP 200" {
		t.Errorf("a normal OTLP/HTTP request: %s", a)
	}
	if a := h.invoke(h.conn, body); a != "gRPC OK" {
		t.Errorf("a normal OTLP/gRPC request: %s", a)
	}
}

// totalEntries counts the entries of every traces:* stream.
func (h *harness) totalEntries(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	iter := h.rdb.Scan(ctx, 0, "traces:*", 1000).Iterator()
	for iter.Next(ctx) {
		n += h.rdb.XLen(ctx, iter.Val()).Val()
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// postHTTP posts body to the OTLP/HTTP receiver; a body that is not a *bytes.Reader has no
// known length and goes chunked.
func (h *harness) postHTTP(path, contentType, contentEncoding string, body io.Reader) string {
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+h.e.http+path, body)
	if err != nil {
		return "error: " + err.Error()
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	answer := fmt.Sprintf("HTTP %d", resp.StatusCode)
	var res coltracepb.ExportTraceServiceResponse
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/x-protobuf" && proto.Unmarshal(b, &res) == nil {
		answer += rejecting(&res)
	}
	return answer
}

// rejecting describes an OTLP partial success: " rejecting N spans", or "" when all were taken.
func rejecting(res *coltracepb.ExportTraceServiceResponse) string {
	if n := res.GetPartialSuccess().GetRejectedSpans(); n > 0 {
		return fmt.Sprintf(" rejecting %d spans", n)
	}
	return ""
}

// invoke sends b as the Export request message through a real gRPC client connection.
func (h *harness) invoke(conn *grpc.ClientConn, b []byte) string {
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	var res coltracepb.ExportTraceServiceResponse
	err := conn.Invoke(ctx, exportMethod, &b, &res, grpc.ForceCodecV2(hostileCodec{}))
	return "gRPC " + status.Code(err).String() + rejecting(&res)
}

// grpcRaw posts a hand-made gRPC request body (length-prefixed messages) to the gRPC receiver
// over HTTP/2, with the given content type and grpc-encoding; it returns the grpc-status, or
// the HTTP status when it is not 200.
func (h *harness) grpcRaw(contentType, grpcEncoding string, body []byte) string {
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+h.e.grpc+exportMethod, bytes.NewReader(body))
	if err != nil {
		return "error: " + err.Error()
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Te", "trailers")
	if grpcEncoding != "" {
		req.Header.Set("Grpc-Encoding", grpcEncoding)
	}
	resp, err := h.h2c.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("HTTP/2 %d", resp.StatusCode)
	}
	st := resp.Trailer.Get("Grpc-Status")
	if st == "" {
		st = resp.Header.Get("Grpc-Status") // a trailers-only answer
	}
	code, err := strconv.Atoi(st)
	if err != nil {
		return fmt.Sprintf("no grpc-status (%q)", st)
	}
	return "gRPC " + codes.Code(code).String()
}

// frame is a gRPC length-prefixed message whose prefix declares the given length.
func frame(compressed bool, declared uint32, payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	if compressed {
		b[0] = 1
	}
	binary.BigEndian.PutUint32(b[1:], declared)
	return append(b, payload...)
}

func compressedFrame(payload []byte) []byte { return frame(true, uint32(len(payload)), payload) }

// rawHTTP writes head and then body to the HTTP receiver over a plain TCP connection, reading
// the answer while it writes (the server may answer before the body is all sent). With
// halfClose it then shuts its sending side, as a client that sent less than it declared.
func (h *harness) rawHTTP(head string, body io.Reader, halfClose bool) string {
	c, err := net.Dial("tcp", h.e.http)
	if err != nil {
		return "error: " + err.Error()
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(answerTimeout))
	go func() {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		if body != nil {
			_, _ = io.Copy(c, body)
		}
		if halfClose {
			_ = c.(*net.TCPConn).CloseWrite()
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "closed without an answer: " + err.Error()
	}
	_ = resp.Body.Close()
	return fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// slowConns opens n connections to addr, sends prefix on each and then one byte of trickle
// every 100 ms, for at most window or until the server closes the connection; meanwhile it sends
// normal requests of service svc over both transports every 100 ms. It returns one answer per
// connection ("closed by the server", "answered HTTP 408", "still open after 3s"), and the
// answers to the normal requests.
func (h *harness) slowConns(addr, prefix, trickle, svc string, window time.Duration) []string {
	type outcome struct {
		answer string
		after  time.Duration
	}
	outcomes := make([]outcome, slowConns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range outcomes {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			outcomes[i] = outcome{answer: "dial error: " + err.Error()}
			continue
		}
		done := make(chan struct{})
		wg.Go(func() { // the reader: what the server does with the connection
			defer close(done)
			_ = c.SetReadDeadline(start.Add(window))
			// Until the server closes the connection or the window ends; an HTTP/2 server
			// sends its SETTINGS first, which is not an answer.
			got, err := io.ReadAll(io.LimitReader(c, 1<<20))
			after := time.Since(start)
			var ne net.Error
			switch {
			case bytes.HasPrefix(got, []byte("HTTP/1.1 ")):
				first, _, _ := strings.Cut(string(got), "\r\n")
				outcomes[i] = outcome{"answered " + first, after}
			case errors.As(err, &ne) && ne.Timeout():
				outcomes[i] = outcome{answer: fmt.Sprintf("still open after %v", window)}
			default:
				outcomes[i] = outcome{"closed by the server", after}
			}
		})
		wg.Go(func() { // the writer: a byte every 100 ms until the reader is done
			defer func() { _ = c.Close() }()
			if _, err := io.WriteString(c, prefix); err != nil {
				<-done
				return
			}
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if trickle != "" {
						_, _ = io.WriteString(c, trickle)
					}
				}
			}
		})
	}
	// Normal requests while the slow connections are open.
	var answers []string
	for time.Since(start) < min(window, 2*readHeaderTimeout) {
		answers = append(answers,
			h.postHTTP("/v1/traces", "application/x-protobuf", "", bytes.NewReader(valid(svc))),
			h.invoke(h.conn, valid(svc)))
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	var closedAfter []time.Duration
	for _, o := range outcomes {
		answers = append(answers, o.answer)
		if o.after > 0 {
			closedAfter = append(closedAfter, o.after)
		}
	}
	if len(closedAfter) > 0 {
		slices.Sort(closedAfter)
		h.note("%d of %d connections ended by the server, after %v (median) to %v (last)", len(closedAfter), len(outcomes),
			closedAfter[len(closedAfter)/2].Round(10*time.Millisecond), closedAfter[len(closedAfter)-1].Round(10*time.Millisecond))
	} else {
		h.note("none of %d connections ended by the server within %v", len(outcomes), window)
	}
	return answers
}

// concurrently sends n requests of body() at once: the even ones over OTLP/HTTP with
// httpEncoding, the odd ones with grpcSend (i counts the gRPC requests from 0).
func (h *harness) concurrently(n int, httpEncoding string, body func() []byte, grpcSend func(i int, b []byte) string) []string {
	answers := make([]string, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		b := body()
		wg.Go(func() {
			<-gate
			if i%2 == 0 {
				answers[i] = h.postHTTP("/v1/traces", "application/x-protobuf", httpEncoding, bytes.NewReader(b))
			} else {
				answers[i] = grpcSend(i/2, b)
			}
		})
	}
	close(gate)
	wg.Wait()
	return answers
}

// grpcConns opens n gRPC client connections, so that grpc.maxConcurrentStreams does not queue
// the requests of one client: an attacker opens connections too.
func (h *harness) grpcConns(n int) ([]*grpc.ClientConn, func(), error) {
	conns := make([]*grpc.ClientConn, 0, n)
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for range n {
		c, err := grpc.NewClient(h.e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		c.Connect()
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}

// Request builders.

var hostileTraceID = []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

// spanSeq numbers the spans of the suite: ids are never reused, so that idempotent XADD
// (Redis >= 8.6 deduplicates by producer, trace id and span id) cannot merge two requests.
var spanSeq atomic.Uint64

// spans returns n spans with fresh span ids, each with attrs.
func spans(n int, attrs ...*commonpb.KeyValue) []*tracepb.Span {
	out := make([]*tracepb.Span, n)
	first := spanSeq.Add(uint64(n)) - uint64(n) + 1
	for i := range out {
		id := make([]byte, 8)
		binary.BigEndian.PutUint64(id, first+uint64(i))
		out[i] = &tracepb.Span{TraceId: hostileTraceID, SpanId: id, Name: "hostile", Attributes: attrs,
			StartTimeUnixNano: 1_700_000_000_000_000_000, EndTimeUnixNano: 1_700_000_000_000_001_000}
	}
	return out
}

func request(svc string, sp []*tracepb.Span, resourceAttrs ...*commonpb.KeyValue) []byte {
	return wt.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: append([]*commonpb.KeyValue{wt.KV("service.name", wt.Str(svc))}, resourceAttrs...)},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "hostile"}, Spans: sp}},
	}}})
}

// valid is a normal one-span request of service svc.
func valid(svc string) []byte { return request(svc, spans(1)) }

// withAttrs is a one-span request whose span has attrs.
func withAttrs(attrs ...*commonpb.KeyValue) func(string) []byte {
	return func(svc string) []byte { return request(svc, spans(1, attrs...)) }
}

// manyAttrs returns n attributes prefix.<i> = i.
func manyAttrs(prefix string, n int) []*commonpb.KeyValue {
	kvs := make([]*commonpb.KeyValue, n)
	for i := range kvs {
		kvs[i] = wt.KV(prefix+"."+strconv.Itoa(i), wt.Int(int64(i)))
	}
	return kvs
}

// sized is a one-span request of service svc, padded with a string attribute to exactly size
// bytes.
func sized(svc string, size int) []byte {
	pad := size - len(valid(svc))
	for range 10 {
		b := request(svc, spans(1, wt.KV("pad", wt.Str(strings.Repeat("x", pad)))))
		if len(b) == size {
			return b
		}
		pad -= len(b) - size
	}
	panic(fmt.Sprintf("no one-span request of exactly %d bytes", size))
}

// nested returns a value depth levels deep (depth 1 is a plain string), of arrays or kvlists.
func nested(depth int, kvlist bool) *commonpb.AnyValue {
	v := wt.Str("bottom")
	for range depth - 1 {
		if kvlist {
			v = wt.KVList(wt.KV("k", v))
		} else {
			v = wt.Array(v)
		}
	}
	return v
}

// field appends field num holding the message body b.
func field(dst []byte, num protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(dst, num, protowire.BytesType), b)
}

// deepArray is a one-span request whose attribute "deep" holds arrays nested depth levels deep,
// written on the wire directly (the generated code would recurse once per level): the sizes from
// the inside out, then the headers from the outside in.
func deepArray(svc string, depth int) []byte {
	inner := field(nil, 1, []byte("bottom")) // AnyValue.string_value
	sizes := make([]int, depth)              // sizes[k]: the AnyValue k levels above the innermost
	arrSize := func(k int) int { return 1 + protowire.SizeVarint(uint64(sizes[k-1])) + sizes[k-1] }
	sizes[0] = len(inner)
	for k := 1; k < depth; k++ {
		sizes[k] = 1 + protowire.SizeVarint(uint64(arrSize(k))) + arrSize(k)
	}
	v := make([]byte, 0, sizes[depth-1])
	for k := depth - 1; k >= 1; k-- {
		v = protowire.AppendVarint(protowire.AppendTag(v, 5, protowire.BytesType), uint64(arrSize(k))) // AnyValue.array_value
		v = protowire.AppendVarint(protowire.AppendTag(v, 1, protowire.BytesType), uint64(sizes[k-1])) // ArrayValue.values
	}
	v = append(v, inner...)
	kv := field(field(nil, 1, []byte("deep")), 2, v) // KeyValue{key, value}
	sp := field(wt.Marshal(spans(1)[0]), 9, kv)      // Span.attributes
	rs := wt.Marshal(&tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{wt.KV("service.name", wt.Str(svc))}}})
	rs = field(rs, 2, field(nil, 2, sp)) // ResourceSpans.scope_spans{ScopeSpans.spans}
	return field(nil, 1, rs)             // ExportTraceServiceRequest.resource_spans
}

// withUnknownFields is a normal one-span request with unknown fields of every wire type (and
// the highest field number) in the request, the resource spans, the resource, the scope spans,
// the span, an attribute and its value: protobuf receivers skip fields newer than their schema.
func withUnknownFields(svc string) []byte {
	unknown := func(b []byte) []byte {
		b = protowire.AppendVarint(protowire.AppendTag(b, 1000, protowire.VarintType), 1<<60)
		b = protowire.AppendFixed32(protowire.AppendTag(b, 1001, protowire.Fixed32Type), 7)
		b = protowire.AppendFixed64(protowire.AppendTag(b, 1002, protowire.Fixed64Type), 7)
		b = field(b, 1003, []byte("\xff unknown bytes need not be UTF-8"))
		b = protowire.AppendTag(b, 1004, protowire.StartGroupType)
		b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 1)
		b = protowire.AppendTag(b, 1004, protowire.EndGroupType)
		return protowire.AppendVarint(protowire.AppendTag(b, protowire.MaxValidNumber, protowire.VarintType), 1)
	}
	value := unknown(wt.Marshal(wt.Str("v")))
	attr := unknown(field(wt.Marshal(&commonpb.KeyValue{Key: "attr"}), 2, value))
	span := unknown(field(wt.Marshal(spans(1)[0]), 9, attr))
	scope := unknown(field(nil, 2, span))
	resource := unknown(wt.Marshal(&resourcepb.Resource{Attributes: []*commonpb.KeyValue{wt.KV("service.name", wt.Str(svc))}}))
	rs := unknown(field(field(nil, 1, resource), 2, scope))
	return unknown(field(nil, 1, rs))
}

// nestedGroups is an unknown group (field 15) nested n deep in the request.
func nestedGroups(n int) []byte {
	var b []byte
	for range n {
		b = protowire.AppendTag(b, 15, protowire.StartGroupType)
	}
	for range n {
		b = protowire.AppendTag(b, 15, protowire.EndGroupType)
	}
	return b
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// gzipBomb is 200 MiB of zeros gzipped (about 200 KB), built once.
var gzipBomb = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 200 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	return buf.Bytes()
})

// zstdFrame is b (at most 255 bytes) as a valid zstd frame of one raw block.
func zstdFrame(b []byte) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, byte(len(b))} // magic, single segment, 1-byte content size
	hdr := 1 | len(b)<<3                                      // last block, raw, its size
	out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16))
	return append(out, b...)
}

func zlibbed(b []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func lzwed(b []byte) []byte {
	var buf bytes.Buffer
	zw := lzw.NewWriter(&buf, lzw.LSB, 8)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// otlpJSON is a one-span OTLP/JSON request of service svc whose span has attrs (the elements of
// its attributes array), with extra (raw JSON members) in each object of the path to the span.
func otlpJSON(svc, attrs, extra string) []byte {
	return []byte(`{` + extra + `"resourceSpans":[{` + extra + `"resource":{` + extra + `"attributes":[{"key":"service.name","value":{"stringValue":"` + svc + `"}}]},` +
		`"scopeSpans":[{` + extra + `"spans":[{` + extra + `"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"hostile",` +
		`"attributes":[` + attrs + `]}]}]}]}`)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Transports of a case.

func overHTTP(contentType, contentEncoding string, body func(svc string) []byte) send {
	return func(h *harness, svc string) []string {
		return []string{h.postHTTP("/v1/traces", contentType, contentEncoding, bytes.NewReader(body(svc)))}
	}
}

func protobufHTTP(body func(svc string) []byte) send {
	return overHTTP("application/x-protobuf", "", body)
}

func jsonHTTP(body func(svc string) []byte) send { return overHTTP("application/json", "", body) }

func overGRPC(body func(svc string) []byte) send {
	return func(h *harness, svc string) []string { return []string{h.invoke(h.conn, body(svc))} }
}

// overRawGRPC sends body(svc) as the whole gRPC request body (frames included).
func overRawGRPC(contentType, grpcEncoding string, body func(svc string) []byte) send {
	return func(h *harness, svc string) []string {
		return []string{h.grpcRaw(contentType, grpcEncoding, body(svc))}
	}
}

// framed is body as one uncompressed gRPC message.
func framed(body func(svc string) []byte) func(string) []byte {
	return func(svc string) []byte { b := body(svc); return frame(false, uint32(len(b)), b) }
}

// both sends the same protobuf body over OTLP/HTTP and OTLP/gRPC.
func both(body func(svc string) []byte) map[string]send {
	return map[string]send{"HTTP": protobufHTTP(body), "gRPC": overGRPC(body)}
}

func fixed(b []byte) func(string) []byte { return func(string) []byte { return b } }

// hostileCases is the table, from light to heavy so that a case's peak RSS is not the
// memory an earlier case left behind.
func hostileCases() []hostileCase {
	random := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	return []hostileCase{
		// Malformed protobuf.
		{name: "random bytes are refused as malformed protobuf", want: invalid, reqs: both(fixed(random))},
		{name: "a valid request cut in half is refused", want: invalid, reqs: both(func(svc string) []byte {
			b := request(svc, spans(10))
			return b[:len(b)/2]
		})},
		{name: "a length prefix pointing past the end is refused", want: invalid, reqs: both(fixed([]byte{0x0a, 0xff, 0xff, 0x03, 0x0a, 0x00}))},
		{name: "an over-long varint length is refused", want: invalid, reqs: both(fixed(append([]byte{0x0a}, bytes.Repeat([]byte{0xff}, 11)...)))},
		{name: "an invalid wire type is refused", want: invalid, reqs: both(fixed([]byte{0x0f, 0x00}))},
		{name: "an end-group tag without its start is refused", want: invalid, reqs: both(fixed([]byte{0x0c}))},
		{name: "unknown groups nested 100,000 deep are refused", want: invalid, reqs: both(fixed(nestedGroups(100_000)))},
		{name: "a trace id of 5 bytes makes the whole request invalid", want: invalid, reqs: both(func(svc string) []byte {
			sp := spans(2)
			sp[1].TraceId = []byte{1, 2, 3, 4, 5}
			return request(svc, sp)
		})},
		{name: "resource_spans with a wrong wire type is skipped as an unknown field and nothing is written", want: accepted,
			reqs: both(fixed([]byte{0x08, 0x01}))},
		{name: "an empty body is an empty request and nothing is written", want: accepted, reqs: both(fixed(nil))},
		{name: "two million spans without ids are a partial success that rejects every one",
			want: []string{"HTTP 200 rejecting 2000000 spans", "gRPC OK rejecting 2000000 spans"}, reqs: both(func(string) []byte {
				ss := bytes.Repeat([]byte{0x12, 0x00}, 2_000_000) // ScopeSpans.spans, each empty
				return field(nil, 1, field(nil, 2, ss))
			})},
		{name: "bytes that are not HTTP get a 400", want: []string{"HTTP 400"}, reqs: map[string]send{
			"TCP": func(h *harness, _ string) []string {
				return []string{h.rawHTTP("\x16\x03\x01\x02\x00garbage \x00\r\n\r\n", nil, false)}
			},
		}},
		{name: "a body shorter than its Content-Length is refused once the client stops sending", want: []string{"HTTP 400"}, reqs: map[string]send{
			"TCP": func(h *harness, svc string) []string {
				b := valid(svc)
				head := fmt.Sprintf("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n", len(b)+100)
				return []string{h.rawHTTP(head, bytes.NewReader(b), true)}
			},
		}},
		{name: "a gRPC message shorter than its length prefix is refused", want: grpcFraming, reqs: map[string]send{
			"gRPC raw": overRawGRPC("application/grpc", "", func(svc string) []byte {
				b := valid(svc)
				return frame(false, uint32(len(b)+100), b)
			}),
		}},

		// Wrong content types.
		{name: "text/plain is an unsupported media type", want: []string{"HTTP 415", "HTTP/2 415"}, reqs: map[string]send{
			"HTTP": overHTTP("text/plain", "", valid), "gRPC raw": overRawGRPC("text/plain", "", framed(valid)),
		}},
		{name: "application/xml is an unsupported media type", want: []string{"HTTP 415", "HTTP/2 415"}, reqs: map[string]send{
			"HTTP": overHTTP("application/xml", "", fixed([]byte("<spans/>"))), "gRPC raw": overRawGRPC("application/xml", "", framed(valid)),
		}},
		{name: "a missing content type is an unsupported media type", want: []string{"HTTP 415", "HTTP/2 415"}, reqs: map[string]send{
			"HTTP": overHTTP("", "", valid), "gRPC raw": overRawGRPC("", "", framed(valid)),
		}},
		{name: "an unparsable content type is an unsupported media type", want: []string{"HTTP 415"}, reqs: map[string]send{
			"HTTP no type": overHTTP("/x-protobuf", "", valid),
			"HTTP list":    overHTTP("application/x-protobuf, application/json", "", valid),
		}},
		{name: "a protobuf content type with broken parameters is still protobuf", want: accepted, lands: 1, reqs: map[string]send{
			"HTTP": overHTTP("application/x-protobuf;;;=", "", valid),
		}},
		{name: "a JSON body labelled protobuf is refused", want: invalid, reqs: both(func(svc string) []byte { return otlpJSON(svc, "", "") })},
		{name: "a protobuf body labelled JSON is refused", want: invalid, reqs: map[string]send{"HTTP": jsonHTTP(valid)}},
		{name: "a content type in capitals with parameters is still protobuf", want: accepted, lands: 1, reqs: map[string]send{
			"HTTP": overHTTP("Application/X-Protobuf; charset=utf-8", "", valid),
		}},
		{name: "a gRPC content subtype other than proto is still read as protobuf", want: accepted, lands: 1, reqs: map[string]send{
			"gRPC raw": overRawGRPC("application/grpc+json", "", framed(valid)),
		}},

		// Oversized bodies.
		{name: "a request of exactly maxRequestBytes is accepted", want: accepted, lands: 1,
			reqs: both(func(svc string) []byte { return sized(svc, hostileLimit) })},
		{name: "a request one byte over maxRequestBytes is refused as too large", want: tooLarge,
			reqs: both(func(svc string) []byte { return sized(svc, hostileLimit+1) })},
		{name: "a request of twice maxRequestBytes with its Content-Length is refused as too large", want: tooLarge,
			reqs: both(func(svc string) []byte { return sized(svc, 2*hostileLimit) })},
		{name: "a 1 GiB chunked body without a length is refused at the limit", want: []string{"HTTP 413"}, reqs: map[string]send{
			"HTTP": func(h *harness, _ string) []string {
				return []string{h.postHTTP("/v1/traces", "application/x-protobuf", "", io.LimitReader(zeros{}, 1<<30))}
			},
		}},
		{name: "a Content-Length of 1 TB is refused at the limit", want: []string{"HTTP 413"}, reqs: map[string]send{
			"TCP": func(h *harness, _ string) []string {
				head := "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000000000000\r\n\r\n"
				return []string{h.rawHTTP(head, io.LimitReader(zeros{}, 2*hostileLimit), false)}
			},
		}},
		{name: "a gRPC length prefix of 4 GiB is refused before anything is read", want: tooLarge, reqs: map[string]send{
			"gRPC raw": overRawGRPC("application/grpc", "", fixed(frame(false, 1<<32-1, []byte{0x0a, 0x00}))),
		}},

		// Compression.
		{name: "a gzip bomb of 200 MiB of zeros is refused as too large", want: tooLarge, reqs: map[string]send{
			"HTTP":     overHTTP("application/x-protobuf", "gzip", func(string) []byte { return gzipBomb() }),
			"gRPC raw": overRawGRPC("application/grpc", "gzip", func(string) []byte { return compressedFrame(gzipBomb()) }),
		}},
		{name: "a gzip-compressed valid request is accepted", want: accepted, lands: 1, reqs: map[string]send{
			"HTTP":     overHTTP("application/x-protobuf", "gzip", func(svc string) []byte { return gzipped(valid(svc)) }),
			"gRPC raw": overRawGRPC("application/grpc", "gzip", func(svc string) []byte { return compressedFrame(gzipped(valid(svc))) }),
		}},
		{name: "a body labelled gzip that is not gzip is refused", want: invalid, reqs: map[string]send{
			"HTTP":     overHTTP("application/x-protobuf", "gzip", valid),
			"gRPC raw": overRawGRPC("application/grpc", "gzip", func(svc string) []byte { return compressedFrame(valid(svc)) }),
		}},
		{name: "a truncated gzip stream is refused", want: invalid, reqs: map[string]send{
			"HTTP": overHTTP("application/x-protobuf", "gzip", func(svc string) []byte { z := gzipped(sized(svc, 100_000)); return z[:len(z)/2] }),
			"gRPC raw": overRawGRPC("application/grpc", "gzip", func(svc string) []byte {
				z := gzipped(sized(svc, 100_000))
				return compressedFrame(z[:len(z)/2])
			}),
		}},
		{name: "a compressed gRPC message without grpc-encoding is refused", want: grpcFraming, reqs: map[string]send{
			"gRPC raw": overRawGRPC("application/grpc", "", func(svc string) []byte { return compressedFrame(gzipped(valid(svc))) }),
		}},
		{name: "a zstd-compressed valid request is accepted", want: accepted, lands: 1, reqs: map[string]send{
			"HTTP":     overHTTP("application/x-protobuf", "zstd", func(svc string) []byte { return zstdFrame(valid(svc)) }),
			"gRPC raw": overRawGRPC("application/grpc", "zstd", func(svc string) []byte { return compressedFrame(zstdFrame(valid(svc))) }),
		}},
		{name: "deflate, zlib and x-gzip over HTTP are accepted, and encoding names in any case", want: accepted, lands: 1, reqs: map[string]send{
			"HTTP deflate": overHTTP("application/x-protobuf", "deflate", func(svc string) []byte { return zlibbed(valid(svc)) }),
			"HTTP zlib":    overHTTP("application/x-protobuf", "zlib", func(svc string) []byte { return zlibbed(valid(svc)) }),
			"HTTP x-gzip":  overHTTP("application/x-protobuf", "x-gzip", func(svc string) []byte { return gzipped(valid(svc)) }),
			"HTTP GZIP":    overHTTP("application/x-protobuf", "GZIP", func(svc string) []byte { return gzipped(valid(svc)) }),
		}},
		{name: "compress, br, stacked and made-up encodings are unsupported", want: unsupported, reqs: map[string]send{
			"HTTP compress":    overHTTP("application/x-protobuf", "compress", func(svc string) []byte { return lzwed(valid(svc)) }),
			"HTTP br":          overHTTP("application/x-protobuf", "br", valid),
			"HTTP x-unknown":   overHTTP("application/x-protobuf", "x-unknown", valid),
			"HTTP gzip gzip":   overHTTP("application/x-protobuf", "gzip, gzip", func(svc string) []byte { return gzipped(gzipped(valid(svc))) }),
			"gRPC raw br":      overRawGRPC("application/grpc", "br", func(svc string) []byte { return compressedFrame(valid(svc)) }),
			"gRPC raw deflate": overRawGRPC("application/grpc", "deflate", func(svc string) []byte { return compressedFrame(zlibbed(valid(svc))) }),
			// grpc-encoding names are matched as sent (grpc-go and the gRPC spec); clients send them lower-case.
			"gRPC raw GZIP": overRawGRPC("application/grpc", "GZIP", func(svc string) []byte { return compressedFrame(gzipped(valid(svc))) }),
		}},

		// Slow clients. Each opens slowConns connections and sends normal requests meanwhile.
		{name: "slow headers are cut at readHeaderTimeout while normal requests go through", lands: 1,
			want: oneOf(accepted, []string{"closed by the server"}), reqs: map[string]send{
				"TCP": func(h *harness, svc string) []string {
					return h.slowConns(h.e.http, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: ", "a", svc, 10*readHeaderTimeout)
				},
			}},
		{name: "slow bodies are cut at readTimeout while normal requests go through", lands: 1,
			want: oneOf(accepted, []string{"answered HTTP/1.1 408 Request Timeout", "closed by the server"}), reqs: map[string]send{
				"TCP": func(h *harness, svc string) []string {
					head := "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000000\r\n\r\n"
					return h.slowConns(h.e.http, head, "\x00", svc, 5*readTimeout)
				},
			}},
		{name: "a slow HTTP/2 preface on the gRPC port is held while normal requests go through", lands: 1,
			want: oneOf(accepted, []string{"closed by the server", "still open after 3s"}), reqs: map[string]send{
				"TCP": func(h *harness, svc string) []string {
					return h.slowConns(h.e.grpc, "PRI * HTTP/2.0\r\n", "", svc, 3*time.Second) // half a preface, then nothing
				},
			}},

		// Invalid UTF-8.
		{name: "invalid UTF-8 in a span name is refused", want: invalid, reqs: both(func(svc string) []byte {
			sp := spans(1)
			sp[0].Name = "span-name-X"
			return bytes.Replace(request(svc, sp), []byte("name-X"), []byte("name-\xff"), 1)
		})},
		{name: "invalid UTF-8 in an attribute key is refused", want: invalid, reqs: both(func(svc string) []byte {
			return bytes.Replace(request(svc, spans(1, wt.KV("key-X", wt.Int(1)))), []byte("key-X"), []byte("key-\xc3"), 1)
		})},
		{name: "invalid UTF-8 in the service name is refused", want: invalid, reqs: both(func(svc string) []byte {
			return bytes.Replace(valid(svc), []byte(svc), append([]byte(svc[:len(svc)-1]), 0xed), 1)
		})},
		{name: "invalid UTF-8 in a bytes value is just bytes", want: accepted, lands: 1, check: hasAll(`"raw":"//7t"`),
			reqs: both(withAttrs(wt.KV("raw", wt.Bytes([]byte{0xff, 0xfe, 0xed}))))},
		{name: "invalid UTF-8 in OTLP/JSON is refused", want: []string{"HTTP 400"}, reqs: map[string]send{
			"HTTP": jsonHTTP(func(svc string) []byte {
				return otlpJSON(svc, `{"key":"bad","value":{"stringValue":"a`+"\xff\xfe"+`b"}}`, "")
			}),
		}},
		{name: "a lone UTF-16 surrogate escape in OTLP/JSON becomes U+FFFD", want: []string{"HTTP 200"}, lands: 1,
			check: hasAll(`"lone":"a` + "\uFFFD" + `b"`), reqs: map[string]send{
				"HTTP": jsonHTTP(func(svc string) []byte {
					return otlpJSON(svc, `{"key":"lone","value":{"stringValue":"a\ud800b"}}`, "")
				}),
			}},

		// Unknown fields.
		{name: "unknown protobuf fields of every wire type at every level are skipped", want: accepted, lands: 1, check: hasAll(`"attr":"v"`),
			reqs: both(withUnknownFields)},
		{name: "unknown OTLP/JSON keys at every level are ignored", want: []string{"HTTP 200"}, lands: 1, reqs: map[string]send{
			"HTTP": jsonHTTP(func(svc string) []byte {
				return otlpJSON(svc, "", `"x-unknown":{"nested":[1,"two",{"three":null}],"n":-1.5e300},`)
			}),
		}},
		{name: "an unknown OTLP/JSON key holding arrays nested 100,000 deep is refused", want: []string{"HTTP 400"}, reqs: map[string]send{
			"HTTP": jsonHTTP(func(svc string) []byte {
				return otlpJSON(svc, "", `"x-deep":`+strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)+`,`)
			}),
		}},

		// Deeply nested values.
		{name: "a value nested 32 deep (the limit) is accepted", want: accepted, lands: 1, check: hasAll(`"bottom"`),
			reqs: both(withAttrs(wt.KV("deep", nested(32, false))))},
		{name: "a value nested 33 deep is refused", want: invalid, reqs: both(withAttrs(wt.KV("deep", nested(33, true))))},
		{name: "a kvlist nested 5,000 deep is refused", want: invalid, reqs: both(withAttrs(wt.KV("deep", nested(5_000, true))))},
		{name: "an array nested 100,000 deep is refused", want: invalid, reqs: both(func(svc string) []byte { return deepArray(svc, 100_000) })},
		{name: "an OTLP/JSON value nested 10,000 deep is refused", want: []string{"HTTP 400"}, reqs: map[string]send{
			"HTTP": jsonHTTP(func(svc string) []byte {
				const n = 10_000
				v := strings.Repeat(`{"arrayValue":{"values":[`, n) + `{"stringValue":"bottom"}` + strings.Repeat(`]}}`, n)
				return otlpJSON(svc, `{"key":"deep","value":`+v+`}`, "")
			}),
		}},

		// Thousands of attributes.
		{name: "10,000 span attributes are accepted", want: accepted, lands: 1, check: hasAll(`"a.9999":9999`),
			reqs: both(withAttrs(manyAttrs("a", 10_000)...))},
		{name: "100,000 span attributes are accepted", want: accepted, lands: 1, check: hasAll(`"a.99999":99999`),
			reqs: both(withAttrs(manyAttrs("a", 100_000)...))},
		{name: "100,000 resource attributes are accepted", want: accepted, lands: 1, check: hasAll(`"r.99999":99999`),
			reqs: both(func(svc string) []byte { return request(svc, spans(1), manyAttrs("r", 100_000)...) })},
		{name: "10,000 copies of one attribute key are accepted", want: accepted, lands: 1, check: hasAll(`"dup":9999`),
			reqs: both(func(svc string) []byte {
				kvs := make([]*commonpb.KeyValue, 10_000)
				for i := range kvs {
					kvs[i] = wt.KV("dup", wt.Int(int64(i)))
				}
				return request(svc, spans(1, kvs...))
			})},
		{name: "100,000 attributes in OTLP/JSON are accepted", want: accepted, lands: 1, check: hasAll(`"j99999":1`), reqs: map[string]send{
			"HTTP": jsonHTTP(func(svc string) []byte {
				var b strings.Builder
				for i := range 100_000 {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"key":"j%d","value":{"intValue":1}}`, i) // 3.9 MB in all: under the limit
				}
				return otlpJSON(svc, b.String(), "")
			}),
		}},

		// Huge values.
		{name: "a 3 MiB string value is accepted and stored whole", want: accepted, lands: 1, check: dataAtLeast(3 << 20),
			reqs: both(withAttrs(wt.KV("big", wt.Str(strings.Repeat("v", 3<<20)))))},
		{name: "a 3 MiB bytes value is accepted and stored as base64", want: accepted, lands: 1, check: dataAtLeast(4 << 20),
			reqs: both(withAttrs(wt.KV("big", wt.Bytes(bytes.Repeat([]byte{0xff}, 3<<20)))))},
		{name: "a 3 MiB string of control characters is accepted and stored escaped, six times larger", want: accepted, lands: 1,
			check: dataAtLeast(18 << 20), boundMB: writtenMB(18), reqs: both(withAttrs(wt.KV("ctl", wt.Str(strings.Repeat("\x01", 3<<20)))))},
		{name: "a 3 MiB span name is accepted", want: accepted, lands: 1, check: dataAtLeast(3 << 20),
			reqs: both(func(svc string) []byte {
				sp := spans(1)
				sp[0].Name = strings.Repeat("n", 3<<20)
				return request(svc, sp)
			})},
		{name: "a 3 MiB string value in OTLP/JSON is accepted", want: accepted, lands: 1, check: dataAtLeast(3 << 20), reqs: map[string]send{
			"HTTP": jsonHTTP(func(svc string) []byte {
				return otlpJSON(svc, `{"key":"big","value":{"stringValue":"`+strings.Repeat("j", 3<<20)+`"}}`, "")
			}),
		}},

		// Many spans in one request, and one resource repeated in many entries.
		{name: "50,000 spans in one request are all written", want: accepted, lands: 50_000,
			check: entrySizes, boundMB: writtenMB(50_000 * 622 / 1e6), // 622 bytes each, as it notes
			reqs: both(func(svc string) []byte { return request(svc, spans(50_000)) })},
		// Every entry repeats its resource (docs/stream-entries.md): what a request costs grows with
		// spans x resource size. The exporter bounds a request's entries at 8 x maxRequestBytes
		// (32 MiB here): this 1 MiB request writes 16 MiB of entries...
		{name: "a 1 MiB resource shared by 16 spans is copied into each of their 16 entries", want: accepted, lands: 16,
			boundMB: writtenMB(16), check: amplification(1<<20, 16),
			reqs: both(func(svc string) []byte {
				return request(svc, spans(16), wt.KV("blob", wt.Str(strings.Repeat("r", 1<<20))))
			})},
		// ...and one that would write 64 MiB (before the bound, 1,000 such spans took 5 GB and a
		// 1.35 MB request crashed the exporter out of memory) is refused as a whole, nothing written.
		{name: "a 1 MiB resource shared by 64 spans is refused before its entries outgrow the bound", want: invalid,
			boundMB: writtenMB(40),
			reqs: both(func(svc string) []byte {
				return request(svc, spans(64), wt.KV("blob", wt.Str(strings.Repeat("r", 1<<20))))
			})},
		{name: "a 1 MiB resource shared by 10,000 spans is refused without running out of memory", want: invalid,
			boundMB: writtenMB(40),
			reqs: both(func(svc string) []byte {
				return request(svc, spans(10000), wt.KV("blob", wt.Str(strings.Repeat("r", 1<<20))))
			})},

		// Many large requests at once.
		// A refused request costs its body at most: 3x maxRequestBytes each.
		{name: "64 gzip bombs at once are all refused as too large", want: tooLarge, boundMB: concurrent * 3 * limitMB, reqs: map[string]send{
			"HTTP + gRPC raw": func(h *harness, _ string) []string {
				return h.concurrently(concurrent, "gzip", gzipBomb, func(_ int, b []byte) string {
					return h.grpcRaw("application/grpc", "gzip", compressedFrame(b))
				})
			},
		}},
		{name: "64 requests just under maxRequestBytes at once are written or pushed back", want: oneOf(accepted, pushback), lands: 1,
			boundMB: concurrentMB, reqs: map[string]send{
				"HTTP + gRPC": func(h *harness, svc string) []string {
					conns, closeAll, err := h.grpcConns(concurrent / 2)
					if err != nil {
						return []string{"error: " + err.Error()}
					}
					defer closeAll()
					body := func() []byte { return sized(svc, hostileLimit-1024) }
					return h.concurrently(concurrent, "", body, func(i int, b []byte) string { return h.invoke(conns[i], b) })
				},
			}},
	}
}

func hasAll(subs ...string) func(*testing.T, *harness, []redis.XMessage) {
	return func(t *testing.T, _ *harness, entries []redis.XMessage) {
		t.Helper()
		for _, m := range entries {
			data, _ := m.Values["data"].(string)
			for _, s := range subs {
				if !strings.Contains(data, s) {
					t.Errorf("entry %s (%d bytes of data) does not hold %q", m.ID, len(data), s)
				}
			}
		}
	}
}

// amplification checks that each entry holds the resource of resourceBytes, and notes how many
// bytes of entries the request of the case became.
func amplification(resourceBytes, n int) func(*testing.T, *harness, []redis.XMessage) {
	return func(t *testing.T, h *harness, entries []redis.XMessage) {
		t.Helper()
		total := 0
		for _, m := range entries {
			data, _ := m.Values["data"].(string)
			if len(data) < resourceBytes {
				t.Errorf("entry %s has %d bytes of data, want the %d-byte resource in it", m.ID, len(data), resourceBytes)
			}
			total += len(data)
		}
		req := len(request("hostile", spans(n), wt.KV("blob", wt.Str(strings.Repeat("r", resourceBytes)))))
		h.note("a %.2f MiB request became %d entries of %.1f MiB in all (x%.0f)", float64(req)/(1<<20), len(entries), float64(total)/(1<<20), float64(total)/float64(req))
	}
}

// entrySizes notes the size of the entries of a case.
func entrySizes(_ *testing.T, h *harness, entries []redis.XMessage) {
	total := 0
	for _, m := range entries {
		for k, v := range m.Values {
			s, _ := v.(string)
			total += len(k) + len(s)
		}
	}
	h.note("%d entries of %.1f MiB in all (%d bytes each)", len(entries), float64(total)/(1<<20), total/max(len(entries), 1))
}

func dataAtLeast(n int) func(*testing.T, *harness, []redis.XMessage) {
	return func(t *testing.T, _ *harness, entries []redis.XMessage) {
		t.Helper()
		for _, m := range entries {
			if data, _ := m.Values["data"].(string); len(data) < n {
				t.Errorf("entry %s has %d bytes of data, want at least %d", m.ID, len(data), n)
			}
		}
	}
}

// countAnswers summarises answers as "HTTP 400 x1, gRPC InvalidArgument x1".
func countAnswers(answers []string) string {
	counts := map[string]int{}
	for _, a := range answers {
		counts[a]++
	}
	parts := make([]string, 0, len(counts))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

// rssSampler records the exporter's peak RSS every 20 ms until stop.
type rssSampler struct {
	quit chan struct{}
	done chan float64
}

func sampleRSS(e *exporter) *rssSampler {
	s := &rssSampler{quit: make(chan struct{}), done: make(chan float64, 1)}
	go func() {
		peak := e.rssMB()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.quit:
				s.done <- max(peak, e.rssMB())
				return
			case <-tick.C:
				peak = max(peak, e.rssMB())
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() float64 {
	close(s.quit)
	return <-s.done
}
