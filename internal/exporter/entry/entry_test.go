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
