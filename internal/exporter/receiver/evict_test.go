package receiver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// testBound is receivers.maxConnections in these tests.
const testBound = 8

// otlpClientTimeout is how long an OTel SDK waits for an export by default
// (OTEL_EXPORTER_OTLP_TIMEOUT): a client kept waiting longer has given up.
const otlpClientTimeout = 10 * time.Second

// boundReceiver is one receiver on a Listener bounded at testBound, with every timeout that
// could close an idle connection at an hour: only making room can free a slot.
type boundReceiver struct {
	protocol string // grpc or http
	addr     string
	ln       *Listener
	grpc     *GRPC
	mem      *admission.Budget
	tls      *tls.Config // the clients' configuration; nil for plaintext
}

func startBoundReceiver(t *testing.T, protocol string, withTLS bool) *boundReceiver {
	t.Helper()
	cfg := config.Default().Receivers
	cfg.MaxConnections = testBound
	hour := config.Duration{Duration: time.Hour}
	cfg.GRPC.IdleTimeout, cfg.GRPC.ReadTimeout = hour, hour
	cfg.HTTP.IdleTimeout, cfg.HTTP.ReadHeaderTimeout, cfg.HTTP.ReadTimeout = hour, hour, hour
	r := &boundReceiver{protocol: protocol, mem: admission.New(64 << 20)}
	if withTLS {
		cfg.TLS, r.tls = testTLS(t)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr, r.ln = tcp.Addr().String(), LimitListener(tcp, cfg.MaxConnections)
	switch protocol {
	case "grpc":
		if r.grpc, err = NewGRPC(cfg, validatingExporter{}, r.mem); err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.grpc.Serve(r.ln) }()
		t.Cleanup(r.grpc.srv.Stop)
	case "http":
		h, err := NewHTTP(cfg, validatingExporter{}, r.mem)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = h.Serve(r.ln) }()
		t.Cleanup(func() { _ = h.srv.Close() })
	}
	return r
}

// accepted is how many connections the listener has accepted: those open and those it closed
// to make room (the tests close none themselves before the end).
func (r *boundReceiver) accepted() int64 { return r.ln.Open() + r.ln.Evicted.Load() }

// dialTCP connects over TCP and waits until the listener has accepted the connection.
func (r *boundReceiver) dialTCP(t *testing.T) net.Conn {
	t.Helper()
	want := r.accepted() + 1
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	wait.For(t, 10*time.Second, "the connection accepted", func() error {
		if n := r.accepted(); n < want {
			return fmt.Errorf("%d accepted, want %d", n, want)
		}
		return nil
	})
	return c
}

// dial is dialTCP, with a TLS handshake offering protos on a TLS receiver.
func (r *boundReceiver) dial(t *testing.T, protos ...string) net.Conn {
	t.Helper()
	c := r.dialTCP(t)
	if r.tls == nil {
		return c
	}
	cfg := r.tls.Clone()
	cfg.NextProtos = protos
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return tc
}

// idleConn opens a connection that then waits for its next request.
type idleConn func(t *testing.T, r *boundReceiver) net.Conn

// silentConn completes the TCP handshake and sends nothing, not even a TLS hello.
func silentConn(t *testing.T, r *boundReceiver) net.Conn {
	t.Helper()
	return r.dialTCP(t)
}

// prefaceConn sends the HTTP/2 preface and its SETTINGS, then nothing.
func prefaceConn(t *testing.T, r *boundReceiver) net.Conn {
	t.Helper()
	c := r.dial(t, "h2")
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := http2.NewFramer(c, c).WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// halfHeadersConn sends the HTTP/2 preface, its SETTINGS and the first bytes of a HEADERS
// frame, then nothing: grpc-go never sees a request on it.
func halfHeadersConn(t *testing.T, r *boundReceiver) net.Conn {
	t.Helper()
	c := prefaceConn(t, r)
	var frame bytes.Buffer
	_ = http2.NewFramer(&frame, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaderBlock(), EndHeaders: true})
	if _, err := c.Write(frame.Bytes()[:12]); err != nil {
		t.Fatal(err)
	}
	return c
}

