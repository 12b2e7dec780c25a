package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Outcome classes of an export. The receivers map each to its OTLP status codes in one place
// (receiver.classify and httpStatus).
var (
	// ErrInvalid: the payload is malformed. Permanent: not worth a retry.
	ErrInvalid = errors.New("invalid request")
	// ErrBusy: the in-flight limit is reached. Retryable, after RetryAfter.
	ErrBusy = errors.New("exporter at its in-flight limit")
	// ErrUnavailable: Redis did not acknowledge every span in time (down, failing over, refusing
	// our credentials). Retryable, after RetryAfter.
	ErrUnavailable = errors.New("redis unavailable")
	// ErrShuttingDown: the exporter is draining. Retryable like ErrUnavailable.
	ErrShuttingDown = errors.New("exporter shutting down")
)

// Error carries one of the classes above with the detail a client should see and a retry hint.
type Error struct {
	Class      error
	Detail     string
	RetryAfter time.Duration
	// cause is what ended the wait, when it says more than Class: context.Canceled for a
	// client that gave up, which the receivers count as canceled, not unavailable.
	cause error
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Class.Error()
	}
	return fmt.Sprintf("%s: %s", e.Class, e.Detail)
}

// Unwrap lets errors.Is match the class, and the cause when there is one.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.cause}
}

// RetryAfterOf returns the retry hint of err, or def when it has none.
func RetryAfterOf(err error, def time.Duration) time.Duration {
	var pe *Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return pe.RetryAfter
	}
	return def
}
