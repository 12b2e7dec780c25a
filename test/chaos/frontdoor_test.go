//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	wt "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// The front-door suite attacks the limits that act before a request is a request (header lists,
// compressed messages, messages that never finish, connections that say nothing) and the two
// limits on what a finished request may ask for (distinct stream keys, spans per request). Each
// case runs its own exporter under an address-space ceiling, with small limits so that it is
// quick, while a normal client keeps sending real spans; afterwards the same process must be
// alive, have logged no panic, have given back every claimed byte, have grown its RSS by no more
// than the case's bound, and the normal client's spans must all be in Redis.
const (
	fdMaxRequest  = 4 << 20               // --receivers.maxRequestBytes
	fdBudget      = 64 << 20              // --delivery.maxInFlightBytes
	fdBuffered    = 32 << 20              // --receivers.grpc.maxBufferedBytes
	fdHeaderList  = 16 << 10              // receivers.grpc.maxHeaderListBytes (the default)
	fdTimeout     = 2 * time.Second       // --receivers.{grpc,http}.{readTimeout,idleTimeout}, http.readHeaderTimeout
	fdMaxConns    = 64                    // --receivers.maxConnections
	fdMaxKeys     = 1000                  // --stream.maxKeys, in the key-cardinality case
	fdMaxSpans    = 1000                  // --delivery.maxInFlightSpans, in the span-count case
	fdStreamCost  = 16<<10 + fdHeaderList // what each open gRPC request claims (receiver.streamOverhead + maxHeaderListBytes)
	fdFrameBytes  = 16 << 10              // SETTINGS_MAX_FRAME_SIZE: the largest frame either side sends
	fdAnswerAfter = 60 * time.Second      // no answer by then is a hang
)

// fdCeiling is the exporter's address-space ceiling (prlimit --as), so that running away with
// memory kills it (the Go runtime's "fatal error: out of memory") and the case fails on a dead
// process instead of the machine swapping. RLIMIT_AS counts reserved address space, not memory,
// and the Go runtime reserves much of it up front: the idle exporter maps 1.7 GiB without a
// limit; it does not start under 512 MiB ("failed to reserve page summary memory") nor 768 MiB
// (pthread_create fails), and starts from 1 GiB on with its reservations shrunk to fit. The heap
// left is erratic below 2 GiB (a Go program's heap could grow to 96 MiB under 1 GiB, but only 32
// MiB under 1.5 GiB) and about the ceiling minus 1.5 GiB from 2 GiB up (512 MiB at 2 GiB, 1.5
// GiB at 3 GiB). 3 GiB leaves about 1.5 GiB of heap: far above every bound below, so an exporter
// within its bounds never meets it, and far below the machine. (A cgroup memory limit would bound
// RSS rather than address space, but needs a cgroup to create; prlimit needs nothing.)
const fdCeiling = 3 << 30

// Memory bounds. A case's figure is its peak RSS minus its baseline, the RSS after the normal
// client's first round, sampled every 20 ms. What a client can make the exporter hold is bounded
// by:
//   - delivery.maxInFlightBytes (fdBudget): complete messages, their decoded bytes and decoder
//     windows, entries, and each open request's overhead (fdStreamCost: header list and stream);
//   - receivers.grpc.maxBufferedBytes (fdBuffered): message bytes of gRPC requests not yet
//     complete, read off the socket before any budget can refuse them;
//   - per connection, what grpc-go or net/http hold whatever the client sends: read and write
//     buffers (32 KiB each in grpc-go), an HPACK table (4 KiB), goroutine stacks; fdConnMB says
//     256 KiB, generously.
//
// Bytes held live cost up to twice as much RSS (GOGC=100 lets garbage reach the live heap before
// a collection) and a buffer that grows by doubling holds up to twice what it was claimed for:
// so 4x a budget, 2x a fixed cost. (The bytes of an incomplete gRPC message sit in frame-sized
// buffers from grpc-go's pool, which do not grow: 2x maxBufferedBytes.) The bounds fail when a
// limit does not hold: with maxBufferedBytes at 2 GiB the stalled case grew by 414 MiB against its
// 105 MiB, and with maxInFlightBytes at 2 GiB the compression case by 479 MiB against 364 MiB.
// fdFixedMB is what serving adds over the baseline that no client
// chooses (heap growth in whole spans and arenas, sync.Pools, gRPC and Redis pipeline buffers
// warming up): the header-bomb cases, which hold next to nothing, grow by 2 to 4 MiB; 32 MiB
// leaves room for the runtime's timing.
const (
	fdFixedMB = 32.0
	fdConnMB  = 0.25
	mib       = 1 << 20
)

// entryBytes is what one span costs as a stream entry, generously (hostile_test measures ~620
// bytes for a small span); writtenMB's 12x covers the batches and writers' copies.
const entryBytes = 1000

// TestFrontDoorAttacksLeaveTheExporterAliveAndBounded is the front-door suite; each case logs a
// "FIGURES front door:" line.
func TestFrontDoorAttacksLeaveTheExporterAliveAndBounded(t *testing.T) {
	t.Run("an indexed HPACK header bomb is refused before the handler, without a token", func(t *testing.T) {
		fd := startFrontDoor(t, false)
		fd.indexedHeaderBomb(t)
	})
	t.Run("an indexed HPACK header bomb is refused before the handler, with a bearer token required", func(t *testing.T) {
		fd := startFrontDoor(t, true)
		fd.indexedHeaderBomb(t)
	})
	t.Run("literal headers of 15 MiB in CONTINUATION frames end their connections", func(t *testing.T) {
		fd := startFrontDoor(t, false)
		fd.literalHeaderBomb(t)
	})
	t.Run("compressed messages inflating to maxRequestBytes are decoded under the budget", func(t *testing.T) {
		fd := startFrontDoor(t, false)
		fd.compressionAmplification(t)
	})
	t.Run("messages stalled one byte short hold at most maxBufferedBytes and end at readTimeout", func(t *testing.T) {
		fd := startFrontDoor(t, false)
		fd.stalledMessages(t)
	})
	t.Run("idle connections at maxConnections are closed so new clients get in", func(t *testing.T) {
		fd := startFrontDoor(t, false)
		fd.idleConnections(t)
	})
	t.Run("100,000 distinct service names make at most maxKeys streams and lose no span", func(t *testing.T) {
		fd := startFrontDoor(t, false, "--stream.maxKeys="+strconv.Itoa(fdMaxKeys))
		fd.keyCardinality(t)
	})
	t.Run("a request of more spans than maxInFlightSpans is written when alone", func(t *testing.T) {
		fd := startFrontDoor(t, false, "--delivery.maxInFlightSpans="+strconv.Itoa(fdMaxSpans))
		fd.spanCountPoison(t)
	})
}

// frontDoor is one case's exporter, its Redis, and the token clients must send ("" for none).
type frontDoor struct {
	e     *exporter
	rdb   *redis.Client
	h     *harness
	token string
}

