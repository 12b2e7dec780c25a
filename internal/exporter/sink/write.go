package sink

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracestream/tracestream/internal/exporter/entry"
	"github.com/tracestream/tracestream/internal/redisconn"
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

// bulkArg is an argument that every command repeats (a keyword, the configured MAXLEN, TTL or
// producer id) with its RESP bulk string encoded once: the RESP path copies it as it is. go-redis
// sends its bytes, as it does a rawArg's. A command's name stays a string, which go-redis reads.
type bulkArg struct{ b, resp []byte }

func newBulkArg(s string) *bulkArg { return &bulkArg{b: []byte(s), resp: appendBulk(nil, s)} }

// MarshalBinary returns the argument's bytes.
func (a *bulkArg) MarshalBinary() ([]byte, error) { return a.b, nil }

// The keywords of the XADD, XTRIM and EXPIRE commands that Write builds.
var (
	argIDMP   = newBulkArg("idmp")
	argMaxLen = newBulkArg("maxlen")
	argMinID  = newBulkArg("minid")
	argApprox = newBulkArg("~")
	argAutoID = newBulkArg("*")
)

// keyState is one stream name, interned across Writes.
type keyState struct {
	name string
	// gen is the Write that last used the key; last is that Write's last entry for it.
	gen  uint64
	last int
	// expire is the index of this Write's EXPIRE for the key, or -1.
	expire int
}

// Command kinds, for the go-redis path's command objects.
const (
	cmdXAdd byte = iota
	cmdXTrim
	cmdExpire
)

// writeState is what one Write builds its pipeline in, pooled so that steady-state Writes
// allocate nothing per entry on the RESP path, and only the command objects on go-redis's.
type writeState struct {
	gen      uint64
	keys     map[string]*keyState
	used     []*keyState // this Write's distinct keys, in order of first use
	entryKey []*keyState // this Write's key of each entry
	args     []any
	raws     []rawArg
	hex      []byte
	minID    []byte
	// Command i is args[ends[i-1]:ends[i]], of kind kinds[i]; the XADDs come first, entry by
	// entry, so reply i is entry i's.
	ends    []int
	kinds   []byte
	replies []reply
	cmds    []redis.Cmder
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
	clear(st.replies)
	clear(st.entryKey)
	clear(st.used)
	st.args, st.raws, st.cmds, st.replies = st.args[:0], st.raws[:0], st.cmds[:0], st.replies[:0]
	st.entryKey, st.used, st.ends, st.kinds = st.entryKey[:0], st.used[:0], st.ends[:0], st.kinds[:0]
	s.states.Put(st)
}

// end closes the command started since the previous one.
func (st *writeState) end(kind byte) int {
	st.ends = append(st.ends, len(st.args))
	st.kinds = append(st.kinds, kind)
	return len(st.ends) - 1
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
		k.expire = -1
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
	w := writeOptions{
		idmp:   s.producerArg != nil && s.idmp.Load(),
		minID:  s.stream.MinIDAge.Duration > 0,
		maxLen: s.maxLenArg != nil,
		ttl:    s.ttlArg != nil,
	}
	st.size(b, w)
	s.appendCommands(st, b, w)
	st.replies = grow(st.replies, len(st.ends))[:len(st.ends)]
	if s.resp != nil {
		s.resp.do(ctx, st.args, st.ends, st.replies)
	} else {
		s.doGoRedis(ctx, st)
	}
	if s.entryOutcomes(st, w.idmp, errs) {
		s.idmp.Store(false)
	}
	st.expireOutcomes(errs)
}

// writeOptions are the parts of a command that the configuration and Probe decide, fixed for
// one Write.
type writeOptions struct {
	idmp   bool // XADD IDMP producer id
	minID  bool // stream.minIdAge: XADD MINID ~, or XTRIM MINID ~ along with maxLen
	maxLen bool // stream.maxLen: XADD MAXLEN ~
	ttl    bool // stream.ttl: one EXPIRE per key
}

// xtrim: with both limits, XADD takes MAXLEN and one XTRIM per key applies MINID.
func (w writeOptions) xtrim() bool { return w.maxLen && w.minID }

// size interns the keys of b and sizes the buffers, which must not move once commands point
// into them.
func (st *writeState) size(b *entry.Batch, w writeOptions) {
	n := b.Len()
	nargs, nraws := 0, 0
	var k *keyState
	for i := range n {
		// Entries in a row usually share their key (the spans of a request do): the map is
		// asked only when it changes.
		if name := b.Key(i); k == nil || k.name != string(name) {
			k = st.key(name)
		}
		k.last = i
		st.entryKey = append(st.entryKey, k)
		nf := b.NumFields(i)
		nargs += 3 + 2*nf // XADD key * field value...
		nraws += 2 * nf
		if w.idmp {
			nargs += 3
			nraws++
		}
		if w.maxLen || w.minID {
			nargs += 3
		}
	}
	if w.xtrim() {
		nargs += 5 * len(st.used)
	}
	if w.ttl {
		nargs += 3 * len(st.used)
	}
	if w.minID {
		nraws++
	}
	st.args = grow(st.args, nargs)
	st.raws = grow(st.raws, nraws)
	if w.idmp {
		st.hex = grow(st.hex, n*2*(16+8))
	}
	ncmds := n + 2*len(st.used)
	st.ends, st.kinds = grow(st.ends, ncmds), grow(st.kinds, ncmds)
}

