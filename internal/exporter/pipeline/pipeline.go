// Package pipeline wires the exporter's stages: a request's spans are encoded into entries, the
// entries of concurrent requests are grouped into Redis pipelines (group commit) by a few writers,
// failed entries are retried with backoff, and each request is answered once Redis has
// acknowledged all of its entries, or told to retry when that did not happen in time.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/exporter/wal"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// Writer sends one batch as one Redis pipeline and reports each entry's outcome in errs.
type Writer interface {
	Write(ctx context.Context, b *entry.Batch, errs []error)
	Ping(ctx context.Context) error
}

// progressReporter is a Writer that can tell when bytes last moved to or from Redis (unix ns),
// even before a pipeline's last reply.
type progressReporter interface {
	LastProgress() int64
}

// Encoder turns one OTLP protobuf request into entries, one per span that passes the filter.
type Encoder interface {
	Encode(req []byte, b *entry.Batch) (EncodeStats, error)
}

// EncodeStats says what Encode did with a request's spans.
type EncodeStats struct {
	Spans    int // spans in the request
	Filtered int // excluded by the service filter
	Invalid  int // spans that cannot be written (e.g. no trace id): rejected, reported to the client
	// InvalidMessage describes the first invalid span.
	InvalidMessage string
}

// Result is a successful export's answer: how many spans were rejected, and why (OTLP partial
// success; clients must not retry them).
type Result struct {
	Rejected int
	Message  string
}

// Options configures a Pipeline.
type Options struct {
	PipelineSize         int
	FlushInterval        time.Duration
	Writers              int
	MaxInFlightSpans     int
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	RequestTimeout       time.Duration
	// StallTimeout: when a writer has held a batch this long and Redis has made no progress (no reply, no bytes)
	// for as long, Export refuses new requests at once (0: never).
	StallTimeout time.Duration
	// PersistentQueue, when set, is the write-ahead log of delivery.persistentQueue: requests
	// are acknowledged once appended to it, and the pipeline writes it to Redis (durable.go).
	// The caller opens and closes it.
	PersistentQueue *wal.Log
}

// Pipeline is the exporter's engine. Create it with New, Start it, Export into it, Shutdown it.
type Pipeline struct {
	opts Options
	enc  Encoder
	w    Writer
	tel  *telemetry.Telemetry
	log  *slog.Logger // the logger; the persistent queue is wal

	chunks   chan chunk // requests' entries on their way to the writers
	wal      *wal.Log   // Options.PersistentQueue
	records  sync.Pool  // *[]byte: a request's log record
	stopLog  context.CancelFunc
	inflight atomic.Int64
	draining atomic.Bool
	stop     chan struct{} // closed when writers must give up retrying
	wg       sync.WaitGroup
	batches  batchPool

	// authFailing is set while Redis refuses our credentials: requests then fail fast instead of
	// each one queueing a write that cannot succeed.
	authFailing atomic.Bool
	// busySince[i] is when writer i took its current batch (unix ns), 0 while it waits for one;
	// lastAck is when Redis last acknowledged an entry. Together they tell a stalled Redis.
	busySince []atomic.Int64
	lastAck   atomic.Int64
	errLog    *writeErrorLog
}

// New builds a pipeline; Start launches its writers.
func New(opts Options, enc Encoder, w Writer, tel *telemetry.Telemetry, log *slog.Logger) *Pipeline {
	if opts.Writers < 1 {
		opts.Writers = 1
	}
	if opts.PipelineSize < 1 {
		opts.PipelineSize = 1000
	}
	p := &Pipeline{
		opts: opts, enc: enc, w: w, tel: tel, log: log, errLog: newWriteErrorLog(log), wal: opts.PersistentQueue,
		chunks: make(chan chunk, 4*opts.Writers),
		stop:   make(chan struct{}),

		busySince: make([]atomic.Int64, opts.Writers),
	}
	p.records.New = func() any { return new([]byte) }
	return p
}

// Start launches the writers.
func (p *Pipeline) Start() {
	p.lastAck.Store(time.Now().UnixNano())
	for i := range p.opts.Writers {
		p.wg.Add(1)
		w := &writer{p: p, busySince: &p.busySince[i]}
		go w.run()
	}
	if p.wal != nil {
		ctx, cancel := context.WithCancel(context.Background())
		p.stopLog = cancel
		p.wg.Add(1)
		go p.drainLog(ctx)
	}
}

