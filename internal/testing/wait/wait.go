// Package wait polls for state in tests. The house rule is never to sleep for state: a test
// states what it waits for, with a deadline, and fails with the last reason it was not there.
package wait

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Interval is how often For re-checks. Redis, the API server and the exporter react in
// milliseconds, so a short interval keeps tests quick without busy-looping.
const Interval = 25 * time.Millisecond

// For runs check until it returns nil. When timeout passes first, it fails t with what and
// check's last error.
func For(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := Until(timeout, check); err != nil {
		t.Fatalf("%s: not done within %s: %v", what, timeout, err)
	}
}

// Until runs check until it returns nil, and returns check's last error when timeout passes
// first: for callers that report the failure themselves.
func Until(timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Poll(ctx, Interval, check)
}

// Poll runs check every interval until it returns nil, and returns check's last error when ctx
// ends first, or at once when check returns an error made by Stop. It is Until for programs that
// stop waiting on an interrupt, not only at a deadline.
func Poll(ctx context.Context, interval time.Duration, check func() error) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		err := check()
		if err == nil || Stopped(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-ticker.C:
		}
	}
}

// Stop marks err as final: Poll returns it without checking again, for a check that sees the
// state can no longer come (the process it waits for has exited).
func Stop(err error) error { return &stopError{err} }

// Stopped says whether err is, or wraps, an error made by Stop.
func Stopped(err error) bool {
	var s *stopError
	return errors.As(err, &s)
}

type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }
