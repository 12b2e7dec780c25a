// Command consumer reads a stream that Tracestream writes, with a Redis consumer group, and
// continues the trace of every entry: it starts a span "process <span name>" whose parent is the
// span the entry holds (its traceparent field), acknowledges the entry, and ends the span.
//
//	consumer --redis 127.0.0.1:6379 --stream traces:checkout --group example --count 10
//
// It is an example (examples/README.md): the new spans are printed, one line each, by a small
// exporter where a real service would send them to a collector. Entries of every format (json,
// flat, otlp; docs/stream-entries.md) are read. Exit status: 0 after --count entries or on
// SIGINT/SIGTERM, 1 on a Redis error, 2 on a bad flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// readBatch is the most entries asked for in one XREADGROUP.
const readBatch = 100

// options are the command-line settings.
type options struct {
	redisAddr     string
	username      string
	passwordFile  string
	stream        string
	group         string
	consumer      string
	count         int
	block         time.Duration
	createGroupAt string
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, opts, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
		os.Exit(1)
	}
}

// parseFlags reads the flags and checks them; usage and flag errors go to stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "consumer"
	}
	var o options
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.redisAddr, "redis", "127.0.0.1:6379", "Redis address (host:port)")
	fs.StringVar(&o.username, "username", "", "Redis ACL user name (empty: the default user)")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the Redis password (a trailing newline is ignored)")
	fs.StringVar(&o.stream, "stream", "traces:checkout", "stream key to read")
	fs.StringVar(&o.group, "group", "example", "consumer group, created if missing")
	fs.StringVar(&o.consumer, "consumer", host, "consumer name within the group")
	fs.IntVar(&o.count, "count", 0, "stop after this many entries (0: run until SIGINT or SIGTERM)")
	fs.DurationVar(&o.block, "block", 2*time.Second, "how long one XREADGROUP waits for new entries; also how long SIGINT may take to stop a waiting consumer")
	fs.StringVar(&o.createGroupAt, "create-group-at", "0", `where a new group starts: "0" (the whole stream) or "$" (only entries added from now on)`)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q (the consumer takes flags only)", fs.Arg(0))
	}
	return o, o.validate()
}

func (o options) validate() error {
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"redis", o.redisAddr}, {"stream", o.stream}, {"group", o.group}, {"consumer", o.consumer},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("--%s: required", f.name))
		}
	}
	if o.count < 0 {
		errs = append(errs, fmt.Errorf("--count: %d is negative (0 runs until interrupted)", o.count))
	}
	// BLOCK 0 waits forever, and go-redis does not interrupt a blocked read when the context
	// is cancelled: a consumer that cannot wake up cannot stop on SIGINT.
	if o.block < time.Millisecond {
		errs = append(errs, fmt.Errorf("--block: %s is too short (at least 1ms)", o.block))
	}
	if o.createGroupAt != "0" && o.createGroupAt != "$" {
		errs = append(errs, fmt.Errorf(`--create-group-at: %q is neither "0" nor "$"`, o.createGroupAt))
	}
	return errors.Join(errs...)
}

// run connects, consumes and prints a summary. An interruption (ctx cancelled) is a normal end.
func run(ctx context.Context, opts options, stdout io.Writer) error {
	ro := &redis.Options{Addr: opts.redisAddr, Username: opts.username}
	if opts.passwordFile != "" {
		pw, err := readPassword(opts.passwordFile)
		if err != nil {
			return err
		}
		ro.Password = pw
	}
	rdb := redis.NewClient(ro)
	defer func() { _ = rdb.Close() }()

	tp := newTracerProvider(stdout)
	tracer := tp.Tracer("github.com/tracestream/tracestream/examples/consumer")
	n, err := consume(ctx, rdb, opts, tracer, stdout)

	// The summary is printed after an interruption too, so it must not use the cancelled ctx.
	after, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if shutdownErr := tp.Shutdown(after); shutdownErr != nil {
		err = errors.Join(err, fmt.Errorf("shutting down the tracer provider: %w", shutdownErr))
	}
	_, _ = fmt.Fprintf(stdout, "consumed %d entries from %s as %s/%s", n, opts.stream, opts.group, opts.consumer)
	if g, gerr := groupInfo(after, rdb, opts.stream, opts.group); gerr == nil {
		lag := "unknown"
		if g.Lag >= 0 {
			lag = fmt.Sprint(g.Lag)
		}
		_, _ = fmt.Fprintf(stdout, "; group entries-read %d, lag %s, pending %d", g.EntriesRead, lag, g.Pending)
	}
	_, _ = fmt.Fprintln(stdout)
	return err
}

