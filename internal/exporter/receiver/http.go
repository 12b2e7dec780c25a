package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/otlpwire"
)

const (
	contentProtobuf = "application/x-protobuf"
	contentJSON     = "application/json"
)

// HTTP is the OTLP/HTTP receiver.
type HTTP struct {
	// Refusals, when set (before Serve), counts every request answered with an error.
	Refusals Refusals

	srv     *http.Server
	exp     Exporter
	mem     *admission.Budget
	tok     *tokenFile
	maxBody int64
	bufs    bodyPool
}

// NewHTTP builds the HTTP receiver; request bodies are counted against mem as they are read.
func NewHTTP(cfg config.Receivers, exp Exporter, mem *admission.Budget) (*HTTP, error) {
	h := &HTTP{exp: exp, mem: mem, maxBody: cfg.MaxRequestBytes}
	if cfg.BearerTokenFile != "" {
		t, err := newTokenFile(cfg.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		h.tok = t
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/traces", h.traces)
	for _, p := range []string{"/v1/metrics", "/v1/logs", "/v1development/profiles"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "this endpoint receives traces only: POST /v1/traces", http.StatusNotFound)
		})
	}
	h.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.HTTP.ReadTimeout.Duration,
		IdleTimeout:       cfg.HTTP.IdleTimeout.Duration,
		TLSConfig:         tlsCfg,
		MaxHeaderBytes:    64 << 10,
		ConnState:         HTTPConnState, // on a Listener, idle connections make room at the bound
	}
	return h, nil
}

// Serve serves on ln until Stop.
func (h *HTTP) Serve(ln net.Listener) error {
	var err error
	if h.srv.TLSConfig != nil {
		err = h.srv.ServeTLS(ln, "", "")
	} else {
		err = h.srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("http receiver: %w", err)
}

// Stop stops accepting requests and waits for the ones in flight until ctx ends.
func (h *HTTP) Stop(ctx context.Context) {
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
}

func (h *HTTP) traces(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(h.Refusals, "http", reasonMethod)
		http.Error(w, "OTLP/HTTP traces are sent with POST", http.StatusMethodNotAllowed)
		return
	}
	if h.tok != nil && !h.tok.allow(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		refuse(h.Refusals, "http", reasonAuth)
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != contentProtobuf && mt != contentJSON {
		refuse(h.Refusals, "http", reasonContentType)
		http.Error(w, fmt.Sprintf("unsupported Content-Type %q: send %s or %s", mt, contentProtobuf, contentJSON), http.StatusUnsupportedMediaType)
		return
	}
	buf := h.bufs.get()
	defer h.bufs.put(buf)
	claim := h.mem.Claim()
	defer claim.Release()
	if err := h.readBody(w, r, buf, &claim); err != nil {
		h.fail(w, mt, err)
		return
	}
	body := buf.Bytes()
	if mt == contentJSON {
		pb, err := otlpwire.FromJSON(body)
		if err != nil {
			h.fail(w, mt, &bodyError{codes.InvalidArgument, "invalid OTLP/JSON: " + err.Error(), reasonMalformed})
			return
		}
		if err := claim.Grow(int64(len(pb))); err != nil {
			h.fail(w, mt, err)
			return
		}
		body = pb
	}
	res, err := h.exp.Export(r.Context(), body, "http", &claim)
	if err != nil {
		h.fail(w, mt, err)
		return
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if res.Rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(res.Rejected), ErrorMessage: res.Message}
	}
	h.write(w, mt, http.StatusOK, resp)
}

// fail answers err as classify maps it.
func (h *HTTP) fail(w http.ResponseWriter, mt string, err error) {
	o := classify(err)
	refuse(h.Refusals, "http", o.reason)
	status := httpStatus(o)
	if o.retryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		w.Header().Set("Retry-After", strconv.Itoa(int(o.retryAfter.Seconds()+0.999)))
	}
	h.write(w, mt, status, &spb.Status{Code: int32(o.grpcCode), Message: o.message})
}

// readBody reads the body, decoded, into buf (decodeInto: bounded by maxBody, claimed as it is
// produced) and names what the client did wrong.
func (h *HTTP) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, claim *admission.Claim) error {
	// Bytes are claimed as they arrive, not as Content-Length announces them: a client that
	// announces a large body and sends it slowly holds only what it has sent.
	err := decodeInto(buf, r.Header.Get("Content-Encoding"), http.MaxBytesReader(w, r.Body, h.maxBody), h.maxBody, claim)
	var (
		maxErr  *http.MaxBytesError
		memErr  *admission.ExhaustedError
		bodyErr *bodyError
	)
	switch {
	case err == nil, errors.As(err, &memErr), errors.As(err, &bodyErr):
		return err
	case errors.As(err, &maxErr):
		return tooLarge(h.maxBody)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &bodyError{codes.DeadlineExceeded, "the request was not received within receivers.http.readTimeout", reasonReadTimeout}
	default:
		return &bodyError{codes.InvalidArgument, "reading body: " + err.Error(), reasonMalformed}
	}
}

func (h *HTTP) write(w http.ResponseWriter, mt string, status int, m proto.Message) {
	var (
		b   []byte
		err error
	)
	if mt == contentJSON {
		b, err = protojson.Marshal(m)
	} else {
		mt = contentProtobuf
		b, err = proto.Marshal(m)
	}
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", mt)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
