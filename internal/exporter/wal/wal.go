// Package wal is the exporter's write-ahead log (delivery.persistentQueue): an append-only log of
// records in segment files on a volume. A request is acknowledged to its client once its record
// is fsynced here; the pipeline then reads the log in order, writes it to Redis, and commits how
// far Redis has acknowledged it. After a crash the log is replayed from the last commit, so an
// acknowledged span survives kill -9 (at-least-once: what was written but not yet committed is
// written again).
//
// On disk, a directory holds segment files named by a 20-digit sequence number
// ("00000000000000000007.wal") and a "checkpoint" file. A segment starts with an 8-byte magic and
// holds records: a little-endian uint32 payload length, the payload's CRC-32C (Castagnoli), the
// payload. A record that is cut short or fails its checksum (a torn write at a crash, or a
// damaged disk) ends its segment: the rest of that segment is skipped and counted, never a crash.
//
// Appends are group-committed: one goroutine owns the active segment, writes every record that
// is waiting, and fsyncs once for all of them. The log is bounded by MaxBytes on disk; an append
// that does not fit fails with ErrFull and the client is told to retry (backpressure, never a
// silent drop). Drained segments are deleted.
//
// The directory also holds a "lock" file, flocked while a process has the log open (two writers
// would interleave segments and commits), and a "producer" file: the idempotent-XADD producer id
// its records are written with, kept with them so that whoever replays the log (the same pod
// after a restart, or a drain of an orphaned volume) writes under the same id.
package wal

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	magic           = "TSWAL01\n"
	headerSize      = 8 // payload length + CRC-32C
	checkpointFile  = "checkpoint"
	lockFile        = "lock"
	producerFile    = "producer"
	segmentSuffix   = ".wal"
	checkpointEvery = 20 * time.Millisecond
	// MinBytes is the smallest MaxBytes accepted: room for a few full-size requests.
	MinBytes = 64 << 20
)

// ErrFull is returned by Append when the record does not fit in MaxBytes.
var ErrFull = errors.New("persistent queue is full")

// ErrTooLarge is returned by Append for a record that could not fit even in an empty log (one
// segment may stay while the rest drains): retrying it can never succeed.
var ErrTooLarge = errors.New("record larger than the persistent queue can ever hold")

// ErrClosed is returned by Append and Next after Close.
var ErrClosed = errors.New("persistent queue is closed")

// ErrInUse is returned by Open when another Log (in this process or another) has the directory
// open.
var ErrInUse = errors.New("in use by another process")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configures a Log.
type Options struct {
	// Dir holds the segments and the checkpoint; it is created if missing.
	Dir string
	// MaxBytes bounds the segment files on disk.
	MaxBytes int64
	// SegmentBytes is the size at which the active segment is closed and a new one begun;
	// default MaxBytes/16, at most 64 MiB. Space is freed a whole segment at a time.
	SegmentBytes int64
	// Producer is the prefix of the producer id a new log gets (delivery.producerId, or the
	// hostname): Producer-<8 random hex digits>. The suffix keeps two logs that start under the
	// same name (a pod and the drain of its predecessor's volume) from sharing an id.
	Producer string
}

// Position is a place in the log: a segment and a byte offset in it.
type Position struct {
	Segment uint64
	Offset  int64
}

func (p Position) less(q Position) bool {
	return p.Segment < q.Segment || (p.Segment == q.Segment && p.Offset < q.Offset)
}

// Corruption describes a damaged stretch of the log found while reading it.
type Corruption struct {
	Segment uint64
	Offset  int64
	Bytes   int64 // bytes skipped
	Reason  string
}

// Stats is a snapshot of the log.
type Stats struct {
	Bytes   int64 // segment files on disk
	Records int64 // records not yet committed
	// CorruptRecords counts damaged stretches skipped since Open (each ends a segment).
	CorruptRecords int64
	CorruptBytes   int64
}

type segment struct {
	id   uint64
	size int64 // bytes readable: the file size, or where a damaged record begins
	// sealed is true once no more records will be appended.
	sealed bool
}

type appendReq struct {
	payload []byte
	done    chan error
}

