package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// fakeWriter is the sink as the pipeline sees it. answer fills in each entry's outcome of one
// Write (attempt counts from 0); it may block, like a Redis that does not answer.
type fakeWriter struct {
	answer func(attempt int, b *entry.Batch, errs []error)
	ping   error

	mu     sync.Mutex
	writes int
}

func (w *fakeWriter) Write(_ context.Context, b *entry.Batch, errs []error) {
	w.mu.Lock()
	attempt := w.writes
	w.writes++
	w.mu.Unlock()
	if w.answer != nil {
		w.answer(attempt, b, errs)
	}
}

func (w *fakeWriter) Ping(context.Context) error { return w.ping }

func (w *fakeWriter) Writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// keysEncoder encodes any request into one entry per key.
type keysEncoder []string

func (e keysEncoder) Encode(_ []byte, b *entry.Batch) (EncodeStats, error) {
	for i, k := range e {
		start := len(b.Buf)
		b.Buf = append(b.Buf, k...)
		b.Begin(start, [16]byte{byte(i), 1}, [8]byte{byte(i), 2})
		b.AddField("data", []byte("{}"))
	}
	return EncodeStats{Spans: len(e)}, nil
}

// replyError is an error reply from Redis, as the sink reports it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var (
	errConnection         = fmt.Errorf("dial tcp 127.0.0.1:6379: %w", syscall.ECONNREFUSED)
	errWrongType          = replyError("WRONGTYPE Operation against a key holding the wrong kind of value")
	errRefusedCredentials = fmt.Errorf("%w: WRONGPASS", redisconn.ErrCredentials)
)

// started returns a started pipeline of one writer, retrying at once, stopped at the test's end.
func started(t *testing.T, enc Encoder, w Writer, opts Options) (*Pipeline, *telemetry.Telemetry, *bytes.Buffer) {
	t.Helper()
	opts.Writers = 1
	var logs bytes.Buffer
	tel := telemetry.New()
	p := New(opts, enc, w, tel, slog.New(slog.NewTextHandler(&logs, nil)))
	p.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p, tel, &logs
}

func export(p *Pipeline, ctx context.Context) (Result, error) {
	return p.Export(ctx, nil, "grpc", &admission.Claim{})
}

// value reads a counter.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// eventually polls cond until it holds; the bound only keeps a broken test from hanging.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("never: %s", what)
		}
	}
}