func startFrontDoor(t *testing.T, withToken bool, extra ...string) *frontDoor {
	t.Helper()
	srv := redistest.Standalone(t)
	args := []string{
		"--receivers.maxRequestBytes=" + strconv.Itoa(fdMaxRequest),
		"--delivery.maxInFlightBytes=" + strconv.Itoa(fdBudget),
		"--receivers.grpc.maxBufferedBytes=" + strconv.Itoa(fdBuffered),
		"--receivers.grpc.readTimeout=" + fdTimeout.String(),
		"--receivers.grpc.idleTimeout=" + fdTimeout.String(),
		"--receivers.http.readHeaderTimeout=" + fdTimeout.String(),
		"--receivers.http.readTimeout=" + fdTimeout.String(),
		"--receivers.http.idleTimeout=" + fdTimeout.String(),
		"--receivers.maxConnections=" + strconv.Itoa(fdMaxConns),
	}
	fd := &frontDoor{}
	if withToken {
		fd.token = redistest.RandomPassword(t)
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(fd.token), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--receivers.bearerTokenFile="+path)
	}
	fd.e = startExporterUnder(t, []string{"prlimit", "--as=" + strconv.Itoa(fdCeiling), "--"}, srv.Addr(), append(args, extra...)...)
	// prlimit execs the exporter: the ceiling must be the exporter's own.
	if got := addressSpaceLimit(t, fd.e.cmd.Process.Pid); got != strconv.Itoa(fdCeiling) {
		t.Fatalf("the exporter's address-space limit is %q, want %d", got, fdCeiling)
	}
	fd.rdb = srv.Client(t)
	fd.h = newHarness(t, fd.e, fd.rdb)
	return fd
}

// addressSpaceLimit reads the soft "Max address space" of process pid.
func addressSpaceLimit(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max address space"); ok {
			return strings.Fields(rest)[0]
		}
	}
	return "absent"
}

// attack runs a case's attack and checks what every case must hold. run returns the case's own
// figures and the RSS growth it allows, in MiB; n is the normal client, already sending.
func (fd *frontDoor) attack(t *testing.T, n *normal, run func() (figures string, boundMB float64)) {
	t.Helper()
	baseline := fd.e.rssMB()
	stopSampler := sync.OnceValue(sampleRSS(fd.e).stop)
	defer stopSampler() // its goroutine ends with the case, even when run fails it
	from := time.Now()
	figures, boundMB := run()
	to := time.Now()
	peak := stopSampler()
	normalFigures := n.finish(t, fd.rdb, from, to)
	growth := peak - baseline
	t.Logf("FIGURES front door: %s | %s | peak RSS growth %.1f MiB, bound %.0f MiB (baseline %.1f, peak %.1f, ceiling %d GiB address space) | attack took %v | %s",
		t.Name()[strings.LastIndexByte(t.Name(), '/')+1:], figures, growth, boundMB, baseline, peak, fdCeiling>>30, to.Sub(from).Round(time.Millisecond), normalFigures)
	fd.assertAlive(t)
	if growth > boundMB {
		t.Errorf("RSS grew by %.1f MiB during the attack (from %.1f to %.1f), more than the %.0f MiB its limits allow", growth, baseline, peak, boundMB)
	}
	wait.For(t, 10*time.Second, "every byte claimed from delivery.maxInFlightBytes given back", func() error {
		if v := fd.e.metric(t, "tracestream_exporter_inflight_bytes"); v != 0 {
			return fmt.Errorf("tracestream_exporter_inflight_bytes %v", v)
		}
		return nil
	})
}

// assertAlive fails the test when the exporter has exited or logged a panic.
func (fd *frontDoor) assertAlive(t *testing.T) {
	t.Helper()
	if fd.e.exited() {
		t.Fatalf("the exporter exited during the attack: %v", fd.e.exitErr)
	}
	b, err := os.ReadFile(fd.e.log)
	if err != nil {
		t.Fatal(err)
	}
	if log := string(b); strings.Contains(log, "fatal error:") || strings.HasPrefix(log, "panic:") || strings.Contains(log, "\npanic:") {
		t.Fatalf("the exporter logged a panic or a fatal error")
	}
}

// Case 1: an indexed HPACK header bomb. One x-bomb-bin field of 4,052 bytes (with its name and
// HPACK's 32 bytes, 4,094: it fits the 4,096-byte dynamic table) is sent once as a literal and
// then as a one-byte index 10,000 times: 10 KB on the wire, 41 MB of header list per stream, on
// 100 streams over 4 connections, never followed by a message. The other fields are sent as
// never-indexed literals so that nothing evicts the bomb from the table. grpc-go stops decoding
// past maxHeaderListBytes, so every bomb must be refused at once. Ten more streams carry a
// header list just under the bound (3 copies, 12 KB): they reach the exporter's admission, which
// refuses a missing token at once (Unauthenticated); without a token configured they wait for a
// message that never comes and end at readTimeout.
func (fd *frontDoor) indexedHeaderBomb(t *testing.T) {
	const (
		conns, bombs, under = 4, 100, 10
		refs                = 10_000
	)
	n := fd.startNormal(t, "fd-normal")
	refusedAuth := fd.e.metric(t, `tracestream_exporter_requests_refused_total{protocol="grpc",reason="auth"}`)
	bomb := hpack.HeaderField{Name: "x-bomb-bin", Value: strings.Repeat("Ym9t", 1013)}
	fd.attack(t, n, func() (string, float64) {
		cs := dialH2s(t, fd.e.grpc, conns)
		defer closeH2s(cs)
		type sent struct {
			c      *h2conn
			id     uint32
			isBomb bool
		}
		var streams []sent
		for i := range bombs + under {
			c, id := cs[i%conns], uint32(2*(i/conns)+1)
			copies := refs
			if i >= bombs {
				copies = 3
			}
			err := c.open(id, false, func(enc *hpack.Encoder) {
				for _, f := range grpcRequestFields("") {
					_ = enc.WriteField(f)
				}
				for range copies {
					_ = enc.WriteField(bomb)
				}
			})
			if err != nil {
				t.Errorf("stream %d: writing the headers: %v", id, err)
			}
			streams = append(streams, sent{c, id, i < bombs})
		}
		var bombAnswers, underAnswers []string
		var slowest time.Duration
		for _, s := range streams {
			a := s.c.await(s.id, fdAnswerAfter)
			slowest = max(slowest, a.after)
			if s.isBomb {
				bombAnswers = append(bombAnswers, a.what)
				if !strings.HasPrefix(a.what, "RST_STREAM") && !strings.HasPrefix(a.what, "GOAWAY") && a.what != "HTTP/2 431" && a.what != "gRPC ResourceExhausted" {
					t.Errorf("a header bomb's stream %d was answered %q: want it refused (RST_STREAM, GOAWAY, 431)", s.id, a.what)
				}
				continue
			}
			underAnswers = append(underAnswers, a.what)
			want := "gRPC DeadlineExceeded" // admitted, and waiting for a message until readTimeout
			if fd.token != "" {
				want = "gRPC Unauthenticated"
			}
			if a.what != want {
				t.Errorf("a stream with headers just under the bound and no token (%d) was answered %q, want %q", s.id, a.what, want)
			}
		}
		if fd.token != "" {
			if got := fd.e.metric(t, `tracestream_exporter_requests_refused_total{protocol="grpc",reason="auth"}`) - refusedAuth; got != under {
				t.Errorf("requests_refused_total{reason=\"auth\"} grew by %v, want %d", got, under)
			}
		}
		return fmt.Sprintf("token required: %v | %d bombs of %d x %d-byte indexed fields (%.0f MB of header list each): %s | %d under the bound: %s | last answer after %v",
				fd.token != "", bombs, refs+1, bomb.Size(), float64((refs+1)*int(bomb.Size()))/1e6, countAnswers(bombAnswers), under, countAnswers(underAnswers), slowest.Round(time.Millisecond)),
			fdFixedMB + conns*fdConnMB + 2*float64((bombs+under)*fdStreamCost)/mib
	})
}

