package wal

import (
	"context"
	"testing"
)

// BenchmarkAppendNext measures a record's way through the log: appended by several writers
// (group commit, one fsync per group), read back in order by one reader.
func BenchmarkAppendNext(b *testing.B) {
	l, err := Open(Options{Dir: b.TempDir(), MaxBytes: MinBytes}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	payload := make([]byte, 4<<10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read := make(chan struct{})
	go func() {
		defer close(read)
		rd := l.NewReader(l.Start())
		defer rd.Close()
		var buf []byte
		for range b.N {
			var (
				pos  Position
				rerr error
			)
			if buf, pos, rerr = rd.Next(ctx, buf); rerr != nil {
				return
			}
			_ = l.Commit(pos, 1)
		}
	}()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(ctx, payload); err != nil {
				b.Error(err)
			}
		}
	})
	<-read
}
