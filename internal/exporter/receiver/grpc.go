package receiver

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP clients may send gzip; grpc applies MaxRecvMsgSize after decompression
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracestream/tracestream/internal/exporter/admission"
	"github.com/tracestream/tracestream/internal/exporter/config"
	"github.com/tracestream/tracestream/internal/exporter/pipeline"
)

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawRequest receives the request's protobuf bytes undecoded: the pipeline reads them with a
// zero-copy reader instead of building a message tree. A message grpc read into one buffer is
// used in place (held until free), not copied.
type rawRequest struct {
	b    []byte
	data mem.BufferSlice
}

// free gives grpc its buffers back; b is invalid afterwards.
func (r *rawRequest) free() {
	r.data.Free()
	r.data, r.b = nil, nil
}

// rawCodec is grpc's proto codec, except that it hands rawRequest its bytes as they are.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawRequest); ok {
		if len(data) == 1 {
			data.Ref()
			r.data, r.b = data, data[0].ReadOnlyData()
		} else {
			r.b = data.Materialize()
		}
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// GRPC is the OTLP/gRPC receiver. Only the trace service is registered: metrics and logs clients
// get UNIMPLEMENTED ("unknown service") from grpc itself, never a silent drop.
type GRPC struct {
	srv *grpc.Server
	exp Exporter
	mem *admission.Budget
	tok *tokenFile
}

// NewGRPC builds the gRPC receiver; a request's message is counted against mem once grpc has
// read it.
func NewGRPC(cfg config.Receivers, exp Exporter, mem *admission.Budget) (*GRPC, error) {
	g := &GRPC{exp: exp, mem: mem}
	if cfg.BearerTokenFile != "" {
		t, err := newTokenFile(cfg.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		g.tok = t
	}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}),
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
		grpc.MaxConcurrentStreams(cfg.GRPC.MaxConcurrentStreams),
		grpc.UnaryInterceptor(g.authorize),
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
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

func exportHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	var req rawRequest
	if err := dec(&req); err != nil {
		return nil, err
	}
	defer req.free() // the pipeline has copied what it keeps into its entries by then
	g := srv.(*GRPC)
	if interceptor == nil {
		return g.export(ctx, &req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: exportMethod}
	return interceptor(ctx, &req, info, func(ctx context.Context, r any) (any, error) {
		return g.export(ctx, r.(*rawRequest))
	})
}

func (g *GRPC) authorize(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if g.tok != nil {
		md, _ := metadata.FromIncomingContext(ctx)
		var h string
		if v := md.Get("authorization"); len(v) > 0 {
			h = v[0]
		}
		if !g.tok.allow(h) {
			return nil, status.Error(codes.Unauthenticated, "missing or invalid bearer token")
		}
	}
	return next(ctx, req)
}

func (g *GRPC) export(ctx context.Context, req *rawRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	claim := g.mem.Claim()
	defer claim.Release()
	var (
		res pipeline.Result
		err = claim.Grow(int64(len(req.b)))
	)
	if err == nil {
		res, err = g.exp.Export(ctx, req.b, "grpc", &claim)
	}
	if err != nil {
		o := classify(err)
		st := status.New(o.grpcCode, o.message)
		if o.retryAfter > 0 && (o.grpcCode == codes.ResourceExhausted || o.grpcCode == codes.Unavailable) {
			// RESOURCE_EXHAUSTED is retryable for OTLP clients only with RetryInfo.
			if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(o.retryAfter)}); derr == nil {
				st = d
			}
		}
		return nil, st.Err()
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if res.Rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(res.Rejected), ErrorMessage: res.Message}
	}
	return resp, nil
}

// Serve serves on ln until Stop.
func (g *GRPC) Serve(ln net.Listener) error {
	if err := g.srv.Serve(ln); err != nil {
		return fmt.Errorf("grpc receiver: %w", err)
	}
	return nil
}

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
