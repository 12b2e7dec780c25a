package entry

import (
	"encoding/binary"
	"errors"
)

// errCorrupt is returned by Unmarshal for bytes that MarshalAppend did not write.
var errCorrupt = errors.New("entry batch: malformed encoding")

// MarshalAppend appends b's entries in a compact binary form to dst (the write-ahead log's
// record): the entry count, then per entry its trace and span ids, span count, key and fields,
// each byte string prefixed by its length as a uvarint.
func (b *Batch) MarshalAppend(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b.Entries)))
	for i, e := range b.Entries {
		dst = append(dst, e.TraceID[:]...)
		dst = append(dst, e.SpanID[:]...)
		dst = binary.AppendUvarint(dst, uint64(e.Spans))
		dst = appendBytes(dst, b.Key(i))
		dst = binary.AppendUvarint(dst, uint64(e.n))
		for j := range e.n {
			name, value := b.FieldPair(i, j)
			dst = appendBytes(dst, name)
			dst = appendBytes(dst, value)
		}
	}
	return dst
}

func appendBytes(dst, s []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Unmarshal appends the entries encoded by MarshalAppend to b. On malformed input it returns an
// error and leaves b as it was.
func (b *Batch) Unmarshal(data []byte) error {
	m := b.Mark()
	fail := func() error {
		b.Truncate(m)
		return errCorrupt
	}
	count, data, ok := uvarint(data)
	if !ok || count > uint64(len(data)) {
		return fail()
	}
	for range count {
		if len(data) < 24 {
			return fail()
		}
		var traceID [16]byte
		var spanID [8]byte
		copy(traceID[:], data[:16])
		copy(spanID[:], data[16:24])
		data = data[24:]
		var spans, nf uint64
		var key []byte
		if spans, data, ok = uvarint(data); !ok || spans > 1<<31 {
			return fail()
		}
		if key, data, ok = bytesField(data); !ok {
			return fail()
		}
		start := len(b.Buf)
		b.Buf = append(b.Buf, key...)
		b.Begin(start, traceID, spanID)
		b.Entries[len(b.Entries)-1].Spans = int(spans)
		if nf, data, ok = uvarint(data); !ok || nf > uint64(len(data)) {
			return fail()
		}
		for range nf {
			var name, value []byte
			if name, data, ok = bytesField(data); !ok {
				return fail()
			}
			if value, data, ok = bytesField(data); !ok {
				return fail()
			}
			n := len(b.Buf)
			b.Buf = append(b.Buf, name...)
			v := len(b.Buf)
			b.Buf = append(b.Buf, value...)
			b.Field(n, v)
		}
	}
	if len(data) != 0 {
		return fail()
	}
	return nil
}

func uvarint(data []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(data)
	if n <= 0 {
		return 0, data, false
	}
	return v, data[n:], true
}

func bytesField(data []byte) ([]byte, []byte, bool) {
	n, rest, ok := uvarint(data)
	if !ok || n > uint64(len(rest)) {
		return nil, data, false
	}
	return rest[:n], rest[n:], true
}
