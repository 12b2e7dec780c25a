//go:build !unix

package receiver

import "net"

// bytesWaiting cannot look into the socket here: only HTTP/1 headers already read protect a
// connection.
func bytesWaiting(net.Conn) bool { return false }
