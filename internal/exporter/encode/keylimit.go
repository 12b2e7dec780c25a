package encode

import (
	"sync"
	"sync/atomic"
	"time"
)

// keyLimit bounds the distinct stream keys one exporter writes (stream.maxKeys): a client that
// sends a new service.name with every span must not make a new stream for each. A key is live
// while it is written at least once per window (the stream's TTL; with no TTL, for ever, as its
// stream is); a span whose key would be a new live key beyond the bound is written to the
// overflow key instead (stream.overflowKey), so nothing is lost and the overflow stream says that
// the bound was met. Keys unused for two windows are forgotten.
//
// Known keys are looked up under a read lock without allocating; a new key takes the write lock
// and one string.
type keyLimit struct {
	max      int
	overflow []byte
	window   time.Duration
	now      func() time.Time

	mu       sync.RWMutex
	cur      map[string]struct{} // keys written in this window
	prev     map[string]struct{} // keys written in the window before, not yet in this one
	rotateAt time.Time

	overflowed atomic.Int64
}

func newKeyLimit(max int, overflow string, window time.Duration) *keyLimit {
	k := &keyLimit{max: max, overflow: []byte(overflow), window: window, now: time.Now,
		cur: map[string]struct{}{}, prev: map[string]struct{}{}}
	k.rotateAt = k.now().Add(window)
	return k
}

// rotates reports whether keys are ever forgotten.
func (k *keyLimit) rotates() bool { return k.window > 0 }

// admit reports whether key may be written; false means the bound is met and the span goes to
// the overflow key.
func (k *keyLimit) admit(key []byte) bool {
	k.mu.RLock()
	_, ok := k.cur[string(key)]
	k.mu.RUnlock()
	if ok {
		return true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := k.now(); k.rotates() && !now.Before(k.rotateAt) {
		k.prev, k.cur = k.cur, make(map[string]struct{}, len(k.cur))
		if now.Sub(k.rotateAt) >= k.window { // no key for a whole window: forget them all
			clear(k.prev)
		}
		k.rotateAt = now.Add(k.window)
	}
	if _, ok := k.cur[string(key)]; ok {
		return true
	}
	if _, ok := k.prev[string(key)]; ok {
		delete(k.prev, string(key))
		k.cur[string(key)] = struct{}{}
		return true
	}
	if len(k.cur)+len(k.prev) >= k.max {
		k.overflowed.Add(1)
		return false
	}
	k.cur[string(key)] = struct{}{}
	return true
}

// live is how many keys are live now.
func (k *keyLimit) live() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.cur) + len(k.prev)
}
