package pipeline

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/exporter/entry"
)

// progressWriter is a Writer that reports when bytes last moved.
type progressWriter struct{ at atomic.Int64 }

func (*progressWriter) Write(context.Context, *entry.Batch, []error) {}
func (*progressWriter) Ping(context.Context) error                   { return nil }
func (w *progressWriter) LastProgress() int64                        { return w.at.Load() }

// The stall detector fires when Redis makes no progress, not while it is slowly answering a
// pipeline whose last reply has not come yet.
func TestStallIsNoProgressNotNoAcknowledgement(t *testing.T) {
	w := &progressWriter{}
	p := &Pipeline{opts: Options{StallTimeout: time.Second}, w: w, busySince: make([]atomic.Int64, 1)}
	long := time.Now().Add(-5 * time.Second).UnixNano()
	p.lastAck.Store(long)
	p.busySince[0].Store(long)

	w.at.Store(time.Now().UnixNano())
	if d := p.stalled(); d != 0 {
		t.Fatalf("bytes moved just now, yet stalled for %v", d)
	}
	w.at.Store(long)
	if d := p.stalled(); d < 4*time.Second {
		t.Fatalf("nothing moved for 5s, stalled for %v", d)
	}
	p.busySince[0].Store(0)
	if d := p.stalled(); d != 0 {
		t.Fatalf("no writer waiting, yet stalled for %v", d)
	}
}