// Log is an open write-ahead log. Append, Next and Commit may be called concurrently; Next is
// meant for one reader.
type Log struct {
	opts       Options
	appendc    chan appendReq
	quit       chan struct{}
	stopped    chan struct{} // closed when the appender has answered its last request
	appenderWG sync.WaitGroup
	onCorrupt  func(Corruption)
	ckMu       sync.Mutex // serialises saveCheckpoint

	mu       sync.Mutex
	segs     []*segment // oldest first; the last one is the active segment
	grew     chan struct{}
	bytes    int64
	records  int64
	commit   Position // everything before it has been acknowledged by Redis
	saved    Position // the commit as last written to the checkpoint file
	corrupt  int64
	corruptB int64
	closed   bool

	active   *os.File // owned by the appender goroutine
	lock     *os.File // flocked until Close
	producer string
}

// Open opens (or creates) the log in opts.Dir, checks every record after the last checkpoint
// and reports each damaged stretch to onCorrupt (which may be nil). New records go to a new
// segment.
func Open(opts Options, onCorrupt func(Corruption)) (*Log, error) {
	if opts.MaxBytes < MinBytes {
		return nil, fmt.Errorf("persistent queue size %d bytes is below the minimum of %d", opts.MaxBytes, MinBytes)
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(opts.MaxBytes/16, 64<<20)
	}
	if onCorrupt == nil {
		onCorrupt = func(Corruption) {}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the persistent queue directory: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	l := &Log{opts: opts, appendc: make(chan appendReq, 256), quit: make(chan struct{}), stopped: make(chan struct{}), onCorrupt: onCorrupt, grew: make(chan struct{}), lock: lock}
	if err := l.recoverAndBegin(); err != nil {
		_ = lock.Close() // releases the flock
		return nil, err
	}
	l.appenderWG.Add(2)
	go l.appender()
	go l.checkpointer()
	return l, nil
}

// recoverAndBegin reads what the directory holds, settles the producer id and starts a new
// segment for appends.
func (l *Log) recoverAndBegin() error {
	if err := l.recover(); err != nil {
		return err
	}
	// Before rotate: a log with records to replay but no producer file predates the file.
	if err := l.loadProducer(); err != nil {
		return err
	}
	return l.rotate()
}

// lockDir takes an exclusive flock on dir's lock file, without waiting: the lock is the
// open file's, so a second Open fails even in the same process, and the kernel drops it when the
// process dies, so a kill -9 leaves no stale lock behind.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the persistent queue's lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("persistent queue %s is %w", dir, ErrInUse)
		}
		return nil, fmt.Errorf("locking the persistent queue: %w", err)
	}
	return f, nil
}

// loadProducer reads the producer file, or writes it when absent: a new id, or, for a log whose
// records were written before the file existed, the bare prefix they were written with.
func (l *Log) loadProducer() error {
	b, err := os.ReadFile(l.path(producerFile))
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		l.producer = strings.TrimSpace(string(b))
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the persistent queue's producer id: %w", err)
	}
	l.producer = l.opts.Producer
	if l.records == 0 {
		var suffix [4]byte
		_, _ = rand.Read(suffix[:]) // never fails (crypto/rand panics rather)
		l.producer = l.opts.Producer + "-" + hex.EncodeToString(suffix[:])
	}
	if err := writeFileDurably(l.opts.Dir, producerFile, []byte(l.producer+"\n")); err != nil {
		return fmt.Errorf("writing the persistent queue's producer id: %w", err)
	}
	return nil
}

// Producer is the idempotent-XADD producer id of the log's records, kept in its directory.
func (l *Log) Producer() string { return l.producer }

func segmentName(id uint64) string { return fmt.Sprintf("%020d%s", id, segmentSuffix) }

func (l *Log) path(name string) string { return filepath.Join(l.opts.Dir, name) }

