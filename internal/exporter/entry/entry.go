// Package entry is the hand-off between the encoders and the Redis sink: a reusable arena of
// encoded Redis Stream entries (stream key + field/value pairs + the span's identity).
//
// Encoders append bytes into one buffer and record offsets instead of slices, so that a batch of
// thousands of entries costs no allocation per entry once the arena has grown to size, and the
// sink reads the bytes back without copying them.
package entry

import "unsafe"

// Range is a half-open byte range [Start, End) of Batch.Buf.
type Range struct{ Start, End int }

// Entry is one stream entry: XADD <Key> * <field> <value> ...
type Entry struct {
	// Key is the stream key, in the Buf of the batch that holds the entry's bytes (see src).
	Key Range
	// first and n locate this entry's field and value ranges in Batch.fields: field i is
	// fields[first+2i], its value fields[first+2i+1].
	first, n int
	// TraceID and SpanID identify the span, for idempotent XADD (IDMP) and for consumers that
	// deduplicate; a retry of the same span carries the same pair.
	TraceID [16]byte
	SpanID  [8]byte
	// Spans is how many spans this entry carries (always 1 today: one entry per span).
	Spans int
	// src is the batch that holds the entry's bytes and field ranges when the entry was
	// gathered from another batch (AppendRef); nil when they are in the entry's own batch.
	src *Batch
}

// Batch is a reusable arena of entries. The zero value is ready to use; Reset keeps the memory.
type Batch struct {
	Buf     []byte
	Entries []Entry
	fields  []Range
}

// Reset empties the batch and keeps its memory for reuse. Entries gathered from other batches
// (AppendRef) are cleared, so that the memory kept refers to none of those batches.
func (b *Batch) Reset() {
	clear(b.Entries)
	b.Buf = b.Buf[:0]
	b.Entries = b.Entries[:0]
	b.fields = b.fields[:0]
}

// Mark is the length of a batch at some point, for Truncate.
type Mark struct{ buf, entries, fields int }

// Mark returns the batch's length now.
func (b *Batch) Mark() Mark { return Mark{len(b.Buf), len(b.Entries), len(b.fields)} }

// Truncate drops every entry and byte appended since m was taken, keeping the memory.
func (b *Batch) Truncate(m Mark) {
	clear(b.Entries[m.entries:])
	b.Buf, b.Entries, b.fields = b.Buf[:m.buf], b.Entries[:m.entries], b.fields[:m.fields]
}

// Size is the memory the batch's contents take, in bytes: the encoded bytes and the entries'
// bookkeeping (not the spare capacity kept for reuse).
func (b *Batch) Size() int {
	return len(b.Buf) + len(b.Entries)*int(unsafe.Sizeof(Entry{})) + len(b.fields)*int(unsafe.Sizeof(Range{}))
}

// Cap is the memory the batch keeps for reuse, in bytes: the capacity of its buffer and of its
// entries' bookkeeping.
func (b *Batch) Cap() int {
	return cap(b.Buf) + cap(b.Entries)*int(unsafe.Sizeof(Entry{})) + cap(b.fields)*int(unsafe.Sizeof(Range{}))
}

// Len is the number of entries.
func (b *Batch) Len() int { return len(b.Entries) }

// Begin starts a new entry whose key is the bytes appended to Buf since keyStart.
// Encoders append the key to b.Buf, then call Begin(keyStart), then add fields.
func (b *Batch) Begin(keyStart int, traceID [16]byte, spanID [8]byte) {
	b.Entries = append(b.Entries, Entry{
		Key:     Range{keyStart, len(b.Buf)},
		first:   len(b.fields),
		TraceID: traceID,
		SpanID:  spanID,
		Spans:   1,
	})
}

// Field records a field whose name is [nameStart, valueStart) and whose value is
// [valueStart, len(Buf)) of Buf: encoders append the name, note the offset, append the value,
// then call Field.
func (b *Batch) Field(nameStart, valueStart int) {
	b.fields = append(b.fields, Range{nameStart, valueStart}, Range{valueStart, len(b.Buf)})
	b.Entries[len(b.Entries)-1].n++
}

// FieldMark is a position in the fields of the entry being built, for FieldsSince.
type FieldMark struct{ field, buf int }

// FieldMark returns where the next field of the entry being built will go.
func (b *Batch) FieldMark() FieldMark { return FieldMark{len(b.fields), len(b.Buf)} }

// FieldRun is a run of fields of one entry whose names and values are contiguous in Buf, which
// later entries of the batch can repeat (RepeatFields) without encoding them again.
type FieldRun struct{ from, to FieldMark }

// FieldsSince returns the fields added to the entry being built since m. Only fields may have
// been appended since (Field, AddField): the run is repeated as one copy of its bytes.
func (b *Batch) FieldsSince(m FieldMark) FieldRun { return FieldRun{m, b.FieldMark()} }

// RepeatFields adds to the entry being built a copy of the fields of run r, taken from an entry
// of this batch (valid until Reset or a Truncate before it): their bytes in one copy.
func (b *Batch) RepeatFields(r FieldRun) {
	shift := len(b.Buf) - r.from.buf
	b.Buf = append(b.Buf, b.Buf[r.from.buf:r.to.buf]...)
	for _, f := range b.fields[r.from.field:r.to.field] {
		b.fields = append(b.fields, Range{f.Start + shift, f.End + shift})
	}
	b.Entries[len(b.Entries)-1].n += (r.to.field - r.from.field) / 2
}

// AddField appends a field name and value and records them.
func (b *Batch) AddField(name string, value []byte) {
	n := len(b.Buf)
	b.Buf = append(b.Buf, name...)
	v := len(b.Buf)
	b.Buf = append(b.Buf, value...)
	b.Field(n, v)
}

// Bytes returns the bytes of r. The slice aliases Buf: valid until the next append or Reset.
func (b *Batch) Bytes(r Range) []byte { return b.Buf[r.Start:r.End] }

// holder is the batch that holds the bytes and field ranges of e, an entry of b.
func (b *Batch) holder(e *Entry) *Batch {
	if e.src != nil {
		return e.src
	}
	return b
}

// Key returns entry i's stream key.
func (b *Batch) Key(i int) []byte {
	e := &b.Entries[i]
	return b.holder(e).Bytes(e.Key)
}

// NumFields is the number of field/value pairs of entry i.
func (b *Batch) NumFields(i int) int { return b.Entries[i].n }

// FieldPair returns field j of entry i: its name and value.
func (b *Batch) FieldPair(i, j int) (name, value []byte) {
	e := &b.Entries[i]
	h := b.holder(e)
	return h.Bytes(h.fields[e.first+2*j]), h.Bytes(h.fields[e.first+2*j+1])
}
