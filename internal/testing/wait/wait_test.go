package wait_test

import (
	"context"
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

func TestPollReturnsAStoppedErrorAtOnce(t *testing.T) {
	exited := errors.New("the process exited")
	calls := 0
	err := wait.Poll(t.Context(), wait.Interval, func() error { calls++; return wait.Stop(exited) })
	if !errors.Is(err, exited) || !wait.Stopped(err) || calls != 1 {
		t.Errorf("Poll = %v after %d calls, want the stopped error after one call", err, calls)
	}
	if err.Error() != exited.Error() {
		t.Errorf("Poll's error reads %q, want %q", err, exited)
	}
}

func TestPollReturnsTheLastErrorWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	last := errors.New("not yet")
	calls := 0
	err := wait.Poll(ctx, time.Hour, func() error {
		calls++
		cancel()
		return last
	})
	if !errors.Is(err, last) || wait.Stopped(err) || calls != 1 {
		t.Errorf("Poll = %v after %d calls, want the check's error after one call", err, calls)
	}
}