// recover reads the checkpoint, deletes the segments it says are drained, and checks the rest.
func (l *Log) recover() error {
	entries, err := os.ReadDir(l.opts.Dir)
	if err != nil {
		return fmt.Errorf("reading the persistent queue directory: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			continue // not ours
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	l.commit = l.readCheckpoint()
	l.saved = l.commit
	for _, id := range ids {
		if id < l.commit.Segment {
			if err := os.Remove(l.path(segmentName(id))); err != nil {
				return fmt.Errorf("deleting drained segment: %w", err)
			}
			continue
		}
		s, err := l.scan(id)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
	}
	if len(l.segs) == 0 || l.segs[0].id != l.commit.Segment {
		// The committed segment is gone (fully drained and deleted): start at the oldest left.
		l.commit = Position{}
		if len(l.segs) > 0 {
			l.commit = Position{Segment: l.segs[0].id, Offset: int64(len(magic))}
		}
		l.saved = l.commit
	}
	return nil
}

// readCheckpoint returns the saved commit position; a missing or damaged file means "from the
// beginning" (a replay, never a loss).
func (l *Log) readCheckpoint() Position {
	b, err := os.ReadFile(l.path(checkpointFile))
	if err != nil || len(b) != 20 {
		return Position{}
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return Position{}
	}
	return Position{Segment: binary.LittleEndian.Uint64(b), Offset: int64(binary.LittleEndian.Uint64(b[8:]))}
}

// scan checks segment id from the commit point (or its start) and returns how much of it is
// readable. A damaged record ends the segment; a torn tail is truncated away.
func (l *Log) scan(id uint64) (*segment, error) {
	name := l.path(segmentName(id))
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening segment: %w", err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &segment{id: id, sealed: true}
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != magic {
		l.noteCorrupt(Corruption{Segment: id, Bytes: info.Size(), Reason: "not a segment (bad magic)"})
		s.size = int64(len(magic)) // nothing readable; the file is deleted when passed
		l.bytes += s.size
		return s, nil
	}
	off := int64(len(magic))
	if id == l.commit.Segment && l.commit.Offset > off {
		off = l.commit.Offset
	}
	buf := make([]byte, 0, 64<<10)
	for off < info.Size() {
		n, reason := readRecord(f, off, info.Size(), &buf)
		if reason != "" {
			l.noteCorrupt(Corruption{Segment: id, Offset: off, Bytes: info.Size() - off, Reason: reason})
			// Cut the damage away so that a second crash does not report it again.
			if err := f.Truncate(off); err != nil {
				return nil, fmt.Errorf("truncating a damaged segment: %w", err)
			}
			_ = f.Sync()
			break
		}
		off += n
		l.records++
	}
	s.size = off
	l.bytes += off
	return s, nil
}

// readRecord reads the record at off of a file of size end into buf and returns its total
// length, or why it is unreadable.
func readRecord(f *os.File, off, end int64, buf *[]byte) (int64, string) {
	if end-off < headerSize {
		return 0, "record header cut short"
	}
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return 0, "reading the record header: " + err.Error()
	}
	n := int64(binary.LittleEndian.Uint32(h[:4]))
	if n == 0 || n > end-off-headerSize {
		return 0, "record length " + strconv.FormatInt(n, 10) + " runs past the end of the segment"
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	*buf = (*buf)[:n]
	if _, err := f.ReadAt(*buf, off+headerSize); err != nil {
		return 0, "reading the record: " + err.Error()
	}
	if crc32.Checksum(*buf, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return 0, "checksum mismatch"
	}
	return headerSize + n, ""
}

func (l *Log) noteCorrupt(c Corruption) {
	l.corrupt++
	l.corruptB += c.Bytes
	l.onCorrupt(c)
}

// rotate seals the active segment and starts the next one. Only Open and the appender call it.
func (l *Log) rotate() error {
	var next uint64 = 1
	l.mu.Lock()
	if n := len(l.segs); n > 0 {
		next = l.segs[n-1].id + 1
	}
	l.mu.Unlock()
	if l.active != nil {
		if err := l.active.Sync(); err != nil {
			return fmt.Errorf("syncing segment: %w", err)
		}
		_ = l.active.Close()
		l.active = nil
	}
	f, err := os.OpenFile(l.path(segmentName(next)), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating segment: %w", err)
	}
	if _, err := f.Write([]byte(magic)); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing segment header: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("syncing segment: %w", err)
	}
	if err := syncDir(l.opts.Dir); err != nil {
		_ = f.Close()
		return err
	}
	l.active = f
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.segs); n > 0 {
		l.segs[n-1].sealed = true
	}
	l.segs = append(l.segs, &segment{id: next, size: int64(len(magic))})
	l.bytes += int64(len(magic))
	if len(l.segs) == 1 {
		l.commit = Position{next, int64(len(magic))}
	}
	l.notify()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening the persistent queue directory: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing the persistent queue directory: %w", err)
	}
	return nil
}

