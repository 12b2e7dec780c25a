// Package admission bounds the memory that OTLP requests hold while they are received, encoded
// and written: one byte budget shared by both receivers and the pipeline
// (delivery.maxInFlightBytes).
//
// A request claims bytes as it grows (its body while it is read, its encoded entries once they
// exist) and gives them all back when it is answered. A claim the budget cannot cover at that
// moment is refused at once, never queued: the client is told to retry (RESOURCE_EXHAUSTED,
// HTTP 429), as the Collector's memory limiter refuses data. Refusing instead of waiting means
// requests that each hold part of the budget can never wait for one another.
package admission

import (
	"fmt"
	"sync"
)

// Budget is the byte budget of the requests in flight. Safe for concurrent use.
type Budget struct {
	limit int64

	mu      sync.Mutex
	used    int64
	refused int64
	// freed, when someone waits for room (Freed), is closed by the next release.
	freed chan struct{}
}

// New returns a budget of limit bytes.
func New(limit int64) *Budget { return &Budget{limit: limit} }

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used is how many bytes the requests in flight hold.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Refused counts the claims refused so far.
func (b *Budget) Refused() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refused
}

// Freed returns a channel closed the next time a claim gives bytes back. A reader that must not
// take more than the budget holds (the gRPC connection meter) waits on it instead of polling.
func (b *Budget) Freed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.freed == nil {
		b.freed = make(chan struct{})
	}
	return b.freed
}

// Claim is one request's share of a budget. The zero Claim (no budget) admits everything.
// A Claim is used by one goroutine at a time.
type Claim struct {
	b    *Budget
	held int64
}

// Claim starts a request's claim, holding nothing yet.
func (b *Budget) Claim() Claim { return Claim{b: b} }

// Held is how many bytes the claim holds.
func (c *Claim) Held() int64 { return c.held }

// Grow claims n more bytes, or returns an *ExhaustedError and claims nothing when the budget
// cannot cover them now. A request is never refused for its own size alone: a claim is capped at
// the whole budget, so even a request larger than the budget is admitted when nothing else is in
// flight.
func (c *Claim) Grow(n int64) error {
	if c.b == nil || n <= 0 {
		return nil
	}
	want := min(c.held+n, c.b.limit) - c.held
	if want <= 0 {
		return nil
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.used+want > c.b.limit {
		c.b.refused++
		return &ExhaustedError{Limit: c.b.limit, Used: c.b.used}
	}
	c.b.used += want
	c.held += want
	return nil
}

// ShrinkTo gives back what the claim holds beyond n bytes.
func (c *Claim) ShrinkTo(n int64) {
	if c.b == nil || c.held <= n {
		return
	}
	n = max(n, 0)
	c.b.mu.Lock()
	c.b.used -= c.held - n
	if c.b.freed != nil {
		close(c.b.freed)
		c.b.freed = nil
	}
	c.b.mu.Unlock()
	c.held = n
}

// Release gives back everything the claim holds; the claim can grow again afterwards.
func (c *Claim) Release() {
	if c.b == nil || c.held == 0 {
		return
	}
	c.b.mu.Lock()
	c.b.used -= c.held
	if c.b.freed != nil {
		close(c.b.freed)
		c.b.freed = nil
	}
	c.b.mu.Unlock()
	c.held = 0
}

// ExhaustedError says that the budget could not cover a claim.
type ExhaustedError struct {
	Limit, Used int64 // bytes, when the claim was refused
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("requests in flight hold %s of the %s memory budget (delivery.maxInFlightBytes)", mib(e.Used), mib(e.Limit))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