func TestAnEntryRedisRefusesForGoodIsRejectedAndTheRestDelivered(t *testing.T) {
	w := &fakeWriter{answer: func(_ int, b *entry.Batch, errs []error) {
		for i := range errs {
			if string(b.Key(i)) == "traces:bad" {
				errs[i] = errWrongType
			}
		}
	}}
	p, tel, logs := started(t, keysEncoder{"traces:a", "traces:bad", "traces:b"}, w, Options{})
	res, err := export(p, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 1 || !strings.Contains(res.Message, "WRONGTYPE") {
		t.Fatalf("answer %+v, want 1 rejected with the WRONGTYPE reply", res)
	}
	if w.Writes() != 1 {
		t.Fatalf("%d writes: a refused entry must not be retried", w.Writes())
	}
	if n := value(t, tel.SpansExported); n != 2 {
		t.Fatalf("%v spans exported, want 2", n)
	}
	if n := value(t, tel.SpansDropped.WithLabelValues(telemetry.DropRejected)); n != 1 {
		t.Fatalf("%v spans dropped as rejected, want 1", n)
	}
	if n := value(t, tel.RedisErrors.WithLabelValues("wrongtype")); n != 1 {
		t.Fatalf("%v wrongtype errors counted, want 1", n)
	}
	if !strings.Contains(logs.String(), "stream=traces:bad") {
		t.Fatalf("the refusal's log does not name its stream:\n%s", logs)
	}
}

func TestARetryableFailureIsRetriedUntilRedisTakesTheEntries(t *testing.T) {
	w := &fakeWriter{answer: func(attempt int, _ *entry.Batch, errs []error) {
		if attempt < 2 {
			for i := range errs {
				errs[i] = errConnection
			}
		}
	}}
	p, tel, _ := started(t, keysEncoder{"traces:a", "traces:b"}, w, Options{RetryInitialInterval: time.Millisecond, RetryMaxInterval: time.Millisecond})
	res, err := export(p, context.Background())
	if err != nil || res.Rejected != 0 {
		t.Fatalf("answer %+v, %v; want success", res, err)
	}
	if w.Writes() != 3 {
		t.Fatalf("%d writes, want 3 (two failures, then success)", w.Writes())
	}
	if n := value(t, tel.RedisErrors.WithLabelValues("connection")); n != 4 {
		t.Fatalf("%v connection errors counted, want 4 (2 entries, 2 attempts)", n)
	}
}

func TestRefusedCredentialsFailRequestsAtTheDoorUntilRedisTakesThemAgain(t *testing.T) {
	var refuse sync.Mutex // held while Redis refuses the credentials
	refusing := true
	w := &fakeWriter{answer: func(_ int, _ *entry.Batch, errs []error) {
		refuse.Lock()
		defer refuse.Unlock()
		for i := range errs {
			if refusing {
				errs[i] = errRefusedCredentials
			}
		}
	}}
	p, tel, logs := started(t, keysEncoder{"traces:a", "traces:b"}, w, Options{})
	_, err := export(p, context.Background())
	var pe *Error
	if !errors.As(err, &pe) || !errors.Is(err, ErrUnavailable) || pe.RetryAfter != authRetryAfter {
		t.Fatalf("error %v, want unavailable with a retry after %v", err, authRetryAfter)
	}
	if w.Writes() != 1 {
		t.Fatalf("%d writes: refused credentials must fail the request, not retry it", w.Writes())
	}
	if _, err := export(p, context.Background()); !errors.Is(err, ErrUnavailable) || w.Writes() != 1 {
		t.Fatalf("second request: %v after %d writes; want refused at the door, without a write", err, w.Writes())
	}
	if n := value(t, tel.SpansFailed.WithLabelValues("auth")); n != 4 {
		t.Fatalf("%v spans failed as auth, want 4", n)
	}
	if c := strings.Count(logs.String(), "Redis write failed"); c != 1 {
		t.Fatalf("refused credentials logged %d times, want once:\n%s", c, logs)
	}
	refuse.Lock()
	refusing = false
	refuse.Unlock()
	if err := p.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := export(p, context.Background()); err != nil {
		t.Fatalf("after a successful probe: %v", err)
	}
}

func TestARequestThatRunsOutOfTimeIsAbandonedAndCountedByHowItEnded(t *testing.T) {
	cases := map[string]struct {
		redisErr error // what every write fails with; nil: Redis does not answer until the request ended
		end      error // how the request's context ends
		want     string
	}{
		"a client that cancels while Redis does not answer is counted as canceled": {
			end: context.Canceled, want: telemetry.FailCanceled},
		"a client that cancels while Redis fails is counted as canceled, not as the failure": {
			redisErr: errConnection, end: context.Canceled, want: telemetry.FailCanceled},
		"a deadline while Redis fails is counted as the last Redis error": {
			redisErr: errConnection, end: context.DeadlineExceeded, want: "connection"},
		"a deadline while Redis does not answer is a timeout": {
			end: context.DeadlineExceeded, want: telemetry.FailTimeout},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := newEndingContext(c.end)
			answered := make(chan struct{})
			w := &fakeWriter{answer: func(attempt int, _ *entry.Batch, errs []error) {
				switch {
				case c.redisErr == nil && attempt == 0:
					ctx.end()
					<-answered // Redis answers only once the request has ended
				case c.redisErr != nil && attempt == 1:
					ctx.end() // after the first failure has been settled
				}
				for i := range errs {
					errs[i] = cmp.Or(c.redisErr, errConnection)
				}
			}}
			p, tel, _ := started(t, keysEncoder{"traces:a"}, w, Options{RetryInitialInterval: time.Millisecond, RetryMaxInterval: time.Millisecond})
			_, err := export(p, ctx)
			close(answered)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v, want unavailable", err)
			}
			if canceled := errors.Is(c.end, context.Canceled); errors.Is(err, context.Canceled) != canceled {
				t.Fatalf("error %v: wraps context.Canceled %v, want %v (the receivers count refusals by it)", err, !canceled, canceled)
			}
			if n := value(t, tel.SpansFailed.WithLabelValues(c.want)); n != 1 {
				t.Fatalf("%v spans failed as %s, want 1", n, c.want)
			}
			// Nobody waits for the abandoned entry: the writer stops retrying it and goes back
			// to waiting for work.
			eventually(t, "the writer gives the abandoned entry up", func() bool { return p.busySince[0].Load() == 0 })
		})
	}
}

