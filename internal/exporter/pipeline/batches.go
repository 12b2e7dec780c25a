package pipeline

import (
	"sync"

	"github.com/tracestream/tracestream/internal/exporter/entry"
)

// How much memory the batches kept for reuse may hold (entry.Batch.Cap).
const (
	// maxPooledBatch is the most a small request's batch, or a log record buffer, keeps in its
	// pool: after a burst of requests their memory goes back to the GC instead of staying held.
	maxPooledBatch = 1 << 20
	// maxLargeBatch is the most a large request's batch keeps. A request of 1,000 json spans
	// encodes to 1.2 MB; when a batch that size was let go after each request, every large
	// request grew its own from nothing (json, 1000 spans per request over gRPC: 7.9 KB
	// allocated per 1.2 KB span under make bench).
	maxLargeBatch = 4 << 20
	// largeRequest is the request size (protobuf bytes) from which a request takes a batch from
	// the large pool: its entries take about as many bytes as the request or more, so it would
	// outgrow a small batch anyway. Small requests never take, and so never hold, a large batch.
	largeRequest = 256 << 10
	// maxWriterBatch is the most memory each of a writer's two batches (the pipeline and its
	// retries, which trade places) keeps between pipelines. A writer's batches refer to the
	// entries of the requests it gathers (entry.Batch.AppendRef), 72 bytes of bookkeeping per
	// entry, and are filled again and again up to PipelineSize entries; a batch grown past this
	// bound (a very large stream.pipelineSize) is let go. A writer waiting for work holds no
	// request (writer.idle).
	maxWriterBatch = 4 << 20
)

// batchPool keeps request batches for reuse in two size classes, so that large requests reuse
// large batches while small requests keep small ones.
type batchPool struct{ small, large sync.Pool }

// get returns an empty batch for a request of reqBytes. A large request takes a large batch if
// one is kept, else a small one (put files a batch by its capacity, and a large request's batch
// may fit the small class); a small request never takes a large batch.
func (bp *batchPool) get(reqBytes int) *entry.Batch {
	if reqBytes >= largeRequest {
		if b, ok := bp.large.Get().(*entry.Batch); ok {
			b.Reset()
			return b
		}
	}
	if b, ok := bp.small.Get().(*entry.Batch); ok {
		b.Reset()
		return b
	}
	return new(entry.Batch)
}

// put gives b back for reuse once no writer refers to it, in the class its memory fits, or to
// the GC when it is larger than both.
func (bp *batchPool) put(b *entry.Batch) {
	switch c := b.Cap(); {
	case c <= maxPooledBatch:
		bp.small.Put(b)
	case c <= maxLargeBatch:
		bp.large.Put(b)
	}
}

// resetBatch empties b, keeping its memory only if it is not more than limit bytes.
func resetBatch(b *entry.Batch, limit int) {
	if b.Cap() > limit {
		*b = entry.Batch{}
		return
	}
	b.Reset()
}
