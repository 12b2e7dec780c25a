package sink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/entry"
)

// maxCachedKeys bounds the stream names a writeState remembers between Writes; past it the
// cache starts again, so that a key template with a high-cardinality attribute cannot grow it
// without bound.
const maxCachedKeys = 4096

// rawArg hands bytes of the batch to go-redis as they are. go-redis writes the bytes of an
// encoding.BinaryMarshaler unchanged, and a pointer stored in an interface does not allocate,
// whereas a []byte stored in one costs an allocation per field and per value.
type rawArg struct{ b []byte }

// MarshalBinary returns the bytes, without copying them.
func (r *rawArg) MarshalBinary() ([]byte, error) { return r.b, nil }

// keyState is one stream name, interned across Writes.
type keyState struct {
	name string
	// gen is the Write that last used the key; last is that Write's last entry for it.
	gen  uint64
	last int
	// expire is this Write's EXPIRE for the key, if a TTL is configured.
	expire *redis.BoolCmd
}

// writeState is what one Write builds its pipeline in, pooled so that steady-state Writes
// allocate only the commands themselves.
type writeState struct {
	gen      uint64
	keys     map[string]*keyState
	used     []*keyState // this Write's distinct keys, in order of first use
	entryKey []*keyState // this Write's key of each entry
	args     []any
	raws     []rawArg
	hex      []byte
	minID    []byte
	cmds     []redis.Cmder
	xadds    []*redis.StringCmd
}

func (s *Sink) state() *writeState {
	if st, ok := s.states.Get().(*writeState); ok {
		return st
	}
	return &writeState{keys: map[string]*keyState{}}
}

// release drops every reference into the batch and to the commands before pooling st.
func (s *Sink) release(st *writeState) {
	clear(st.args)
	clear(st.raws)
	clear(st.cmds)
	clear(st.xadds)
	clear(st.entryKey)
	for _, k := range st.used {
		k.expire = nil
	}
	clear(st.used)
	st.args, st.raws, st.cmds, st.xadds = st.args[:0], st.raws[:0], st.cmds[:0], st.xadds[:0]
	st.entryKey, st.used = st.entryKey[:0], st.used[:0]
	s.states.Put(st)
}

// key interns name and records its first use in this Write.
func (st *writeState) key(name []byte) *keyState {
	k := st.keys[string(name)] // no allocation for the lookup
	if k == nil {
		k = &keyState{name: string(name)}
		st.keys[k.name] = k
	}
	if k.gen != st.gen {
		k.gen = st.gen
		k.expire = nil
		st.used = append(st.used, k)
	}
	return k
}

func (st *writeState) raw(b []byte) *rawArg {
	st.raws = append(st.raws, rawArg{b})
	return &st.raws[len(st.raws)-1]
}

