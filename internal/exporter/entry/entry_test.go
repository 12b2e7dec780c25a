package entry

import (
	"fmt"
	"testing"
)

// TestRepeatFieldsCopiesARunOfAnEarlierEntry checks that an entry can repeat a run of another
// entry's fields after fields of its own, and that both read back whole.
func TestRepeatFieldsCopiesARunOfAnEarlierEntry(t *testing.T) {
	var b Batch
	b.Buf = append(b.Buf, "k1"...)
	b.Begin(0, [16]byte{1}, [8]byte{1})
	b.AddField("own", []byte("first"))
	m := b.FieldMark()
	b.AddField("resource.a", []byte("1"))
	b.AddField("resource.b", []byte("22"))
	run := b.FieldsSince(m)
	b.AddField("after", []byte("x"))

	start := len(b.Buf)
	b.Buf = append(b.Buf, "k2"...)
	b.Begin(start, [16]byte{2}, [8]byte{2})
	b.AddField("own", []byte("second"))
	b.RepeatFields(run)
	b.AddField("after", []byte("y"))

	want := []string{"k1 own=first resource.a=1 resource.b=22 after=x", "k2 own=second resource.a=1 resource.b=22 after=y"}
	for i, w := range want {
		got := string(b.Key(i))
		for j := range b.NumFields(i) {
			n, v := b.FieldPair(i, j)
			got += fmt.Sprintf(" %s=%s", n, v)
		}
		if got != w {
			t.Errorf("entry %d: %s, want %s", i, got, w)
		}
	}
}

// render is entry i of b as text: its key, fields and identity.
func render(b *Batch, i int) string {
	e := b.Entries[i]
	s := fmt.Sprintf("%s %x %x %d", b.Key(i), e.TraceID, e.SpanID, e.Spans)
	for j := range b.NumFields(i) {
		n, v := b.FieldPair(i, j)
		s += fmt.Sprintf(" %s=%s", n, v)
	}
	return s
}

// TestAppendRefGathersEntriesWithoutCopying gathers entries of two batches into a pipeline, and
// some of those into a retry batch, as the writers do: each reads back as its source entry,
// no byte is copied (the pipeline's own buffer stays empty), the retry refers to the batch that
// holds the bytes, the pipeline marshals as its sources would, and Reset lets go of the sources.
func TestAppendRefGathersEntriesWithoutCopying(t *testing.T) {
	src := func(key string, n int) *Batch {
		b := &Batch{}
		for i := range n {
			start := len(b.Buf)
			b.Buf = append(b.Buf, key...)
			b.Begin(start, [16]byte{byte(i), 1}, [8]byte{byte(i), 2})
			b.AddField("data", fmt.Appendf(nil, "%s-%d", key, i))
			b.AddField("traceparent", []byte("00-x"))
		}
		return b
	}
	a, c := src("traces:a", 3), src("traces:c", 2)
	var pipe, retry Batch
	var want []string
	for _, s := range []*Batch{a, c} {
		for i := range s.Len() {
			pipe.AppendRef(s, i)
			want = append(want, render(s, i))
		}
	}
	for i := range pipe.Len() {
		if got := render(&pipe, i); got != want[i] {
			t.Errorf("gathered entry %d reads %q, want %q", i, got, want[i])
		}
	}
	if len(pipe.Buf) != 0 {
		t.Errorf("gathering copied %d bytes", len(pipe.Buf))
	}
	var direct []byte
	for _, s := range []*Batch{a, c} {
		var one Batch
		if err := one.Unmarshal(s.MarshalAppend(nil)); err != nil {
			t.Fatal(err)
		}
		for i := range one.Len() {
			direct = append(direct, render(&one, i)...)
		}
	}
	var again Batch
	if err := again.Unmarshal(pipe.MarshalAppend(nil)); err != nil {
		t.Fatal(err)
	}
	var round []byte
	for i := range again.Len() {
		round = append(round, render(&again, i)...)
	}
	if string(round) != string(direct) {
		t.Errorf("the gathered batch marshals as\n%s\nwant\n%s", round, direct)
	}

	retry.AppendRef(&pipe, 4)
	retry.AppendRef(&pipe, 1)
	pipe.Reset()
	for k, i := range []int{4, 1} {
		if got := render(&retry, k); got != want[i] {
			t.Errorf("retried entry %d reads %q after the pipeline's reset, want %q", k, got, want[i])
		}
	}
	for i, e := range pipe.Entries[:cap(pipe.Entries)] {
		if e.src != nil {
			t.Fatalf("after Reset, entry %d of the pipeline's memory still refers to a batch", i)
		}
	}
}
