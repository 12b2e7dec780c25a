package otlpwire_test

import (
	"encoding/json"
	"errors"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	. "github.com/tracestream/tracestream/internal/exporter/otlpwire/otlpwiretest"
)

// FuzzValidate checks that Validate and the views never panic, and that Validate agrees with
// proto.Unmarshal into the generated ExportTraceServiceRequest: it rejects everything protobuf
// rejects, and accepts everything protobuf accepts except, by design, ids of the wrong length
// (ErrInvalidID) and values nested deeper than MaxValueDepth (ErrTooDeep), which the test
// confirms on the decoded message. On accepted input, the views must read what protobuf reads.
//
// The views are compared on the input re-encoded by proto.Marshal rather than on the fuzzed
// bytes, because of the one documented difference in what they read: a singular message field
// that occurs twice is merged by protobuf and taken whole from its last occurrence by the views.
// proto.Marshal never writes a field twice.
func FuzzValidate(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := otlpwire.Validate(b)
		walk(otlpwire.NewTraces(b))
		var req coltracepb.ExportTraceServiceRequest
		perr := proto.Unmarshal(b, &req)
		switch {
		case perr != nil && err == nil:
			t.Fatalf("Validate accepted what proto.Unmarshal rejects (%v)", perr)
		case perr != nil:
			var e *otlpwire.Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(b) {
				t.Fatalf("error %v is not an *otlpwire.Error with an offset inside the input", err)
			}
			return
		case err != nil:
			switch {
			case errors.Is(err, otlpwire.ErrInvalidID):
				if !HasBadID(&req) {
					t.Fatalf("Validate reports %v, but protobuf finds no id of the wrong length", err)
				}
			case errors.Is(err, otlpwire.ErrTooDeep):
				if d := ValueDepth(&req); d <= otlpwire.MaxValueDepth {
					t.Fatalf("Validate reports %v, but values nest only %d deep", err, d)
				}
			default:
				t.Fatalf("Validate rejects what proto.Unmarshal accepts: %v", err)
			}
			return
		}
		if want := CountSpans(&req); n != want {
			t.Fatalf("Validate counted %d spans, protobuf %d", n, want)
		}
		canon, err := proto.MarshalOptions{Deterministic: true}.Marshal(&req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := otlpwire.Validate(canon); err != nil {
			t.Fatalf("Validate rejects the re-encoded input: %v", err)
		}
		if got, want := FromViews(otlpwire.NewTraces(canon)), Canonical(&req); !proto.Equal(got, want) {
			t.Fatalf("views differ from protobuf:\n%s", Diff(want, got))
		}
	})
}

// FuzzFromJSON checks that FromJSON never panics, fails only with ErrInvalidJSON, accepts only
// valid JSON, and writes only protobuf that proto.Unmarshal accepts.
func FuzzFromJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := otlpwire.FromJSON(body)
		if err != nil {
			if !errors.Is(err, otlpwire.ErrInvalidJSON) {
				t.Fatalf("error %v is not ErrInvalidJSON", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("FromJSON accepted a body that is not JSON")
		}
		if err := proto.Unmarshal(b, &coltracepb.ExportTraceServiceRequest{}); err != nil {
			t.Fatalf("FromJSON wrote protobuf that proto.Unmarshal rejects: %v", err)
		}
	})
}
