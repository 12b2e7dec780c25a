//go:build unix

package receiver

import (
	"net"
	"syscall"
)

// bytesWaiting reports whether bytes have arrived on c that its server has not read yet: it is
// about to read a request. It peeks at the socket without consuming anything.
func bytesWaiting(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}
