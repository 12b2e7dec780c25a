// Package receiver is the exporter's OTLP front door: OTLP/gRPC (TraceService/Export) and OTLP/HTTP
// (POST /v1/traces, protobuf and JSON, identity and gzip), with request size limits, optional TLS
// or mTLS and bearer-token auth. It hands each request's protobuf bytes to the pipeline and maps
// the pipeline's outcome once to OTLP status codes.
package receiver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

// Exporter is the pipeline as the receivers see it. Export grows the request's claim on the
// memory budget by what it holds; the receiver releases the claim once it has answered.
type Exporter interface {
	Export(ctx context.Context, req []byte, protocol string, mem *admission.Claim) (pipeline.Result, error)
}

// bodyError is a request the receiver refuses itself, before the pipeline sees it, with the HTTP
// status that names why.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// grpcCode is the gRPC answer to the same mistake. RESOURCE_EXHAUSTED without RetryInfo (a
// message too large) is not retried by OTLP clients.
func (e *bodyError) grpcCode() codes.Code {
	switch e.status {
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded
	default: // 400, 415
		return codes.InvalidArgument
	}
}

// outcome is the one mapping from a pipeline error to what OTLP clients understand. Retryable
// answers carry a delay; nothing maps to an HTTP 500, which clients would not retry.
type outcome struct {
	grpcCode   codes.Code
	httpStatus int
	message    string
	retryAfter time.Duration
}

func classify(err error) outcome {
	retry := pipeline.RetryAfterOf(err, time.Second)
	var (
		memErr  *admission.ExhaustedError
		bodyErr *bodyError
	)
	switch {
	case errors.As(err, &bodyErr): // refused by the receiver itself: never worth a retry
		return outcome{bodyErr.grpcCode(), bodyErr.status, bodyErr.msg, 0}
	case errors.Is(err, pipeline.ErrInvalid):
		return outcome{codes.InvalidArgument, 400, err.Error(), 0}
	case errors.Is(err, pipeline.ErrBusy), errors.As(err, &memErr): // in-flight or memory limit
		return outcome{codes.ResourceExhausted, 429, err.Error(), retry}
	case errors.Is(err, context.Canceled):
		return outcome{codes.Canceled, 503, "request canceled", retry}
	default: // ErrUnavailable, ErrShuttingDown, deadlines and anything unexpected: retryable.
		return outcome{codes.Unavailable, 503, err.Error(), retry}
	}
}
