package entry

// Append copies entry i of src (its key, fields and identity) to the end of b. The writers use it
// to gather entries of several requests into one pipeline, and to keep only the entries that
// need a retry.
func (b *Batch) Append(src *Batch, i int) {
	e := src.Entries[i]
	keyStart := len(b.Buf)
	b.Buf = append(b.Buf, src.Bytes(e.Key)...)
	b.Begin(keyStart, e.TraceID, e.SpanID)
	b.Entries[len(b.Entries)-1].Spans = e.Spans
	for j := 0; j < e.n; j++ {
		name, value := src.FieldPair(i, j)
		n := len(b.Buf)
		b.Buf = append(b.Buf, name...)
		v := len(b.Buf)
		b.Buf = append(b.Buf, value...)
		b.Field(n, v)
	}
}
