package sink

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
		"unreadable credentials are auth":            {fmt.Errorf("%w: redis.passwordFile: %w", errCredentials, os.ErrNotExist), ClassAuth},
		"an IDMP rejection is tryagain":              {fmt.Errorf("%w: %w", errIDMPRejected, replyError("ERR Invalid stream ID specified as stream command argument")), ClassTryAgain},
		"EOF is connection":                          {io.EOF, ClassConnection},
		"an unexpected EOF is connection":            {fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), ClassConnection},
		"a refused dial is connection":               {&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ClassConnection},
		"a reset is connection":                      {&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ClassConnection},
		"a closed socket is connection":              {net.ErrClosed, ClassConnection},
		"an untrusted certificate is connection":     {x509.UnknownAuthorityError{}, ClassConnection},
		"a failed verification is connection":        {fmt.Errorf("tls: %w", &tls.CertificateVerificationError{Err: x509.HostnameError{}}), ClassConnection},
		"no sentinel reachable is connection":        {fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w", errors.New("x")), ClassConnection},
		"a socket timeout is timeout":                {&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, ClassTimeout},
		"a context deadline is timeout":              {context.DeadlineExceeded, ClassTimeout},
		"a pool timeout is timeout":                  {redis.ErrPoolTimeout, ClassTimeout},
		"a canceled context is canceled":             {fmt.Errorf("x: %w", context.Canceled), ClassCanceled},
		"no reply at all is connection":              {fmt.Errorf("x: %w", errNoReply), ClassConnection},
		"a closed client is other":                   {redis.ErrClosed, ClassOther},
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
	}
	if len(want) != len(classNames) {
		t.Fatalf("the test covers %d classes, the package has %d", len(want), len(classNames))
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