// keepAliveConn sends one HTTP/1.1 request, reads its answer and keeps the connection.
func keepAliveConn(t *testing.T, r *boundReceiver) net.Conn {
	t.Helper()
	c := r.dial(t, "http/1.1")
	body := exportBody(t)
	if _, err := io.WriteString(c, httpRequestHead(len(body))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	if code := readHTTPAnswer(t, c, bufio.NewReader(c)); code != http.StatusOK {
		t.Fatalf("a keep-alive connection's request: HTTP %d", code)
	}
	return c
}

// TestReceiversMakeRoomForANewClientAtTheBound: a receiver whose every connection slot is held
// by a connection waiting for a request closes the longest-waiting one when a new client
// connects, so that the client's export succeeds while every timeout is an hour away.
func TestReceiversMakeRoomForANewClientAtTheBound(t *testing.T) {
	cases := map[string]struct {
		protocol string
		tls      bool
		idle     idleConn
	}{
		"grpc: connections that sent the HTTP/2 preface and settings, then nothing":   {"grpc", false, prefaceConn},
		"grpc: connections that sent nothing":                                         {"grpc", false, silentConn},
		"grpc: connections whose HEADERS frame stopped part way":                      {"grpc", false, halfHeadersConn},
		"grpc over TLS: connections that sent the preface and settings, then nothing": {"grpc", true, prefaceConn},
		"http: keep-alive connections after one request":                              {"http", false, keepAliveConn},
		"http: connections that sent nothing":                                         {"http", false, silentConn},
		"https: keep-alive connections after one request":                             {"http", true, keepAliveConn},
		"https: HTTP/2 connections that sent the preface and settings, then nothing":  {"http", true, prefaceConn},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := startBoundReceiver(t, tc.protocol, tc.tls)
			var conns []net.Conn
			for range testBound {
				conns = append(conns, tc.idle(t, r))
			}
			// The last one took the last slot: the longest-waiting one made room for it, once
			// the server has accepted it (the client's dial returns before that).
			waitFor(t, 10*time.Second, func() bool { return r.ln.Evicted.Load() >= 1 }, func() string {
				return "no connection was closed to make room once the bound was reached"
			})
			if n := r.ln.Evicted.Load(); n != 1 {
				t.Errorf("%d connections closed to make room once the bound was reached, want 1", n)
			}
			closeClient := r.export(t)
			if n := r.ln.Evicted.Load(); n != 2 {
				t.Errorf("%d connections closed to make room after the client's export, want 2", n)
			}
			if n := r.ln.Open(); n != testBound-1 {
				t.Errorf("%d connections open, want %d: one slot is kept free", n, testBound-1)
			}
			closeClient()
			for _, c := range conns {
				_ = c.Close()
			}
			r.allClosed(t)
		})
	}
}

// TestReceiversNeverEvictARequestInProgress: a connection whose request is arriving part way
// keeps its slot while new clients make room at the bound again and again, and its request is
// answered once the rest of it arrives.
func TestReceiversNeverEvictARequestInProgress(t *testing.T) {
	cases := map[string]struct {
		protocol string
		tls      bool
		idle     idleConn
	}{
		"grpc: a stream whose message is half sent":                  {"grpc", false, prefaceConn},
		"grpc over TLS: a stream whose message is half sent":         {"grpc", true, prefaceConn},
		"http: a request whose body is half sent":                    {"http", false, keepAliveConn},
		"https: a request whose body is half sent":                   {"http", true, keepAliveConn},
		"http: a request whose body is half sent, among silent ones": {"http", false, silentConn},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := startBoundReceiver(t, tc.protocol, tc.tls)
			busy := r.startRequest(t)
			var conns []net.Conn
			for range testBound - 1 {
				conns = append(conns, tc.idle(t, r))
			}
			const clients = 2 * testBound // every idle connection, then every client, makes room
			var closers []func()
			for range clients {
				closers = append(closers, r.export(t))
			}
			if n := r.ln.Evicted.Load(); n != 1+clients {
				t.Errorf("%d connections closed to make room, want %d (one per connection past the bound)", n, 1+clients)
			}
			if err := busy.finish(); err != nil {
				t.Errorf("the request in progress, once the rest of it arrived: %v", err)
			}
			for _, c := range closers {
				c()
			}
			for _, c := range conns {
				_ = c.Close()
			}
			busy.close()
			r.allClosed(t)
		})
	}
}

// export sends one export over a new connection, as an OTel SDK does, and returns what closes
// that connection.
func (r *boundReceiver) export(t *testing.T) (closeConn func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), otlpClientTimeout)
	defer cancel()
	switch r.protocol {
	case "grpc":
		creds := insecure.NewCredentials()
		if r.tls != nil {
			creds = credentials.NewTLS(r.tls)
		}
		cc, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := coltracepb.NewTraceServiceClient(cc).Export(ctx, exportRequest()); err != nil {
			_ = cc.Close()
			t.Fatalf("a client at the bound: %v", err)
		}
		return func() { _ = cc.Close() }
	default:
		// The connection is closed from under the Transport: an HTTP/2 one may not count as idle
		// yet for CloseIdleConnections when the answer has just been read.
		var conns []net.Conn
		scheme, tr := "http", &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				conns = append(conns, c)
			}
			return c, err
		}}
		if r.tls != nil {
			scheme, tr.TLSClientConfig, tr.ForceAttemptHTTP2 = "https", r.tls, true
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+r.addr+"/v1/traces", bytes.NewReader(exportBody(t)))
		req.Header.Set("Content-Type", contentProtobuf)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("a client at the bound: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a client at the bound: HTTP %d", resp.StatusCode)
		}
		return func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}
	}
}

