// Package receiver is the exporter's OTLP front door: OTLP/gRPC (TraceService/Export) and OTLP/HTTP
// (POST /v1/traces, protobuf and JSON, every compression the Collector sends: compression.go),
// with bounds on what a client can make it hold (connections, headers, message bytes as they
// arrive, time: docs/design/front-door.md), optional TLS or mTLS and bearer-token auth. It hands
// each request's protobuf bytes to the pipeline and maps every outcome once to OTLP status codes
// and a refusal reason (classify).
package receiver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

// Exporter is the pipeline as the receivers see it. Export grows the request's claim on the
// memory budget by what it holds; the receiver releases the claim once it has answered.
type Exporter interface {
	Export(ctx context.Context, req []byte, protocol string, mem *admission.Claim) (pipeline.Result, error)
}

// grpcReadReason is the refusal reason of a message grpc-go could not read.
func grpcReadReason(c codes.Code) string {
	switch c {
	case codes.ResourceExhausted:
		return reasonTooLarge
	case codes.DeadlineExceeded:
		return reasonReadTimeout
	case codes.Unimplemented:
		return reasonEncoding
	case codes.Canceled:
		return reasonCanceled
	default:
		return reasonMalformed
	}
}

// bodyError is a request the receiver refuses itself, before the pipeline sees it, with the gRPC
// code that names why (httpStatus derives the HTTP answer from it). None is worth a retry:
// RESOURCE_EXHAUSTED without RetryInfo (a message too large) is not retried by OTLP clients.
type bodyError struct {
	code   codes.Code
	msg    string
	reason string // a refusal reason, for the metrics
}

func (e *bodyError) Error() string { return e.msg }

// Refusal reasons: the reason label of tracestream_exporter_requests_refused_total. A fixed set,
// so that no client can grow the label's values.
const (
	reasonContentType = "content_type" // not protobuf or JSON (HTTP 415)
	reasonEncoding    = "encoding"     // a compression this receiver does not decode (HTTP 415)
	reasonMalformed   = "malformed"    // not valid OTLP, or a body that does not decode (400)
	reasonTooLarge    = "too_large"    // past receivers.maxRequestBytes (413)
	reasonReadTimeout = "read_timeout" // the request did not arrive in time (408, DEADLINE_EXCEEDED)
	reasonMethod      = "method"       // another HTTP method or gRPC service (405, UNIMPLEMENTED)
	reasonAuth        = "auth"         // a missing or wrong bearer token (401, UNAUTHENTICATED)
	reasonMemory      = "memory"       // delivery.maxInFlightBytes could not hold it (429)
	reasonBusy        = "busy"         // delivery.maxInFlightSpans or the persistent queue is full (429)
	reasonUnavailable = "unavailable"  // Redis did not take the spans, or is refusing writes (503)
	reasonShutdown    = "shutting_down"
	reasonCanceled    = "canceled" // the client gave up
)

// Refusals counts refused requests by protocol ("grpc", "http") and reason.
type Refusals interface {
	Refused(protocol, reason string)
}

// refuse counts one refusal when the receiver has somewhere to count it.
func refuse(r Refusals, protocol, reason string) {
	if r != nil {
		r.Refused(protocol, reason)
	}
}

// outcome is the one mapping from an error to what OTLP clients understand: classify gives the
// gRPC code, and httpStatus derives the HTTP status from it. Retryable answers carry a delay.
type outcome struct {
	grpcCode   codes.Code
	message    string
	retryAfter time.Duration
	reason     string
}

func classify(err error) outcome {
	retry := pipeline.RetryAfterOf(err, time.Second)
	var (
		memErr  *admission.ExhaustedError
		bodyErr *bodyError
	)
	switch {
	case errors.As(err, &bodyErr): // refused by the receiver itself: never worth a retry
		return outcome{bodyErr.code, bodyErr.msg, 0, bodyErr.reason}
	case errors.Is(err, pipeline.ErrInvalid):
		return outcome{codes.InvalidArgument, err.Error(), 0, reasonMalformed}
	case errors.As(err, &memErr):
		return outcome{codes.ResourceExhausted, err.Error(), retry, reasonMemory}
	case errors.Is(err, pipeline.ErrBusy): // the span bound or a full persistent queue
		return outcome{codes.ResourceExhausted, err.Error(), retry, reasonBusy}
	case errors.Is(err, pipeline.ErrShuttingDown):
		return outcome{codes.Unavailable, err.Error(), retry, reasonShutdown}
	case errors.Is(err, context.Canceled):
		return outcome{codes.Canceled, "request canceled", retry, reasonCanceled}
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		// grpc-go's own refusal of a message it could not read (too large, cut short, an
		// encoding it has no compressor for) or the receiver's read timeout: kept as it is.
		return outcome{st.Code(), st.Message(), 0, grpcReadReason(st.Code())}
	}
	// ErrUnavailable, deadlines and anything unexpected: retryable.
	return outcome{codes.Unavailable, err.Error(), retry, reasonUnavailable}
}

// httpStatus is the HTTP answer to o, derived from its gRPC code by the one table the OTel
// Collector's OTLP receiver uses (otlpreceiver/internal/errors), which keeps a code retryable on
// one transport retryable on the other (OTLP spec, "Failures"). Three refusals of the receiver's
// own have an HTTP status that says more, and that OTLP/HTTP clients do not retry either: a body
// too large (413: RESOURCE_EXHAUSTED without RetryInfo, which gRPC clients do not retry), one that
// did not arrive in time (408) and one in an encoding this receiver does not decode (415). No
// code maps to 500: whatever grpc-go refuses on its own is a message it could not read (400).
func httpStatus(o outcome) int {
	switch o.grpcCode {
	case codes.InvalidArgument:
		if o.reason == reasonEncoding {
			return http.StatusUnsupportedMediaType
		}
		return http.StatusBadRequest
	case codes.ResourceExhausted:
		if o.retryAfter == 0 {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusTooManyRequests
	case codes.DeadlineExceeded:
		if o.reason == reasonReadTimeout {
			return http.StatusRequestTimeout
		}
		return http.StatusServiceUnavailable
	case codes.Canceled, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return http.StatusServiceUnavailable
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unimplemented:
		return http.StatusNotFound
	default:
		return http.StatusBadRequest
	}
}
