//go:build unix

package service

import "syscall"

// bytesWaiting reports whether bytes have arrived on c that the server has not read yet: its
// goroutine is about to read a request. It peeks at the socket without consuming anything.
func (c *adminConn) bytesWaiting() bool {
	rc, err := c.tcp.SyscallConn()
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
