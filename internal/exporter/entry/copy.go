package entry

// AppendRef adds entry i of src to the end of b without copying it: b's entry refers to the
// batch that holds the entry's bytes (src, or the batch src's entry refers to). The writers use
// it to gather the entries of several requests into one pipeline, and to keep only the entries
// that need a retry; a pipeline of 1,000 json spans is 1.2 MB that no longer needs a second copy.
//
// The batch holding the bytes must not be reset, truncated or reused while b refers to it, and
// b's references end at b's Reset: a request's batch goes back to its pool only once every
// entry of it has been settled, and a writer resets its pipeline before it waits for more.
func (b *Batch) AppendRef(src *Batch, i int) {
	e := src.Entries[i]
	e.src = src.holder(&e)
	b.Entries = append(b.Entries, e)
}