// Case 2: literal headers. Each of 40 connections opens one stream whose header block is 15 MiB
// of never-indexed literal fields of 4 KB (nothing for the table to share), sent as one HEADERS
// frame and then CONTINUATION frames of 16 KiB. The server must stop reading at the first
// CONTINUATION past maxHeaderListBytes and end the connection, not decode 15 MiB.
func (fd *frontDoor) literalHeaderBomb(t *testing.T) {
	const (
		conns      = 40
		blockBytes = 15 << 20
	)
	n := fd.startNormal(t, "fd-normal")
	block := literalBlock(blockBytes)
	fd.attack(t, n, func() (string, float64) {
		answers := make([]string, conns)
		sentKiB := make([]int, conns)
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() {
				c, err := dialH2(fd.e.grpc)
				if err != nil {
					answers[i] = "dial error: " + err.Error()
					return
				}
				defer c.Close()
				sent, _ := c.writeBlock(1, false, block)
				sentKiB[i] = sent >> 10
				answers[i] = c.await(1, fdAnswerAfter).what
			})
		}
		wg.Wait()
		for i, a := range answers {
			if !strings.HasPrefix(a, "GOAWAY") && !strings.HasPrefix(a, "RST_STREAM") && !strings.HasPrefix(a, "closed by the server") {
				t.Errorf("connection %d: %q, want the server to refuse the header block and end the stream or the connection", i, a)
			}
		}
		return fmt.Sprintf("%d connections each sending a %d MiB header block: %s | sent before the server stopped them: %d KiB at most, %d KiB median (socket buffers included)",
				conns, blockBytes>>20, countAnswers(answers), slices.Max(sentKiB), median(sentKiB)),
			fdFixedMB + conns*fdConnMB + 2*float64(conns*fdStreamCost)/mib
	})
}

// literalBlock is a header block of the gRPC request's fields and then never-indexed literal
// fields of 4 KB, size bytes in all. Never-indexed fields leave the HPACK table alone, so the
// block can be sent on any connection as its first.
func literalBlock(size int) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range grpcRequestFields("") {
		_ = enc.WriteField(f)
	}
	head := slices.Clone(buf.Bytes())
	buf.Reset()
	random := make([]byte, 3000)
	_, _ = rand.Read(random)
	_ = enc.WriteField(hpack.HeaderField{Name: "x-bomb-bin", Value: base64.StdEncoding.EncodeToString(random)[:4000], Sensitive: true})
	field := buf.Bytes()
	block := make([]byte, 0, size+len(field))
	block = append(block, head...)
	for len(block) < size {
		block = append(block, field...)
	}
	return block
}

// Case 3: compression amplification. Each message is a 1-span request preceded by an unknown
// field of zeros, maxRequestBytes-1024 bytes once decoded (the parser skips the unknown field,
// so only the decoding costs), compressed to a few KB: 100 at once per encoding, over HTTP/2
// connections of the net/http client. The exporter decodes them in its handler, claiming the
// decoded bytes (and a zstd window) from delivery.maxInFlightBytes as they are produced: each is
// written (OK) or refused at once (RESOURCE_EXHAUSTED), and the memory stays that of the budget.
func (fd *frontDoor) compressionAmplification(t *testing.T) {
	const concurrent = 100
	n := fd.startNormal(t, "fd-normal")
	codecs := []struct {
		name     string
		compress func([]byte) []byte
	}{
		{"gzip", gzipped},
		{"zstd", func(b []byte) []byte {
			enc, _ := zstd.NewWriter(nil)
			defer func() { _ = enc.Close() }()
			return enc.EncodeAll(b, nil)
		}},
		{"snappy", func(b []byte) []byte { // the framing format, as the Collector sends it
			var buf bytes.Buffer
			w := snappy.NewBufferedWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		}},
	}
	refused := fd.e.metric(t, "tracestream_exporter_memory_refused_requests_total")
	fd.attack(t, n, func() (string, float64) {
		var parts []string
		largest := 0
		for _, codec := range codecs {
			svc := "fd-zip-" + codec.name
			tail := request(svc, spans(1))
			filler := codec.compress(unknownField(fdMaxRequest - 1024 - len(tail)))
			msgs := make([][]byte, concurrent)
			for i := range msgs {
				// A message of two members (gzip), frames (zstd) or streams (snappy): the
				// filler compressed once, and each message's own span.
				msgs[i] = compressedFrame(slices.Concat(filler, codec.compress(request(svc, spans(1)))))
			}
			largest = max(largest, len(msgs[0]))
			answers := make([]string, concurrent)
			gate := make(chan struct{})
			var wg sync.WaitGroup
			for i := range msgs {
				wg.Go(func() {
					<-gate
					answers[i] = fd.h.grpcRaw("application/grpc", codec.name, msgs[i])
				})
			}
			began := time.Now()
			close(gate)
			wg.Wait()
			ok := 0
			for _, a := range answers {
				switch a {
				case "gRPC OK":
					ok++
				case "gRPC ResourceExhausted":
				default:
					t.Errorf("%s: answer %q, want OK or ResourceExhausted", codec.name, a)
				}
			}
			if got := fd.rdb.XLen(context.Background(), "traces:"+svc).Val(); got != int64(ok) {
				t.Errorf("%s: %d entries in traces:%s, want one per OK (%d)", codec.name, got, svc, ok)
			}
			parts = append(parts, fmt.Sprintf("%s %d-byte messages decoding to %d bytes (x%.0f): %s in %v",
				codec.name, len(msgs[0]), fdMaxRequest-1024, float64(fdMaxRequest-1024)/float64(len(msgs[0])), countAnswers(answers), time.Since(began).Round(time.Millisecond)))
		}
		parts = append(parts, fmt.Sprintf("memory_refused_requests_total +%.0f", fd.e.metric(t, "tracestream_exporter_memory_refused_requests_total")-refused))
		// The budget holds the decoded bytes and windows; grpc-go holds the compressed messages
		// until they are complete; the net/http client opens a few connections.
		return strings.Join(parts, " | "), fdFixedMB + 4*float64(fdBudget+concurrent*largest)/mib + 4*fdConnMB
	})
}

