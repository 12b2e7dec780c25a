package service_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

// reply is what a test needs of an HTTP response, read and closed.
type reply struct {
	StatusCode int
	Header     http.Header
}

func post(t *testing.T, url, contentType, encoding string, body []byte) (reply, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header}, string(b)
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHTTPReceiverAnswersEachInput table-tests OTLP/HTTP: the encodings it accepts and the clear
// refusals of everything else.
func TestHTTPReceiverAnswersEachInput(t *testing.T) {
	s := redistest.Standalone(t)
	e := start(t, standaloneConfig(s))
	rdb := s.Client(t)
	traceJSON, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := request("http-proto", 3)
	pbBytes, _ := proto.Marshal(pb)
	pbGzip, _ := request("http-gzip", 2)
	pbGzipBytes, _ := proto.Marshal(pbGzip)

	cases := map[string]struct {
		path, contentType, encoding string
		body                        []byte
		status                      int
		bodyContains                string
		stream                      string
		entries                     int64
	}{
		"the reference OTLP/JSON payload is written": {"/v1/traces", "application/json", "", traceJSON, 200, "", "traces:my.service", 1},
		"protobuf is written":                        {"/v1/traces", "application/x-protobuf", "", pbBytes, 200, "", "traces:http-proto", 3},
		"gzip-compressed protobuf is written":        {"/v1/traces", "application/x-protobuf", "gzip", gzipped(t, pbGzipBytes), 200, "", "traces:http-gzip", 2},
		"malformed protobuf is a 400":                {"/v1/traces", "application/x-protobuf", "", []byte{0x0a, 0xff, 0x01}, 400, "", "", 0},
		"malformed JSON is a 400":                    {"/v1/traces", "application/json", "", []byte(`{"resourceSpans":[{`), 400, "invalid OTLP/JSON", "", 0},
		"a wrong content type is a 415":              {"/v1/traces", "text/plain", "", []byte("hello"), 415, "unsupported Content-Type", "", 0},
		"an unknown content encoding is a 415":       {"/v1/traces", "application/x-protobuf", "br", pbBytes, 415, "Content-Encoding", "", 0},
		"a broken gzip body is a 400":                {"/v1/traces", "application/x-protobuf", "gzip", []byte("not gzip"), 400, "gzip", "", 0},
		"metrics are refused with a 404":             {"/v1/metrics", "application/x-protobuf", "", pbBytes, 404, "traces only", "", 0},
		"logs are refused with a 404":                {"/v1/logs", "application/json", "", []byte("{}"), 404, "traces only", "", 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := post(t, "http://"+e.http+tc.path, tc.contentType, tc.encoding, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if !strings.Contains(body, tc.bodyContains) {
				t.Errorf("body %q does not say %q", body, tc.bodyContains)
			}
			if tc.stream != "" {
				if n := rdb.XLen(context.Background(), tc.stream).Val(); n != tc.entries {
					t.Errorf("%s has %d entries, want %d", tc.stream, n, tc.entries)
				}
			}
		})
	}
}

// rawCodec lets the test send arbitrary bytes as a gRPC message, compressed or not.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*(v.(*[]byte)))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = rawCodec{}

// TestLimitsRefuseOversizedRequestsAndBombs sends requests past the decompressed size limit,
// plain and as gzip bombs, over both protocols: each is refused with 413 / RESOURCE_EXHAUSTED, and
// the exporter allocates far less than the bomb would expand to.
func TestLimitsRefuseOversizedRequestsAndBombs(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Receivers.MaxRequestBytes = 1 << 20
	e := start(t, cfg)

	const bombSize = 200 << 20 // 200 MiB of zeros gzips to about 200 KB
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range bombSize >> 20 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	big := bytes.Repeat([]byte{0}, 2<<20)

	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	t.Run("HTTP body over the limit is a 413", func(t *testing.T) {
		resp, body := post(t, "http://"+e.http+"/v1/traces", "application/x-protobuf", "", big)
		if resp.StatusCode != 413 {
			t.Errorf("status %d %s, want 413", resp.StatusCode, body)
		}
	})
	t.Run("HTTP gzip bomb is a 413 without expanding it", func(t *testing.T) {
		var resp reply
		n := allocated(func() {
			resp, _ = post(t, "http://"+e.http+"/v1/traces", "application/x-protobuf", "gzip", bomb.Bytes())
		})
		t.Logf("%d KB bomb of %d MiB: %d MiB allocated by the whole test process", bomb.Len()>>10, bombSize>>20, n>>20)
		if resp.StatusCode != 413 {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
		if n > 32<<20 {
			t.Errorf("%d MiB allocated for a request limited to 1 MiB: the bomb was expanded", n>>20)
		}
	})
	conn, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	invoke := func(payload []byte, opts ...grpc.CallOption) error {
		opts = append(opts, grpc.ForceCodecV2(rawCodec{}))
		return conn.Invoke(context.Background(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
			&payload, &coltracepb.ExportTraceServiceResponse{}, opts...)
	}
	t.Run("gRPC message over the limit is RESOURCE_EXHAUSTED", func(t *testing.T) {
		if err := invoke(big); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("got %v, want RESOURCE_EXHAUSTED", err)
		}
	})
	t.Run("gRPC gzip bomb is RESOURCE_EXHAUSTED without expanding it", func(t *testing.T) {
		payload := make([]byte, 64<<20)
		var err error
		n := allocated(func() { err = invoke(payload, grpc.UseCompressor("gzip")) })
		t.Logf("64 MiB message sent gzip-compressed: %d MiB allocated by the whole test process", n>>20)
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("got %v, want RESOURCE_EXHAUSTED", err)
		}
		if n > 48<<20 {
			t.Errorf("%d MiB allocated: the message was expanded past the limit", n>>20)
		}
	})
}

