package pipeline

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/telemetry"
	"github.com/tracestream/tracestream/internal/redisconn"
)

// Retry: what happens to an entry Redis did not take, how long a writer waits before trying
// again, and when a request is refused at the door because retrying cannot help it now. The
// Redis error class decides, typed, from the sink to here; which classes are worth a retry is
// Class.Retryable's to say, and nothing else in the pipeline asks.

// verdict is what becomes of one entry Redis did not take.
type verdict uint8

const (
	// retryEntry: write it again after the backoff.
	retryEntry verdict = iota
	// rejectEntry: Redis refused it for good (wrongtype, noperm, ...). It is dropped, counted and
	// reported to its client as partial success, which must not send it again.
	rejectEntry
	// failRequest: its whole request is answered with a retryable error at once (refused
	// credentials: the client retries later instead of its request waiting for a fix).
	failRequest
	// abandonEntry: its request has been answered already (it ran out of time); nobody waits
	// for it, so it is neither retried nor counted.
	abandonEntry
)

// decide is the retry policy for one entry whose write failed with class c. durable marks a
// record of the persistent queue: its client has its answer already, so refused credentials
// are waited out, with backoff, instead of failing a request nobody waits for.
func decide(c redisconn.Class, durable, abandoned bool) verdict {
	switch {
	case c == redisconn.ClassAuth && !durable:
		return failRequest
	case c != redisconn.ClassAuth && !c.Retryable():
		return rejectEntry
	case abandoned:
		return abandonEntry
	}
	return retryEntry
}

// backoff is a writer's wait between attempts at the same pipeline: exponential with full
// jitter (a random wait up to the current bound, so that writers retrying the same failure do
// not hit Redis in step), the bound doubling from RetryInitialInterval up to RetryMaxInterval.
type backoff struct {
	bound, max time.Duration
	// jitter returns a number in [0, n); rand.Int64N unless a test fixes it.
	jitter func(n int64) int64
}

func newBackoff(initial, max time.Duration) backoff {
	return backoff{bound: initial, max: max, jitter: rand.Int64N}
}

// next returns the wait before the next attempt and doubles the bound.
func (b *backoff) next() time.Duration {
	d := time.Duration(b.jitter(int64(b.bound) + 1))
	b.bound = min(2*b.bound, b.max)
	return d
}

// authRetryAfter is the retry hint of a request refused because Redis refuses our credentials:
// longer than the others, as nothing changes until someone fixes the Secret or the ACL.
const authRetryAfter = 5 * time.Second

// errAuth answers a request while Redis refuses the configured credentials.
func errAuth() *Error {
	return &Error{Class: ErrUnavailable, Detail: "redis refuses the configured credentials", RetryAfter: authRetryAfter}
}

// gate refuses a request of n spans at once, before it takes a writer's time, when retrying
// cannot deliver it now: Redis refuses our credentials, or has made no progress for
// StallTimeout. It returns nil when the request may go ahead.
func (p *Pipeline) gate(n int) *Error {
	if p.authFailing.Load() {
		p.tel.Failed(redisconn.ClassAuth.Label(), n)
		return errAuth()
	}
	if d := p.stalled(); d > 0 {
		p.tel.Failed(telemetry.FailStalled, n)
		return &Error{Class: ErrUnavailable, Detail: fmt.Sprintf("redis has made no progress (no reply, no bytes) for %v", d.Round(time.Millisecond)), RetryAfter: time.Second}
	}
	return nil
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