// sampleMetric polls one series of the exporter's metrics every 50 ms until the returned stop,
// which returns the highest value seen.
func sampleMetric(e *exporter, series string) func() float64 {
	quit, done := make(chan struct{}), make(chan float64, 1)
	go func() {
		peak := 0.0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := scrape(e.admin); err == nil {
				peak = max(peak, m[series])
			}
			select {
			case <-quit:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 { close(quit); return <-done }
}

// unknownField is field 1000 of an ExportTraceServiceRequest, bytes of zeros: size bytes in all.
func unknownField(size int) []byte {
	n := size - protowire.SizeTag(1000) - 4 // a 4-byte varint length: sizes of 2 MiB up to 256 MiB
	b := protowire.AppendTag(nil, 1000, protowire.BytesType)
	b = binary.AppendUvarint(b, uint64(n))
	return append(b, make([]byte, n)...)
}

// Case 4: stalled messages. 100 streams over 10 connections each announce a message of
// maxRequestBytes and send all of it but the last byte, honouring flow control. grpc-go holds
// what arrives until a message is complete; the connection meter stops reading a connection when
// receivers.grpc.maxBufferedBytes is held, closes the connection holding the most after a second
// without room (grpc_buffer_evictions_total), and readTimeout ends every other stream.
func (fd *frontDoor) stalledMessages(t *testing.T) {
	const conns, streams = 10, 100
	n := fd.startNormal(t, "fd-normal")
	const (
		timeouts  = `tracestream_exporter_requests_refused_total{protocol="grpc",reason="read_timeout"}`
		buffered  = "tracestream_exporter_grpc_buffered_bytes"
		evictions = "tracestream_exporter_grpc_buffer_evictions_total"
	)
	before, evictedBefore := fd.e.metric(t, timeouts), fd.e.metric(t, evictions)
	fd.attack(t, n, func() (string, float64) {
		stopBuffered := sync.OnceValue(sampleMetric(fd.e, buffered))
		defer stopBuffered()
		cs := dialH2s(t, fd.e.grpc, conns)
		defer closeH2s(cs)
		prefix := frame(false, fdMaxRequest, nil)
		answers := make([]string, streams)
		ended := make([]time.Duration, streams)
		sentMiB := make([]float64, streams)
		var wg sync.WaitGroup
		for i := range streams {
			// Opened in order: stream ids on a connection only grow.
			c, id := cs[i%conns], uint32(2*(i/conns)+1)
			err := c.open(id, false, func(enc *hpack.Encoder) {
				for _, f := range grpcRequestFields(fd.token) {
					_ = enc.WriteField(f)
				}
			})
			if err != nil {
				answers[i] = "writing headers: " + err.Error()
				continue
			}
			wg.Go(func() {
				sent := c.sendZeros(id, prefix, fdMaxRequest-1)
				sentMiB[i] = float64(sent) / mib
				a := c.await(id, fdAnswerAfter)
				answers[i], ended[i] = a.what, a.after
			})
		}
		wg.Wait()
		deadlines, closed := 0, 0
		for i, a := range answers {
			switch {
			case a == "gRPC DeadlineExceeded":
				deadlines++
			case a == "closed by the server": // its connection held the most of the bound
				closed++
			case strings.HasPrefix(a, "RST_STREAM"):
			default:
				t.Errorf("stalled stream %d: %q, want DEADLINE_EXCEEDED, a reset or its connection closed", i, a)
			}
		}
		evicted := fd.e.metric(t, evictions) - evictedBefore
		if closed > 0 && evicted == 0 {
			t.Errorf("%d streams' connections were closed, yet %s did not grow", closed, evictions)
		}
		if got := fd.e.metric(t, timeouts) - before; got != float64(deadlines) {
			t.Errorf("%s grew by %v, want one per DEADLINE_EXCEEDED answer (%d)", timeouts, got, deadlines)
		}
		peakBuffered := stopBuffered()
		if peakBuffered > fdBuffered || peakBuffered < fdBuffered/2 {
			t.Errorf("%s peaked at %.0f: want it to reach the bound (%d) and never pass it", buffered, peakBuffered, fdBuffered)
		}
		wait.For(t, 10*time.Second, "every buffered byte given back", func() error {
			if v := fd.e.metric(t, buffered); v != 0 {
				return fmt.Errorf("%s %v", buffered, v)
			}
			return nil
		})
		total := 0.0
		for _, s := range sentMiB {
			total += s
		}
		slices.Sort(ended)
		return fmt.Sprintf("%d streams on %d connections, each %d bytes of a %d-byte message: %s | streams ended after %v (first), %v (median), %v (last); readTimeout %v | %.0f MiB sent in all (socket buffers included) | grpc_buffered_bytes peaked at %.1f MiB (bound %d MiB), %v connections evicted as the largest holder | %s +%v",
				streams, conns, fdMaxRequest-1, fdMaxRequest, countAnswers(answers), ended[0].Round(time.Millisecond), ended[len(ended)/2].Round(time.Millisecond), ended[len(ended)-1].Round(time.Millisecond), fdTimeout, total, peakBuffered/mib, fdBuffered>>20, evicted, timeouts, fd.e.metric(t, timeouts)-before),
			fdFixedMB + 2*float64(fdBuffered+streams*fdStreamCost)/mib + conns*fdConnMB
	})
}

// Case 5: idle connections at receivers.maxConnections. 64 gRPC connections send the preface and
// SETTINGS and then nothing; 64 HTTP/1.1 connections send one request and then nothing (the
// normal client, already connected, holds one slot of each). A new gRPC client and a new HTTP
// client must get in, and every idle connection must be closed by the server: made room for
// (receiver_connections_evicted_total) or timed out (receivers.grpc.idleTimeout,
// receivers.http.idleTimeout).
func (fd *frontDoor) idleConnections(t *testing.T) {
	n := fd.startNormal(t, "fd-normal")
	const attackerSvc = "fd-idle-attacker"
	series := func(name, protocol string) string {
		return fmt.Sprintf(`tracestream_exporter_%s{protocol=%q}`, name, protocol)
	}
	fd.attack(t, n, func() (string, float64) {
		began := time.Now()
		grpcIdle := dialH2s(t, fd.e.grpc, fdMaxConns)
		defer closeH2s(grpcIdle)
		httpIdle := make([]*idleHTTP, fdMaxConns)
		var wg sync.WaitGroup
		defer wg.Wait()
		for i := range httpIdle {
			c, err := net.DialTimeout("tcp", fd.e.http, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			httpIdle[i] = &idleHTTP{c: c, began: began}
			defer func() { _ = c.Close() }()
			wg.Go(func() { httpIdle[i].run(valid(attackerSvc)) })
		}
		// The attack is in place when every attacker has been accepted or closed, or the slots
		// are all taken (the rest wait in the accept queue).
		peak := map[string]float64{}
		wait.For(t, 30*time.Second, "the idle connections accepted", func() error {
			var waiting []string
			for _, p := range []string{"grpc", "http"} {
				open := fd.e.metric(t, series("receiver_connections", p))
				peak[p] = max(peak[p], open)
				if open >= fdMaxConns {
					continue
				}
				for i := range fdMaxConns {
					if p == "grpc" && !grpcIdle[i].acceptedOrEnded() || p == "http" && !httpIdle[i].answeredOrClosed() {
						waiting = append(waiting, fmt.Sprintf("%s: %v connections open, attacker %d not accepted", p, open, i))
						break
					}
				}
			}
			if len(waiting) > 0 {
				return errors.New(strings.Join(waiting, "; "))
			}
			return nil
		})
		inPlace := time.Since(began)

		// A new client of each transport, with fresh connections.
		joined := time.Now()
		newcomer := fd.startNormal(t, "fd-newcomer")
		firstRound := time.Since(joined)
		newcomerFigures := newcomer.finish(t, fd.rdb, joined, time.Now())

		wait.For(t, 2*fdAnswerAfter, "every idle connection closed by the server", func() error {
			open := 0
			for i := range fdMaxConns {
				if what, _ := grpcIdle[i].end(); what == "" {
					open++
				}
				if !httpIdle[i].closed() {
					open++
				}
			}
			if open > 0 {
				return fmt.Errorf("%d of %d idle connections open", open, 2*fdMaxConns)
			}
			return nil
		})
		wg.Wait()
		var grpcHow, httpHow, httpAnswers []string
		var grpcAfter, httpAfter []time.Duration
		for i := range fdMaxConns {
			what, after := grpcIdle[i].end()
			grpcHow, grpcAfter = append(grpcHow, what), append(grpcAfter, after)
			h := httpIdle[i]
			httpHow, httpAnswers, httpAfter = append(httpHow, h.closedBy), append(httpAnswers, h.answer), append(httpAfter, h.after)
		}
		for _, how := range slices.Concat(grpcHow, httpHow) {
			if !strings.HasPrefix(how, "closed by the server") && !strings.HasPrefix(how, "GOAWAY") {
				t.Errorf("an idle connection ended %q, want closed by the server", how)
			}
		}
		for _, a := range httpAnswers {
			if a != "HTTP 200" && !strings.HasPrefix(a, "closed before answering") {
				t.Errorf("an idle HTTP connection's one request was answered %q, want 200 (or closed unread to make room)", a)
			}
		}
		answered := 0
		for _, a := range httpAnswers {
			if a == "HTTP 200" {
				answered++
			}
		}
		if got := fd.rdb.XLen(context.Background(), "traces:"+attackerSvc).Val(); got != int64(answered) {
			t.Errorf("%d entries in traces:%s, want one per idle connection's answered request (%d)", got, attackerSvc, answered)
		}
		slices.Sort(grpcAfter)
		slices.Sort(httpAfter)
		return fmt.Sprintf("%d idle gRPC + %d idle HTTP connections in place after %v, receiver_connections peaked at grpc %v, http %v | a new client's first round (gRPC + HTTP) took %v; newcomer: %s | gRPC idle: %s, closed after %v (median) to %v (last), evicted_total %v | HTTP idle: %s; %s, closed after %v (median) to %v (last), evicted_total %v | idleTimeout %v",
				fdMaxConns, fdMaxConns, inPlace.Round(time.Millisecond), peak["grpc"], peak["http"], firstRound.Round(time.Millisecond), newcomerFigures,
				countAnswers(grpcHow), pick(grpcAfter, 2), pick(grpcAfter, 1), fd.e.metric(t, series("receiver_connections_evicted_total", "grpc")),
				countAnswers(httpAnswers), countAnswers(httpHow), pick(httpAfter, 2), pick(httpAfter, 1), fd.e.metric(t, series("receiver_connections_evicted_total", "http")), fdTimeout),
			fdFixedMB + 2*fdMaxConns*fdConnMB
	})
}

// idleHTTP is an HTTP/1.1 connection that sends one request and then nothing, and records what
// the server does with it.
type idleHTTP struct {
	c     net.Conn
	began time.Time

	mu       sync.Mutex
	answer   string        // the request's answer
	closedBy string        // how the connection ended; "" while open
	after    time.Duration // since began
}

func (h *idleHTTP) run(body []byte) {
	_ = h.c.SetReadDeadline(time.Now().Add(2 * fdAnswerAfter))
	if _, err := fmt.Fprintf(h.c, "POST /v1/traces HTTP/1.1\r\nHost: fd\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		h.set("write error: "+err.Error(), "closed by the server (before the request was sent)")
		return
	}
	br := bufio.NewReader(h.c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		h.set("closed before answering", h.how(err))
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	h.set(fmt.Sprintf("HTTP %d", resp.StatusCode), "")
	_, err = br.ReadByte() // idle from now on: wait for the server to close
	h.set("", h.how(err))
}

func (h *idleHTTP) how(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "sent bytes unasked"
	case errors.As(err, &ne) && ne.Timeout():
		return "still open"
	case errors.Is(err, net.ErrClosed):
		return "closed by the client"
	default:
		return "closed by the server"
	}
}

func (h *idleHTTP) set(answer, closedBy string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if answer != "" {
		h.answer = answer
	}
	if closedBy != "" {
		h.closedBy, h.after = closedBy, time.Since(h.began)
	}
}

func (h *idleHTTP) answeredOrClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answer != "" || h.closedBy != ""
}

func (h *idleHTTP) closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closedBy != ""
}

// Case 6: key cardinality. 100,000 spans, each of its own service.name, in requests of 1,000
// (4 at a time): the exporter writes at most stream.maxKeys streams (the normal client's is one
// of them), the rest to traces:overflow, and counts them there.
func (fd *frontDoor) keyCardinality(t *testing.T) {
	const total, perRequest, workers = 100_000, 1000, 4
	n := fd.startNormal(t, "fd-normal") // its stream is the first key
	fd.attack(t, n, func() (string, float64) {
		ctx := context.Background()
		jobs := make(chan int)
		answers := make([]string, total/perRequest)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for r := range jobs {
					body := manyServices(r*perRequest, perRequest)
					for deadline := time.Now().Add(fdAnswerAfter); ; time.Sleep(100 * time.Millisecond) {
						answers[r] = fd.h.invoke(fd.h.conn, body)
						if answers[r] != "gRPC ResourceExhausted" && answers[r] != "gRPC Unavailable" || time.Now().After(deadline) {
							break
						}
					}
				}
			})
		}
		for r := range answers {
			jobs <- r
		}
		close(jobs)
		wg.Wait()
		for _, a := range answers {
			if a != "gRPC OK" {
				t.Errorf("a request of %d spans of distinct services: %q, want OK", perRequest, a)
			}
		}
		var keys, cardKeys int
		var cardSpans int64
		iter := fd.rdb.Scan(ctx, 0, "traces:*", 1000).Iterator()
		for iter.Next(ctx) {
			keys++
			if strings.HasPrefix(iter.Val(), "traces:fd-card-") {
				cardKeys++
				cardSpans += fd.rdb.XLen(ctx, iter.Val()).Val()
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		dbsize := fd.rdb.DBSize(ctx).Val()
		overflow := fd.rdb.XLen(ctx, "traces:overflow").Val()
		overflowMetric := fd.e.metric(t, "tracestream_exporter_stream_key_overflow_spans_total")
		live := fd.e.metric(t, "tracestream_exporter_stream_keys")
		if dbsize > fdMaxKeys+1 || keys > fdMaxKeys+1 {
			t.Errorf("%d keys in Redis (%d traces:* streams), more than stream.maxKeys + the overflow key (%d)", dbsize, keys, fdMaxKeys+1)
		}
		if cardSpans+overflow != total {
			t.Errorf("%d spans in the per-service streams + %d in traces:overflow = %d, want all %d", cardSpans, overflow, cardSpans+overflow, total)
		}
		if want := total - (fdMaxKeys - 1); overflow != int64(want) || overflowMetric != float64(want) {
			t.Errorf("traces:overflow holds %d spans and stream_key_overflow_spans_total is %v, want both %d: the spans past the %d keys (the normal client's among them)",
				overflow, overflowMetric, want, fdMaxKeys)
		}
		if live != fdMaxKeys {
			t.Errorf("tracestream_exporter_stream_keys %v, want stream.maxKeys (%d)", live, fdMaxKeys)
		}
		return fmt.Sprintf("%d spans of distinct services in %d requests: %s | %d keys in Redis (%d traces:* streams, %d per-service), stream_keys %v | %d spans in per-service streams, %d in traces:overflow, stream_key_overflow_spans_total %v",
				total, len(answers), countAnswers(answers), dbsize, keys, cardKeys, live, cardSpans, overflow, overflowMetric),
			fdFixedMB + writtenMB(float64(workers*perRequest*entryBytes)/mib)
	})
}