// allClosed waits until every connection has given its slot back: a slot given back twice
// would leave the count below zero.
func (r *boundReceiver) allClosed(t *testing.T) {
	t.Helper()
	wait.For(t, 10*time.Second, "every slot given back", func() error {
		if n := r.ln.Open(); n != 0 {
			return fmt.Errorf("%d connections open", n)
		}
		return nil
	})
}

// requestInProgress is a request of which half has been sent.
type requestInProgress struct {
	finish func() error // sends the rest and reads the answer
	close  func()
}

// startRequest sends half of an export and waits until the receiver is reading it.
func (r *boundReceiver) startRequest(t *testing.T) requestInProgress {
	t.Helper()
	body := exportBody(t)
	half := len(body) / 2
	if r.protocol == "grpc" {
		c := r.dial(t, "h2")
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body)))
		msg = append(msg, body...)
		_, err := io.WriteString(c, http2.ClientPreface)
		if err == nil {
			err = fr.WriteSettings()
		}
		if err == nil {
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: grpcHeaderBlock(), EndHeaders: true})
		}
		if err == nil {
			err = fr.WriteData(1, false, msg[:5+half])
		}
		if err != nil {
			t.Fatal(err)
		}
		wait.For(t, 10*time.Second, "the half-sent message read", func() error {
			if n := r.grpc.BufferedBytes(); n < int64(5+half) {
				return fmt.Errorf("%d message bytes read", n)
			}
			return nil
		})
		return requestInProgress{close: func() { _ = c.Close() }, finish: func() error {
			if err := fr.WriteData(1, true, msg[5+half:]); err != nil {
				return err
			}
			return readGRPCStatus(c, fr)
		}}
	}
	c := r.dial(t, "http/1.1")
	if _, err := io.WriteString(c, httpRequestHead(len(body))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the half-sent body read", func() error {
		if n := r.mem.Used(); n < int64(half) {
			return fmt.Errorf("%d body bytes read", n)
		}
		return nil
	})
	return requestInProgress{close: func() { _ = c.Close() }, finish: func() error {
		if _, err := c.Write(body[half:]); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(otlpClientTimeout))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}}
}

// readGRPCStatus reads frames until stream 1's trailers and returns its grpc-status as an error.
func readGRPCStatus(c net.Conn, fr *http2.Framer) error {
	_ = c.SetReadDeadline(time.Now().Add(otlpClientTimeout))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				if s := f.PseudoValue("status"); s != "" && s != "200" {
					return fmt.Errorf("HTTP/2 status %s", s)
				}
				for _, hf := range f.RegularFields() {
					if hf.Name == "grpc-status" && hf.Value != "0" {
						return fmt.Errorf("grpc-status %s", hf.Value)
					}
				}
				return nil
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return fmt.Errorf("stream reset: %v", f.ErrCode)
			}
		case *http2.GoAwayFrame:
			return fmt.Errorf("GOAWAY %v", f.ErrCode)
		}
	}
}

// grpcHeaderBlock is an Export request's header block.
func grpcHeaderBlock() []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", exportMethod},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

func httpRequestHead(n int) string {
	return fmt.Sprintf("POST /v1/traces HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", contentProtobuf, n)
}

// readHTTPAnswer reads one answer, failing the test when none comes.
func readHTTPAnswer(t *testing.T, c net.Conn, br *bufio.Reader) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(otlpClientTimeout))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	_ = c.SetReadDeadline(time.Time{})
	return resp.StatusCode
}

// exportRequest is a valid request with one span.
func exportRequest() *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8),
			Name: strings.Repeat("eviction ", 20),
		}}}},
	}}}
}

func exportBody(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(exportRequest())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testTLS returns the receivers' TLS settings, with a certificate for 127.0.0.1, and a client
// configuration that trusts it.
func testTLS(t *testing.T) (config.ServerTLS, *tls.Config) {
	t.Helper()
	pki := redistest.NewTLS(t)
	return config.ServerTLS{CertFile: pki.ServerCertFile(), KeyFile: pki.ServerKeyFile()},
		&tls.Config{RootCAs: pki.CAPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
