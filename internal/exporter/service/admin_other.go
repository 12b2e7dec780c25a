//go:build !unix

package service

// bytesWaiting cannot look into the socket here: only bytes already read protect a connection.
func (c *adminConn) bytesWaiting() bool { return false }
