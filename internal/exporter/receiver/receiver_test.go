package receiver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

// timedOutBody is a request body whose read deadline passed, as net/http reports it.
type timedOutBody struct{}

func (timedOutBody) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

// readBodyError is what readBody returns for a request with this encoding and body (nil: a body
// whose read times out), read under a limit of maxBody bytes.
func readBodyError(t *testing.T, enc string, body []byte, maxBody int64) error {
	t.Helper()
	var src io.Reader = timedOutBody{}
	if body != nil {
		src = bytes.NewReader(body)
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/traces", src)
	r.Header.Set("Content-Encoding", enc)
	claim := admission.New(1 << 30).Claim()
	defer claim.Release()
	h := &HTTP{maxBody: maxBody}
	err := h.readBody(httptest.NewRecorder(), r, new(bytes.Buffer), &claim)
	if err == nil {
		t.Fatalf("readBody(%q, %d bytes) took the body, want a refusal", enc, len(body))
	}
	return err
}

// TestEveryErrorHasOneAnswerOnEachTransport pins the one mapping: each error the receivers can
// meet, the gRPC code and the HTTP status a client sees for it, the refusal reason counted, and
// whether the answer invites a retry (RetryInfo, Retry-After).
func TestEveryErrorHasOneAnswerOnEachTransport(t *testing.T) {
	budget := admission.New(10)
	holder, second := budget.Claim(), budget.Claim()
	_ = holder.Grow(10)
	memErr := second.Grow(1)
	holder.Release()
	if memErr == nil {
		t.Fatal("a budget of 10 bytes, all held, took one more")
	}
	tests := map[string]struct {
		err       error
		code      codes.Code
		http      int
		reason    string
		retryable bool
	}{
		"an invalid payload is INVALID_ARGUMENT and 400": {
			fmt.Errorf("export: %w", pipeline.ErrInvalid), codes.InvalidArgument, http.StatusBadRequest, reasonMalformed, false},
		"a full memory budget is RESOURCE_EXHAUSTED and 429, retryable": {
			memErr, codes.ResourceExhausted, http.StatusTooManyRequests, reasonMemory, true},
		"the span bound is RESOURCE_EXHAUSTED and 429, retryable": {
			&pipeline.Error{Class: pipeline.ErrBusy, RetryAfter: 3 * time.Second}, codes.ResourceExhausted, http.StatusTooManyRequests, reasonBusy, true},
		"shutting down is UNAVAILABLE and 503, retryable": {
			pipeline.ErrShuttingDown, codes.Unavailable, http.StatusServiceUnavailable, reasonShutdown, true},
		"a client that gave up is CANCELLED and 503": {
			context.Canceled, codes.Canceled, http.StatusServiceUnavailable, reasonCanceled, true},
		"Redis not taking the spans is UNAVAILABLE and 503, retryable": {
			&pipeline.Error{Class: pipeline.ErrUnavailable}, codes.Unavailable, http.StatusServiceUnavailable, reasonUnavailable, true},
		"an unexpected error is UNAVAILABLE and 503, retryable": {
			io.ErrUnexpectedEOF, codes.Unavailable, http.StatusServiceUnavailable, reasonUnavailable, true},
		"a body larger than the limit is RESOURCE_EXHAUSTED without retry and 413": {
			readBodyError(t, "", make([]byte, 100), 10), codes.ResourceExhausted, http.StatusRequestEntityTooLarge, reasonTooLarge, false},
		"a body that decodes past the limit is RESOURCE_EXHAUSTED without retry and 413": {
			readBodyError(t, "gzip", gzipOf(make([]byte, 1000)), 100), codes.ResourceExhausted, http.StatusRequestEntityTooLarge, reasonTooLarge, false},
		"a corrupt compressed body is INVALID_ARGUMENT and 400": {
			readBodyError(t, "gzip", []byte("not gzip at all"), 100), codes.InvalidArgument, http.StatusBadRequest, reasonMalformed, false},
		"an unknown encoding is INVALID_ARGUMENT and 415": {
			readBodyError(t, "br", []byte("x"), 100), codes.InvalidArgument, http.StatusUnsupportedMediaType, reasonEncoding, false},
		"a body that does not arrive in time is DEADLINE_EXCEEDED and 408": {
			readBodyError(t, "", nil, 100), codes.DeadlineExceeded, http.StatusRequestTimeout, reasonReadTimeout, false},
		"grpc-go's refusal of a message too large keeps its code": {
			status.Error(codes.ResourceExhausted, "too large"), codes.ResourceExhausted, http.StatusRequestEntityTooLarge, reasonTooLarge, false},
		"grpc-go's refusal of an unknown compressor keeps its code": {
			status.Error(codes.Unimplemented, "no compressor"), codes.Unimplemented, http.StatusNotFound, reasonEncoding, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := classify(tc.err)
			if o.grpcCode != tc.code || httpStatus(o) != tc.http || o.reason != tc.reason || (o.retryAfter > 0) != tc.retryable {
				t.Errorf("classify(%v) = %v, HTTP %d, reason %q, retry after %v; want %v, HTTP %d, reason %q, retryable %v",
					tc.err, o.grpcCode, httpStatus(o), o.reason, o.retryAfter, tc.code, tc.http, tc.reason, tc.retryable)
			}
		})
	}
}

// TestHTTPAnswersAnErrorWithItsStatusCodeAndRetryAfter checks what an OTLP/HTTP client reads:
// the status from the table, the gRPC code in the body, and Retry-After only on retryable answers.
func TestHTTPAnswersAnErrorWithItsStatusCodeAndRetryAfter(t *testing.T) {
	tests := map[string]struct {
		err        error
		status     int
		code       codes.Code
		retryAfter string
	}{
		"the span bound asks for a retry after its hint": {
			&pipeline.Error{Class: pipeline.ErrBusy, RetryAfter: 2500 * time.Millisecond}, http.StatusTooManyRequests, codes.ResourceExhausted, "3"},
		"Redis unavailable asks for a retry after a second": {
			pipeline.ErrUnavailable, http.StatusServiceUnavailable, codes.Unavailable, "1"},
		"an invalid payload asks for no retry": {
			pipeline.ErrInvalid, http.StatusBadRequest, codes.InvalidArgument, ""},
		"a body too large asks for no retry": {
			readBodyError(t, "", make([]byte, 100), 10), http.StatusRequestEntityTooLarge, codes.ResourceExhausted, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			(&HTTP{}).fail(rec, contentProtobuf, tc.err)
			var st spb.Status
			if err := proto.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Fatalf("body %q is not a google.rpc.Status: %v", rec.Body.Bytes(), err)
			}
			if rec.Code != tc.status || codes.Code(st.Code) != tc.code || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Errorf("HTTP %d, code %v, Retry-After %q; want HTTP %d, code %v, Retry-After %q",
					rec.Code, codes.Code(st.Code), rec.Header().Get("Retry-After"), tc.status, tc.code, tc.retryAfter)
			}
		})
	}
}