// manyServices is a request of n spans, span i of service fd-card-<first+i>.
func manyServices(first, n int) []byte {
	req := &coltracepb.ExportTraceServiceRequest{}
	for i := range n {
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{wt.KV("service.name", wt.Str(fmt.Sprintf("fd-card-%06d", first+i)))}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans(1)}},
		})
	}
	return wt.Marshal(req)
}

// Case 7: span-count poison. With delivery.maxInFlightSpans 1,000, a request of 5,000 spans is
// admitted when nothing else is in flight (it counts as the whole bound): sent alone (the normal
// client paused), over each transport, it must be written. Then 10 more are sent while the normal
// client sends: they may be pushed back, and the normal client must still get through.
func (fd *frontDoor) spanCountPoison(t *testing.T) {
	const poisonSpans, rounds = 5000, 10
	n := fd.startNormal(t, "fd-normal")
	fd.attack(t, n, func() (string, float64) {
		n.pause()
		alone := []string{
			fd.h.invoke(fd.h.conn, request("fd-poison-grpc", spans(poisonSpans))),
			fd.h.postHTTP("/v1/traces", "application/x-protobuf", "", bytes.NewReader(request("fd-poison-http", spans(poisonSpans)))),
		}
		n.resume()
		if alone[0] != "gRPC OK" || alone[1] != "HTTP 200" {
			t.Errorf("a request of %d spans sent alone (maxInFlightSpans %d): %v, want gRPC OK and HTTP 200", poisonSpans, fdMaxSpans, alone)
		}
		written := map[string]int{"fd-poison-grpc": 1, "fd-poison-http": 1}
		var during []string
		for i := range rounds {
			var a string
			if i%2 == 0 {
				a = fd.h.invoke(fd.h.conn, request("fd-poison-grpc", spans(poisonSpans)))
			} else {
				a = fd.h.postHTTP("/v1/traces", "application/x-protobuf", "", bytes.NewReader(request("fd-poison-http", spans(poisonSpans))))
			}
			during = append(during, a)
			switch a {
			case "gRPC OK":
				written["fd-poison-grpc"]++
			case "HTTP 200":
				written["fd-poison-http"]++
			case "gRPC ResourceExhausted", "HTTP 429":
			default:
				t.Errorf("a request of %d spans sent with the normal client's: %q, want written or pushed back", poisonSpans, a)
			}
		}
		for svc, k := range written {
			if got := fd.rdb.XLen(context.Background(), "traces:"+svc).Val(); got != int64(k*poisonSpans) {
				t.Errorf("traces:%s holds %d entries, want %d (%d requests written)", svc, got, k*poisonSpans, k)
			}
		}
		return fmt.Sprintf("%d-span requests, maxInFlightSpans %d: alone %s; alongside the normal client %s",
				poisonSpans, fdMaxSpans, countAnswers(alone), countAnswers(during)),
			fdFixedMB + writtenMB(float64(poisonSpans*entryBytes)/mib)
	})
}