// appendCommands appends one XADD per entry, then the XTRIM and EXPIRE of each key.
func (s *Sink) appendCommands(st *writeState, b *entry.Batch, w writeOptions) {
	var minIDArg any
	if w.minID {
		ms := time.Now().Add(-s.stream.MinIDAge.Duration).UnixMilli()
		st.minID = strconv.AppendInt(st.minID[:0], ms, 10)
		minIDArg = st.raw(st.minID)
	}
	for i := range b.Len() {
		k := st.entryKey[i]
		st.args = append(st.args, "xadd", &k.name)
		if w.idmp {
			e := &b.Entries[i]
			h := len(st.hex)
			st.hex = hex.AppendEncode(st.hex, e.TraceID[:])
			st.hex = hex.AppendEncode(st.hex, e.SpanID[:])
			st.args = append(st.args, argIDMP, s.producerArg, st.raw(st.hex[h:]))
		}
		switch {
		case w.maxLen:
			st.args = append(st.args, argMaxLen, argApprox, s.maxLenArg)
		case w.minID:
			st.args = append(st.args, argMinID, argApprox, minIDArg)
		}
		st.args = append(st.args, argAutoID)
		for j := range b.NumFields(i) {
			name, value := b.FieldPair(i, j)
			st.args = append(st.args, st.raw(name), st.raw(value))
		}
		st.end(cmdXAdd)
	}
	for _, k := range st.used {
		if w.xtrim() {
			st.args = append(st.args, "xtrim", &k.name, argMinID, argApprox, minIDArg)
			st.end(cmdXTrim)
		}
		if w.ttl {
			st.args = append(st.args, "expire", &k.name, s.ttlArg)
			k.expire = st.end(cmdExpire)
		}
	}
}

// entryOutcomes sets errs[i] from the XADD replies: an entry landed if and only if Redis
// returned its ID. It reports whether a server rejected IDMP.
func (s *Sink) entryOutcomes(st *writeState, idmp bool, errs []error) (idmpRejected bool) {
	for i := range errs {
		r := st.replies[i]
		if r.err == nil && !r.null {
			errs[i] = nil
			continue
		}
		err := r.err
		if err == nil {
			err = redisconn.ErrNoReply
		}
		if idmp && isIDMPRejection(err) {
			idmpRejected = true
			err = fmt.Errorf("%w: %w", redisconn.ErrIDMPRejected, err)
		}
		errs[i] = fmt.Errorf("adding a span to stream %q: %w", st.entryKey[i].name, err)
	}
	return idmpRejected
}

// expireOutcomes fails the last entry of each key whose EXPIRE failed, so that its retry
// sets the TTL.
func (st *writeState) expireOutcomes(errs []error) {
	for _, k := range st.used {
		// EXPIRE on a stream that exists answers 1.
		if k.expire < 0 || errs[k.last] != nil {
			continue
		}
		r := st.replies[k.expire]
		if r.err == nil && r.n == 1 {
			continue
		}
		err := r.err
		if err == nil {
			err = redisconn.ErrNoReply
		}
		errs[k.last] = fmt.Errorf("setting the TTL of stream %q: %w", k.name, err)
	}
}

// doGoRedis sends the commands through go-redis (Cluster and Sentinel) and sets st.replies.
func (s *Sink) doGoRedis(ctx context.Context, st *writeState) {
	st.cmds = grow(st.cmds, len(st.ends))
	start := 0
	for i, end := range st.ends {
		args := st.args[start:end:end]
		var cmd redis.Cmder
		switch st.kinds[i] {
		case cmdXAdd:
			c := redis.NewStringCmd(ctx, args...)
			// Explicit, so that Cluster routes by the key without needing COMMAND INFO.
			c.SetFirstKeyPos(1)
			cmd = c
		case cmdXTrim:
			c := redis.NewIntCmd(ctx, args...)
			c.SetFirstKeyPos(1)
			cmd = c
		default:
			c := redis.NewBoolCmd(ctx, args...)
			c.SetFirstKeyPos(1)
			cmd = c
		}
		st.cmds = append(st.cmds, cmd)
		start = end
	}
	pipe := s.client.Pipeline()
	_ = pipe.BatchProcess(ctx, st.cmds...)
	_, execErr := pipe.Exec(ctx)

	// A command's outcome is its value, not only its error: after a connection error go-redis
	// sets that error on every command of the pipeline, the ones whose replies it had read
	// included, and when the connection's handshake fails with an error reply (WRONGPASS,
	// NOAUTH) it returns that error from Exec but leaves every command's error nil although
	// nothing was sent.
	for i, cmd := range st.cmds {
		var r reply
		switch c := cmd.(type) {
		case *redis.StringCmd:
			if c.Val() != "" {
				st.replies[i] = r
				continue
			}
			r.null = true
		case *redis.IntCmd: // XTRIM: its count is not used
			if c.Err() == nil && execErr == nil {
				st.replies[i] = reply{n: c.Val()}
				continue
			}
		case *redis.BoolCmd: // EXPIRE: true (1) when it was read and the stream exists
			if c.Val() {
				st.replies[i] = reply{n: 1}
				continue
			}
		}
		r.err = cmd.Err()
		if r.err == nil {
			r.err = noReply(execErr)
		}
		st.replies[i] = r
	}
}

func noReply(execErr error) error {
	if execErr != nil {
		return execErr
	}
	return redisconn.ErrNoReply
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