// endingContext is a request's context that the test ends, canceled or past its deadline.
type endingContext struct {
	context.Context
	err  error
	done chan struct{}
	once sync.Once
}

func newEndingContext(err error) *endingContext {
	return &endingContext{Context: context.Background(), err: err, done: make(chan struct{})}
}

func (c *endingContext) end()                  { c.once.Do(func() { close(c.done) }) }
func (c *endingContext) Done() <-chan struct{} { return c.done }

func (c *endingContext) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func TestARedisThatMakesNoProgressRefusesNewRequestsAtOnce(t *testing.T) {
	answer := make(chan struct{})
	w := &fakeWriter{answer: func(attempt int, _ *entry.Batch, _ []error) {
		if attempt == 0 {
			<-answer
		}
	}}
	p, tel, _ := started(t, keysEncoder{"traces:a"}, w, Options{StallTimeout: time.Millisecond})
	first := make(chan error, 1)
	go func() { _, err := export(p, context.Background()); first <- err }()
	eventually(t, "the stall detector fires", func() bool { return p.stalled() > 0 })
	_, err := export(p, context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("error %v, want unavailable: no progress", err)
	}
	if n := value(t, tel.SpansFailed.WithLabelValues(telemetry.FailStalled)); n != 1 {
		t.Fatalf("%v spans failed as stalled, want 1", n)
	}
	close(answer)
	if err := <-first; err != nil {
		t.Fatalf("the request Redis held: %v; want delivered once Redis answers", err)
	}
	if _, err := export(p, context.Background()); err != nil {
		t.Fatalf("after Redis answered: %v", err)
	}
	if w.Writes() != 2 {
		t.Fatalf("%d writes, want 2: the refused request is never written", w.Writes())
	}
}

// bigEntriesEncoder encodes any request into n entries of size bytes each.
type bigEntriesEncoder struct{ n, size int }

func (e bigEntriesEncoder) Encode(_ []byte, b *entry.Batch) (EncodeStats, error) {
	value := bytes.Repeat([]byte{'x'}, e.size)
	for i := range e.n {
		start := len(b.Buf)
		b.Buf = append(b.Buf, "traces:big"...)
		b.Begin(start, [16]byte{byte(i), byte(i >> 8), 1}, [8]byte{byte(i), 2})
		b.AddField("data", value)
	}
	return EncodeStats{Spans: e.n}, nil
}

// A writer fills the same batch pipeline after pipeline: its entries refer to the requests'
// batches (1,000 json spans are 1.2 MB, which the writer used to copy, and to grow a batch for
// from nothing when it was over what a batch kept: 6 % of the exporter's CPU under make bench),
// and the bookkeeping it keeps between pipelines is reused, unless it is over maxWriterBatch.
func TestAWriterKeepsItsBatchAcrossFullPipelines(t *testing.T) {
	perEntry := int(unsafe.Sizeof(entry.Entry{}))
	for _, tc := range []struct {
		entries int
		kept    bool
	}{{1000, true}, {maxWriterBatch/perEntry + 1000, false}} {
		t.Run(fmt.Sprintf("%d entries", tc.entries), func(t *testing.T) {
			var mu sync.Mutex
			var kept []*entry.Entry // these pointers keep every batch's memory from being reused
			w := &fakeWriter{answer: func(_ int, b *entry.Batch, _ []error) {
				if b.Len() != tc.entries {
					t.Errorf("a pipeline of %d entries, want %d", b.Len(), tc.entries)
				}
				if len(b.Buf) != 0 || len(b.Key(0)) == 0 {
					t.Errorf("the pipeline copied %d bytes of its entries; its first key is %q", len(b.Buf), b.Key(0))
				}
				mu.Lock()
				kept = append(kept, unsafe.SliceData(b.Entries))
				mu.Unlock()
			}}
			p, _, _ := started(t, bigEntriesEncoder{tc.entries, 10}, w, Options{PipelineSize: tc.entries, MaxInFlightSpans: 1 << 20})
			for range 4 {
				if _, err := export(p, context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(kept) != 4 {
				t.Fatalf("%d writes, want 4", len(kept))
			}
			for i := 1; i < len(kept); i++ {
				if same := kept[i] == kept[0]; same != tc.kept {
					t.Errorf("pipeline %d in the memory of the first: %v, want %v (%d entries of %d bytes, the writer keeps up to %d)",
						i, same, tc.kept, tc.entries, perEntry, maxWriterBatch)
				}
			}
		})
	}
}