// TestGRPCReceiverRefusesWhatItDoesNotServe checks the gRPC answers a client can act on.
func TestGRPCReceiverRefusesWhatItDoesNotServe(t *testing.T) {
	s := redistest.Standalone(t)
	e := start(t, standaloneConfig(s))
	conn, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, err = colmetricspb.NewMetricsServiceClient(conn).Export(context.Background(), &colmetricspb.ExportMetricsServiceRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("metrics export: %v, want UNIMPLEMENTED", err)
	}
	bad := []byte{0x0a, 0x05, 0x12, 0x03, 0x1a, 0x01} // a truncated nested message
	err = conn.Invoke(context.Background(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
		&bad, &coltracepb.ExportTraceServiceResponse{}, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed request: %v, want INVALID_ARGUMENT", err)
	}
}

// TestBusyExporterAnswersResourceExhaustedWithRetryInfo fills the in-flight limit while Redis
// holds writes (CLIENT PAUSE): the next request gets RESOURCE_EXHAUSTED with RetryInfo (which
// OTLP clients retry) or HTTP 429 with Retry-After.
func TestBusyExporterAnswersResourceExhaustedWithRetryInfo(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Delivery.MaxInFlightSpans = 10
	// Redis is paused on purpose here: the stall detection must not answer first.
	cfg.Delivery.StallTimeout = config.Duration{Duration: time.Hour}
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	unpause := pauseWrites(t, s)
	first := make(chan error, 1)
	go func() {
		req, _ := request("busy", 10)
		_, err := client.Export(context.Background(), req)
		first <- err
	}()
	// Wait until the first request holds the whole in-flight budget (Redis holds its writes).
	wait.For(t, 10*time.Second, "the first request in flight", func() error {
		_, metrics, err := get("http://" + e.admin + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(metrics, "tracestream_exporter_inflight_spans 10\n") {
			return fmt.Errorf("in-flight spans not yet 10")
		}
		return nil
	})
	req, _ := request("busy", 1)
	_, err := client.Export(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request past the in-flight limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	if retry := retryInfo(err); retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Errorf("RESOURCE_EXHAUSTED without RetryInfo: %v", status.Convert(err).Details())
	}
	pb, _ := request("busy", 1)
	b, _ := proto.Marshal(pb)
	resp, _ := post(t, "http://"+e.http+"/v1/traces", "application/x-protobuf", "", b)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("HTTP while busy: %d Retry-After=%q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	unpause()
	if err := <-first; err != nil {
		t.Errorf("the request that held the limit: %v, want it written once Redis resumed", err)
	}
}

// TestRequestAboveTheSpanBoundIsAdmittedAlone sends requests with more spans than
// delivery.maxInFlightSpans: alone, each is written (on both transports), so the retry a busy
// answer asks for can succeed; while another request is in flight it is refused as busy.
func TestRequestAboveTheSpanBoundIsAdmittedAlone(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Delivery.MaxInFlightSpans = 10
	cfg.Delivery.StallTimeout = config.Duration{Duration: time.Hour}
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	req, _ := request("poison", 50)
	if _, err := client.Export(context.Background(), req); err != nil {
		t.Fatalf("50 spans with a bound of 10, alone over gRPC: %v, want them written", err)
	}
	b, _ := proto.Marshal(req)
	if resp, text := post(t, "http://"+e.http+"/v1/traces", "application/x-protobuf", "", b); resp.StatusCode != http.StatusOK {
		t.Fatalf("50 spans with a bound of 10, alone over HTTP: %d %q, want 200", resp.StatusCode, text)
	}
	if n := s.Client(t).XLen(context.Background(), "traces:poison").Val(); n != 100 {
		t.Fatalf("%d entries in traces:poison, want the 100 spans sent", n)
	}

	unpause := pauseWrites(t, s)
	first := make(chan error, 1)
	go func() {
		one, _ := request("poison", 1)
		_, err := client.Export(context.Background(), one)
		first <- err
	}()
	wait.For(t, 10*time.Second, "the first request in flight", func() error {
		if n := e.metric(t, "tracestream_exporter_inflight_spans"); n != 1 {
			return fmt.Errorf("%v spans in flight", n)
		}
		return nil
	})
	_, err := client.Export(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted || retryInfo(err) == nil || !strings.Contains(err.Error(), "delivery.maxInFlightSpans") {
		t.Fatalf("50 spans while another request is in flight: %v, want RESOURCE_EXHAUSTED with RetryInfo naming delivery.maxInFlightSpans", err)
	}
	unpause()
	if err := <-first; err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	if _, err := client.Export(context.Background(), req); err != nil {
		t.Fatalf("the refused request, sent again alone: %v", err)
	}
}

// TestStalledRedisRefusesNewRequestsAtOnce pauses Redis's writes: once nothing has been
// acknowledged for delivery.stallTimeout while a write waits, new requests are refused at once
// (gRPC UNAVAILABLE, HTTP 503, both with a retry hint) instead of each waiting for
// delivery.requestTimeout; the request already admitted is written once Redis resumes, and
// admission resumes with it.
func TestStalledRedisRefusesNewRequestsAtOnce(t *testing.T) {
	s := redistest.Standalone(t)
	cfg := standaloneConfig(s)
	cfg.Delivery.StallTimeout = config.Duration{Duration: 200 * time.Millisecond}
	cfg.Delivery.RequestTimeout = config.Duration{Duration: time.Minute}
	e := start(t, cfg)
	client := grpcClient(t, e.grpc)
	unpause := pauseWrites(t, s)
	first := make(chan error, 1)
	go func() {
		req, _ := request("stalled", 10)
		_, err := client.Export(context.Background(), req)
		first <- err
	}()
	var refused error
	givenUp := 0 // requests admitted before the stall showed, which ended without an answer
	wait.For(t, 20*time.Second, "a request refused because Redis stalled", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := request("stalled", 1)
		_, err := client.Export(ctx, req)
		if status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "made no progress") {
			refused = err
			return nil
		}
		if err != nil {
			givenUp++
		}
		return fmt.Errorf("got %w", err)
	})
	t.Logf("refused at once: %v", refused)
	pb, _ := request("stalled", 1)
	b, _ := proto.Marshal(pb)
	resp, _ := post(t, "http://"+e.http+"/v1/traces", "application/x-protobuf", "", b)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("HTTP while Redis stalls: %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	unpause()
	if err := <-first; err != nil {
		t.Errorf("the request admitted before the stall: %v, want it written once Redis resumed", err)
	}
	req, _ := request("stalled", 5)
	if _, err := client.Export(context.Background(), req); err != nil {
		t.Errorf("a request after Redis resumed: %v", err)
	}
	// A request the client gave up on may still have been written (at-least-once).
	if n := s.Client(t).XLen(context.Background(), "traces:stalled").Val(); n < 15 || n > 15+int64(givenUp) {
		t.Errorf("%d entries in traces:stalled, want the 10 + 5 acknowledged and at most %d given up on", n, givenUp)
	}
}

// TestReceiverTLSAndBearerToken serves OTLP over mutual TLS with a bearer token: a client needs
// all three (trusted CA, client certificate, token) to get through.
func TestReceiverTLSAndBearerToken(t *testing.T) {
	s := redistest.Standalone(t, redistest.WithMutualTLS()) // reuse its certificates for the receiver
	pki := s.TLS()
	cfg := standaloneConfig(s)
	cfg.Receivers.TLS.CertFile = pki.ServerCertFile()
	cfg.Receivers.TLS.KeyFile = pki.ServerKeyFile()
	cfg.Receivers.TLS.ClientCAFile = pki.CAFile()
	tokenFile := t.TempDir() + "/token"
	writeFile(t, tokenFile, "s3cret-token\n")
	cfg.Receivers.BearerTokenFile = tokenFile
	e := start(t, cfg)

	clientTLS := pki.ClientConfig()
	noCert := &tls.Config{RootCAs: x509.NewCertPool()}
	noCert.RootCAs.AppendCertsFromPEM(pki.CAPEM())
	export := func(tc *tls.Config, token string) error {
		conn, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		ctx := context.Background()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		req, _ := request("tls", 1)
		_, err = coltracepb.NewTraceServiceClient(conn).Export(ctx, req)
		return err
	}
	if err := export(clientTLS, "s3cret-token"); err != nil {
		t.Errorf("client cert and token: %v", err)
	}
	if err := export(clientTLS, "wrong"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong token: %v, want UNAUTHENTICATED", err)
	}
	if err := export(noCert, "s3cret-token"); err == nil {
		t.Error("no client certificate: accepted, want refused")
	}
	// The token file is re-read: a rotated Secret takes effect without a restart.
	writeFile(t, tokenFile, "rotated")
	wait.For(t, 5*time.Second, "the rotated token is accepted", func() error { return export(clientTLS, "rotated") })

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	pb, _ := request("tls", 1)
	b, _ := proto.Marshal(pb)
	req, _ := http.NewRequest(http.MethodPost, "https://"+e.http+"/v1/traces", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("HTTPS without a token: %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, "https://"+e.http+"/v1/traces", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer rotated")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HTTPS with the token: %d, want 200", resp.StatusCode)
	}
}