// grpcRequestFields are an Export request's header fields; those the static table does not hold
// are never indexed, so that they leave the HPACK dynamic table to the bomb.
func grpcRequestFields(token string) []hpack.HeaderField {
	f := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: exportMethod, Sensitive: true}, {Name: ":authority", Value: "front-door", Sensitive: true},
		{Name: "content-type", Value: "application/grpc", Sensitive: true}, {Name: "te", Value: "trailers", Sensitive: true},
	}
	if token != "" {
		f = append(f, hpack.HeaderField{Name: "authorization", Value: "Bearer " + token, Sensitive: true})
	}
	return f
}

func median(xs []int) int {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// pick returns the median (of 2) or the last (of 1) of sorted durations, rounded; "-" for none.
func pick(sorted []time.Duration, of int) string {
	if len(sorted) == 0 {
		return "-"
	}
	if of == 2 {
		return sorted[len(sorted)/2].Round(10 * time.Millisecond).String()
	}
	return sorted[len(sorted)-1].Round(10 * time.Millisecond).String()
}

// The normal client.

// normal is a well-behaved client that keeps sending real spans over both transports while a
// case attacks: rounds of one OTLP/gRPC request (the SDK's client, retrying as services do) and
// one OTLP/HTTP request (retrying pushback and broken connections, as the Collector does), of 5
// spans each, 20 ms apart, each round on the clients' own connections.
type normal struct {
	svc, http, token string
	grpc             otlptrace.Client
	hc               *http.Client
	ctx              context.Context
	cancel           context.CancelFunc
	stop             chan struct{}
	done             chan struct{}
	stopOnce         sync.Once

	mu       sync.Mutex
	paused   bool
	active   bool
	rounds   [][2]time.Time
	acked    []string
	failed   []string
	retried  []string // why the HTTP client retried
	slowest  time.Duration
	abandons int
}

// startNormal starts a normal client of service svc and waits for its first round.
func (fd *frontDoor) startNormal(t *testing.T, svc string) *normal {
	t.Helper()
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(fd.e.grpc), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithTimeout(30 * time.Second),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: fdAnswerAfter})}
	if fd.token != "" {
		opts = append(opts, otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + fd.token}))
	}
	n := &normal{svc: svc, http: fd.e.http, token: fd.token, grpc: otlptracegrpc.NewClient(opts...),
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}, stop: make(chan struct{}), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.grpc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.halt()
		_ = n.grpc.Stop(context.Background())
		n.hc.CloseIdleConnections()
	})
	go n.run()
	wait.For(t, 2*fdAnswerAfter, "the normal client's first round", func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		if len(n.failed) > 0 {
			return nil // finish reports it
		}
		if len(n.rounds) == 0 {
			return errors.New("no round completed")
		}
		return nil
	})
	return n
}

