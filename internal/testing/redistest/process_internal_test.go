package redistest

import (
	"net"
	"testing"
)

func TestStartRetriesOnAnotherPortWhenThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPorts = func(t testing.TB, n int) []int {
		calls++
		if calls == 1 {
			return []int{taken}
		}
		return freePorts(t, n)
	}
	t.Cleanup(func() { pickPorts = freePorts })

	s := Standalone(t)
	if s.port == taken || calls != 2 {
		t.Fatalf("started on port %d after %d port picks, want a second pick after %d was taken", s.port, calls, taken)
	}
	if pong, err := s.do("PING"); err != nil || pong != "PONG" {
		t.Fatalf("PING = %v, %v", pong, err)
	}
}
