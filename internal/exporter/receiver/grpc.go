package receiver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers gzip, whose reply compressor compression.go wraps
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/durationpb"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawRequest receives the request's protobuf bytes undecoded: the pipeline reads them with a
// zero-copy reader instead of building a message tree. A message grpc read into one buffer is
// used in place (held until free); one read into several is copied into a pooled buffer.
type rawRequest struct {
	b    []byte
	data mem.BufferSlice
	buf  *bytes.Buffer
	bufs *bodyPool
}

// free gives grpc its buffers back, and the pool its buffer; b is invalid afterwards.
func (r *rawRequest) free() {
	r.data.Free()
	if r.buf != nil {
		r.bufs.put(r.buf)
	}
	*r = rawRequest{}
}

// rawCodec is grpc's proto codec, except that it hands rawRequest its bytes as they are.
type rawCodec struct {
	proto encoding.CodecV2
	bufs  *bodyPool // for messages that arrived in several buffers
}

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawRequest); ok {
		if len(data) == 1 {
			data.Ref()
			r.data, r.b = data, data[0].ReadOnlyData()
		} else {
			// Most messages larger than a buffer of grpc's: Materialize would allocate them
			// anew (0.6 KB per span at 100 spans per request), a pooled buffer is reused.
			r.buf, r.bufs = c.bufs.get(), c.bufs
			r.buf.Grow(data.Len())
			for _, d := range data {
				r.buf.Write(d.ReadOnlyData())
			}
			r.b = r.buf.Bytes()
		}
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// GRPC is the OTLP/gRPC receiver. Only the trace service is served: metrics and logs clients
// get UNIMPLEMENTED when their headers arrive, never a silent drop.
type GRPC struct {
	// Refusals, when set (before Serve), counts every request answered with an error.
	Refusals Refusals

	srv         *grpc.Server
	exp         Exporter
	mem         *admission.Budget
	meter       *meter // counts message bytes as they arrive, against receivers.grpc.maxBufferedBytes
	tok         *tokenFile
	tls         bool
	readTimeout time.Duration
	streamCost  int64
	maxMsg      int64    // receivers.maxRequestBytes, decoded
	bufs        bodyPool // decoded messages, and messages that arrived in several buffers
}

// streamOverhead is what an open request costs besides its message: the decoded header list
// (bounded by receivers.grpc.maxHeaderListBytes) and grpc-go's stream and goroutine. Each request
// claims it from the budget when its headers arrive, so the number of requests open at once is
// bounded by the budget too.
const streamOverhead = 16 << 10

// Flow-control windows. Fixed windows turn off grpc-go's BDP estimator, which would let a stream
// buffer up to 16 MiB before its handler reads anything; the meter counts what does arrive.
const (
	streamWindow = 64 << 10
	connWindow   = 1 << 20
)

// Keepalive enforcement: clients may ping every 10s, with or without a request open (the
// Collector's and the SDKs' keepalive settings stay well above); faster pings end the connection
// (GOAWAY ENHANCE_YOUR_CALM). The server pings a connection silent for idleTimeout and closes it
// after pingTimeout without an answer.
const (
	minClientPingInterval = 10 * time.Second
	pingTimeout           = 20 * time.Second
)

// NewGRPC builds the gRPC receiver. Message bytes are counted as they arrive against
// receivers.grpc.maxBufferedBytes (see the connection meter), and against mem once the message is
// complete; a request's overhead is claimed from mem when its headers arrive.
func NewGRPC(cfg config.Receivers, exp Exporter, mem *admission.Budget) (*GRPC, error) {
	g := &GRPC{exp: exp, mem: mem, readTimeout: cfg.GRPC.ReadTimeout.Duration,
		meter:      newMeter(admission.New(cfg.GRPC.MaxBufferedBytes), cfg.GRPC.ReadTimeout.Duration),
		maxMsg:     cfg.MaxRequestBytes,
		streamCost: streamOverhead + int64(cfg.GRPC.MaxHeaderListBytes)}
	if cfg.BearerTokenFile != "" {
		t, err := newTokenFile(cfg.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		g.tok = t
	}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{proto: encoding.GetCodecV2("proto"), bufs: &g.bufs}),
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
		grpc.MaxConcurrentStreams(cfg.GRPC.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(cfg.GRPC.MaxHeaderListBytes),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.ConnectionTimeout(cfg.GRPC.ReadTimeout.Duration),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     cfg.GRPC.IdleTimeout.Duration,
			MaxConnectionAge:      cfg.GRPC.MaxConnectionAge.Duration,
			MaxConnectionAgeGrace: cfg.GRPC.MaxConnectionAgeGrace.Duration,
			Time:                  cfg.GRPC.IdleTimeout.Duration,
			Timeout:               pingTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPingInterval, PermitWithoutStream: true}),
		grpc.InTapHandle(g.admit),
		grpc.StatsHandler(refusalStats{g}),
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		g.tls = true
		opts = append(opts, grpc.Creds(meteredCreds{TransportCredentials: credentials.NewTLS(tlsCfg), m: g.meter}))
	}
	g.srv = grpc.NewServer(opts...)
	g.srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: exportHandler}},
		Metadata:    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
	}, g)
	return g, nil
}