// notify wakes readers waiting for new records; l.mu is held.
func (l *Log) notify() {
	close(l.grew)
	l.grew = make(chan struct{})
}

// Append writes payload as one record and returns once it is on disk (fsynced), or ErrFull when
// it does not fit, or another error when the disk failed. ctx bounds only the wait to be taken.
func (l *Log) Append(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return errors.New("empty record")
	}
	if size := int64(headerSize + len(payload)); size > 1<<32-1 || size > l.opts.MaxBytes-l.opts.SegmentBytes {
		return ErrTooLarge
	}
	done := make(chan error, 1)
	select {
	case l.appendc <- appendReq{payload: payload, done: done}:
	case <-l.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the record is written and synced whatever ctx does: the caller must not
	// reuse payload before the answer, and the answer comes within one fsync.
	select {
	case err := <-done:
		return err
	case <-l.stopped:
		select {
		case err := <-done:
			return err
		default:
			return ErrClosed
		}
	}
}

// appender owns the active segment: it writes every waiting record, fsyncs once, then answers
// them all (group commit).
func (l *Log) appender() {
	defer l.appenderWG.Done()
	defer close(l.stopped)
	var (
		batch []appendReq
		errs  []error
		w     groupWrite
	)
	for {
		select {
		case r := <-l.appendc:
			batch = l.gatherAppends(append(batch[:0], r))
		case <-l.quit:
			return
		}
		errs = slices.Grow(errs[:0], len(batch))[:len(batch)]
		clear(errs)
		l.writeGroup(batch, errs, &w)
		for i, r := range batch {
			r.done <- errs[i]
		}
	}
}

// gatherAppends adds to batch the requests already waiting, up to the queue's capacity.
func (l *Log) gatherAppends(batch []appendReq) []appendReq {
	for len(batch) < cap(l.appendc) {
		select {
		case r := <-l.appendc:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// writeGroup writes batch's records to the active segment, rotating to a new one when a record
// would not fit, and fsyncs once per segment; errs[i] is set when request i failed.
func (l *Log) writeGroup(batch []appendReq, errs []error, w *groupWrite) {
	var failed error
	if l.active == nil {
		failed = l.rotate()
	}
	for i, r := range batch {
		size := int64(headerSize + len(r.payload))
		l.mu.Lock()
		full := l.bytes+w.bytes+size > l.opts.MaxBytes
		act := l.segs[len(l.segs)-1]
		needRotate := act.size+w.bytes > int64(len(magic)) && act.size+w.bytes+size > l.opts.SegmentBytes
		l.mu.Unlock()
		switch {
		case failed != nil:
			errs[i] = failed
			continue
		case full:
			errs[i] = ErrFull
			continue
		case needRotate:
			if failed = l.flush(w, errs); failed == nil {
				failed = l.rotate()
			}
			if failed != nil {
				errs[i] = failed
				continue
			}
		}
		w.add(i, r.payload)
	}
	if failed == nil {
		failed = l.flush(w, errs)
	}
	if failed != nil && l.active != nil {
		// The active segment is in an unknown state past its last good sync: later records
		// go to a new segment once the disk lets us.
		_ = l.active.Close()
		l.active = nil
	}
}

// groupWrite is the records gathered for one write and fsync of the active segment.
type groupWrite struct {
	buf   []byte
	idx   []int   // which requests of the batch
	sizes []int64 // their record sizes
	bytes int64
}

func (w *groupWrite) add(i int, payload []byte) {
	var hdr [headerSize]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(payload, castagnoli))
	w.buf = append(w.buf, hdr[:]...)
	w.buf = append(w.buf, payload...)
	w.idx = append(w.idx, i)
	size := int64(headerSize + len(payload))
	w.sizes = append(w.sizes, size)
	w.bytes += size
}

// flush writes and fsyncs the gathered records, then makes them visible to the reader; on
// failure each of their requests gets the error.
func (l *Log) flush(w *groupWrite, errs []error) error {
	defer func() {
		if cap(w.buf) > 4<<20 {
			w.buf = nil // do not keep a huge batch's buffer
		}
		w.buf, w.idx, w.sizes, w.bytes = w.buf[:0], w.idx[:0], w.sizes[:0], 0
	}()
	if len(w.idx) == 0 {
		return nil
	}
	var err error
	if _, err = l.active.Write(w.buf); err != nil {
		err = fmt.Errorf("writing the persistent queue: %w", err)
	} else if err = l.active.Sync(); err != nil {
		err = fmt.Errorf("syncing the persistent queue: %w", err)
	}
	if err != nil {
		for _, i := range w.idx {
			errs[i] = err
		}
		return err
	}
	l.publish(w.sizes)
	return nil
}

// publish makes the records just synced to the active segment visible to the reader.
func (l *Log) publish(sizes []int64) {
	if len(sizes) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	act := l.segs[len(l.segs)-1]
	for _, s := range sizes {
		act.size += s
		l.bytes += s
		l.records++
	}
	l.notify()
}

// Start is where reading begins after Open: the last commit.
func (l *Log) Start() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commit
}

// Reader reads records in order. It is not safe for concurrent use.
type Reader struct {
	l   *Log
	pos Position
	f   *os.File
	fid uint64
}

// NewReader reads from pos (Start, for the first reader).
func (l *Log) NewReader(pos Position) *Reader { return &Reader{l: l, pos: pos} }

// Close releases the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
}

