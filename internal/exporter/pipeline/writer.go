package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// writer is one of the goroutines that send pipelines to Redis. Its buffers are reused from one
// pipeline to the next: a writer allocates nothing per span once they have grown.
type writer struct {
	p *Pipeline
	// busySince is the writer's slot of Pipeline.busySince.
	busySince *atomic.Int64
	// wb is the pipeline being written and owners the request of each of its entries; retry and
	// retryOwn gather the entries to write again, and swap places with them after an attempt.
	wb, retry        entry.Batch
	owners, retryOwn []owner
	errs             []error
}

// run gathers chunks into pipelines and writes each until it is delivered, until Shutdown
// gives up on the retries.
func (w *writer) run() {
	defer w.p.wg.Done()
	for {
		var c chunk
		select {
		case c = <-w.p.chunks:
		case <-w.p.stop:
			return
		}
		w.busySince.Store(time.Now().UnixNano())
		w.gather(c)
		w.p.fill(&w.wb, w.gather)
		if w.wb.Len() > 0 && !w.deliver() {
			return
		}
		w.idle()
		w.busySince.Store(0)
	}
}

// idle empties the writer's batches and lists once a pipeline is delivered, so that a writer
// waiting for work refers to no request (whose batch the GC could not take back otherwise) and
// keeps at most maxWriterBatch of memory per batch.
func (w *writer) idle() {
	resetBatch(&w.wb, maxWriterBatch)
	resetBatch(&w.retry, maxWriterBatch)
	clear(w.owners)
	clear(w.retryOwn)
	clear(w.errs)
	w.owners, w.retryOwn, w.errs = w.owners[:0], w.retryOwn[:0], w.errs[:0]
}

// gather adds a chunk's entries to the pipeline, unless its request has been answered already.
func (w *writer) gather(c chunk) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.r.abandoned {
		return
	}
	for i := c.from; i < c.to; i++ {
		w.wb.AppendRef(c.r.batch, i)
		w.owners = append(w.owners, owner{c.r})
	}
}

// deliver writes the pipeline, and what Redis did not take again after a backoff, until no entry
// is left to retry. It returns false when Shutdown gave up first: the requests still waiting time
// out and are told to retry.
func (w *writer) deliver() bool {
	b := newBackoff(w.p.opts.RetryInitialInterval, w.p.opts.RetryMaxInterval)
	for {
		w.write()
		w.acknowledge()
		resetBatch(&w.retry, maxWriterBatch)
		clear(w.retryOwn)
		w.retryOwn = w.retryOwn[:0]
		for i, err := range w.errs {
			if err != nil {
				w.settle(i, err)
			}
		}
		if w.retry.Len() == 0 {
			return true
		}
		w.wb, w.retry = w.retry, w.wb
		w.owners, w.retryOwn = w.retryOwn, w.owners
		select {
		case <-time.After(b.next()):
		case <-w.p.stop:
			return false
		}
	}
}

// write sends the pipeline; w.errs holds each entry's outcome.
func (w *writer) write() {
	w.errs = resize(w.errs, w.wb.Len())
	start := time.Now()
	w.p.w.Write(context.Background(), &w.wb, w.errs)
	w.p.tel.PipelineTime.Observe(time.Since(start).Seconds())
	w.p.tel.BatchSize.Observe(float64(w.wb.Len()))
}

// acknowledge counts what Redis took before answering any client, so that a client that has
// its OK also sees its spans in the metrics and /status, then resolves those entries.
func (w *writer) acknowledge() {
	ok := 0
	for _, err := range w.errs {
		if err == nil {
			ok++
		}
	}
	if ok == 0 {
		return
	}
	w.p.lastAck.Store(time.Now().UnixNano())
	w.p.tel.Exported(ok)
	w.p.authFailing.Store(false)
	for i, err := range w.errs {
		if err == nil {
			w.owners[i].r.resolve(1)
		}
	}
}

// settle classifies the failed entry i, counts and logs its error, and carries out the retry
// policy's verdict on it.
func (w *writer) settle(i int, err error) {
	r := w.owners[i].r
	class := redisconn.Classify(err)
	w.p.tel.RedisError(class, 1)
	if class == redisconn.ClassAuth {
		// Refused credentials belong to the connection: every request fails fast until a write
		// or the readiness probe succeeds again.
		w.p.authFailing.Store(true)
	}
	r.mu.Lock()
	v := decide(class, r.durable, r.abandoned)
	switch v {
	case failRequest:
		r.failed = true
	case rejectEntry:
		r.rejected++
		if r.rejectMsg == "" {
			r.rejectMsg = "redis rejected the entry: " + err.Error()
		}
	case retryEntry:
		r.lastClass = class
	}
	r.mu.Unlock()
	switch v {
	case rejectEntry:
		w.p.errLog.rejected(class, w.wb.Key(i), err)
		w.p.tel.Dropped(telemetry.DropRejected, 1)
		r.resolve(1)
	case failRequest:
		w.p.errLog.failed(class, err)
		r.resolve(1)
	case retryEntry, abandonEntry:
		w.p.errLog.failed(class, err)
		if v == retryEntry {
			w.retry.AppendRef(&w.wb, i)
			w.retryOwn = append(w.retryOwn, w.owners[i])
		}
	}
}
