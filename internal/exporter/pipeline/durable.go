package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/exporter/wal"
)

// The persistent queue (delivery.persistentQueue): Export appends a request's entries to the
// write-ahead log and answers once they are fsynced; drainLog reads the log in order and hands
// each record to the writers like a request that never times out, and commitLog commits the
// log as far as Redis has acknowledged it, in order. Redis being slow or down then no longer
// refuses clients until the log is full.

// exportDurable appends the encoded batch b (n entries) to the log and releases b.
func (p *Pipeline) exportDurable(ctx context.Context, b *entry.Batch, n int, res Result) (Result, error) {
	p.inflight.Add(int64(n)) // Shutdown waits for appends in progress
	defer p.inflight.Add(int64(-n))
	rec := p.records.Get().(*[]byte)
	*rec = b.MarshalAppend((*rec)[:0])
	p.batches.put(b)
	size := len(*rec)
	err := p.wal.Append(ctx, *rec)
	if cap(*rec) <= maxPooledBatch {
		p.records.Put(rec)
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, wal.ErrTooLarge):
		p.tel.Failed(telemetry.FailQueueTooLarge, n)
		return Result{}, &Error{Class: ErrInvalid, Detail: fmt.Sprintf("the request's %d bytes of entries are more than the persistent queue can ever hold (delivery.persistentQueue.maxBytes): send fewer spans per request", size)}
	case errors.Is(err, wal.ErrFull):
		p.tel.Failed(telemetry.FailQueueFull, n)
		return Result{}, &Error{Class: ErrBusy, Detail: fmt.Sprintf("the persistent queue is full (%d bytes)", p.wal.Stats().Bytes), RetryAfter: time.Second}
	case errors.Is(err, wal.ErrClosed):
		p.tel.Failed(telemetry.FailShutdown, n)
		return Result{}, &Error{Class: ErrShuttingDown, RetryAfter: time.Second}
	case errors.Is(err, context.Canceled):
		return Result{}, p.canceled(n)
	case ctx.Err() != nil:
		p.tel.Failed(telemetry.FailTimeout, n)
		return Result{}, &Error{Class: ErrUnavailable, Detail: "the persistent queue did not take the spans in time", RetryAfter: time.Second}
	default:
		p.tel.Failed(telemetry.FailQueue, n)
		p.log.Warn("Persistent queue write failed", "err", err)
		return Result{}, &Error{Class: ErrUnavailable, Detail: "the persistent queue failed to write: " + err.Error(), RetryAfter: time.Second}
	}
}

// logged is one record handed to the writers, in log order.
type logged struct {
	r   *request // nil for a record with nothing to write
	end wal.Position
}

// drainWeight is what a record of n entries takes from the drain's budget of MaxInFlightSpans:
// a record larger than the whole budget takes all of it rather than waiting forever.
func (p *Pipeline) drainWeight(n int) int64 {
	return min(int64(n), p.drainBudget())
}

func (p *Pipeline) drainBudget() int64 { return int64(max(p.opts.MaxInFlightSpans, 1)) }

// drainLog reads the log from its last commit and queues each record for the writers; the
// spans it holds in memory are bounded by MaxInFlightSpans.
func (p *Pipeline) drainLog(ctx context.Context) {
	defer p.wg.Done()
	rd := p.wal.NewReader(p.wal.Start())
	defer rd.Close()
	order := make(chan logged, 1024)
	budget := semaphore.NewWeighted(p.drainBudget())
	p.wg.Add(1)
	go p.commitLog(order, budget)
	defer close(order)
	var rec []byte
	for {
		var (
			end wal.Position
			err error
		)
		rec, end, err = rd.Next(ctx, rec)
		if err != nil {
			return // stopped, or the log closed
		}
		b := p.batches.get(len(rec))
		if err := b.Unmarshal(rec); err != nil || b.Len() == 0 {
			// The checksum matched, so this is not disk damage but bytes we cannot read
			// (written by a different version): count them and move on.
			if err != nil {
				p.tel.QueueUnreadable.Inc()
				p.log.Warn("Skipping an unreadable persistent queue record", "segment", end.Segment, "offset", end.Offset, "err", err)
			}
			p.batches.put(b)
			select {
			case order <- logged{end: end}:
			case <-ctx.Done():
				return
			}
			continue
		}
		n := b.Len()
		if err := budget.Acquire(ctx, p.drainWeight(n)); err != nil {
			return
		}
		r := &request{batch: b, done: make(chan struct{}), durable: true}
		r.pending.Store(int64(n))
		p.tel.InFlight.Add(float64(n))
		select {
		case order <- logged{r: r, end: end}:
		case <-ctx.Done():
			return
		}
		for from := 0; from < n; from += p.opts.PipelineSize {
			select {
			case p.chunks <- chunk{r: r, from: from, to: min(from+p.opts.PipelineSize, n)}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// commitLog waits for each record's entries to be acknowledged, in log order, and commits the
// log past it.
func (p *Pipeline) commitLog(order <-chan logged, budget *semaphore.Weighted) {
	defer p.wg.Done()
	for l := range order {
		if l.r != nil {
			select {
			case <-l.r.done:
			case <-p.stop:
				return // not acknowledged: the record stays in the log for the next start
			}
			n := l.r.batch.Len()
			p.tel.InFlight.Sub(float64(n))
			// Entries Redis refused for good (l.r.rejected) are committed with the rest: they
			// were counted and logged per stream by the writers, and would only block the log.
			p.batches.put(l.r.batch)
			budget.Release(p.drainWeight(n))
		}
		if err := p.wal.Commit(l.end, 1); err != nil {
			p.log.Warn("Committing the persistent queue failed", "err", err)
		}
	}
}
