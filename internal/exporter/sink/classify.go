package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Class is what kind of failure an error is, decided once here so that the pipeline's retry
// policy, its OTLP status and the metrics agree.
type Class uint8

// The classes. Their names (String) are metric label values: never rename one.
const (
	// ClassNone is a nil error.
	ClassNone Class = iota
	// ClassOOM is Redis refusing writes at maxmemory (OOM).
	ClassOOM
	// ClassReadOnly is a write that reached a replica (READONLY), typically just after a
	// failover.
	ClassReadOnly
	// ClassLoading is a server still loading its data set after a restart (LOADING).
	ClassLoading
	// ClassMoved is a MOVED or ASK redirect that reached the caller: the command was not
	// run, and the client refreshes its slot map before the retry.
	ClassMoved
	// ClassTryAgain is a server asking for the same command later: TRYAGAIN during a
	// resharding, and NOREPLICAS, MISCONF and BUSY, which also refuse a write only for now.
	// It also marks an XADD whose IDMP option the server rejected; Write has turned IDMP
	// off, so the retry goes through.
	ClassTryAgain
	// ClassClusterDown is a cluster without a quorum or with unserved slots (CLUSTERDOWN).
	ClassClusterDown
	// ClassMasterDown is a replica that lost its master (MASTERDOWN).
	ClassMasterDown
	// ClassConnection is a dial, TLS or socket failure: refused, reset, EOF, no sentinel
	// reachable, too many clients. Commands whose replies were not read may have run.
	ClassConnection
	// ClassTimeout is a socket, pool or context deadline. Commands whose replies were not
	// read may have run.
	ClassTimeout
	// ClassCanceled is the caller's context being canceled, usually at shutdown.
	ClassCanceled
	// ClassAuth is an authentication failure (NOAUTH, WRONGPASS) or unreadable credential
	// files: every write fails alike. Retrying at once only locks the user out faster: back off
	// and surface it.
	ClassAuth
	// ClassWrongType is a key that holds something other than a stream (WRONGTYPE).
	ClassWrongType
	// ClassOther is any other error, treated as permanent.
	ClassOther
	// ClassNoPerm is the ACL refusing one command on its keys (NOPERM): the user is logged in,
	// and a key pattern (~traces:allowed*) or command rule refuses this write. It belongs to the
	// entries it refused, like WRONGTYPE, never to the connection: those entries are rejected
	// and every other write goes on.
	ClassNoPerm
)

var classNames = [...]string{
	ClassNone:        "none",
	ClassOOM:         "oom",
	ClassReadOnly:    "readonly",
	ClassLoading:     "loading",
	ClassMoved:       "moved",
	ClassTryAgain:    "tryagain",
	ClassClusterDown: "clusterdown",
	ClassMasterDown:  "masterdown",
	ClassConnection:  "connection",
	ClassTimeout:     "timeout",
	ClassCanceled:    "canceled",
	ClassAuth:        "auth",
	ClassWrongType:   "wrongtype",
	ClassOther:       "other",
	ClassNoPerm:      "noperm",
}

// String is the class's stable lowercase name, for metric labels and logs.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "other"
}

// Retryable reports whether the same write may succeed later without anyone changing the
// configuration or the data: true for the server's transient states, redirects, connection
// failures, timeouts and cancellations; false for auth, noperm, wrongtype and other.
func (c Class) Retryable() bool {
	switch c {
	case ClassOOM, ClassReadOnly, ClassLoading, ClassMoved, ClassTryAgain, ClassClusterDown,
		ClassMasterDown, ClassConnection, ClassTimeout, ClassCanceled:
		return true
	}
	return false
}

// errIDMPRejected marks an XADD whose IDMP option the server did not understand.
var errIDMPRejected = errors.New("the server rejected IDMP; idempotent writes are now off")

// Classify returns err's class; wrapped errors are unwrapped. A nil error is ClassNone.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if errors.Is(err, errCredentials) {
		return ClassAuth
	}
	if errors.Is(err, errIDMPRejected) {
		return ClassTryAgain
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return classifyReply(rerr)
	}
	return classifyTransport(err)
}

// classifyReply classifies an error reply from Redis by its code, with go-redis's typed
// helpers where it has one.
func classifyReply(err redis.Error) Class {
	msg := strings.TrimPrefix(err.Error(), "ERR ") // KVRocks prefixes codes with ERR
	if _, ok := redis.IsMovedError(err); ok {
		return ClassMoved
	}
	if _, ok := redis.IsAskError(err); ok {
		return ClassMoved
	}
	switch {
	case redis.IsOOMError(err):
		return ClassOOM
	case redis.IsReadOnlyError(err):
		return ClassReadOnly
	case redis.IsLoadingError(err):
		return ClassLoading
	case redis.IsTryAgainError(err), redis.IsNoReplicasError(err),
		strings.HasPrefix(msg, "MISCONF "), strings.HasPrefix(msg, "BUSY "):
		return ClassTryAgain
	case redis.IsClusterDownError(err):
		return ClassClusterDown
	case redis.IsMasterDownError(err):
		return ClassMasterDown
	case redis.IsPermissionError(err):
		return ClassNoPerm
	case redis.IsAuthError(err):
		return ClassAuth
	case strings.HasPrefix(msg, "WRONGTYPE "):
		return ClassWrongType
	case redis.IsMaxClientsError(err):
		return ClassConnection
	}
	return ClassOther
}

func classifyTransport(err error) Class {
	switch {
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, redis.ErrPoolTimeout):
		return ClassTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ClassTimeout
	}
	if errors.Is(err, errNoReply) {
		return ClassConnection
	}
	if errors.Is(err, redis.ErrClosed) {
		// Our own client was closed: nothing to wait for.
		return ClassOther
	}
	var (
		opErr      *net.OpError
		dnsErr     *net.DNSError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.As(err, &opErr), errors.As(err, &dnsErr), errors.As(err, &recordErr),
		errors.As(err, &alertErr), errors.As(err, &verifyErr), errors.As(err, &unknownCA),
		errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return ClassConnection
	}
	// go-redis's own errors for a topology it cannot reach carry no type.
	msg := err.Error()
	for _, s := range []string{
		"all sentinels specified in configuration are unreachable",
		"redis: cluster has no nodes",
		"redis: no sentinels configured",
	} {
		if strings.Contains(msg, s) {
			return ClassConnection
		}
	}
	return ClassOther
}