// request is one Export call's state, shared with the writers that carry its entries.
type request struct {
	batch   *entry.Batch
	pending atomic.Int64
	done    chan struct{}
	// durable marks a record of the persistent queue: its client has its answer already, so
	// every error short of a permanent refusal is retried until Redis takes it.
	durable bool

	mu        sync.Mutex
	abandoned bool
	rejected  int
	rejectMsg string
	failed    bool            // an entry met refused credentials: the whole request is answered retryably
	lastClass redisconn.Class // class of the last retryable error, for the answer when time runs out
}

// chunk is a slice of a request's entries: at most one pipeline's worth.
type chunk struct {
	r        *request
	from, to int
}

// owner maps an entry of a writer's batch back to its request.
type owner struct{ r *request }

func (r *request) resolve(n int) {
	if r.pending.Add(int64(-n)) == 0 {
		close(r.done)
	}
}

// Export writes the spans of one OTLP protobuf request and returns once Redis acknowledged every
// entry, or with a *Error whose class says what the client should do (or the memory budget's
// *admission.ExhaustedError). The request's encoded entries are added to its claim on the memory
// budget (mem); the caller releases the claim.
func (p *Pipeline) Export(ctx context.Context, req []byte, protocol string, mem *admission.Claim) (Result, error) {
	if p.draining.Load() {
		return Result{}, &Error{Class: ErrShuttingDown, RetryAfter: time.Second}
	}
	b, res, err := p.encode(req, protocol)
	if err != nil || b == nil {
		return res, err
	}
	n := b.Len()
	if err := mem.Grow(int64(b.Size())); err != nil {
		p.batches.put(b)
		p.tel.Failed(telemetry.FailMemory, n)
		return Result{}, err // an *admission.ExhaustedError, answered as the receivers' own claims are
	}
	if p.wal != nil {
		return p.exportDurable(ctx, b, n, res)
	}
	if e := p.gate(n); e != nil {
		p.batches.put(b)
		return Result{}, e
	}
	weight, e := p.admit(n)
	if e != nil {
		p.batches.put(b)
		return Result{}, e
	}
	defer p.release(weight, n)
	return p.deliver(ctx, b, n, res)
}

// encode turns a request into entries and counts its spans. It returns a nil batch, and no
// error, for a request with nothing to write.
func (p *Pipeline) encode(req []byte, protocol string) (*entry.Batch, Result, error) {
	b := p.batches.get(len(req))
	st, err := p.enc.Encode(req, b)
	if err != nil {
		p.batches.put(b)
		return nil, Result{}, &Error{Class: ErrInvalid, Detail: err.Error()}
	}
	p.tel.Received(protocol, st.Spans)
	p.tel.Dropped(telemetry.DropFiltered, st.Filtered)
	p.tel.Dropped(telemetry.DropInvalid, st.Invalid)
	res := Result{Rejected: st.Invalid, Message: st.InvalidMessage}
	if b.Len() == 0 {
		p.batches.put(b)
		return nil, res, nil
	}
	return b, res, nil
}

// admit counts a request of n spans in flight, within MaxInFlightSpans, and returns its weight
// for release. A request counts at most the whole bound, as a claim on the byte budget does: one
// with more spans than MaxInFlightSpans is admitted when nothing else is in flight, so that the
// retry its refusal asks for can succeed.
func (p *Pipeline) admit(n int) (int64, *Error) {
	weight := int64(n)
	if max := int64(p.opts.MaxInFlightSpans); max > 0 {
		weight = min(weight, max)
		if p.inflight.Add(weight) > max {
			p.inflight.Add(-weight)
			p.tel.Failed(telemetry.FailBusy, n)
			return 0, &Error{Class: ErrBusy, Detail: fmt.Sprintf("more than %d spans in flight (delivery.maxInFlightSpans)", max), RetryAfter: time.Second}
		}
	} else {
		p.inflight.Add(weight)
	}
	p.tel.InFlight.Add(float64(n))
	return weight, nil
}

// release ends what admit counted.
func (p *Pipeline) release(weight int64, n int) {
	p.inflight.Add(-weight)
	p.tel.InFlight.Sub(float64(n))
}

// deliver hands the batch b of n entries to the writers, a pipeline's worth at a time, and waits
// until every entry has been acknowledged, rejected or failed, or until the request's time runs
// out.
func (p *Pipeline) deliver(ctx context.Context, b *entry.Batch, n int, res Result) (Result, error) {
	if p.opts.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.RequestTimeout)
		defer cancel()
	}
	r := &request{batch: b, done: make(chan struct{})}
	r.pending.Store(int64(n))
	for from := 0; from < n; from += p.opts.PipelineSize {
		select {
		case p.chunks <- chunk{r: r, from: from, to: min(from+p.opts.PipelineSize, n)}:
		case <-ctx.Done():
			return p.abandon(r, n, ctx.Err())
		case <-p.stop:
			return p.abandon(r, n, ErrShuttingDown)
		}
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return p.abandon(r, n, ctx.Err())
	}
	// Every chunk has been gathered and resolved: no writer references the batch any more.
	p.batches.put(b)
	return p.answer(r, n, res)
}

