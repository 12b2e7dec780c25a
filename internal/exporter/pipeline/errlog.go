package pipeline

import (
	"log/slog"
	"sync"
	"time"

	"github.com/tracestream/tracestream/internal/redisconn"
)

// writeErrorLog logs Redis write errors, and spans past stream.maxKeys, without flooding and
// without going quiet for good. An error that belongs to the connection (timeout, auth, ...) is
// logged once per class every interval while it lasts: a Redis that fails with two classes in
// turn (timeout, connection, timeout...) logs each once an interval, not at every change. An
// error that belongs to one entry (NOPERM on a key pattern, WRONGTYPE, a refused entry) is logged
// once per class and stream key every interval, naming the key, so that one client's bad key
// shows up without hiding another's; at most maxKeys keys are remembered, then the memory starts
// over.
type writeErrorLog struct {
	log      *slog.Logger
	interval time.Duration
	maxKeys  int
	now      func() time.Time

	mu         sync.Mutex
	classes    map[redisconn.Class]time.Time // when each class was last logged
	keys       map[string]time.Time
	overflowAt time.Time
}

func newWriteErrorLog(log *slog.Logger) *writeErrorLog {
	return &writeErrorLog{log: log, interval: time.Minute, maxKeys: 1024, now: time.Now,
		classes: map[redisconn.Class]time.Time{}, keys: map[string]time.Time{}}
}

// failed logs a retryable or connection-wide write error.
func (l *writeErrorLog) failed(class redisconn.Class, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if at, ok := l.classes[class]; ok && now.Sub(at) < l.interval {
		return
	}
	l.classes[class] = now
	l.log.Warn("Redis write failed", "class", class.Label(), "err", err)
}

// overflowed logs spans sent to the overflow key past stream.maxKeys, once per interval.
func (l *writeErrorLog) overflowed(template, overflowKey string, spans int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.overflowAt) < l.interval {
		return
	}
	l.overflowAt = now
	l.log.Warn("More distinct stream keys than stream.maxKeys; spans written to the overflow key",
		"keyTemplate", template, "overflowKey", overflowKey, "spans", spans)
}

// rejected logs an entry Redis refused for good.
func (l *writeErrorLog) rejected(class redisconn.Class, key []byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := class.Label() + "\x00" + string(key)
	if at, ok := l.keys[k]; ok && now.Sub(at) < l.interval {
		return
	}
	if len(l.keys) >= l.maxKeys {
		clear(l.keys)
	}
	l.keys[k] = now
	l.log.Warn("Redis refused spans for a stream; they are rejected", "class", class.Label(), "stream", string(key), "err", err)
}
