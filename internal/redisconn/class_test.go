package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	cases := map[string]struct {
		err  error
		want Class
	}{
		"nil is none":                                {nil, ClassNone},
		"OOM is oom":                                 {replyError("OOM command not allowed when used memory > 'maxmemory'."), ClassOOM},
		"READONLY is readonly":                       {replyError("READONLY You can't write against a read only replica."), ClassReadOnly},
		"LOADING is loading":                         {replyError("LOADING Redis is loading the dataset in memory"), ClassLoading},
		"MOVED is moved":                             {replyError("MOVED 3999 127.0.0.1:6381"), ClassMoved},
		"ASK is moved":                               {replyError("ASK 3999 127.0.0.1:6381"), ClassMoved},
		"TRYAGAIN is tryagain":                       {replyError("TRYAGAIN Multiple keys request during rehashing of slot"), ClassTryAgain},
		"NOREPLICAS is tryagain":                     {replyError("NOREPLICAS Not enough good replicas to write."), ClassTryAgain},
		"MISCONF is tryagain":                        {replyError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), ClassTryAgain},
		"BUSY is tryagain":                           {replyError("BUSY Redis is busy running a script."), ClassTryAgain},
		"CLUSTERDOWN is clusterdown":                 {replyError("CLUSTERDOWN The cluster is down"), ClassClusterDown},
		"MASTERDOWN is masterdown":                   {replyError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), ClassMasterDown},
		"NOAUTH is auth":                             {replyError("NOAUTH Authentication required."), ClassAuth},
		"WRONGPASS is auth":                          {replyError("WRONGPASS invalid username-password pair or user is disabled."), ClassAuth},
		"NOPERM belongs to the write, not the login": {replyError("NOPERM User tracestream has no permissions to run the 'xadd' command"), ClassNoPerm},
		"NOPERM on a key is noperm too":              {replyError("NOPERM No permissions to access a key"), ClassNoPerm},
		"WRONGTYPE is wrongtype":                     {replyError("WRONGTYPE Operation against a key holding the wrong kind of value"), ClassWrongType},
		"max clients is connection":                  {replyError("ERR max number of clients reached"), ClassConnection},
		"a syntax error is other":                    {replyError("ERR syntax error"), ClassOther},
		"a wrapped reply keeps its class":            {fmt.Errorf("adding a span to stream %q: %w", "s", replyError("OOM command not allowed")), ClassOOM},
		"unreadable credentials are auth":            {fmt.Errorf("%w: redis.passwordFile: %w", ErrCredentials, os.ErrNotExist), ClassAuth},
		"an IDMP rejection is tryagain":              {fmt.Errorf("%w: %w", ErrIDMPRejected, replyError("ERR Invalid stream ID specified as stream command argument")), ClassTryAgain},
		"EOF is connection":                          {io.EOF, ClassConnection},
		"an unexpected EOF is connection":            {fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), ClassConnection},
		"a refused dial is connection":               {&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ClassConnection},
		"a reset is connection":                      {&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ClassConnection},
		"a closed socket is connection":              {net.ErrClosed, ClassConnection},
		"an untrusted certificate is tls":            {x509.UnknownAuthorityError{}, ClassTLS},
		"a failed verification is tls":               {fmt.Errorf("tls: %w", &tls.CertificateVerificationError{Err: x509.HostnameError{}}), ClassTLS},
		"no sentinel reachable is connection":        {fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w", errors.New("x")), ClassConnection},
		"a socket timeout is timeout":                {&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, ClassTimeout},
		"a context deadline is timeout":              {context.DeadlineExceeded, ClassTimeout},
		"a pool timeout is timeout":                  {redis.ErrPoolTimeout, ClassTimeout},
		"a canceled context is canceled":             {fmt.Errorf("x: %w", context.Canceled), ClassCanceled},
		"no reply at all is connection":              {fmt.Errorf("x: %w", ErrNoReply), ClassConnection},
		"a closed client is other":                   {redis.ErrClosed, ClassOther},
		"a handshake that timed out is tls":          {fmt.Errorf("%w: %w", ErrTLSHandshake, os.ErrDeadlineExceeded), ClassTLS},
		"an alert with the first reply is tls":       {&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, ClassTLS},
		"an unreachable host is connection":          {&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, ClassConnection},
		"an unknown sentinel master is other":        {redis.Nil, ClassOther},
		"anything else is other":                     {errors.New("something odd"), ClassOther},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

func TestClassNamesAndRetryability(t *testing.T) {
	want := map[Class]struct {
		name      string
		retryable bool
	}{
		ClassNone:        {"none", false},
		ClassOOM:         {"oom", true},
		ClassReadOnly:    {"readonly", true},
		ClassLoading:     {"loading", true},
		ClassMoved:       {"moved", true},
		ClassTryAgain:    {"tryagain", true},
		ClassClusterDown: {"clusterdown", true},
		ClassMasterDown:  {"masterdown", true},
		ClassConnection:  {"connection", true},
		ClassTimeout:     {"timeout", true},
		ClassCanceled:    {"canceled", true},
		ClassAuth:        {"auth", false},
		ClassWrongType:   {"wrongtype", false},
		ClassOther:       {"other", false},
		ClassNoPerm:      {"noperm", false},
		ClassTLS:         {"tls", true},
	}
	if len(want) != len(classLabels) {
		t.Fatalf("the test covers %d classes, the package has %d", len(want), len(classLabels))
	}
	for c, w := range want {
		if c.String() != w.name || c.Retryable() != w.retryable {
			t.Errorf("class %d: String() = %q, Retryable() = %v; want %q, %v", c, c.String(), c.Retryable(), w.name, w.retryable)
		}
	}
	if got := Class(200).String(); got != "other" {
		t.Errorf("an unknown class is %q, want other", got)
	}
}

func TestCauses(t *testing.T) {
	want := map[Cause][]Class{
		CauseNone:        {ClassNone},
		CauseAuth:        {ClassAuth, ClassNoPerm},
		CauseTLS:         {ClassTLS},
		CauseUnreachable: {ClassConnection, ClassTimeout},
		CauseOther: {ClassOOM, ClassReadOnly, ClassLoading, ClassMoved, ClassTryAgain, ClassClusterDown,
			ClassMasterDown, ClassCanceled, ClassWrongType, ClassOther},
	}
	seen := 0
	for cause, classes := range want {
		for _, c := range classes {
			seen++
			if got := c.Cause(); got != cause {
				t.Errorf("%s.Cause() = %d, want %d", c, got, cause)
			}
		}
	}
	if seen != int(numClasses) {
		t.Errorf("the test places %d classes, the package has %d", seen, numClasses)
	}
}

// replyError is an error reply: go-redis's own and the exporter's RESP reader's both
// implement redis.Error.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}