// Write sends every entry of b as one pipeline and sets errs[i] to entry i's outcome: nil
// once Redis has acknowledged it, else an error for Classify. errs must be at least b.Len()
// long. A Redis error reply fails only its own entry. A connection failure fails the entries
// whose replies were not read, although Redis may have run them: a retry can duplicate them
// unless the writes are idempotent (Info.Idempotent).
//
// Per entry it sends XADD key [IDMP producer trace-id+span-id] [MAXLEN ~ n | MINID ~ id] *
// field value..., and per distinct key of the batch one XTRIM key MINID ~ id when both
// stream.maxLen and stream.minIdAge are set, and one EXPIRE key ttl when stream.ttl is. A
// failed EXPIRE fails the key's last entry, so that the retry sets the TTL.
func (s *Sink) Write(ctx context.Context, b *entry.Batch, errs []error) {
	n := b.Len()
	if n == 0 {
		return
	}
	errs = errs[:n]
	st := s.state()
	defer s.release(st)
	st.gen++
	if len(st.keys) > maxCachedKeys {
		clear(st.keys) // between Writes only: this Write's keys must stay unique
	}

	idmp := s.producerArg != nil && s.idmp.Load()
	minID := s.stream.MinIDAge.Duration > 0
	maxLen := s.maxLenArg != nil
	xtrim := maxLen && minID

	// First pass: intern the keys and size the buffers, which must not move once
	// commands point into them.
	nargs, nraws := 0, 0
	for i := range n {
		k := st.key(b.Key(i))
		k.last = i
		st.entryKey = append(st.entryKey, k)
		nf := b.NumFields(i)
		nargs += 3 + 2*nf // XADD key * field value...
		nraws += 2 * nf
		if idmp {
			nargs += 3
			nraws++
		}
		if maxLen || minID {
			nargs += 3
		}
	}
	if xtrim {
		nargs += 5 * len(st.used)
	}
	if s.ttlArg != nil {
		nargs += 3 * len(st.used)
	}
	if minID {
		nraws++
	}
	st.args = grow(st.args, nargs)
	st.raws = grow(st.raws, nraws)
	if idmp {
		st.hex = grow(st.hex, n*2*(16+8))
	}
	st.cmds = grow(st.cmds, n+2*len(st.used))
	st.xadds = grow(st.xadds, n)

	var minIDArg any
	if minID {
		ms := time.Now().Add(-s.stream.MinIDAge.Duration).UnixMilli()
		st.minID = strconv.AppendInt(st.minID[:0], ms, 10)
		minIDArg = st.raw(st.minID)
	}

	for i := range n {
		k := st.entryKey[i]
		start := len(st.args)
		st.args = append(st.args, "xadd", &k.name)
		if idmp {
			e := &b.Entries[i]
			h := len(st.hex)
			st.hex = hex.AppendEncode(st.hex, e.TraceID[:])
			st.hex = hex.AppendEncode(st.hex, e.SpanID[:])
			st.args = append(st.args, "idmp", s.producerArg, st.raw(st.hex[h:]))
		}
		switch {
		case maxLen:
			st.args = append(st.args, "maxlen", "~", s.maxLenArg)
		case minID:
			st.args = append(st.args, "minid", "~", minIDArg)
		}
		st.args = append(st.args, "*")
		for j := range b.NumFields(i) {
			name, value := b.FieldPair(i, j)
			st.args = append(st.args, st.raw(name), st.raw(value))
		}
		cmd := redis.NewStringCmd(ctx, st.args[start:len(st.args):len(st.args)]...)
		// Explicit, so that Cluster routes by the key without needing COMMAND INFO.
		cmd.SetFirstKeyPos(1)
		st.cmds = append(st.cmds, cmd)
		st.xadds = append(st.xadds, cmd)
	}
	for _, k := range st.used {
		if xtrim {
			start := len(st.args)
			st.args = append(st.args, "xtrim", &k.name, "minid", "~", minIDArg)
			cmd := redis.NewIntCmd(ctx, st.args[start:len(st.args):len(st.args)]...)
			cmd.SetFirstKeyPos(1)
			st.cmds = append(st.cmds, cmd)
		}
		if s.ttlArg != nil {
			start := len(st.args)
			st.args = append(st.args, "expire", &k.name, s.ttlArg)
			k.expire = redis.NewBoolCmd(ctx, st.args[start:len(st.args):len(st.args)]...)
			k.expire.SetFirstKeyPos(1)
			st.cmds = append(st.cmds, k.expire)
		}
	}

	pipe := s.client.Pipeline()
	_ = pipe.BatchProcess(ctx, st.cmds...)
	_, execErr := pipe.Exec(ctx)

	// An entry landed if and only if Redis returned its ID. The commands' errors are not
	// enough: after a connection error go-redis sets that error on every command of the
	// pipeline, the ones whose replies it had read included, and when the connection's
	// handshake fails with an error reply (WRONGPASS, NOAUTH) it returns that error from
	// Exec but leaves every command's error nil although nothing was sent.
	rejected := false
	for i, cmd := range st.xadds {
		if cmd.Val() != "" {
			errs[i] = nil
			continue
		}
		err := cmd.Err()
		if err == nil {
			err = noReply(execErr)
		}
		if idmp && isIDMPRejection(err) {
			rejected = true
			err = fmt.Errorf("%w: %w", errIDMPRejected, err)
		}
		errs[i] = fmt.Errorf("adding a span to stream %q: %w", st.entryKey[i].name, err)
	}
	if rejected {
		s.idmp.Store(false)
	}
	for _, k := range st.used {
		// EXPIRE on a stream that exists answers 1, so a read reply is Val() == true.
		if k.expire == nil || k.expire.Val() || errs[k.last] != nil {
			continue
		}
		err := k.expire.Err()
		if err == nil {
			err = noReply(execErr)
		}
		errs[k.last] = fmt.Errorf("setting the TTL of stream %q: %w", k.name, err)
	}
}

// errNoReply is the error of a command that got no reply and no error from go-redis.
var errNoReply = errors.New("redis: no reply")

func noReply(execErr error) error {
	if execErr != nil {
		return execErr
	}
	return errNoReply
}

// isIDMPRejection recognises a server without IDMP: Redis before 8.6 reads the IDMP keyword
// as the entry ID.
func isIDMPRejection(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Invalid stream ID") || strings.Contains(msg, "syntax error") ||
		strings.Contains(strings.ToUpper(msg), "IDMP")
}

// grow returns s emptied, with capacity for at least n elements.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, 0, n)
	}
	return s[:0]
}