// admit runs when a request's headers are in, before grpc-go reads any of its message: it
// refuses other methods and a missing or wrong bearer token, and claims the request's overhead
// from the budget until its stream ends.
func (g *GRPC) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != exportMethod {
		refuse(g.Refusals, "grpc", reasonMethod)
		return nil, status.Errorf(codes.Unimplemented, "unknown service or method %s: this endpoint receives traces only (%s)", info.FullMethodName, exportMethod)
	}
	if g.tok != nil {
		var h string
		if v := info.Header.Get("authorization"); len(v) > 0 {
			h = v[0]
		}
		if !g.tok.allow(h) {
			refuse(g.Refusals, "grpc", reasonAuth)
			return nil, status.Error(codes.Unauthenticated, "missing or invalid bearer token")
		}
	}
	a := &admitted{claim: g.mem.Claim()}
	if err := a.claim.Grow(g.streamCost); err != nil {
		return nil, g.fail(ctx, err)
	}
	// The handler adopts the claim as the request's own (so that a request larger than the
	// budget is still admitted alone); a stream that ends before its handler runs gives it back.
	a.stop = context.AfterFunc(ctx, a.claim.Release)
	return context.WithValue(ctx, admittedKey{}, a), nil
}

// admitted is a request's claim from when its headers were admitted until its handler adopts it.
type admitted struct {
	claim   admission.Claim
	stop    func() bool
	counted atomic.Bool // the request's refusal is counted already (refusalStats skips it)
}

// refusalStats counts the requests grpc-go refuses itself after admit, before the handler runs
// or while it reads the message (an unknown grpc-encoding, a message larger than the bound, a
// cut-short message): their stats.End carries the error, and the handler did not count it.
// (What the transport refuses before admit, such as a header list past the bound, has no RPC.)
type refusalStats struct{ g *GRPC }

