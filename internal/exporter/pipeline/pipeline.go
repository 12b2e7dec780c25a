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
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/exporter/wal"
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

// Classifier names the class of a write error and says whether a retry may succeed.
type Classifier func(err error) (class string, retryable bool)

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
	// Log, when set, is the persistent queue: requests are acknowledged once appended to it, and
	// the pipeline writes it to Redis (durable.go). The caller opens and closes it.
	Log *wal.Log
}

// Pipeline is the exporter's engine. Create it with New, Start it, Export into it, Shutdown it.
type Pipeline struct {
	opts     Options
	enc      Encoder
	w        Writer
	classify Classifier
	tel      *telemetry.Telemetry
	log      *slog.Logger

	queue    chan chunk
	wal      *wal.Log
	records  sync.Pool // *[]byte: a request's log record
	stopLog  context.CancelFunc
	inflight atomic.Int64
	draining atomic.Bool
	stop     chan struct{} // closed when writers must give up retrying
	wg       sync.WaitGroup
	batches  sync.Pool

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
func New(opts Options, enc Encoder, w Writer, classify Classifier, tel *telemetry.Telemetry, log *slog.Logger) *Pipeline {
	if opts.Writers < 1 {
		opts.Writers = 1
	}
	if opts.PipelineSize < 1 {
		opts.PipelineSize = 1000
	}
	p := &Pipeline{
		opts: opts, enc: enc, w: w, classify: classify, tel: tel, log: log, errLog: newWriteErrorLog(log), wal: opts.Log,
		queue: make(chan chunk, 4*opts.Writers),
		stop:  make(chan struct{}),

		busySince: make([]atomic.Int64, opts.Writers),
	}
	p.batches.New = func() any { return new(entry.Batch) }
	p.records.New = func() any { return new([]byte) }
	return p
}

// Start launches the writers.
func (p *Pipeline) Start() {
	p.lastAck.Store(time.Now().UnixNano())
	for i := range p.opts.Writers {
		p.wg.Add(1)
		go p.writer(&p.busySince[i])
	}
	if p.wal != nil {
		ctx, cancel := context.WithCancel(context.Background())
		p.stopLog = cancel
		p.wg.Add(1)
		go p.drainLog(ctx)
	}
}

// stalled reports for how long Redis has made no progress (no reply, no byte sent or read) while
// a writer holds a batch, when that is longer than StallTimeout; 0 otherwise.
func (p *Pipeline) stalled() time.Duration {
	if p.opts.StallTimeout <= 0 {
		return 0
	}
	now := time.Now().UnixNano()
	last := p.lastAck.Load()
	if pr, ok := p.w.(progressReporter); ok {
		last = max(last, pr.LastProgress())
	}
	quiet := now - last
	if quiet <= int64(p.opts.StallTimeout) {
		return 0
	}
	for i := range p.busySince {
		if since := p.busySince[i].Load(); since != 0 && now-since > int64(p.opts.StallTimeout) {
			return time.Duration(min(quiet, now-since))
		}
	}
	return 0
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
	failClass string // class of a permanent failure that makes the whole request retryable (auth)
	lastClass string // class of the last retryable error, for the answer when time runs out
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
// *admission.ExhaustedError). The request's encoded
// entries are added to its claim on the memory budget (mem); the caller releases the claim.
func (p *Pipeline) Export(ctx context.Context, req []byte, protocol string, mem *admission.Claim) (Result, error) {
	if p.draining.Load() {
		return Result{}, &Error{Class: ErrShuttingDown, RetryAfter: time.Second}
	}
	b := p.batches.Get().(*entry.Batch)
	b.Reset()
	st, err := p.enc.Encode(req, b)
	if err != nil {
		p.putBatch(b)
		return Result{}, &Error{Class: ErrInvalid, Detail: err.Error()}
	}
	p.tel.Received(protocol, st.Spans)
	p.tel.Dropped(telemetry.DropFiltered, st.Filtered)
	p.tel.Dropped(telemetry.DropInvalid, st.Invalid)
	res := Result{Rejected: st.Invalid, Message: st.InvalidMessage}
	n := b.Len()
	if n == 0 {
		p.putBatch(b)
		return res, nil
	}
	if err := mem.Grow(int64(b.Size())); err != nil {
		p.putBatch(b)
		p.tel.Failed("memory", n)
		return Result{}, err // an *admission.ExhaustedError, answered as the receivers' own claims are
	}
	if p.wal != nil {
		return p.exportDurable(ctx, b, n, res)
	}
	if p.authFailing.Load() {
		p.putBatch(b)
		p.tel.Failed("auth", n)
		return Result{}, &Error{Class: ErrUnavailable, Detail: "redis refuses the configured credentials", RetryAfter: 5 * time.Second}
	}
	if d := p.stalled(); d > 0 {
		p.putBatch(b)
		p.tel.Failed("stalled", n)
		return Result{}, &Error{Class: ErrUnavailable, Detail: fmt.Sprintf("redis has made no progress (no reply, no bytes) for %v", d.Round(time.Millisecond)), RetryAfter: time.Second}
	}
	// A request counts at most the whole bound, as a claim on the byte budget does: one with
	// more spans than MaxInFlightSpans is admitted when nothing else is in flight, so that the
	// retry its refusal asks for can succeed.
	weight := int64(n)
	if max := int64(p.opts.MaxInFlightSpans); max > 0 {
		weight = min(weight, max)
		if p.inflight.Add(weight) > max {
			p.inflight.Add(-weight)
			p.putBatch(b)
			p.tel.Failed("busy", n)
			return Result{}, &Error{Class: ErrBusy, Detail: fmt.Sprintf("more than %d spans in flight (delivery.maxInFlightSpans)", max), RetryAfter: time.Second}
		}
	} else {
		p.inflight.Add(weight)
	}
	p.tel.InFlight.Add(float64(n))
	defer func() {
		p.inflight.Add(-weight)
		p.tel.InFlight.Sub(float64(n))
	}()

	if p.opts.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.RequestTimeout)
		defer cancel()
	}
	r := &request{batch: b, done: make(chan struct{})}
	r.pending.Store(int64(n))
	for from := 0; from < n; from += p.opts.PipelineSize {
		to := min(from+p.opts.PipelineSize, n)
		select {
		case p.queue <- chunk{r: r, from: from, to: to}:
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
	p.putBatch(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failClass != "" {
		p.tel.Failed(r.failClass, n)
		return Result{}, &Error{Class: ErrUnavailable, Detail: "redis refuses the configured credentials", RetryAfter: 5 * time.Second}
	}
	if r.rejected > 0 {
		res.Rejected += r.rejected
		if res.Message == "" {
			res.Message = r.rejectMsg
		}
	}
	return res, nil
}

// maxPooledBatch is the largest batch kept for reuse, in the pool or by a writer: after a burst
// of large requests their memory goes back to the GC instead of staying held for good.
const maxPooledBatch = 1 << 20

func (p *Pipeline) putBatch(b *entry.Batch) {
	if cap(b.Buf) <= maxPooledBatch {
		p.batches.Put(b)
	}
}

// resetBatch empties b, keeping its memory only if it is not larger than maxPooledBatch.
func resetBatch(b *entry.Batch) {
	if cap(b.Buf) > maxPooledBatch {
		*b = entry.Batch{}
		return
	}
	b.Reset()
}

// abandon answers a request that ran out of time. Its entries may still be written by a writer
// that already gathered them (a duplicate if the client retries: at-least-once), but no writer
// gathers or retries them after this; the batch is left to the garbage collector because a chunk
// may still sit in the queue.
func (p *Pipeline) abandon(r *request, n int, cause error) (Result, error) {
	r.mu.Lock()
	r.abandoned = true
	class := r.lastClass
	r.mu.Unlock()
	if class == "" {
		class = "timeout"
	}
	p.tel.Failed(class, n)
	if errors.Is(cause, ErrShuttingDown) {
		return Result{}, &Error{Class: ErrShuttingDown, RetryAfter: time.Second}
	}
	return Result{}, &Error{Class: ErrUnavailable, Detail: fmt.Sprintf("redis did not acknowledge the spans in time (last error: %s)", class), RetryAfter: time.Second}
}

// writer gathers chunks into pipelines until Shutdown closes the queue; busySince is its slot
// of Pipeline.busySince.
func (p *Pipeline) writer(busySince *atomic.Int64) {
	defer p.wg.Done()
	var (
		wb, retry entry.Batch
		owners    []owner
		retryOwn  []owner
		errs      []error
	)
	gather := func(c chunk) {
		c.r.mu.Lock()
		defer c.r.mu.Unlock()
		if c.r.abandoned {
			return
		}
		for i := c.from; i < c.to; i++ {
			wb.Append(c.r.batch, i)
			owners = append(owners, owner{c.r})
		}
	}
	for {
		var c chunk
		select {
		case c = <-p.queue:
		case <-p.stop:
			return
		}
		busySince.Store(time.Now().UnixNano())
		resetBatch(&wb)
		owners = owners[:0]
		gather(c)
		p.fill(&wb, &owners, gather)
		if wb.Len() == 0 {
			busySince.Store(0)
			continue
		}
		backoff := p.opts.RetryInitialInterval
		for attempt := 0; wb.Len() > 0; attempt++ {
			errs = resize(errs, wb.Len())
			start := time.Now()
			p.w.Write(context.Background(), &wb, errs)
			p.tel.PipelineTime.Observe(time.Since(start).Seconds())
			p.tel.BatchSize.Observe(float64(wb.Len()))

			resetBatch(&retry)
			retryOwn = retryOwn[:0]
			// Count what Redis took before answering any client, so that a client that has
			// its OK also sees its spans in the metrics and /status.
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
				}
			}
			if ok > 0 {
				p.lastAck.Store(time.Now().UnixNano())
				p.tel.Exported(ok)
				p.authFailing.Store(false)
			}
			for i, err := range errs {
				o := owners[i]
				if err == nil {
					o.r.resolve(1)
					continue
				}
				class, retryable := p.classify(err)
				p.tel.RedisError(class, 1)
				if retryable || class == "auth" {
					p.errLog.failed(class, err)
				} else {
					p.errLog.rejected(class, wb.Key(i), err)
				}
				if class == "auth" {
					// Refused credentials fail a client's request at once (the client retries
					// later); a persistent-queue record has no client to tell, so it waits,
					// retried with backoff, until the credentials work.
					p.authFailing.Store(true)
					retryable = o.r.durable
				}
				o.r.mu.Lock()
				switch {
				case class == "auth" && !o.r.durable:
					o.r.failClass = class
					o.r.mu.Unlock()
					o.r.resolve(1)
				case !retryable:
					o.r.rejected++
					if o.r.rejectMsg == "" {
						o.r.rejectMsg = "redis rejected the entry: " + err.Error()
					}
					o.r.mu.Unlock()
					p.tel.Dropped(telemetry.DropRejected, 1)
					o.r.resolve(1)
				case o.r.abandoned:
					o.r.mu.Unlock()
				default:
					o.r.lastClass = class
					o.r.mu.Unlock()
					retry.Append(&wb, i)
					retryOwn = append(retryOwn, o)
				}
			}
			if retry.Len() == 0 {
				break
			}
			wb, retry = retry, wb
			owners, retryOwn = retryOwn, owners
			// Exponential backoff with full jitter; Shutdown's deadline cuts it short.
			sleep := time.Duration(rand.Int64N(int64(backoff) + 1))
			backoff = min(2*backoff, p.opts.RetryMaxInterval)
			select {
			case <-time.After(sleep):
			case <-p.stop:
				// Shutdown gave up: the requests still waiting time out and are told to retry.
				return
			}
		}
		busySince.Store(0)
	}
}

// fill gathers more queued chunks into the pipeline, up to PipelineSize entries. It waits up to
// FlushInterval for more only when that is configured; by default a pipeline is sent as soon as
// a writer is free (group commit), which keeps added latency low at light load.
func (p *Pipeline) fill(wb *entry.Batch, owners *[]owner, gather func(chunk)) {
	var timer <-chan time.Time
	if p.opts.FlushInterval > 0 {
		timer = time.After(p.opts.FlushInterval)
	}
	for wb.Len() < p.opts.PipelineSize {
		if timer == nil {
			select {
			case c := <-p.queue:
				gather(c)
			default:
				return
			}
			continue
		}
		select {
		case c := <-p.queue:
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
		class, _ := p.classify(err)
		if class == "auth" {
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
