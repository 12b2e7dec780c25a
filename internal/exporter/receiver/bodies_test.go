package receiver

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// A gRPC message that arrived in several buffers is copied into a pooled buffer, which free
// gives back for the next message, and one that arrived in one buffer is used in place. The
// pool may drop what it is given (at random under the race detector), so reuse is asked of some
// of many rounds.
func TestRawCodecReusesABufferForSplitMessages(t *testing.T) {
	var bp bodyPool
	c := rawCodec{proto: encoding.GetCodecV2("proto"), bufs: &bp}
	const rounds = 20
	var prev *bytes.Buffer
	reused := 0
	for i := range rounds {
		parts := [][]byte{bytes.Repeat([]byte{byte(i)}, 3000), bytes.Repeat([]byte{byte(i + 1)}, 5000)}
		var r rawRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(parts[0]), mem.SliceBuffer(parts[1])}, &r); err != nil {
			t.Fatal(err)
		}
		if want := append(append([]byte(nil), parts[0]...), parts[1]...); !bytes.Equal(r.b, want) {
			t.Fatalf("round %d: the message's bytes are not the two buffers' in order", i)
		}
		if r.buf == prev {
			reused++
		}
		prev = r.buf
		r.free()
	}
	if reused == 0 {
		t.Errorf("no buffer reused in %d rounds", rounds)
	}

	one := []byte("a message in one buffer")
	var r rawRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(one)}, &r); err != nil {
		t.Fatal(err)
	}
	if &r.b[0] != &one[0] || r.buf != nil {
		t.Error("a message in one buffer was copied")
	}
	r.free()
}
