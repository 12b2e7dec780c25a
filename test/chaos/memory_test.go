//go:build chaos

package chaos

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/testing/redistest"
	"github.com/tracestream/tracestream/internal/testing/wait"
)

// TestConcurrentLargeRequestsAreHeldToTheMemoryBudget sends three rounds of 64 requests just
// under maxRequestBytes at once (half over OTLP/HTTP, half over OTLP/gRPC, each on its own
// connection) to a fresh exporter per run:
//   - with delivery.maxInFlightBytes large enough to admit every request (the exporter as it was
//     without a byte budget),
//   - with it at 16 requests' worth,
//   - and with that budget plus GOMEMLIMIT, as the operator renders them for a container limit.
//
// Every answer must be a write or a retryable pushback, every acknowledged span must be in Redis,
// the budget must have refused requests in the budgeted runs and none in the open one, and no
// claimed byte may stay behind. The peak RSS growth of each run is reported (docs/reliability.md
// quotes them). A budgeted run's growth must stay under budgetedMB: the budget, plus the gRPC
// messages that grpc-go reads before the exporter can claim them (one per connection here),
// times four for the garbage collector's headroom and buffers. The open run grows by three times
// that; runs are not compared with each other, as GC timing moves every figure.
func TestConcurrentLargeRequestsAreHeldToTheMemoryBudget(t *testing.T) {
	srv := redistest.Standalone(t)
	rdb := srv.Client(t)
	const rounds = 3
	budget := 16 * hostileLimit
	budgetedMB := 4 * float64(budget+concurrent/2*hostileLimit) / (1 << 20)
	runs := []struct {
		name       string
		budget     int
		gomemlimit string
		open       bool // the budget admits every request
	}{
		{"open (budget admits all)", 1 << 30, "", true},
		{"budget 64 MiB", budget, "", false},
		{"budget 64 MiB + GOMEMLIMIT 128MiB", budget, "128MiB", false},
	}
	var figures []string
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			if run.gomemlimit != "" {
				t.Setenv("GOMEMLIMIT", run.gomemlimit)
			}
			e := startExporter(t, srv.Addr(),
				"--receivers.maxRequestBytes="+strconv.Itoa(hostileLimit),
				"--receivers.grpc.maxConcurrentStreams="+strconv.Itoa(hostileStreams),
				"--delivery.maxInFlightBytes="+strconv.Itoa(run.budget))
			h := newHarness(t, e, rdb)
			for range 5 {
				h.probe(t)
			}
			before := h.totalEntries(t)
			time.Sleep(200 * time.Millisecond)
			baseline := e.rssMB()
			conns, closeAll, err := h.grpcConns(concurrent / 2)
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll()
			sampler := sampleRSS(e)
			var answers []string
			for r := range rounds {
				svc := fmt.Sprintf("memory-%d", r)
				body := func() []byte { return sized(svc, hostileLimit-1024) }
				answers = append(answers, h.concurrently(concurrent, "", body, func(i int, b []byte) string { return h.invoke(conns[i], b) })...)
			}
			peak := sampler.stop()
			counts := map[string]int{}
			for _, a := range answers {
				counts[a]++
			}
			written := 0
			for a, n := range counts {
				switch {
				case slices.Contains(accepted, a):
					written += n
				case slices.Contains(pushback, a):
				default:
					t.Errorf("%d answers %q: only writes and retryable pushback are expected", n, a)
				}
			}
			if got := h.totalEntries(t) - before; got < int64(written) {
				t.Errorf("%d entries landed, fewer than the %d acknowledged requests (one span each)", got, written)
			}
			refused := e.metric(t, "tracestream_exporter_memory_refused_requests_total")
			wait.For(t, 10*time.Second, "every claim released", func() error {
				if n := e.metric(t, "tracestream_exporter_inflight_bytes"); n != 0 {
					return fmt.Errorf("inflight_bytes %v", n)
				}
				return nil
			})
			if run.open && refused != 0 {
				t.Errorf("the open budget refused %v requests", refused)
			}
			if !run.open && refused == 0 {
				t.Errorf("the %d-byte budget refused nothing: the case did not exercise it", run.budget)
			}
			if !run.open && peak-baseline > budgetedMB {
				t.Errorf("RSS grew by %.1f MB, more than the %.0f MB a %d-byte budget allows", peak-baseline, budgetedMB, run.budget)
			}
			line := fmt.Sprintf("%s: %d written, %.0f refused for memory, answers %s, peak RSS %.1f MB (+%.1f over the baseline of %.1f)",
				run.name, written, refused, countAnswers(answers), peak, peak-baseline, baseline)
			t.Logf("FIGURES concurrent large requests, %s", line)
			figures = append(figures, line)
			if _, code := e.terminate(30 * time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM", code)
			}
		})
	}
	t.Logf("FIGURES concurrent large requests summary (%d rounds of %d requests of %d bytes, grpc.maxConcurrentStreams %d): %s",
		rounds, concurrent, hostileLimit-1024, hostileStreams, strings.Join(figures, "; "))
}
