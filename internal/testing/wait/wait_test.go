package wait_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tracestream/tracestream/internal/testing/wait"
)

func TestUntilReturnsOnceTheCheckPasses(t *testing.T) {
	calls := 0
	err := wait.Until(time.Minute, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Until = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestUntilReturnsTheLastErrorAtTheDeadline(t *testing.T) {
	last := errors.New("still not there")
	calls := 0
	err := wait.Until(3*wait.Interval, func() error { calls++; return last })
	if !errors.Is(err, last) || calls < 2 {
		t.Errorf("Until = %v after %d calls, want the check's error after more than one call", err, calls)
	}
}