// Next returns the next record, appended to buf[:0], and the position after it; it waits for one
// to be appended when the reader has caught up, until ctx ends.
func (r *Reader) Next(ctx context.Context, buf []byte) ([]byte, Position, error) {
	for {
		id, end, err := r.seek(ctx)
		if err == nil {
			err = r.open(id)
		}
		if err != nil {
			return buf, r.pos, err
		}
		n, reason := readRecord(r.f, r.pos.Offset, end, &buf)
		if reason != "" {
			// Damage after Open (the disk, or someone else writing): skip the rest of what is
			// readable in this segment.
			r.l.mu.Lock()
			r.l.noteCorrupt(Corruption{Segment: id, Offset: r.pos.Offset, Bytes: end - r.pos.Offset, Reason: reason})
			r.l.mu.Unlock()
			r.pos.Offset = end
			continue
		}
		r.pos.Offset += n
		return buf, r.pos, nil
	}
}

// seek moves the reader to where the next record starts, waiting for one to be appended when it
// has caught up, and returns that record's segment and where the segment's readable bytes end.
func (r *Reader) seek(ctx context.Context) (id uint64, end int64, err error) {
	l := r.l
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return 0, 0, ErrClosed
		}
		seg := l.find(r.pos.Segment)
		if seg == nil {
			// Our segment is gone or we are before the oldest: start at the oldest.
			if len(l.segs) == 0 || l.segs[0].id < r.pos.Segment {
				l.mu.Unlock()
				return 0, 0, fmt.Errorf("position %d:%d is not in the log", r.pos.Segment, r.pos.Offset)
			}
			r.pos = Position{l.segs[0].id, int64(len(magic))}
			l.mu.Unlock()
			continue
		}
		r.pos.Offset = max(r.pos.Offset, int64(len(magic)))
		if r.pos.Offset < seg.size {
			id, end = seg.id, seg.size
			l.mu.Unlock()
			return id, end, nil
		}
		if next := l.after(seg.id); seg.sealed && next != nil {
			r.pos = Position{next.id, int64(len(magic))}
			l.mu.Unlock()
			continue
		}
		grew := l.grew
		l.mu.Unlock()
		select {
		case <-grew:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
}

