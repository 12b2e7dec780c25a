// Command sendspans sends spans to an OTLP endpoint, such as Tracestream's receiver, with the
// OpenTelemetry Go SDK: small traces (a server span and its children, with HTTP attributes) from
// one tracer provider per service.
//
//	sendspans --endpoint 127.0.0.1:4317 --spans 300 --services checkout,payment
//	sendspans --protocol http --endpoint 127.0.0.1:4318
//
// It is an example (examples/README.md) and a smoke test: it exits 1 if any span was not
// accepted (an unreachable endpoint, a rejected request, a partial success) and 2 on a bad flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const (
	protocolGRPC = "grpc"
	protocolHTTP = "http"

	// spansPerTrace is the size of a trace: a server span and its children.
	spansPerTrace = 4
)

// defaultEndpoints are the OTLP ports of each protocol, on which Tracestream listens too.
var defaultEndpoints = map[string]string{protocolGRPC: "127.0.0.1:4317", protocolHTTP: "127.0.0.1:4318"}

// options are the command-line settings.
type options struct {
	protocol string
	endpoint string
	insecure bool
	spans    int
	services []string
	// timeout bounds each export, retries included.
	timeout time.Duration
	retry   bool
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sendspans: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, opts, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sendspans: %v\n", err)
		os.Exit(1)
	}
}

// parseFlags reads the flags and checks them; usage and flag errors go to stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	var services string
	fs := flag.NewFlagSet("sendspans", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.protocol, "protocol", protocolGRPC, "OTLP transport: grpc or http (protobuf)")
	fs.StringVar(&o.endpoint, "endpoint", "", "OTLP endpoint host:port (default 127.0.0.1:4317 for grpc, 127.0.0.1:4318 for http)")
	fs.BoolVar(&o.insecure, "insecure", true, "send without TLS (--insecure=false: TLS verified with the system roots)")
	fs.IntVar(&o.spans, "spans", 300, "number of spans to send")
	fs.StringVar(&services, "services", "checkout,payment", "comma-separated service names; one tracer provider each")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of each export, retries included")
	fs.BoolVar(&o.retry, "retry", true, "retry exports that fail with a retryable error, within --timeout")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q (sendspans takes flags only)", fs.Arg(0))
	}
	for s := range strings.SplitSeq(services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.services = append(o.services, s)
		}
	}
	if o.endpoint == "" {
		o.endpoint = defaultEndpoints[o.protocol]
	}
	return o, o.validate()
}

func (o options) validate() error {
	var errs []error
	if _, ok := defaultEndpoints[o.protocol]; !ok {
		errs = append(errs, fmt.Errorf("--protocol: %q is neither %s nor %s", o.protocol, protocolGRPC, protocolHTTP))
	}
	if o.spans < 1 {
		errs = append(errs, fmt.Errorf("--spans: %d is not a positive number", o.spans))
	}
	if len(o.services) == 0 {
		errs = append(errs, errors.New("--services: name at least one service"))
	}
	if o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %s is not positive", o.timeout))
	}
	return errors.Join(errs...)
}

// run sends the spans and reports every export error: the ones ForceFlush and Shutdown return,
// and the ones the SDK hands to the global error handler (exports in the background). It sets
// the global error handler, so two runs must not overlap.
func run(ctx context.Context, opts options, stdout io.Writer) error {
	errs := &errorRecorder{}
	otel.SetErrorHandler(errs)

	providers := make([]*sdktrace.TracerProvider, 0, len(opts.services))
	err := func() error {
		for _, svc := range opts.services {
			tp, err := newTracerProvider(ctx, opts, svc)
			if err != nil {
				return err
			}
			providers = append(providers, tp)
		}
		tracers := make([]trace.Tracer, len(providers))
		for i, tp := range providers {
			tracers[i] = tp.Tracer("github.com/tracestream/tracestream/examples/sendspans")
		}
		if err := emit(ctx, tracers, opts.spans); err != nil {
			return err
		}
		for i, tp := range providers {
			if err := tp.ForceFlush(ctx); err != nil {
				errs.add(fmt.Errorf("flushing the spans of %s: %w", opts.services[i], err))
			}
		}
		return nil
	}()

	// Shutdown exports what is left and closes the connections, after an error or an
	// interruption too: it gets its own deadline rather than the possibly cancelled ctx.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.timeout)
	defer cancel()
	for i, tp := range providers {
		if err := tp.Shutdown(sctx); err != nil {
			errs.add(fmt.Errorf("shutting down the provider of %s: %w", opts.services[i], err))
		}
	}
	if err := errors.Join(err, errs.err()); err != nil {
		return fmt.Errorf("sending spans to %s over %s: %w", opts.endpoint, opts.protocol, err)
	}
	_, err = fmt.Fprintf(stdout, "sent %d spans (services %s) to %s over %s\n",
		opts.spans, strings.Join(opts.services, ", "), opts.endpoint, opts.protocol)
	return err
}

