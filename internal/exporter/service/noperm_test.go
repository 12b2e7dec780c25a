package service_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestKeyPatternRefusalStaysWithItsEntries runs the exporter as a real Redis ACL user limited to
// ~traces:allowed* while one client sends spans whose service maps to a denied key and others
// send to allowed keys. The denied spans are rejected for good (NOPERM, counted as noperm) and
// never make Redis look unauthenticated: every span acknowledged to the other clients is in
// Redis. With the persistent queue, the denied records are committed as rejected instead of
// blocking the log, which drains to empty and stays so across a restart.
func TestKeyPatternRefusalStaysWithItsEntries(t *testing.T) {
	for name, queue := range map[string]bool{"without the queue": false, "with the persistent queue": true} {
		t.Run(name, func(t *testing.T) {
			s := redistest.Standalone(t, redistest.WithACL(""))
			rdb := s.Client(t)
			ctx := context.Background()
			if err := rdb.Do(ctx, "ACL", "SETUSER", s.ACL().Username(), "resetkeys", "~traces:allowed*").Err(); err != nil {
				t.Fatal(err)
			}
			cfg := standaloneConfig(s)
			withTLSAndACL(&cfg, nil, s.ACL())
			if queue {
				cfg.Delivery.PersistentQueue = config.PersistentQueue{Directory: t.TempDir(), MaxBytes: config.MinPersistentQueueBytes}
			}
			e := start(t, cfg)

			const requests, spans = 20, 50
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				allowed = map[string][]string{}
				denied  []string
			)
			for c := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := grpcClient(t, e.grpc)
					svc := fmt.Sprintf("allowed-%d", c)
					if c == 0 {
						svc = "denied"
					}
					for range requests {
						req, ids := request(svc, spans)
						resp, err := client.Export(ctx, req)
						if err != nil {
							t.Errorf("%s: %v, want an answer that is not a retryable error", svc, err)
							return
						}
						mu.Lock()
						if c == 0 {
							denied = append(denied, partial(resp))
						} else {
							allowed[svc] = append(allowed[svc], ids...)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			for svc, ids := range allowed {
				awaitStream(t, s, "traces:"+svc, ids)
			}
			if !queue {
				for _, p := range denied {
					if !strings.Contains(p, fmt.Sprintf("rejected %d", spans)) || !strings.Contains(p, "NOPERM") {
						t.Fatalf("the denied client's answer: %q, want a partial success rejecting its %d spans naming NOPERM", p, spans)
					}
				}
			}
			wait.For(t, 20*time.Second, "every denied span counted as a noperm refusal", func() error {
				if n := e.metric(t, `tracestream_exporter_redis_errors_total{class="noperm"}`); n < requests*spans {
					return fmt.Errorf("%v noperm errors", n)
				}
				return nil
			})
			if _, metrics, err := get("http://" + e.admin + "/metrics"); err != nil || strings.Contains(metrics, `redis_errors_total{class="auth"}`) {
				t.Fatalf("auth errors counted (%v): a key refusal was taken for refused credentials", err)
			}
			if queue {
				wait.For(t, 20*time.Second, "the queue drained past the denied records", func() error {
					if q := queueStats(t, e); q.Records != 0 {
						return fmt.Errorf("%d records left", q.Records)
					}
					return nil
				})
				// Committed, not waiting: a restart on the same log finds nothing to write again.
				e.shutdown(t)
				again := start(t, cfg)
				if q := queueStats(t, again); q.Records != 0 {
					t.Fatalf("after a restart the log holds %d records: refused ones are written again", q.Records)
				}
			}
			if n, _ := rdb.Exists(ctx, "traces:denied").Result(); n != 0 {
				t.Fatal("traces:denied exists although the ACL denies it")
			}
		})
	}
}

// partial describes an answer's partial success.
func partial(resp *coltracepb.ExportTraceServiceResponse) string {
	ps := resp.GetPartialSuccess()
	return fmt.Sprintf("rejected %d: %s", ps.GetRejectedSpans(), ps.GetErrorMessage())
}