func (refusalStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (h refusalStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok || end.Error == nil {
		return
	}
	if a, ok := ctx.Value(admittedKey{}).(*admitted); ok && a.counted.Load() {
		return
	}
	refuse(h.g.Refusals, "grpc", classify(end.Error).reason)
}

func (refusalStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (refusalStats) HandleConn(context.Context, stats.ConnStats) {}

type admittedKey struct{}

// requestClaim returns the claim admit started for this request, or a new one when the stream
// ended (and gave it back) before the handler ran.
func (g *GRPC) requestClaim(ctx context.Context) admission.Claim {
	if a, ok := ctx.Value(admittedKey{}).(*admitted); ok && a.stop() {
		return a.claim
	}
	return g.mem.Claim()
}

func exportHandler(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	g := srv.(*GRPC)
	var req rawRequest
	if err := g.receive(dec, &req); err != nil {
		return nil, g.fail(ctx, err)
	}
	defer req.free() // the pipeline has copied what it keeps into its entries by then
	return g.export(ctx, &req)
}

// receive reads the request's message, giving up after readTimeout: returning ends the stream,
// which ends the read and gives its bytes back.
func (g *GRPC) receive(dec func(any) error, req *rawRequest) error {
	var got rawRequest
	done := make(chan error, 1)
	go func() { done <- dec(&got) }()
	t := time.NewTimer(g.readTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		*req = got
		return err
	case <-t.C:
		return status.Errorf(codes.DeadlineExceeded, "the request's message did not arrive within receivers.grpc.readTimeout (%v)", g.readTimeout)
	}
}

func (g *GRPC) export(ctx context.Context, req *rawRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	claim := g.requestClaim(ctx)
	defer claim.Release()
	var (
		res  pipeline.Result
		body = req.b
		err  = claim.Grow(int64(len(req.b)))
	)
	if enc := recvCompress(ctx); err == nil && enc != "" && enc != encoding.Identity {
		// Replies go uncompressed: they are a few bytes, and the compressors registered here
		// pass received bytes through, so a reply compressed with one would reach a client in
		// this process undecoded.
		_ = grpc.SetSendCompressor(ctx, encoding.Identity)
		buf := g.bufs.get()
		defer g.bufs.put(buf)
		if err = decodeInto(buf, enc, bytes.NewReader(req.b), g.maxMsg, &claim); err == nil {
			body = buf.Bytes()
		}
	}
	if err == nil {
		res, err = g.exp.Export(ctx, body, "grpc", &claim)
	}
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if res.Rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(res.Rejected), ErrorMessage: res.Message}
	}
	return resp, nil
}

// fail answers err as classify maps it, counted.
func (g *GRPC) fail(ctx context.Context, err error) error {
	o := classify(err)
	refuse(g.Refusals, "grpc", o.reason)
	if a, ok := ctx.Value(admittedKey{}).(*admitted); ok {
		a.counted.Store(true)
	}
	return grpcStatus(o).Err()
}

// recvCompress is the grpc-encoding the request's message was sent with.
func recvCompress(ctx context.Context) string {
	if s, ok := grpc.ServerTransportStreamFromContext(ctx).(interface{ RecvCompress() string }); ok {
		return s.RecvCompress()
	}
	return ""
}

// grpcStatus is o's answer, with RetryInfo on retryable answers.
func grpcStatus(o outcome) *status.Status {
	st := status.New(o.grpcCode, o.message)
	if o.retryAfter > 0 && (o.grpcCode == codes.ResourceExhausted || o.grpcCode == codes.Unavailable) {
		// RESOURCE_EXHAUSTED is retryable for OTLP clients only with RetryInfo.
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(o.retryAfter)}); derr == nil {
			st = d
		}
	}
	return st
}

// Serve serves on ln until Stop. Plaintext connections are metered here, TLS ones once their
// handshake is done.
func (g *GRPC) Serve(ln net.Listener) error {
	if !g.tls {
		ln = meteredListener{Listener: ln, m: g.meter}
	}
	if err := g.srv.Serve(ln); err != nil {
		return fmt.Errorf("grpc receiver: %w", err)
	}
	return nil
}

// BufferedBytes is how many bytes of incomplete messages gRPC clients have sent
// (receivers.grpc.maxBufferedBytes).
func (g *GRPC) BufferedBytes() int64 { return g.meter.budget.Used() }

// BufferEvictions counts the connections closed because incomplete messages held
// receivers.grpc.maxBufferedBytes for longer than evictAfter.
func (g *GRPC) BufferEvictions() int64 { return g.meter.evicted.Load() }

// Stop stops accepting requests and waits for the ones in flight until ctx ends, then cuts them.
func (g *GRPC) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { g.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.srv.Stop()
		<-done
	}
}