// readPassword reads a password file the way Kubernetes mounts a Secret key: the whole file,
// without a trailing newline. Errors name the file, never its contents.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// newTracerProvider returns a tracer provider that prints each ended span as one line to out;
// extra options (tests add a span recorder) come last.
func newTracerProvider(out io.Writer, extra ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	opts := append([]sdktrace.TracerProviderOption{
		// A syncer prints each span as it ends, in order; a real service uses WithBatcher
		// and an OTLP exporter.
		sdktrace.WithSyncer(&lineExporter{w: out}),
		// The example continues every entry's trace, even when the producer did not
		// sample it, so that each entry prints a line. A real service keeps the default
		// (ParentBased), which honours the sampled flag of the traceparent.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithResource(sdkresource.NewSchemaless(semconv.ServiceName("tracestream-example-consumer"))),
	}, extra...)
	return sdktrace.NewTracerProvider(opts...)
}

// lineExporter is a SpanExporter that prints one line per span instead of sending it to a
// collector: the entry it processed, the entry's trace and span (the parent), and the new span.
type lineExporter struct{ w io.Writer }

// ExportSpans prints the spans; the SDK never calls it concurrently.
func (e *lineExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	for _, s := range spans {
		id := "?"
		for _, kv := range s.Attributes() {
			if kv.Key == semconv.MessagingMessageIDKey {
				id = kv.Value.AsString()
			}
		}
		if _, err := fmt.Fprintf(e.w, "entry %s trace %s parent %s -> span %s\n",
			id, s.SpanContext().TraceID(), s.Parent().SpanID(), s.SpanContext().SpanID()); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown has nothing to release.
func (e *lineExporter) Shutdown(context.Context) error { return nil }

// consume creates the consumer group if needed, then processes entries until it has processed
// opts.count of them (0: no limit) or ctx is cancelled, and returns how many it processed.
//
// It first re-reads the entries already delivered to this consumer but never acknowledged (a
// previous run stopped between XREADGROUP and XACK), then reads new entries (">"). It asks for
// no more entries than it still has to process, so --count never leaves entries pending.
// Cancelling ctx stops it between two reads: the entries of the read in progress are
// processed and acknowledged first.
func consume(ctx context.Context, rdb redis.Cmdable, opts options, tracer trace.Tracer, out io.Writer) (int, error) {
	if err := createGroup(ctx, rdb, opts.stream, opts.group, opts.createGroupAt); err != nil {
		return 0, err
	}
	n := 0
	id := "0" // this consumer's pending entries first
	for opts.count == 0 || n < opts.count {
		if ctx.Err() != nil {
			return n, nil
		}
		args := &redis.XReadGroupArgs{
			Group:    opts.group,
			Consumer: opts.consumer,
			Streams:  []string{opts.stream, id},
			Count:    readBatch,
			Block:    opts.block,
		}
		if opts.count > 0 {
			args.Count = int64(min(readBatch, opts.count-n))
		}
		if id != ">" {
			args.Block = -1 // reading the pending entries never waits
		}
		streams, err := rdb.XReadGroup(ctx, args).Result()
		switch {
		case errors.Is(err, redis.Nil): // BLOCK timed out with no new entry
			continue
		case err != nil && ctx.Err() != nil:
			return n, nil
		case err != nil:
			return n, fmt.Errorf("reading %s as %s/%s: %w", opts.stream, opts.group, opts.consumer, err)
		}
		var msgs []redis.XMessage
		for _, s := range streams {
			msgs = append(msgs, s.Messages...)
		}
		if id != ">" && len(msgs) == 0 {
			id = ">"
			continue
		}
		// Entries already read are delivered to this consumer: finish them even if ctx is
		// cancelled meanwhile, rather than leave them pending.
		work := context.WithoutCancel(ctx)
		for _, msg := range msgs {
			if err := processEntry(work, rdb, opts, tracer, out, msg); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// createGroup creates the consumer group, and the stream if it does not exist yet, starting at
// start ("0" or "$"). A group that already exists is left as it is.
func createGroup(ctx context.Context, rdb redis.Cmdable, stream, group, start string) error {
	err := rdb.XGroupCreateMkStream(ctx, stream, group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("creating consumer group %s on %s: %w", group, stream, err)
	}
	return nil
}

// processEntry continues the trace of one entry and acknowledges it. An entry without a valid
// traceparent has no trace to continue: it is reported and acknowledged, so that it is not
// delivered again and again.
func processEntry(ctx context.Context, rdb redis.Cmdable, opts options, tracer trace.Tracer, out io.Writer, msg redis.XMessage) error {
	info := describeEntry(msg.Values)
	carrier := propagation.MapCarrier{}
	if tp, ok := msg.Values["traceparent"].(string); ok {
		carrier["traceparent"] = tp
	}
	if info.traceState != "" {
		carrier["tracestate"] = info.traceState
	}
	parent := propagation.TraceContext{}.Extract(ctx, carrier)
	if !trace.SpanContextFromContext(parent).IsValid() {
		if err := ack(ctx, rdb, opts, msg.ID); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "entry %s skipped: no valid traceparent\n", msg.ID)
		return err
	}

	name := "process " + opts.stream // the messaging convention when there is no span name
	if info.name != "" {
		name = "process " + info.name
	}
	spanCtx, span := tracer.Start(parent, name,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("redis"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(opts.stream),
			semconv.MessagingConsumerGroupName(opts.group),
			semconv.MessagingMessageID(msg.ID),
		))
	defer span.End()

	// A real consumer does its work here, with spanCtx, before acknowledging the entry.
	if err := ack(spanCtx, rdb, opts, msg.ID); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "XACK failed")
		return err
	}
	return nil
}

func ack(ctx context.Context, rdb redis.Cmdable, opts options, id string) error {
	if err := rdb.XAck(ctx, opts.stream, opts.group, id).Err(); err != nil {
		return fmt.Errorf("acknowledging entry %s of %s: %w", id, opts.stream, err)
	}
	return nil
}

// entryInfo is what the consumer reads from an entry besides its traceparent.
type entryInfo struct {
	name       string
	traceState string
}

// describeEntry reads the span name and W3C tracestate of an entry of any format: the json
// format's data, the flat format's fields, or the otlp format's protobuf. A value it cannot
// read is left empty: the traceparent alone is enough to continue the trace.
func describeEntry(values map[string]any) entryInfo {
	if data, ok := values["data"].(string); ok {
		var d struct {
			Name       string `json:"name"`
			TraceState string `json:"trace_state"`
		}
		_ = json.Unmarshal([]byte(data), &d)
		return entryInfo{name: d.Name, traceState: d.TraceState}
	}
	if raw, ok := values["otlp"].(string); ok {
		var td tracepb.TracesData
		if proto.Unmarshal([]byte(raw), &td) != nil {
			return entryInfo{}
		}
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					return entryInfo{name: sp.GetName(), traceState: sp.GetTraceState()}
				}
			}
		}
		return entryInfo{}
	}
	name, _ := values["name"].(string)
	traceState, _ := values["trace_state"].(string)
	return entryInfo{name: name, traceState: traceState}
}

// groupInfo returns XINFO GROUPS' entry for group.
func groupInfo(ctx context.Context, rdb redis.Cmdable, stream, group string) (redis.XInfoGroup, error) {
	groups, err := rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return redis.XInfoGroup{}, fmt.Errorf("reading the groups of %s: %w", stream, err)
	}
	for _, g := range groups {
		if g.Name == group {
			return g, nil
		}
	}
	return redis.XInfoGroup{}, fmt.Errorf("stream %s has no group %s", stream, group)
}
