// Package receiver is the exporter's OTLP front door: OTLP/gRPC (TraceService/Export) and OTLP/HTTP
// (POST /v1/traces, protobuf and JSON, identity and gzip), with request size limits, optional TLS
// or mTLS and bearer-token auth. It hands each request's protobuf bytes to the pipeline and maps
// the pipeline's outcome once to OTLP status codes.
package receiver

import (
	"context"
	"errors"
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
	var memErr *admission.ExhaustedError
	switch {
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
