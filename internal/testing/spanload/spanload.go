// Package spanload sends spans the way an instrumented service does, through the OpenTelemetry
// SDK's OTLP/gRPC client with its retries on, records which spans were acknowledged, and checks
// them against what reached Redis: the oracle of the end-to-end and fault-injection tests.
package spanload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Client returns the SDK's OTLP/gRPC client for endpoint, retrying as an instrumented service
// would (for up to 30 s), stopped when the test ends.
func Client(t testing.TB, endpoint string) otlptrace.Client {
	t.Helper()
	c := otlptracegrpc.NewClient(otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithTimeout(10*time.Second),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond,
			MaxInterval: time.Second, MaxElapsedTime: 30 * time.Second}))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

// Spans builds n spans of service svc with fresh random ids, returned as hex span ids too.
func Spans(svc string, n int) ([]*tracepb.ResourceSpans, []string) {
	var traceID [16]byte
	_, _ = rand.Read(traceID[:])
	now := uint64(time.Now().UnixNano())
	out := make([]*tracepb.Span, n)
	ids := make([]string, n)
	for i := range out {
		var sid [8]byte
		_, _ = rand.Read(sid[:])
		out[i] = &tracepb.Span{TraceId: traceID[:], SpanId: sid[:], Name: fmt.Sprintf("op-%d", i),
			StartTimeUnixNano: now, EndTimeUnixNano: now + 1000}
		ids[i] = hex.EncodeToString(sid[:])
	}
	return []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: svc}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: out}},
	}}, ids
}

// Sender keeps several clients exporting batches until Stop, and records every outcome.
type Sender struct {
	mu       sync.Mutex
	acked    []string
	requests int
	failed   map[string]int
	lastAck  time.Time
	maxGap   time.Duration
	// abandoned counts the requests cut short by Stop: neither acknowledged nor failed.
	abandoned int
	stop      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Send starts workers goroutines, each exporting batches of batch spans of service svc through
// its own client to endpoint, pausing pace between batches.
func Send(t testing.TB, endpoint, svc string, workers, batch int, pace time.Duration) *Sender {
	t.Helper()
	s := &Sender{failed: map[string]int{}, stop: make(chan struct{}), lastAck: time.Now()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range workers {
		c := Client(t, endpoint)
		s.wg.Go(func() {
			for {
				select {
				case <-s.stop:
					return
				default:
				}
				rs, ids := Spans(svc, batch)
				err := c.UploadTraces(s.ctx, rs)
				s.record(ids, err)
				select {
				case <-s.stop:
					return
				case <-time.After(pace):
				}
			}
		})
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Sender) record(ids []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if err != nil && s.ctx.Err() != nil {
		s.abandoned++
		return
	}
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "desc = "); i >= 0 {
			msg = msg[i+len("desc = "):]
		}
		if len(msg) > 80 {
			msg = msg[:80]
		}
		s.failed[msg]++
		return
	}
	now := time.Now()
	s.maxGap = max(s.maxGap, now.Sub(s.lastAck))
	s.lastAck = now
	s.acked = append(s.acked, ids...)
}

// Stop stops the workers, cuts short the requests still retrying and waits for them.
func (s *Sender) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		s.cancel()
	}
	s.wg.Wait()
}

// Acked is the number of spans acknowledged so far.
func (s *Sender) Acked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// Outcome is what the clients saw and what reached Redis, after Stop.
type Outcome struct {
	Requests int
	// Abandoned requests were still being retried when the sender stopped.
	Abandoned int
	// Failed counts the requests whose export failed after the client's retries, by message.
	Failed map[string]int
	// Acked spans; Lost: acknowledged but not in Redis; Duplicates: extra copies in Redis;
	// Unacked: in Redis although their export failed (the client could not know).
	Acked, Lost, Duplicates, Unacked int
	// MaxCopies is the most entries any one span has in Redis (1 without duplicates).
	MaxCopies int
	// MaxGap is the longest time without an acknowledgement: the outage the clients saw.
	MaxGap time.Duration
}

// Add folds the outcome of another sender into o (the longest gap is the larger of the two).
func (o *Outcome) Add(p Outcome) {
	o.Requests += p.Requests
	o.Abandoned += p.Abandoned
	o.Acked += p.Acked
	o.Lost += p.Lost
	o.Duplicates += p.Duplicates
	o.Unacked += p.Unacked
	o.MaxCopies = max(o.MaxCopies, p.MaxCopies)
	o.MaxGap = max(o.MaxGap, p.MaxGap)
	for msg, n := range p.Failed {
		if o.Failed == nil {
			o.Failed = map[string]int{}
		}
		o.Failed[msg] += n
	}
}

func (o Outcome) String() string {
	return fmt.Sprintf("%d requests (%d abandoned at the end), %d spans acknowledged, %d lost, %d duplicated (at most %d copies of a span), %d written unacknowledged, longest gap between acknowledgements %v, failed after retries %v",
		o.Requests, o.Abandoned, o.Acked, o.Lost, o.Duplicates, o.MaxCopies, o.Unacked, o.MaxGap.Round(time.Millisecond), o.Failed)
}

// Check stops the sender and compares what was acknowledged with the streams' entries, read by
// the span id in each entry's traceparent.
func (s *Sender) Check(t testing.TB, rdb redis.Cmdable, streams ...string) Outcome {
	t.Helper()
	s.Stop()
	seen := map[string]int{}
	for _, stream := range streams {
		entries, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
		if err != nil {
			t.Fatalf("reading %s: %v", stream, err)
		}
		for _, e := range entries {
			tp, _ := e.Values["traceparent"].(string)
			if parts := strings.Split(tp, "-"); len(parts) == 4 {
				seen[parts[2]]++
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := Outcome{Requests: s.requests, Abandoned: s.abandoned, Failed: s.failed, Acked: len(s.acked), MaxGap: s.maxGap}
	acked := make(map[string]bool, len(s.acked))
	for _, id := range s.acked {
		acked[id] = true
		if seen[id] == 0 {
			o.Lost++
		}
	}
	for id, n := range seen {
		o.Duplicates += n - 1
		o.MaxCopies = max(o.MaxCopies, n)
		if !acked[id] {
			o.Unacked++
		}
	}
	return o
}
