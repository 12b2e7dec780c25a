package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

// validatingExporter stands in for the pipeline behind the receiver: it runs the pipeline's
// first stage on what the receiver hands over (otlpwire.Validate, which is what rejects a bad
// payload there) and answers as the pipeline does for a request it cannot write.
type validatingExporter struct{}

func (validatingExporter) Export(_ context.Context, req []byte, _ string, mem *admission.Claim) (pipeline.Result, error) {
	if err := mem.Grow(int64(len(req))); err != nil { // as the pipeline claims its entries
		return pipeline.Result{}, err
	}
	if _, err := otlpwire.Validate(req); err != nil {
		return pipeline.Result{}, &pipeline.Error{Class: pipeline.ErrInvalid, Detail: err.Error()}
	}
	return pipeline.Result{}, nil
}

// FuzzHTTPBody sends arbitrary bodies to /v1/traces as protobuf or JSON, plain or gzip (both a
// gzip of the bytes and the bytes claimed as gzip): every answer is one the OTLP/HTTP spec allows
// for a client's input (200, 400, 413, 415), never a panic or a 5xx, and the request's claim on
// the memory budget is given back whatever the answer.
func FuzzHTTPBody(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte(`{"resourceSpans":[]}`), uint8(1))
	f.Add([]byte{0x0a, 0x00}, uint8(2))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"), uint8(3))
	cfg := config.Default().Receivers
	cfg.MaxRequestBytes = 64 << 10
	mem := admission.New(cfg.MaxRequestBytes)
	h, err := NewHTTP(cfg, validatingExporter{}, mem)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		ct := "application/x-protobuf"
		if mode&1 == 1 {
			ct = "application/json"
		}
		payload, enc := body, ""
		switch mode >> 1 & 3 {
		case 1: // a real gzip of the bytes
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(body)
			_ = zw.Close()
			payload, enc = b.Bytes(), "gzip"
		case 2: // the bytes claimed as gzip
			enc = "gzip"
		case 3:
			enc = "br" // not supported
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(payload))
		req.Header.Set("Content-Type", ct)
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		rec := httptest.NewRecorder()
		h.srv.Handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("content-type %s, encoding %q, %d bytes: HTTP %d %s", ct, enc, len(body), rec.Code, rec.Body.String())
		}
		if used := mem.Used(); used != 0 {
			t.Fatalf("content-type %s, encoding %q, %d bytes: HTTP %d left %d bytes claimed", ct, enc, len(body), rec.Code, used)
		}
		if enc == "br" && rec.Code != http.StatusUnsupportedMediaType {
			t.Fatalf("an unsupported Content-Encoding answered %d", rec.Code)
		}
	})
}
