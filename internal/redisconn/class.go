package redisconn

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

// Class is what kind of failure a Redis error is. It is decided once, here, for both planes:
// the exporter's retry policy, its OTLP status and its metric labels, and the operator's
// RedisReachable condition all read it.
type Class uint8

// The classes. Their labels (Label) are metric label values: never rename one.
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
	// It also marks an XADD whose IDMP option the server rejected (ErrIDMPRejected): the
	// writer has turned IDMP off, so the retry goes through.
	ClassTryAgain
	// ClassClusterDown is a cluster without a quorum or with unserved slots (CLUSTERDOWN).
	ClassClusterDown
	// ClassMasterDown is a replica that lost its master (MASTERDOWN).
	ClassMasterDown
	// ClassConnection is a dial or socket failure: refused, reset, EOF, no sentinel
	// reachable, too many clients. Commands whose replies were not read may have run.
	ClassConnection
	// ClassTimeout is a socket, pool or context deadline. Commands whose replies were not
	// read may have run.
	ClassTimeout
	// ClassCanceled is the caller's context being canceled, usually at shutdown.
	ClassCanceled
	// ClassAuth is an authentication failure (NOAUTH, WRONGPASS) or unreadable credential
	// files (ErrCredentials): every command fails alike. Retrying at once only locks the user
	// out faster: back off and surface it.
	ClassAuth
	// ClassWrongType is a key that holds something other than a stream (WRONGTYPE).
	ClassWrongType
	// ClassOther is any other error, treated as permanent.
	ClassOther
	// ClassNoPerm is the ACL refusing one command on its keys (NOPERM): the user is logged in,
	// and a key pattern (~traces:allowed*) or command rule refuses this command. For a write it
	// belongs to the entries it refused, like WRONGTYPE, never to the connection.
	ClassNoPerm
	// ClassTLS is a failed TLS handshake: an untrusted or mismatched certificate, a client
	// certificate refused, TLS spoken to a plaintext port (ErrTLSHandshake). Retryable: a
	// rotated certificate or Secret can fix it without a change to the writer.
	ClassTLS
	numClasses
)

var classLabels = [numClasses]string{
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
	ClassTLS:         "tls",
}

// Label is the class's stable lowercase name, for metric labels, logs and /status.
func (c Class) Label() string {
	if c < numClasses {
		return classLabels[c]
	}
	return classLabels[ClassOther]
}

// String is Label.
func (c Class) String() string { return c.Label() }

// Retryable reports whether the same command may succeed later without anyone changing the
// configuration or the data: true for the server's transient states, redirects, connection
// and TLS failures, timeouts and cancellations; false for auth, noperm, wrongtype and other.
func (c Class) Retryable() bool {
	switch c {
	case ClassOOM, ClassReadOnly, ClassLoading, ClassMoved, ClassTryAgain, ClassClusterDown,
		ClassMasterDown, ClassConnection, ClassTimeout, ClassCanceled, ClassTLS:
		return true
	}
	return false
}

// Cause is what a class says about reaching Redis at all: the subject of the operator's
// RedisReachable condition, which maps each cause to one reason.
type Cause uint8

// The causes.
const (
	// CauseNone: Redis answered.
	CauseNone Cause = iota
	// CauseAuth: Redis refuses the credentials or the user's permissions; the Secret or the
	// ACL needs fixing.
	CauseAuth
	// CauseTLS: the TLS handshake failed.
	CauseTLS
	// CauseUnreachable: no server answered in time.
	CauseUnreachable
	// CauseOther: Redis answered with another error, or the caller gave up.
	CauseOther
)

var causeNames = [...]string{CauseNone: "none", CauseAuth: "auth", CauseTLS: "tls", CauseUnreachable: "unreachable", CauseOther: "other"}

// String is the cause's lowercase name, for logs and test failures.
func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return causeNames[CauseOther]
}

// Cause groups the class for the operator's condition.
func (c Class) Cause() Cause {
	switch c {
	case ClassNone:
		return CauseNone
	case ClassAuth, ClassNoPerm:
		return CauseAuth
	case ClassTLS:
		return CauseTLS
	case ClassConnection, ClassTimeout:
		return CauseUnreachable
	}
	return CauseOther
}

// Errors that callers wrap so that Classify knows what they mean.
var (
	// ErrCredentials marks a failure to read the credential files: ClassAuth.
	ErrCredentials = errors.New("reading Redis credentials")
	// ErrIDMPRejected marks an XADD whose IDMP option the server did not understand:
	// ClassTryAgain.
	ErrIDMPRejected = errors.New("the server rejected IDMP; idempotent writes are now off")
	// ErrNoReply is the error of a command that got no reply and no error: ClassConnection.
	ErrNoReply = errors.New("redis: no reply")
	// ErrTLSHandshake marks a connection that TCP accepted and TLS did not, whatever the
	// handshake's own error (a timeout included): ClassTLS. Without it, TLS spoken to a
	// plaintext port looks like a server that does not answer.
	ErrTLSHandshake = errors.New("TLS handshake")
)

// Classify returns err's class, looking through wrapping. A nil error is ClassNone.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, ErrCredentials):
		return ClassAuth
	case errors.Is(err, ErrIDMPRejected):
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
	// redis.Nil among others: sentinels that answered but know no master by that name.
	return ClassOther
}

func classifyTransport(err error) Class {
	switch {
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case isTLS(err):
		return ClassTLS
	case isTimeout(err):
		return ClassTimeout
	case errors.Is(err, redis.ErrClosed):
		// Our own client was closed: nothing to wait for.
		return ClassOther
	case isConnection(err):
		return ClassConnection
	}
	return ClassOther
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) || (errors.As(err, &netErr) && netErr.Timeout())
}

func isTLS(err error) bool {
	var (
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		opErr      *net.OpError
	)
	switch {
	case errors.Is(err, ErrTLSHandshake),
		errors.As(err, &recordErr), errors.As(err, &alertErr), errors.As(err, &verifyErr),
		errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return true
	case errors.As(err, &opErr):
		// crypto/tls wraps the alerts it receives or sends in an OpError with these Ops.
		// With TLS 1.3 a server refuses a client certificate after the client considers
		// the handshake done, so the alert comes with the first reply, not from dial.
		return opErr.Op == "remote error" || opErr.Op == "local error"
	}
	return false
}

// unreachableTopology are go-redis's own errors for a topology it cannot reach; they carry
// no type.
var unreachableTopology = []string{
	"all sentinels specified in configuration are unreachable",
	"redis: cluster has no nodes",
	"redis: no sentinels configured",
}

func isConnection(err error) bool {
	var (
		opErr  *net.OpError
		dnsErr *net.DNSError
	)
	switch {
	case errors.Is(err, ErrNoReply),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	}
	msg := err.Error()
	for _, s := range unreachableTopology {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
