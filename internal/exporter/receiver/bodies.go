package receiver

import (
	"bytes"
	"sync"
)

// maxPooledBody is the largest body buffer kept for reuse: a burst of large requests gives its
// memory back to the GC instead of leaving it held.
const maxPooledBody = 1 << 20

// bodyPool keeps the buffers that request bodies are read or decoded into: HTTP bodies, decoded
// (decompressed) messages, and gRPC messages that arrived in several buffers.
type bodyPool struct{ p sync.Pool }

// get returns an empty buffer.
func (bp *bodyPool) get() *bytes.Buffer {
	if b, ok := bp.p.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

// put gives b back for reuse, unless it is larger than maxPooledBody.
func (bp *bodyPool) put(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bp.p.Put(b)
	}
}
