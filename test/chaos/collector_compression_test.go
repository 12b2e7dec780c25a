//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/testing/child"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/spanload"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestCollectorForwardsWithEveryCompression runs a real OpenTelemetry Collector (hack/otelcol.sh,
// v0.162.0) in front of the exporter, once for each compression its OTLP exporters offer
// (config/configcompression: gRPC knows gzip, snappy and zstd; HTTP also zlib, deflate,
// x-snappy-framed and lz4), and checks that the 1,000 spans sent to the Collector all reach Redis,
// each once.
func TestCollectorForwardsWithEveryCompression(t *testing.T) {
	bin := otelcolBinary(t)
	srv := redistest.Standalone(t)
	e := startExporter(t, srv.Addr())
	rdb := srv.Client(t)
	grpcExporter := func(compression string) string {
		return fmt.Sprintf("otlp_grpc: {endpoint: %q, tls: {insecure: true}, compression: %s}", e.grpc, compression)
	}
	httpExporter := func(compression string) string {
		return fmt.Sprintf("otlp_http: {endpoint: %q, compression: %s}", "http://"+e.http, compression)
	}
	cases := map[string]struct{ exporter string }{
		"otlp_grpc with gzip":            {grpcExporter("gzip")},
		"otlp_grpc with zstd":            {grpcExporter("zstd")},
		"otlp_grpc with snappy":          {grpcExporter("snappy")},
		"otlp_grpc uncompressed":         {grpcExporter("none")},
		"otlp_http with gzip":            {httpExporter("gzip")},
		"otlp_http with zstd":            {httpExporter("zstd")},
		"otlp_http with zlib":            {httpExporter("zlib")},
		"otlp_http with deflate":         {httpExporter("deflate")},
		"otlp_http with snappy":          {httpExporter("snappy")},
		"otlp_http with x-snappy-framed": {httpExporter("x-snappy-framed")},
		"otlp_http with lz4":             {httpExporter("lz4")},
		"otlp_http uncompressed":         {httpExporter("none")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			svc := "collector-" + strings.NewReplacer(" ", "-", "_", "-").Replace(name)
			col := startCollector(t, bin, tc.exporter)
			client := spanload.Client(t, col)
			sent := map[string]bool{}
			for range 10 {
				rs, ids := spanload.Spans(svc, 100)
				if err := client.UploadTraces(context.Background(), rs); err != nil {
					t.Fatalf("the Collector refused spans: %v", err)
				}
				for _, id := range ids {
					sent[id] = true
				}
			}
			stream := "traces:" + svc
			wait.For(t, 30*time.Second, "the 1,000 spans in "+stream, func() error {
				n, err := rdb.XLen(context.Background(), stream).Result()
				if err != nil {
					return err
				}
				if n < int64(len(sent)) {
					return fmt.Errorf("%d of %d entries", n, len(sent))
				}
				return nil
			})
			entries, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, en := range entries {
				tp, _ := en.Values["traceparent"].(string)
				if parts := strings.Split(tp, "-"); len(parts) == 4 {
					seen[parts[2]]++
				}
			}
			missing, dup := 0, 0
			for id := range sent {
				switch seen[id] {
				case 0:
					missing++
				case 1:
				default:
					dup++
				}
			}
			t.Logf("FIGURES %s: %d spans sent through the Collector, %d entries in %s, %d missing, %d duplicated", name, len(sent), len(entries), stream, missing, dup)
			if len(entries) != len(sent) || missing != 0 || dup != 0 {
				t.Fatalf("%d spans sent, %d entries: %d missing, %d duplicated", len(sent), len(entries), missing, dup)
			}
		})
	}
}

// otelcolBinary builds (once, cached by hack/otelcol.sh) the Collector and returns its path.
func otelcolBinary(t *testing.T) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("../../hack/otelcol.sh")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/otelcol.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// startCollector runs the Collector with an OTLP/gRPC receiver on loopback, the batch processor
// and exporter (one YAML flow mapping), stops it when the test ends and returns the receiver's
// address.
func startCollector(t *testing.T, bin, exporter string) string {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
processors:
  batch: {}
exporters: {%s}
service:
  telemetry: {metrics: {level: none}, logs: {level: warn}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [%s]}
`, addr, exporter, exporter[:strings.Index(exporter, ":")])
	path := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "otelcol.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	cmd := exec.Command(bin, "--config="+path)
	cmd.Stdout, cmd.Stderr = f, f
	if err := child.Start(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if b, _ := os.ReadFile(logPath); t.Failed() || bytes.Contains(b, []byte("error")) {
			t.Logf("collector config:\n%s\ncollector log:\n%s", cfg, b)
		}
	})
	wait.For(t, 30*time.Second, "the Collector listening on "+addr, func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the Collector exited:\n%s", b)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	})
	return addr
}