func (n *normal) run() {
	defer close(n.done)
	for {
		select {
		case <-n.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		n.mu.Lock()
		if n.paused {
			n.mu.Unlock()
			continue
		}
		n.active = true
		n.mu.Unlock()
		start := time.Now()
		rs, ids := spanload.Spans(n.svc, 5)
		n.record("gRPC", ids, start, n.grpc.UploadTraces(n.ctx, rs))
		rs, ids = spanload.Spans(n.svc, 5)
		began := time.Now()
		n.record("HTTP", ids, began, n.postHTTP(rs))
		n.mu.Lock()
		n.active = false
		n.rounds = append(n.rounds, [2]time.Time{start, time.Now()})
		n.mu.Unlock()
	}
}

func (n *normal) record(transport string, ids []string, began time.Time, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.slowest = max(n.slowest, time.Since(began))
	switch {
	case err != nil && n.ctx.Err() != nil:
		n.abandons++
	case err != nil:
		n.failed = append(n.failed, transport+": "+err.Error())
	default:
		n.acked = append(n.acked, ids...)
	}
}

// postHTTP sends rs over OTLP/HTTP, retrying 429, 503 and broken connections for up to
// fdAnswerAfter.
func (n *normal) postHTTP(rs []*tracepb.ResourceSpans) error {
	body, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(fdAnswerAfter)
	for {
		req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, "http://"+n.http+"/v1/traces", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		if n.token != "" {
			req.Header.Set("Authorization", "Bearer "+n.token)
		}
		var why string
		resp, err := n.hc.Do(req)
		switch {
		case err != nil && n.ctx.Err() != nil:
			return err
		case err != nil:
			why = "transport error"
		default:
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			why = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		n.mu.Lock()
		n.retried = append(n.retried, why)
		n.mu.Unlock()
		if time.Now().After(deadline) {
			return fmt.Errorf("still %s after %v of retries", why, fdAnswerAfter)
		}
		select {
		case <-n.ctx.Done():
			return n.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pause waits for the round in progress and holds the next ones until resume.
func (n *normal) pause() {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	_ = wait.Until(fdAnswerAfter, func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.active {
			return errors.New("a round in progress")
		}
		return nil
	})
}

func (n *normal) resume() {
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// halt stops the rounds, cutting short a request still retrying.
func (n *normal) halt() {
	n.stopOnce.Do(func() {
		close(n.stop)
		n.cancel()
	})
	<-n.done
}

// finish lets the round in progress at to complete, stops the client, and checks that some round
// ran during [from, to], that no request failed after its retries, and that every acknowledged
// span is in Redis. It returns the client's figures.
func (n *normal) finish(t *testing.T, rdb *redis.Client, from, to time.Time) string {
	t.Helper()
	wait.For(t, 2*fdAnswerAfter, "the normal client's round after the attack", func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		if len(n.failed) > 0 || len(n.rounds) > 0 && n.rounds[len(n.rounds)-1][1].After(to) {
			return nil
		}
		return errors.New("no round has ended since the attack ended")
	})
	n.halt()
	entries, err := rdb.XRange(context.Background(), "traces:"+n.svc, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		tp, _ := e.Values["traceparent"].(string)
		if parts := strings.Split(tp, "-"); len(parts) == 4 {
			seen[parts[2]] = true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	lost := 0
	for _, id := range n.acked {
		if !seen[id] {
			lost++
		}
	}
	during := 0
	for _, r := range n.rounds {
		if !r[0].After(to) && !r[1].Before(from) {
			during++
		}
	}
	if len(n.failed) > 0 {
		t.Errorf("the normal client's requests failed after their retries: %s", countAnswers(n.failed))
	}
	if lost > 0 {
		t.Errorf("%d of the normal client's %d acknowledged spans are not in traces:%s", lost, len(n.acked), n.svc)
	}
	if during == 0 {
		t.Errorf("no round of the normal client ran during the attack")
	}
	retries := "none"
	if len(n.retried) > 0 {
		retries = countAnswers(n.retried)
	}
	return fmt.Sprintf("normal client %s: %d rounds (%d during the attack), %d spans acknowledged, %d of them missing from Redis, slowest request %v, HTTP retries: %s",
		n.svc, len(n.rounds), during, len(n.acked), lost, n.slowest.Round(time.Millisecond), retries)
}

// The raw HTTP/2 client.

// h2conn is an HTTP/2 connection to the gRPC receiver written with x/net/http2's Framer and
// hpack, so that a case can send what no real client would: header bombs, messages stalled
// short of their last byte, a preface and then silence. It honours the server's flow control
// and never writes on its own (no SETTINGS or PING acknowledgements); a reader goroutine records
// how each stream and the connection ended.
type h2conn struct {
	c    net.Conn
	born time.Time

	wmu  sync.Mutex // the framer's writing side and the header encoder
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder

	mu      sync.Mutex
	cond    *sync.Cond
	window  int64            // the server's SETTINGS_INITIAL_WINDOW_SIZE
	credit  map[uint32]int64 // flow-control window left per stream; 0 is the connection's
	opened  map[uint32]time.Time
	answers map[uint32]h2answer
	goaway  string
	settled bool          // the server's SETTINGS arrived: it accepted the connection
	ended   string        // how the connection ended; "" while it is open
	endedAt time.Duration // since dial
	closing bool
	done    chan struct{} // closed when the reader has returned
}

// h2answer is how the server ended a stream ("gRPC DeadlineExceeded", "RST_STREAM
// FRAME_SIZE_ERROR"), and after how long.
type h2answer struct {
	what  string
	after time.Duration
}

// dialH2 connects to addr and sends the client preface and an empty SETTINGS frame.
func dialH2(addr string) (*h2conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	r := &h2conn{c: c, born: time.Now(), window: 65535, credit: map[uint32]int64{0: 65535},
		opened: map[uint32]time.Time{}, answers: map[uint32]h2answer{}, done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	r.fr = http2.NewFramer(c, c)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.henc = hpack.NewEncoder(&r.hbuf)
	_ = c.SetWriteDeadline(time.Now().Add(2 * fdAnswerAfter)) // a server that stops reading cannot hang a writer
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := r.fr.WriteSettings(); err != nil {
		_ = c.Close()
		return nil, err
	}
	go r.read()
	return r, nil
}

// dialH2s dials n connections, closed when the test ends if the case has not closed them.
func dialH2s(t *testing.T, addr string, n int) []*h2conn {
	t.Helper()
	cs := make([]*h2conn, 0, n)
	t.Cleanup(func() { closeH2s(cs) })
	for range n {
		c, err := dialH2(addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

func closeH2s(cs []*h2conn) {
	for _, c := range cs {
		c.Close()
	}
}

func (r *h2conn) read() {
	defer close(r.done)
	for {
		f, err := r.fr.ReadFrame()
		r.mu.Lock()
		if err != nil {
			switch {
			case r.closing:
				r.ended = "closed by the client"
			case r.goaway != "":
				r.ended = r.goaway
			default:
				r.ended = "closed by the server"
			}
			r.endedAt = time.Since(r.born)
			r.cond.Broadcast()
			r.mu.Unlock()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			r.settled = r.settled || !f.IsAck()
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok && !f.IsAck() {
				for id := range r.credit {
					if id != 0 {
						r.credit[id] += int64(v) - r.window
					}
				}
				r.window = int64(v)
			}
		case *http2.WindowUpdateFrame:
			r.credit[f.StreamID] += int64(f.Increment)
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				r.answer(f.StreamID, "HTTP/2 "+st)
			}
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" {
					code, _ := strconv.Atoi(hf.Value)
					r.answer(f.StreamID, "gRPC "+codes.Code(code).String())
				}
			}
			if f.StreamEnded() {
				r.answer(f.StreamID, "ended without grpc-status")
			}
		case *http2.RSTStreamFrame:
			r.answer(f.StreamID, "RST_STREAM "+f.ErrCode.String())
		case *http2.GoAwayFrame:
			r.goaway = "GOAWAY " + f.ErrCode.String()
			if d := f.DebugData(); len(d) > 0 {
				r.goaway += fmt.Sprintf(" (%.60s)", d)
			}
		}
		r.cond.Broadcast()
		r.mu.Unlock()
	}
}

// answer records the first way stream id ended; r.mu is held.
func (r *h2conn) answer(id uint32, what string) {
	if _, ok := r.answers[id]; !ok {
		r.answers[id] = h2answer{what, time.Since(r.opened[id])}
	}
}

// open starts stream id with the header fields fields writes, encoded with the connection's
// HPACK encoder.
func (r *h2conn) open(id uint32, endStream bool, fields func(*hpack.Encoder)) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.hbuf.Reset()
	fields(r.henc)
	r.mu.Lock()
	r.credit[id], r.opened[id] = r.window, time.Now()
	r.mu.Unlock()
	_, err := r.writeBlockLocked(id, endStream, r.hbuf.Bytes())
	return err
}

// writeBlock starts stream id with a ready header block; it returns how many bytes of it were
// written.
func (r *h2conn) writeBlock(id uint32, endStream bool, block []byte) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	r.credit[id], r.opened[id] = r.window, time.Now()
	r.mu.Unlock()
	return r.writeBlockLocked(id, endStream, block)
}

// writeBlockLocked writes block as a HEADERS frame and as many CONTINUATION frames as it takes;
// r.wmu is held.
func (r *h2conn) writeBlockLocked(id uint32, endStream bool, block []byte) (int, error) {
	k := min(len(block), fdFrameBytes)
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:k], EndStream: endStream, EndHeaders: k == len(block)}); err != nil {
		return 0, err
	}
	sent := k
	for sent < len(block) {
		k = min(len(block)-sent, fdFrameBytes)
		if err := r.fr.WriteContinuation(id, sent+k == len(block), block[sent:sent+k]); err != nil {
			return sent, err
		}
		sent += k
	}
	return sent, nil
}

// sendZeros sends prefix and then n zero bytes as DATA on stream id, without ending it, as the
// server's flow control allows; it stops early when the stream or the connection ends, and
// returns how many bytes it sent.
func (r *h2conn) sendZeros(id uint32, prefix []byte, n int) int {
	const batch = 16 * fdFrameBytes // frames written at once: one frame per write would make the client the bottleneck
	buf := make([]byte, fdFrameBytes)
	var frames bytes.Buffer
	fr := http2.NewFramer(&frames, nil)
	total, sent := len(prefix)+n, 0
	for sent < total {
		r.mu.Lock()
		for r.ended == "" && !r.answered(id) && (r.credit[id] <= 0 || r.credit[0] <= 0) {
			r.cond.Wait()
		}
		if r.ended != "" || r.answered(id) {
			r.mu.Unlock()
			return sent
		}
		k := int(min(int64(total-sent), batch, r.credit[id], r.credit[0]))
		r.credit[id] -= int64(k)
		r.credit[0] -= int64(k)
		r.mu.Unlock()
		frames.Reset()
		for at := sent; at < sent+k; at += fdFrameBytes {
			m := min(sent+k-at, fdFrameBytes)
			clear(buf[:m])
			if at < len(prefix) {
				copy(buf[:m], prefix[at:])
			}
			_ = fr.WriteData(id, false, buf[:m])
		}
		r.wmu.Lock()
		_, err := r.c.Write(frames.Bytes())
		r.wmu.Unlock()
		if err != nil {
			return sent
		}
		sent += k
	}
	return sent
}

// answered reports whether stream id has ended; r.mu is held.
func (r *h2conn) answered(id uint32) bool {
	_, ok := r.answers[id]
	return ok
}

// await waits up to timeout for stream id to end, and says how: the stream's answer, or how
// the connection ended, or "no answer after ...".
func (r *h2conn) await(id uint32, timeout time.Duration) h2answer {
	var a h2answer
	err := wait.Until(timeout, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if got, ok := r.answers[id]; ok {
			a = got
			return nil
		}
		if r.ended != "" {
			a = h2answer{r.ended, r.endedAt - r.opened[id].Sub(r.born)}
			return nil
		}
		return errors.New("open")
	})
	if err != nil {
		return h2answer{fmt.Sprintf("no answer after %v", timeout), timeout}
	}
	return a
}

// acceptedOrEnded reports whether the server has accepted the connection (sent its SETTINGS) or
// the connection has ended.
func (r *h2conn) acceptedOrEnded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.settled || r.ended != ""
}

// end says how the connection ended ("" while open) and when, since it was dialled.
func (r *h2conn) end() (string, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended, r.endedAt
}

// Close closes the connection and waits for the reader.
func (r *h2conn) Close() {
	r.mu.Lock()
	if r.ended == "" {
		r.closing = true
	}
	r.mu.Unlock()
	_ = r.c.Close()
	<-r.done
}