// open opens segment id for reading, unless the reader has it open already.
func (r *Reader) open(id uint64) error {
	if r.f != nil && r.fid == id {
		return nil
	}
	r.Close()
	f, err := os.Open(r.l.path(segmentName(id)))
	if err != nil {
		return fmt.Errorf("opening segment: %w", err)
	}
	r.f, r.fid = f, id
	return nil
}

func (l *Log) find(id uint64) *segment {
	for _, s := range l.segs {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (l *Log) after(id uint64) *segment {
	for _, s := range l.segs {
		if s.id > id {
			return s
		}
	}
	return nil
}

// Commit records that every record before pos has been acknowledged by Redis (records are
// committed in order): n records more. Segments wholly before pos are deleted; the position
// is saved to the checkpoint file within checkpointEvery.
func (l *Log) Commit(pos Position, n int64) error {
	l.mu.Lock()
	if !l.commit.less(pos) {
		l.mu.Unlock()
		return nil
	}
	l.commit = pos
	l.records -= n
	var drop []*segment
	for len(l.segs) > 1 && l.segs[0].id < pos.Segment {
		drop = append(drop, l.segs[0])
		l.segs = l.segs[1:]
	}
	// A sealed segment read to its end is drained too (its successor exists).
	if len(l.segs) > 1 && l.segs[0].id == pos.Segment && l.segs[0].sealed && pos.Offset >= l.segs[0].size {
		drop = append(drop, l.segs[0])
		l.segs = l.segs[1:]
		l.commit = Position{l.segs[0].id, int64(len(magic))}
	}
	l.mu.Unlock()
	// Save the checkpoint before deleting: a crash in between replays nothing twice. The
	// segments go even when the save fails: they are out of the log already, and a checkpoint
	// naming a deleted segment makes the next Open start at the oldest one left, which is
	// where the commit is.
	var firstErr error
	if len(drop) > 0 {
		firstErr = l.saveCheckpoint()
	}
	for _, s := range drop {
		if err := os.Remove(l.path(segmentName(s.id))); err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("deleting drained segment: %w", err)
		}
		l.mu.Lock()
		l.bytes -= s.size
		l.mu.Unlock()
	}
	return firstErr
}

// saveCheckpoint writes the commit position, atomically (write, fsync, rename). Commit and the
// checkpointer both call it; ckMu keeps them off each other's temporary file.
func (l *Log) saveCheckpoint() error {
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.mu.Lock()
	pos := l.commit
	same := pos == l.saved
	l.mu.Unlock()
	if same {
		return nil
	}
	var b [20]byte
	binary.LittleEndian.PutUint64(b[:8], pos.Segment)
	binary.LittleEndian.PutUint64(b[8:16], uint64(pos.Offset))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	if err := writeFileDurably(l.opts.Dir, checkpointFile, b[:]); err != nil {
		return fmt.Errorf("writing the checkpoint: %w", err)
	}
	l.mu.Lock()
	if l.saved.less(pos) {
		l.saved = pos
	}
	l.mu.Unlock()
	return nil
}

// writeFileDurably replaces dir/name with data so that a crash leaves the old or the new
// contents, never a mix, and the new name survives a power cut: write a temporary file, fsync
// it, rename it over the old one, fsync the directory.
func writeFileDurably(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

// checkpointer saves the commit position every checkpointEvery, so that a crash replays at
// most that much that Redis already has.
func (l *Log) checkpointer() {
	defer l.appenderWG.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = l.saveCheckpoint()
		case <-l.quit:
			return
		}
	}
}

// Stats returns a snapshot of the log's size.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Bytes: l.bytes, Records: l.records, CorruptRecords: l.corrupt, CorruptBytes: l.corruptB}
}

// Drained reports whether every record appended has been committed.
func (l *Log) Drained() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.records == 0
}

// Close stops appending, saves the checkpoint and closes the files. Records not yet committed
// stay for the next Open.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.notify()
	l.mu.Unlock()
	close(l.quit)
	l.appenderWG.Wait()
	err := l.saveCheckpoint()
	if l.active != nil {
		if serr := l.active.Sync(); err == nil && serr != nil {
			err = serr
		}
		_ = l.active.Close()
	}
	_ = l.lock.Close() // last: releases the flock once every file is settled
	return err
}
