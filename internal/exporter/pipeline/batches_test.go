package pipeline

import (
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/entry"
)

// A large request's batch is kept for the next large request (1,000 json spans are 1.2 MB, more
// than a small batch keeps), is never handed to a small request, and a batch larger than
// maxLargeBatch goes back to the GC. sync.Pool may drop what it is given (it does so at random
// under the race detector), so reuse is asked of some of many rounds, and what must never happen
// of all of them.
func TestBatchPoolKeepsBatchesBySize(t *testing.T) {
	grown := func(size int) *entry.Batch {
		return &entry.Batch{Buf: make([]byte, 0, size)}
	}
	var bp batchPool
	const rounds = 20
	var smallReused, largeReused, midReused int
	for range rounds {
		small, large, huge := grown(64<<10), grown(1200<<10), grown(maxLargeBatch+1)
		bp.put(large)
		bp.put(huge)
		if b := bp.get(largeRequest - 1); b == large || b == huge {
			t.Fatalf("a request of %d bytes got a batch of %d bytes", largeRequest-1, b.Cap())
		}
		switch b := bp.get(largeRequest); b {
		case huge:
			t.Fatalf("a batch of %d bytes was kept, more than maxLargeBatch (%d)", huge.Cap(), maxLargeBatch)
		case large:
			largeReused++
			if b.Len() != 0 || len(b.Buf) != 0 {
				t.Fatal("a reused batch is not empty")
			}
		}
		bp.put(small)
		if bp.get(1) == small {
			smallReused++
		}
		// A large request whose batch stayed under maxPooledBatch (otlp, 1,000 spans: a 454 KiB
		// request, a 1,023 KiB batch) finds it again.
		mid := grown(900 << 10)
		bp.put(mid)
		if bp.get(largeRequest) == mid {
			midReused++
		}
	}
	if largeReused == 0 || smallReused == 0 || midReused == 0 {
		t.Errorf("in %d rounds a large batch was reused %d times, a small one %d times and a small one by a large request %d times, want each at least once",
			rounds, largeReused, smallReused, midReused)
	}
}
