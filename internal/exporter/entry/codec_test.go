package entry

import (
	"bytes"
	"testing"
)

func sample() *Batch {
	var b Batch
	for i := range 3 {
		start := len(b.Buf)
		b.Buf = append(b.Buf, "traces:svc"...)
		b.Begin(start, [16]byte{byte(i + 1), 2, 3}, [8]byte{byte(i + 9)})
		b.AddField("traceparent", []byte("00-0102-03-01"))
		b.AddField("data", bytes.Repeat([]byte{byte('a' + i)}, 200*i))
		b.AddField("empty", nil)
	}
	return &b
}

func equal(t *testing.T, got, want *Batch) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Fatalf("%d entries, want %d", got.Len(), want.Len())
	}
	for i := range want.Len() {
		g, w := got.Entries[i], want.Entries[i]
		if g.TraceID != w.TraceID || g.SpanID != w.SpanID || g.Spans != w.Spans || !bytes.Equal(got.Key(i), want.Key(i)) || got.NumFields(i) != want.NumFields(i) {
			t.Fatalf("entry %d differs: %+v vs %+v", i, g, w)
		}
		for j := range want.NumFields(i) {
			gn, gv := got.FieldPair(i, j)
			wn, wv := want.FieldPair(i, j)
			if !bytes.Equal(gn, wn) || !bytes.Equal(gv, wv) {
				t.Fatalf("entry %d field %d: %q=%q, want %q=%q", i, j, gn, gv, wn, wv)
			}
		}
	}
}

func TestABatchSurvivesMarshalAndUnmarshal(t *testing.T) {
	want := sample()
	var got Batch
	if err := got.Unmarshal(want.MarshalAppend(nil)); err != nil {
		t.Fatal(err)
	}
	equal(t, &got, want)
	// Unmarshal appends: a second record lands after the first.
	if err := got.Unmarshal(want.MarshalAppend(nil)); err != nil {
		t.Fatal(err)
	}
	if got.Len() != 2*want.Len() || !bytes.Equal(got.Key(5), want.Key(2)) {
		t.Fatalf("appending a second batch gave %d entries", got.Len())
	}
}

func TestMalformedBytesAreRefusedAndLeaveTheBatchAsItWas(t *testing.T) {
	enc := sample().MarshalAppend(nil)
	for cut := range len(enc) {
		var b Batch
		if err := b.Unmarshal(sample().MarshalAppend(nil)); err != nil {
			t.Fatal(err)
		}
		if err := b.Unmarshal(enc[:cut]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes was accepted", cut, len(enc))
		}
		equal(t, &b, sample())
	}
	if err := new(Batch).Unmarshal(append(enc, 0)); err == nil {
		t.Fatal("trailing bytes were accepted")
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(sample().MarshalAppend(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		if err := b.Unmarshal(data); err != nil {
			if b.Len() != 0 || len(b.Buf) != 0 {
				t.Fatal("a refused record left entries behind")
			}
			return
		}
		// What was accepted survives a second round trip unchanged (uvarints may be
		// written longer than needed, so the bytes themselves may differ).
		var again Batch
		if err := again.Unmarshal(b.MarshalAppend(nil)); err != nil {
			t.Fatal(err)
		}
		equal(t, &again, &b)
	})
}

func BenchmarkMarshalUnmarshal(b *testing.B) {
	src := sample()
	var buf []byte
	var dst Batch
	b.ReportAllocs()
	for b.Loop() {
		buf = src.MarshalAppend(buf[:0])
		dst.Reset()
		if err := dst.Unmarshal(buf); err != nil {
			b.Fatal(err)
		}
	}
}
