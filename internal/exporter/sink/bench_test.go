package sink

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/testing/redistest"
)

// jsonSpan is about the size of a span in the json format (~600 bytes).
var jsonSpan = `{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
	`"parentSpanId":"eee19b7ec3c1b173","name":"GET /api/v1/users/{id}","kind":2,` +
	`"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",` +
	`"attributes":{"http.request.method":"GET","url.path":"/api/v1/users/42",` +
	`"http.response.status_code":200,"server.address":"users.internal","server.port":8080,` +
	`"network.protocol.version":"1.1","user_agent.original":"Mozilla/5.0 (X11; Linux x86_64)"},` +
	`"status":{"code":1},"resource":{"service.name":"users","service.version":"1.4.2",` +
	`"deployment.environment.name":"production","k8s.namespace.name":"shop",` +
	`"k8s.pod.name":"users-7d9f8c6b5-x2x9k"},"scope":{"name":"io.opentelemetry.http","version":"1.27.0"}}`

func benchBatch(n, fields int) []span {
	ss := spans(n, "spans:users", "spans:orders", "spans:cart", "spans:checkout")
	for i := range ss {
		if fields == 1 {
			ss[i].fields = [][2]string{{"span", jsonSpan}}
			continue
		}
		ss[i].fields = ss[i].fields[:0]
		for j := range fields {
			ss[i].fields = append(ss[i].fields, [2]string{fmt.Sprintf("attr.%02d", j), strings.Repeat("v", 20)})
		}
	}
	return ss
}

// BenchmarkWrite measures a Write against a real standalone Redis on loopback: the server's
// time is in ns/entry, the client's allocations in allocs/entry.
func BenchmarkWrite(b *testing.B) {
	srv := redistest.Standalone(b)
	for _, bc := range []struct {
		name           string
		entries, field int
		stream         config.Stream
	}{
		{"json/100", 100, 1, config.Stream{MaxLen: 100000}},
		{"json/1000", 1000, 1, config.Stream{MaxLen: 100000}},
		{"json/1000/ttl+minid", 1000, 1, config.Stream{MaxLen: 100000, TTL: config.Duration{Duration: 3600e9}, MinIDAge: config.Duration{Duration: 3600e9}}},
		{"flat20/1000", 1000, 20, config.Stream{MaxLen: 100000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSink(b, standaloneConfig(srv), bc.stream)
			ctx := ctxFor(b)
			batch := batchOf(benchBatch(bc.entries, bc.field))
			errs := make([]error, bc.entries)
			s.Write(ctx, batch, errs) // dial and warm the pool outside the measurement
			admin := srv.Client(b)
			usecBefore := commandStat(b, ctx, admin, "xadd", "usec")
			var before, after runtime.MemStats
			b.ReportAllocs()
			runtime.ReadMemStats(&before)
			cpuBefore := cpuTime(b)
			b.ResetTimer()
			for b.Loop() {
				s.Write(ctx, batch, errs)
			}
			b.StopTimer()
			cpu := cpuTime(b) - cpuBefore
			runtime.ReadMemStats(&after)
			for i, err := range errs {
				if err != nil {
					b.Fatalf("entry %d: %v", i, err)
				}
			}
			total := float64(b.N * bc.entries)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/entry")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/entry")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/entry")
			// The client's own CPU (Redis is another process): steadier than wall time on a
			// shared machine.
			b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/entry")
			// Redis's own time per XADD, from INFO commandstats.
			usec := commandStat(b, ctx, admin, "xadd", "usec") - usecBefore
			b.ReportMetric(float64(usec)*1e3/total, "redis-ns/entry")
		})
	}
}

// BenchmarkGoRedisXAdd is the baseline: the same pipeline built with go-redis's XAdd and
// []byte values, as the sink would without its own argument handling.
func BenchmarkGoRedisXAdd(b *testing.B) {
	srv := redistest.Standalone(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("json/%d", n), func(b *testing.B) {
			c := srv.Client(b)
			ctx := ctxFor(b)
			batch := batchOf(benchBatch(n, 1))
			var before, after runtime.MemStats
			b.ReportAllocs()
			runtime.ReadMemStats(&before)
			cpuBefore := cpuTime(b)
			b.ResetTimer()
			for b.Loop() {
				pipe := c.Pipeline()
				for i := range batch.Len() {
					name, value := batch.FieldPair(i, 0)
					pipe.XAdd(ctx, &redis.XAddArgs{
						Stream: string(batch.Key(i)), MaxLen: 100000, Approx: true,
						Values: []any{name, value},
					})
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuTime(b) - cpuBefore
			runtime.ReadMemStats(&after)
			total := float64(b.N * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/entry")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/entry")
			b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/entry")
		})
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