// answer is the reply to a request whose every entry has been settled.
func (p *Pipeline) answer(r *request, n int, res Result) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed {
		p.tel.Failed(redisconn.ClassAuth.Label(), n)
		return Result{}, errAuth()
	}
	if r.rejected > 0 {
		res.Rejected += r.rejected
		if res.Message == "" {
			res.Message = r.rejectMsg
		}
	}
	return res, nil
}

// abandon answers a request that ran out of time, or whose client canceled it. Its entries may
// still be written by a writer that already gathered them (a duplicate if the client retries:
// at-least-once), but no writer gathers or retries them after this; the batch is left to the
// garbage collector because a chunk may still sit in the queue.
func (p *Pipeline) abandon(r *request, n int, cause error) (Result, error) {
	r.mu.Lock()
	r.abandoned = true
	class := r.lastClass
	r.mu.Unlock()
	if errors.Is(cause, context.Canceled) {
		return Result{}, p.canceled(n)
	}
	label := telemetry.FailTimeout
	if class != redisconn.ClassNone {
		label = class.Label() // the last Redis error says more than the time running out
	}
	p.tel.Failed(label, n)
	if errors.Is(cause, ErrShuttingDown) {
		return Result{}, &Error{Class: ErrShuttingDown, RetryAfter: time.Second}
	}
	return Result{}, &Error{Class: ErrUnavailable, Detail: fmt.Sprintf("redis did not acknowledge the spans in time (last error: %s)", label), RetryAfter: time.Second}
}

// canceled answers, and counts, a request of n spans whose client gave up before its answer:
// whatever Redis was doing, that is neither a timeout nor Redis's failure.
func (p *Pipeline) canceled(n int) *Error {
	p.tel.Failed(telemetry.FailCanceled, n)
	return &Error{Class: ErrUnavailable, Detail: "the client canceled the request", RetryAfter: time.Second, cause: context.Canceled}
}

// fill gathers more queued chunks into the pipeline, up to PipelineSize entries. It waits up to
// FlushInterval for more only when that is configured; by default a pipeline is sent as soon as
// a writer is free (group commit), which keeps added latency low at light load.
func (p *Pipeline) fill(wb *entry.Batch, gather func(chunk)) {
	var timer <-chan time.Time
	if p.opts.FlushInterval > 0 {
		timer = time.After(p.opts.FlushInterval)
	}
	for wb.Len() < p.opts.PipelineSize {
		if timer == nil {
			select {
			case c := <-p.chunks:
				gather(c)
			default:
				return
			}
			continue
		}
		select {
		case c := <-p.chunks:
			gather(c)
		case <-timer:
			return
		}
	}
}

// Probe pings Redis and records reachability; the admin endpoint's readiness follows it.
func (p *Pipeline) Probe(ctx context.Context) error {
	err := p.w.Ping(ctx)
	p.tel.SetRedisReachable(err == nil)
	if err != nil {
		if class := redisconn.Classify(err); class == redisconn.ClassAuth {
			// Logged here too: the probe may be the first to meet a wrong password (the same
			// log as the writers', so that it is said once whichever meets it first).
			p.errLog.failed(class, err)
			p.authFailing.Store(true)
		}
		return err
	}
	p.authFailing.Store(false)
	return nil
}

// Shutdown refuses new requests, waits until every accepted request has been answered (its
// entries acknowledged, rejected or timed out), then stops the writers. When ctx ends first the
// writers give up their retries at once; the requests still waiting are told to retry.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.draining.Store(true)
	defer func() {
		if p.stopLog != nil {
			p.stopLog() // the log's drain waits on a context of its own: end it on every return
		}
		close(p.stop)
		p.wg.Wait()
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for p.inflight.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("draining with %d spans in flight: %w", p.inflight.Load(), ctx.Err())
		}
	}
	if p.wal == nil {
		return nil
	}
	// Every client has its answer; write what the persistent queue holds while time allows.
	// What is left stays in the log for the next start.
	for !p.wal.Drained() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("draining the persistent queue with %d records left in it: %w", p.wal.Stats().Records, ctx.Err())
		}
	}
	return nil
}

func resize(errs []error, n int) []error {
	if cap(errs) < n {
		return make([]error, n)
	}
	errs = errs[:n]
	clear(errs)
	return errs
}