// newTracerProvider returns the tracer provider of one service, with its own exporter.
func newTracerProvider(ctx context.Context, opts options, service string) (*sdktrace.TracerProvider, error) {
	exp, err := newExporter(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP %s exporter of %s: %w", opts.protocol, service, err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(service)),
	)
	if err != nil {
		return nil, fmt.Errorf("building the resource of %s: %w", service, err)
	}
	return sdktrace.NewTracerProvider(
		// Blocking: when spans are made faster than they are sent, wait rather than drop
		// them, so that "sent N spans" is true.
		sdktrace.WithBatcher(exp, sdktrace.WithBlocking()),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	), nil
}

// newExporter returns the OTLP exporter of opts.protocol. The endpoint and these settings
// override the OTEL_EXPORTER_OTLP_* environment variables.
func newExporter(ctx context.Context, opts options) (sdktrace.SpanExporter, error) {
	if opts.protocol == protocolHTTP {
		o := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(opts.endpoint),
			otlptracehttp.WithTimeout(opts.timeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: opts.retry}),
		}
		if opts.insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, o...)
	}
	o := []otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(opts.endpoint),
		otlptracegrpc.WithTimeout(opts.timeout),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: opts.retry}),
	}
	if opts.insecure {
		o = append(o, otlptracegrpc.WithInsecure())
	}
	return otlptracegrpc.New(ctx, o...)
}

// emit makes n spans in traces of spansPerTrace spans (the last one may be smaller), taking the
// services in turn, one trace each.
func emit(ctx context.Context, tracers []trace.Tracer, n int) error {
	for seq, sent := 0, 0; sent < n; seq++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted after %d spans: %w", sent, err)
		}
		size := min(spansPerTrace, n-sent)
		emitTrace(ctx, tracers[seq%len(tracers)], seq, size)
		sent += size
	}
	return nil
}

// routes are the HTTP routes of the server spans, taken in turn.
var routes = []struct{ method, route string }{
	{"GET", "/cart/{id}"},
	{"POST", "/orders"},
	{"GET", "/orders/{id}"},
}

// emitTrace makes one trace of size spans: a server span, then size-1 children alternating
// between an outgoing HTTP call and internal work. Every tenth request fails with a 503.
// Timestamps are made up (one millisecond per step) so that durations look like a request's.
func emitTrace(ctx context.Context, tracer trace.Tracer, seq, size int) {
	r := routes[seq%len(routes)]
	status := 200
	if seq%10 == 9 {
		status = 503
	}
	start := time.Now()
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }

	ctx, root := tracer.Start(ctx, r.method+" "+r.route,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(r.method),
			semconv.HTTPRoute(r.route),
			semconv.HTTPResponseStatusCode(status),
			semconv.URLScheme("http"),
		))
	for i := 1; i < size; i++ {
		var child trace.Span
		if i%2 == 1 {
			_, child = tracer.Start(ctx, "GET",
				trace.WithSpanKind(trace.SpanKindClient),
				trace.WithTimestamp(at(2*i-1)),
				trace.WithAttributes(
					semconv.HTTPRequestMethodKey.String("GET"),
					semconv.ServerAddress("inventory"),
					semconv.HTTPResponseStatusCode(200),
				))
		} else {
			_, child = tracer.Start(ctx, "render response",
				trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithTimestamp(at(2*i-1)))
		}
		child.End(trace.WithTimestamp(at(2 * i)))
	}
	if status >= 500 {
		root.SetStatus(codes.Error, "") // server spans: 5xx is an error, 4xx is not
	}
	root.End(trace.WithTimestamp(at(2 * size)))
}

// errorRecorder is the otel.ErrorHandler of a run: it keeps the errors instead of logging them.
type errorRecorder struct {
	mu   sync.Mutex
	errs []error
}

// Handle records err.
func (r *errorRecorder) Handle(err error) { r.add(err) }

func (r *errorRecorder) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *errorRecorder) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}
