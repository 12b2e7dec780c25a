// Package wait polls for state in tests. The house rule is never to sleep for state: a test
// states what it waits for, with a deadline, and fails with the last reason it was not there.
package wait

import (
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
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(Interval)
	defer ticker.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		<-ticker.C
	}
}
