package redislag

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

// Class is why Collect failed, for the reason of the operator's RedisReachable condition.
type Class string

// The classes. The operator maps them to its condition reasons; the values are stable.
const (
	// ClassNone is a nil error.
	ClassNone Class = "none"
	// ClassAuth is Redis refusing the credentials (NOAUTH, WRONGPASS) or the user's
	// permissions (NOPERM): the Secret or the ACL needs fixing.
	ClassAuth Class = "auth"
	// ClassTLS is a failed TLS handshake: an untrusted or mismatched certificate, a
	// client certificate refused, or TLS spoken to a plaintext port.
	ClassTLS Class = "tls"
	// ClassUnreachable is a server that could not be reached or did not answer in time:
	// refused or reset connections, unknown hosts, timeouts, no sentinel answering. A
	// plaintext client on a TLS port usually ends up here too: the server just hangs up.
	ClassUnreachable Class = "unreachable"
	// ClassOther is any other error: a bad Target or Query, an unknown sentinel master
	// name, a cancelled context, an error reply Redis gave for another reason.
	ClassOther Class = "other"
)

// Classify returns err's class, looking through wrapping.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, context.Canceled):
		return ClassOther
	case errors.Is(err, redis.Nil):
		// Sentinels that answered but know no master by that name; go-redis still
		// calls them unreachable.
		return ClassOther
	case isAuth(err):
		return ClassAuth
	case isTLS(err):
		return ClassTLS
	case isUnreachable(err):
		return ClassUnreachable
	}
	return ClassOther
}

func isAuth(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	return redis.IsAuthError(rerr) || redis.IsPermissionError(rerr)
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
	case errors.Is(err, errTLSHandshake),
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

func isUnreachable(err error) bool {
	var (
		netErr net.Error
		opErr  *net.OpError
		dnsErr *net.DNSError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &netErr) && netErr.Timeout(),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && redis.IsMaxClientsError(rerr) {
		return true
	}
	// go-redis's own errors for a topology it cannot reach carry no type.
	msg := err.Error()
	for _, s := range []string{
		"all sentinels specified in configuration are unreachable",
		"redis: cluster has no nodes",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
